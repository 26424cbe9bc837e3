"""The search syntax: the parser on its own, and its meaning against a real database."""

from __future__ import annotations

import datetime
import sqlite3
import threading
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from mailtrap.schema import migrations
from mailtrap.search import Search, SearchSyntaxError, parse, tokens
from mailtrap.store import IncomingMessage, Store

# -- the parser ------------------------------------------------------------------


def test_tokens_split_on_white_space_outside_quotes():
    found = [(token.text, token.quoted_at) for token in tokens('a  "b c" to:"d e" -"f" "g')]
    assert found == [("a", None), ("b c", 0), ("to:d e", 3), ("-f", 1), ("g", 0)]


def test_an_empty_query_or_what_mailpit_drops_matches_everything():
    for query in ("", "   ", "<>", '""', ", ;"):
        assert parse(query).matches_everything, query


def test_other_punctuation_is_searched_for_literally_as_mailpit_does():
    for query in ("*", "@@@", "- !", "#"):
        assert not parse(query).matches_everything, query


def test_words_become_one_quoted_fts_query_with_prefixes():
    search = parse('hello "exact phrase" wor"ld')
    assert search.params == ('"hello"* AND "exact phrase" AND "world"',)


def test_quotes_inside_words_are_escaped_for_fts():
    assert parse('say"" it')
    assert parse("a AND b OR NOT c NEAR(d) e:f {g} ^h").params == (
        '"a"* AND "AND"* AND "b"* AND "OR"* AND "NOT"* AND "c"* AND "NEAR(d)"* AND "e:f"* '
        'AND "{g}"* AND "^h"*',
    )


