"""Mailpit's search syntax, parsed into a SQL condition on the ``messages`` table.

Pure: a query string in, a WHERE clause and its parameters out. Words and
"exact phrases" go to the full-text index ``messages_fts`` (rowid = seq); the
filters below go to columns. Every term may be negated with ``-`` or ``!``;
all terms must hold. Values of the user never become SQL: they are bound
parameters, and words reach FTS5 only as quoted strings, so no input can make
a syntax error there.

==========================  ==============================================
``word``                    a word starting so, in subject, addresses (Reply-To and
                            Return-Path too), body or attachment names
``"exact phrase"``          those words in that order
``*`` and other             that text literally, anywhere in the same fields
punctuation alone
``from: to: cc: bcc:``      with an address: that address exactly (any case);
``reply-to: addressed:``    with ``@domain``: any address at that domain;
                            else: part of a name or an address
``subject:``                part of the subject
``message-id:``             part of the Message-ID
``tag:``                    that tag (any case)
``header:Name:value``       a header field of that name containing the value
``is:read is:unread``
``is:tagged``
``has:attachment``
``has:inline``
``before: after:``          received before (or at) or after a date: ``2024-04-01``,
                            ``2024/04/01``, ``04/01/2024``, ``"2024-04-01 13:30"``,
                            RFC 3339, RFC 2822 or Unix seconds (years 1000 to 9998)
``larger: smaller:``        size in bytes, or with ``k``, ``m`` or ``g`` (powers of 1024)
==========================  ==============================================

As in Mailpit, a filter whose value it cannot read is not an error: an
unknown ``is:`` or ``has:`` value, or a size that is not one, is searched
for as text, and a date that is not one is left out. What would cost too
much (a query too long, too many terms), a bad header name, and dates and
sizes outside what can be stored (years 1000 to 9998, 2^63-1 bytes) are
refused with :class:`SearchSyntaxError`.
"""

from __future__ import annotations

import datetime
import decimal
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any

from mailtrap.errors import MailtrapError

MAX_QUERY_LENGTH = 4096
MAX_TERMS = 64
MIN_YEAR, MAX_YEAR = 1000, 9998
MAX_SIZE = 2**63 - 1  # SQLite's largest integer


class SearchSyntaxError(MailtrapError, ValueError):
    """A search query that cannot be understood (an unknown ``is:`` value, a bad date...)."""


@dataclass(frozen=True)
class Search:
    """A parsed query: ``SELECT ... FROM messages WHERE {where}`` with ``params`` bound."""

    where: str = "1"
    params: tuple[Any, ...] = ()

    @property
    def matches_everything(self) -> bool:
        """True when no term restricts the result (an empty query, or punctuation Mailpit drops)."""
        return self.where == "1"

    def also(self, other: Search) -> Search:
        """The messages both searches find."""
        if other.matches_everything:
            return self
        if self.matches_everything:
            return other
        return Search(f"({self.where}) AND ({other.where})", self.params + other.params)


@dataclass
class _Token:
    text: str
    quoted_at: int | None = None  # where in ``text`` the first quoted stretch began


def tokens(query: str) -> Iterator[_Token]:
    """Split on white space outside double quotes; the quotes themselves are dropped.

    ``to:"John Doe"`` is one token ``to:John Doe``, quoted from offset 3; an
    unclosed quote runs to the end.
    """
    current: _Token | None = None
    quoting = False
    for char in query:
        if char == '"':
            current = current or _Token("")
            if current.quoted_at is None:
                current.quoted_at = len(current.text)
            quoting = not quoting
        elif char.isspace() and not quoting:
            if current is not None:
                yield current
            current = None
        else:
            current = current or _Token("")
            current.text += char
    if current is not None:
        yield current


@dataclass
class _Builder:
    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)  # positive full-text terms, ANDed

    def add(self, sql: str, params: list[Any], negated: bool) -> None:
        self.conditions.append(f"NOT ({sql})" if negated else f"({sql})")
        self.params += params


def parse(query: str, *, timezone: datetime.tzinfo | None = None) -> Search:
    """Parse a query; dates without a zone are in ``timezone`` (default: the server's)."""
    if len(query) > MAX_QUERY_LENGTH:
        raise SearchSyntaxError(f"the query is longer than {MAX_QUERY_LENGTH} characters")
    builder = _Builder()
    # FTS5 reads its query as a C string: a NUL would cut it short, mid-quote.
    query = query.replace("\x00", " ")
    for count, token in enumerate(tokens(query), 1):
        if count > MAX_TERMS:
            raise SearchSyntaxError(f"the query has more than {MAX_TERMS} terms")
        _add_term(builder, token, timezone)
    if builder.phrases:
        builder.conditions.insert(0, _FTS_MATCH)
        builder.params.insert(0, " AND ".join(builder.phrases))
    if not builder.conditions:
        return Search()
    return Search(" AND ".join(builder.conditions), tuple(builder.params))


_FTS_MATCH = "seq IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)"
_FILTERS = {
    "from", "to", "cc", "bcc", "reply-to", "addressed", "subject", "message-id", "tag",
    "header", "is", "has", "before", "after", "larger", "smaller",
}  # fmt: skip


def _add_term(builder: _Builder, token: _Token, timezone: datetime.tzinfo | None) -> None:
    text, quoted_at = token.text, token.quoted_at
    negated = len(text) > 1 and text[0] in "-!" and quoted_at != 0
    if negated:
        text = text[1:]
        quoted_at = None if quoted_at is None else quoted_at - 1
    name, colon, value = text.partition(":")
    # A quote before the colon makes the whole term text: "is:read" is two words.
    if colon and name.lower() in _FILTERS and (quoted_at is None or quoted_at > len(name)):
        if not value.strip():
            return
        found = _filter(name.lower(), value.strip(), timezone)
        if found is _AS_TEXT:
            pass  # searched for as text below, as Mailpit does
        elif found is not None:
            builder.add(*found, negated)
            return
        else:
            return  # a date that is not one: left out, as Mailpit leaves it out
    if not _has_word(text):
        _add_literal(builder, text, negated)
        return
    phrase = _fts_string(text) + ("" if quoted_at is not None else "*")
    if negated:
        builder.add(_FTS_MATCH, [phrase], negated=True)
    else:
        builder.phrases.append(phrase)


def _has_word(text: str) -> bool:
    return any(char.isalnum() for char in text)


# What Mailpit's cleanString turns into spaces, in queries and in the text it searches.
_MAILPIT_SEPARATORS = re.compile(r'[\r\n\t<>",;()\ufeff]')
_LITERAL_MATCH = (
    "instr(lower(coalesce(subject, '') || ' ' || coalesce(addresses, '') || ' ' || "
    "coalesce(body, '') || ' ' || coalesce(attachment_names, '')), ?) > 0"
)


def _add_literal(builder: _Builder, text: str, negated: bool) -> None:
    """Punctuation the index cannot hold (``*``, ``#``): found as text, as Mailpit finds it.

    This reads the stored text of every message: slow on a large mailbox,
    but only such a query pays for it.
    """
    literal = " ".join(_MAILPIT_SEPARATORS.sub(" ", text).split()).lower()
    if literal:  # "<>" or '""' alone is nothing, to Mailpit too
        builder.add(_LITERAL_MATCH, [literal], negated)


def _fts_string(text: str) -> str:
    """An FTS5 string: the tokenizer splits it into a phrase; no operator inside counts."""
    return '"' + text.replace('"', '""') + '"'


_AS_TEXT: Any = object()  # a filter value Mailpit reads as a plain word