def test_a_quoted_filter_is_plain_text():
    assert parse('"is:read"').params == ('"is:read"',)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("header:Bad(Name):x", "invalid header name"),
        ("x " * 100, "more than 64 terms"),
        ("x" * 5000, "longer than 4096 characters"),
    ],
)
def test_bad_filters_are_syntax_errors(query: str, message: str):
    with pytest.raises(SearchSyntaxError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(query)


def test_a_filter_without_a_value_is_ignored():
    assert parse("to: subject:").matches_everything


def test_filter_values_mailpit_cannot_read_are_text_or_left_out():
    # Unknown is:/has: values and sizes that are none: searched as words, as Mailpit does.
    for query in ("is:flagged", "has:wings", "larger:huge"):
        assert parse(query).params == (f'"{query}"*',), query
    # Dates that are none: left out (Mailpit logs and ignores them).
    for query in ("before:yesterday", "after:2024-13-01"):
        assert parse(query).matches_everything, query


def test_dates_are_read_in_the_given_time_zone():
    auckland = zoneinfo.ZoneInfo("Pacific/Auckland")
    (timestamp,) = parse("after:2024-04-01", timezone=auckland).params
    assert timestamp == datetime.datetime(2024, 4, 1, tzinfo=auckland).timestamp()
    for form in ("2024/4/1", "04/01/2024", "2024-04-01T00:00"):
        assert parse(f"after:{form}", timezone=auckland).params == (timestamp,), form
    (with_time,) = parse('before:"2024-04-01 13:30:00+00:00"').params
    assert with_time == datetime.datetime(2024, 4, 1, 13, 30, tzinfo=datetime.UTC).timestamp()


def test_sizes_accept_units():
    assert parse("larger:2k smaller:1.5M").params == (2048, 1572864)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_no_query_is_an_sql_or_fts_error(query: str):
    """Whatever is typed, the SQL runs: the answer is a result or a SearchSyntaxError."""
    try:
        search = parse(query)
    except SearchSyntaxError:
        return
    _SHARED_DB.execute(f"SELECT count(*) FROM messages WHERE {search.where}", search.params)


# -- what queries find ------------------------------------------------------------------


def _prepare_shared_db() -> sqlite3.Connection:
    """An empty database with the real schema, for the fuzz test (no server needed)."""
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    migrations.apply(Database(conn))
    return conn


_SHARED_DB = _prepare_shared_db()

MESSAGES = {
    "alpha": (
        b"From: Alice Example <alice@example.com>\r\nTo: a@x.com, Team <team@x.com>\r\n"
        b"Cc: Carol <carol@corp.test>\r\nReply-To: help@example.com\r\n"
        b"Subject: Alpha invoice\r\nMessage-ID: <alpha.1@example.com>\r\n"
        b"X-Campaign: spring-sale\r\nX-Tags: billing, Urgent\r\n\r\nYour invoice is attached.\r\n",
        ["a@x.com", "team@x.com", "carol@corp.test", "hidden@bcc.test"],
    ),
    "beta": (
        b"From: bob@example.org\r\nTo: ba@x.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe_beta?=\r\n"
        b"Message-ID: <beta.2@example.org>\r\nX-Campaign: =?utf-8?q?Fr=C3=BChling?=\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        b"Welcome, johnson family\r\n--b\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="report.pdf"\r\n\r\n%PDF\r\n--b--\r\n',
        ["ba@x.com"],
    ),
    "gamma": (
        b"From: Gamma <noreply@service.test>\r\nTo: A@X.COM\r\nSubject: gamma reset password\r\n"
        b"\r\n" + b"The quick brown fox. " * 200 + b"\r\n",
        ["a@x.com"],
    ),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = Store(tmp_path_factory.mktemp("search") / "mail.db").open()
    ids = {}
    for name, (raw, rcpt_tos) in MESSAGES.items():
        ids[name] = store.add(IncomingMessage(raw, "sender@example.com", rcpt_tos)).result()
    store.set_read([ids["gamma"]]).result()
    store.ids_by_name = ids  # type: ignore[attr-defined]
    yield store
    store.close()


def found(store: Store, query: str) -> list[str]:
    """Names of the messages matching ``query``, newest first."""
    names = {value: key for key, value in store.ids_by_name.items()}  # type: ignore[attr-defined]
    return [names[row["id"]] for row in store.page(parse(query)).rows]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("invoice", ["alpha"]),
        ("INV", ["alpha"]),  # a word matches words starting so, in any case
        ("voice", []),  # but not the inside of a word
        ("gruße", ["beta"]),  # diacritics folded, in the decoded subject
        ('"quick brown"', ["gamma"]),
        ('"brown quick"', []),
        ("report", ["beta"]),  # attachment names are indexed
        ("carol", ["alpha"]),  # so are addresses
        ("invoice alpha", ["alpha"]),
        ("invoice gamma", []),
        ("-invoice", ["gamma", "beta"]),
        ("!invoice", ["gamma", "beta"]),
        ('-"quick brown"', ["beta", "alpha"]),
    ],
)
def test_words_and_phrases(store: Store, query: str, expected: list[str]):
    assert found(store, query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("to:a@x.com", ["gamma", "alpha"]),  # exact, in any case: not ba@x.com
        ("to:ba@x.com", ["beta"]),
        ("to:x.com", ["gamma", "beta", "alpha"]),  # no @: part of a name or address
        ("to:@x.com", ["gamma", "beta", "alpha"]),  # @domain: that domain
        ("to:@corp.test", []),
        ("-to:a@x.com", ["beta"]),
        ('to:"Team <team@x.com>"', ["alpha"]),
        ("to:team", ["alpha"]),
        ("from:alice@example.com", ["alpha"]),
        ("from:ALICE@example.com", ["alpha"]),
        ("from:lice@example.com", []),
        ('from:"Alice Example"', ["alpha"]),
        ("from:@example.org", ["beta"]),
        ("cc:carol@corp.test", ["alpha"]),
        ("cc:arol@corp.test", []),
        ("bcc:hidden@bcc.test", ["alpha"]),  # an envelope recipient not in To or Cc
        ("reply-to:help@example.com", ["alpha"]),
        ("addressed:help@example.com", ["alpha"]),
        ("addressed:noreply@service.test", ["gamma"]),
        ("addressed:ba@x.com", ["beta"]),
    ],
)
def test_address_filters(store: Store, query: str, expected: list[str]):
    assert found(store, query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("subject:invoice", ["alpha"]),
        ('subject:"alpha inv"', ["alpha"]),  # part of the subject, as Mailpit
        ("subject:Grüße", ["beta"]),
        ("-subject:invoice", ["gamma", "beta"]),
        ("message-id:beta.2", ["beta"]),
        ("message-id:<alpha.1@example.com>", ["alpha"]),
        ("tag:billing", ["alpha"]),
        ("tag:URGENT", ["alpha"]),
        ("tag:bill", []),  # a tag matches whole
        ("-tag:billing", ["gamma", "beta"]),
        ("is:tagged", ["alpha"]),
        ("-is:tagged", ["gamma", "beta"]),
        ("is:read", ["gamma"]),
        ("is:unread", ["beta", "alpha"]),
        ("-is:read", ["beta", "alpha"]),
        ("has:attachment", ["beta"]),
        ("-has:attachment", ["gamma", "alpha"]),
        ("larger:2k", ["gamma"]),
        ("smaller:2k", ["beta", "alpha"]),
        ("after:2000-01-01", ["gamma", "beta", "alpha"]),
        ("before:2000-01-01", []),
        ("-before:2000-01-01", ["gamma", "beta", "alpha"]),
    ],
)
def test_field_filters(store: Store, query: str, expected: list[str]):
    assert found(store, query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("header:X-Campaign:spring", ["alpha"]),
        ("header:x-campaign:SPRING-SALE", ["alpha"]),  # name and value in any case
        ("header:X-Campaign:Frühling", ["beta"]),  # RFC 2047 decoded
        ("header:X-Campaign", ["beta", "alpha"]),  # the field exists
        ("header:X-Campaign:winter", []),
        ("-header:X-Campaign", ["gamma"]),
        ('header:"Message-ID: beta.2"', ["beta"]),
        ("header:Subject:reset", ["gamma"]),
        ("header:X-Missing", []),
    ],
)
def test_header_filter(store: Store, query: str, expected: list[str]):
    assert found(store, query) == expected


def test_filters_and_words_combine(store: Store):
    assert found(store, "to:a@x.com -is:read invoice") == ["alpha"]
    assert found(store, "to:a@x.com -tag:billing") == ["gamma"]


def test_counts_of_a_search(store: Store):
    page = store.page(parse("to:a@x.com"), 0, 1)
    assert (len(page.rows), page.total, page.unread) == (1, 2, 1)


def test_matching_ids_and_latest(store: Store):
    ids = store.ids_by_name  # type: ignore[attr-defined]
    assert store.matching_ids(parse("to:@x.com")) == [ids["gamma"], ids["beta"], ids["alpha"]]
    assert store.latest_id() == ids["gamma"]
    assert store.latest_id(parse("has:attachment")) == ids["beta"]


def test_the_header_column_is_filled_for_messages_stored_before_it_existed(tmp_path: Path):
    """The migration that adds the column reads older messages' headers from their raw bytes."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    db = Database(conn)
    migrations.apply(db, stop_before="m002_reading")
    conn.execute(
        "INSERT INTO messages (seq, id, created, size, tags) VALUES (1, 'old1', 0, 10, '[]')"
    )
    conn.execute("INSERT INTO raw (seq, data) VALUES (1, ?)", [b"X-Old: yes\r\n\r\nbody\r\n"])
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert [row["id"] for row in store.page(parse("header:X-Old:yes")).rows] == ["old1"]


def test_the_first_page_reads_only_indexes_for_its_counts(store: Store):
    """Listing must stay fast with 100,000 messages: no count scans the table."""
    for sql in ("SELECT count(*) FROM messages", "SELECT count(*) FROM messages WHERE read = 0"):
        plan = " ".join(row[3] for row in store.reader.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "COVERING INDEX" in plan, plan
    tags_sql = (
        "SELECT tag.value FROM messages, json_each(messages.tags) AS tag "
        "WHERE messages.tags != '[]'"
    )
    plan = " ".join(row[3] for row in store.reader.execute(f"EXPLAIN QUERY PLAN {tags_sql}"))
    assert "messages_tagged" in plan, plan


def test_search_is_a_value_object():
    assert Search().matches_everything
    assert not parse("is:read").matches_everything


def test_a_read_connection_outlives_its_thread(store: Store):
    """The HTTP server runs each request in a new thread; connections are pooled, not remade."""
    seen: list[sqlite3.Connection] = []

    def read() -> None:
        seen.append(store.reader)
        store.page(parse("invoice"))

    for _ in range(3):
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
    assert seen[0] is seen[1] is seen[2]
    assert not seen[0].in_transaction


def test_marking_read_keeps_the_index_and_does_not_rebuild_it(store: Store):
    ids = store.ids_by_name  # type: ignore[attr-defined]
    store.set_read([ids["alpha"]], True).result()
    store.set_tags([ids["alpha"]], ["billing", "Urgent"]).result()
    assert found(store, "invoice is:read") == ["alpha"]
    (trigger,) = store.reader.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'messages_au'"
    ).fetchone()
    assert "UPDATE OF subject, addresses, body, attachment_names" in trigger
    conn = sqlite3.connect(store.path)  # FTS5's own consistency check with its content table
    conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
    conn.close()
    store.set_read([ids["alpha"]], False).result()