def _filter(name: str, value: str, timezone: datetime.tzinfo | None) -> Any:
    """(SQL, parameters); ``_AS_TEXT`` to search the term as text; None to leave it out."""
    if name in _ADDRESS_FIELDS or name in ("from", "addressed"):
        return _address_filter(name, value)
    if name == "subject":
        return "coalesce(subject, '') LIKE ? ESCAPE '\\'", [_contains(value)]
    if name == "message-id":
        return "coalesce(message_id, '') LIKE ? ESCAPE '\\'", [_contains(value.strip("<>"))]
    if name == "tag":
        # ``tags != '[]'`` first: SQLite then reads only tagged messages (a partial index).
        return (
            "messages.tags != '[]' AND EXISTS (SELECT 1 FROM json_each(messages.tags) "
            "WHERE value LIKE ? ESCAPE '\\')",
            [_like_escape(value)],
        )
    if name == "header":
        return _header_filter(value)
    if name in ("is", "has"):
        return _FLAGS.get(f"{name}:{value.lower()}", _AS_TEXT)
    if name in ("before", "after"):
        moment = parse_date(value, timezone)
        if moment is None:
            return None
        # Mailpit's bounds: both ends included.
        return f"created {'<=' if name == 'before' else '>='} ?", [moment]
    size = _size(value)
    if not size:  # Mailpit reads "larger:0" and "larger:huge" as text
        return _AS_TEXT
    return f"size {'>' if name == 'larger' else '<'} ?", [size]


_FLAGS: dict[str, tuple[str, list[Any]]] = {
    "is:read": ("read = 1", []),
    "is:unread": ("read = 0", []),
    "is:tagged": ("messages.tags != '[]'", []),
    "has:attachment": ("attachments > 0", []),
    "has:attachments": ("attachments > 0", []),
    "has:inline": ("coalesce(inline, 0) > 0", []),
    "has:inlines": ("coalesce(inline, 0) > 0", []),
}


_ADDRESS_FIELDS = {"to": "to_json", "cc": "cc_json", "bcc": "bcc_json", "reply-to": "reply_to_json"}
_ADDRESS_PARTS = {  # (address, display name) of From, and of an item ``a`` of a JSON list
    "from": ("from_address", "from_name"),
    "list": ("json_extract(a.value, '$.Address')", "json_extract(a.value, '$.Name')"),
}


def _address_filter(name: str, value: str) -> tuple[str, list[Any]]:
    """Exact address, ``@domain``, or part of a name or address; see the module docstring."""
    if value.startswith("@"):
        text, pattern, exact = value, "%" + _like_escape(value), True
    elif "@" in value:
        text = parseaddr(value)[1] or value
        pattern, exact = _like_escape(text), True
    else:
        text, pattern, exact = value, _contains(value), False
    # LIKE without wildcards is equality that ignores (ASCII) case, as addresses want.
    like = "coalesce({}, '') LIKE ? ESCAPE '\\'"
    conditions: list[str] = []
    params: list[Any] = []
    for field_name in [*_ADDRESS_FIELDS, "from"] if name == "addressed" else [name]:
        address, display_name = _ADDRESS_PARTS["from" if field_name == "from" else "list"]
        test, test_params = like.format(address), [pattern]
        if not exact:
            test, test_params = f"({test} OR {like.format(display_name)})", [pattern, pattern]
        if field_name != "from":
            column = f"messages.{_ADDRESS_FIELDS[field_name]}"
            test = f"EXISTS (SELECT 1 FROM json_each(coalesce({column}, '[]')) AS a WHERE {test})"
            if _verbatim_in_json(text):  # the cheap test first; see _header_filter
                test = f"({like.format(column)} AND {test})"
                test_params.insert(0, _contains(text))
        conditions.append(test)
        params += test_params
    return " OR ".join(conditions), params


def _verbatim_in_json(text: str) -> bool:
    """Whether ``text`` appears unchanged in the JSON the writer stores (ASCII, no escapes)."""
    return text.isascii() and text.isprintable() and not any(char in text for char in '"\\')


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _header_filter(value: str) -> tuple[str, list[Any]]:
    """``Name:value`` (the field contains the value, any case) or ``Name`` (the field exists)."""
    name, _, wanted = value.partition(":")
    name, wanted = name.strip(), wanted.strip()
    if not _HEADER_NAME.fullmatch(name):
        raise SearchSyntaxError(f"invalid header name in 'header:{value}'")
    sql = (
        "EXISTS (SELECT 1 FROM json_each(coalesce(messages.headers, '[]')) AS h "
        "WHERE json_extract(h.value, '$[0]') LIKE ? ESCAPE '\\' "
        "AND json_extract(h.value, '$[1]') LIKE ? ESCAPE '\\')"
    )
    params: list[Any] = [_like_escape(name), _contains(wanted)]
    # A cheap test of the whole JSON text first rules out most messages. It is
    # exact only for values JSON writes unchanged (this column keeps UTF-8 as is).
    plain = wanted or name
    if plain.isprintable() and not any(char in plain for char in '"\\'):
        sql = f"coalesce(messages.headers, '') LIKE ? ESCAPE '\\' AND {sql}"
        params.insert(0, _contains(plain))
    return sql, params


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains(text: str) -> str:
    return f"%{_like_escape(text)}%"


_DATE = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})(.*)")
_US_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})(.*)")
_UNIX_TIME = re.compile(r"\d{9,13}")  # seconds, or milliseconds as JavaScript gives them


def parse_date(value: str, timezone: datetime.tzinfo | None = None) -> float | None:
    """A date (and time) as a Unix time, or None if it is not one.

    ``2024-04-01``, ``2024/04/01``, ``04/01/2024`` (each with an optional
    time), RFC 3339 (``2024-04-01T13:30:00.123Z``, what ``Created`` holds),
    RFC 2822 (a Date header) or Unix seconds or milliseconds. A date without
    a zone is in ``timezone`` (default: the server's). Years 1000 to 9998:
    a date outside them is a SearchSyntaxError.
    """
    value = value.strip()
    if _UNIX_TIME.fullmatch(value):
        number = int(value)
        return number / 1000 if len(value) > 11 else float(number)
    moment = _calendar_date(value)
    if moment is None:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    # Far enough from year 1 and 9999 that no zone offset leaves datetime's range.
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise SearchSyntaxError(
            f"invalid date {value!r}: the year must be from {MIN_YEAR} to {MAX_YEAR}"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone) if timezone else moment.astimezone()
    return moment.timestamp()


def _calendar_date(value: str) -> datetime.datetime | None:
    match = _DATE.fullmatch(value) or _US_DATE.fullmatch(value)
    if not match:
        return None
    first, second, third, rest = match.groups()
    year, month, day = (first, second, third) if len(first) == 4 else (third, first, second)
    text = f"{year}-{int(month):02d}-{int(day):02d}{rest}"
    try:
        return datetime.datetime.fromisoformat(text.replace("_", " "))
    except ValueError:
        return None


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]?)b?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _size(value: str) -> int:
    """Bytes, or 0 for what is not a size (as Mailpit's sizeToBytes)."""
    match = _SIZE.fullmatch(value)
    if not match:
        return 0
    # Decimal, not float: exact, and no infinity for a long run of digits.
    size = int(decimal.Decimal(match[1]) * _SIZE_UNITS[match[2].lower()])
    if size > MAX_SIZE:
        raise SearchSyntaxError(f"invalid size {value[:40]!r}: at most {MAX_SIZE} bytes (8 EiB)")
    return size


def one_message(search: Search, fts_table: str) -> Search:
    """The same search, for one message whose text is alone in ``fts_table``.

    ``fts_table`` has the columns of ``messages_fts`` and holds only that
    message: the full-text test then costs the size of the message, not of
    the mailbox (a prefix query reads every matching term of the whole index).
    """
    # MATCH takes the table's bare name, even when the FROM names its database.
    single = f"EXISTS (SELECT 1 FROM {fts_table} WHERE {fts_table.rpartition('.')[2]} MATCH ?)"
    return Search(search.where.replace(_FTS_MATCH, single), search.params)
