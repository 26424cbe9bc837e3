"""The POP3 state machine and the message encoder on their own: no sockets, no database."""

from __future__ import annotations

import base64

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailtrap.pop3.maildrop import Entry
from mailtrap.pop3.session import (
    MAX_ARGUMENT,
    Action,
    CheckLogin,
    Close,
    DeleteMessages,
    Pop3Session,
    Reply,
    SendMessage,
    StartTLS,
    State,
    mailbox_recipient,
)
from mailtrap.pop3.wire import MessageEncoder, normalize, wire_size

# -- the encoder against a plain whole-message model -------------------------------------

PIECES = [
    b".",
    b"..",
    b"\r\n",
    b"\r",
    b"\n",
    b"\r\n.",
    b".\r\n",
    b"\n.\n",
    b"\r\r\n",
    b"x",
    b"\x00",
]
messages = st.one_of(
    st.binary(max_size=400),
    st.lists(st.sampled_from(PIECES), max_size=60).map(b"".join),
)


def model_lines(data: bytes) -> list[bytes]:
    """The message as RETR sends it, one line (CRLF included) per item, before stuffing."""
    text = normalize(data)
    if text and not text.endswith(b"\n"):
        text += b"\r\n"
    # Only CRLF ends a line: a lone CR is content (bytes.splitlines would split there).
    parts = text.split(b"\r\n")
    return [part + b"\r\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def model_top(data: bytes, body_lines: int) -> list[bytes]:
    lines = model_lines(data)
    blank = next((i for i, line in enumerate(lines) if line == b"\r\n"), None)
    return lines if blank is None else lines[: blank + 1 + body_lines]


def stuffed(lines: list[bytes]) -> bytes:
    return b"".join(b"." + line if line.startswith(b".") else line for line in lines) + b".\r\n"


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def encode(chunks: list[bytes], body_lines: int | None = None) -> bytes:
    """Encode as the server does; where the bytes are CRLF-only, the fast path must agree."""
    outputs = []
    data = b"".join(chunks)
    for crlf_only in {False, wire_size([data]) == len(data)}:
        encoder = MessageEncoder(body_lines, crlf_only=crlf_only)
        out = b""
        for chunk in chunks:
            out += encoder.feed(chunk)
            if encoder.done:
                break
        outputs.append(out + encoder.finish())
    assert len(set(outputs)) == 1, outputs
    return outputs[0]


@settings(max_examples=400, deadline=None)
@given(data=messages, cuts=st.lists(st.integers(0, 400), max_size=8))
@example(data=b"a\r", cuts=[1])
@example(data=b"a\r\nb", cuts=[2])
@example(data=b".\r\n.", cuts=[2, 3])
def test_retr_encoding_is_crlf_dot_stuffed_and_its_size_is_what_list_says(
    data: bytes, cuts: list[int]
):
    chunks = split(data, cuts)
    assert encode(chunks) == stuffed(model_lines(data))
    assert wire_size(chunks) == len(b"".join(model_lines(data)))


@settings(max_examples=300, deadline=None)
@given(data=messages, cuts=st.lists(st.integers(0, 400), max_size=8), body_lines=st.integers(0, 5))
@example(data=b"H: 1\r\n\r\nb1\r\nb2\r\n", cuts=[6, 7], body_lines=1)
@example(data=b"H: 1\r\n\r\nb1\r\nb2\r\n", cuts=[], body_lines=0)
def test_top_sends_the_header_the_blank_line_and_n_body_lines(
    data: bytes, cuts: list[int], body_lines: int
):
    assert encode(split(data, cuts), body_lines) == stuffed(model_top(data, body_lines))


@pytest.mark.parametrize(
    ("stored", "sent"),
    [
        (b"", b".\r\n"),
        (b"A: b\r\n\r\nbody\r\n", b"A: b\r\n\r\nbody\r\n.\r\n"),
        (b"A: b\n\nbare\n", b"A: b\r\n\r\nbare\r\n.\r\n"),
        (b"A: b\r\n\r\nno end", b"A: b\r\n\r\nno end\r\n.\r\n"),
        (b".\r\n..\r\n.x\r\n", b"..\r\n...\r\n..x\r\n.\r\n"),
        (b"lone\rcr\r\n", b"lone\rcr\r\n.\r\n"),
    ],
)
def test_encoding_examples(stored: bytes, sent: bytes):
    assert encode([stored]) == sent


def test_a_crlf_message_comes_back_byte_for_byte():
    stored = b"Subject: x\r\n\r\n\xc3\xa9t\xe9 \x00 8-bit\r\n.\r\n..\r\nend\r\n"
    sent = encode([stored[:5], stored[5:17], stored[17:]])
    unstuffed = sent.removesuffix(b".\r\n").replace(b"\r\n..", b"\r\n.")
    assert unstuffed == stored
    assert wire_size([stored]) == len(stored)


# -- the session ----------------------------------------------------------------------

ENTRIES = [Entry(1, "AAAAAAAA1", 100), Entry(2, "AAAAAAAA2", 200), Entry(5, "AAAAAAAA5", 50)]


def replies(actions: list[Action]) -> list[bytes]:
    assert all(isinstance(action, Reply) for action in actions), actions
    return [action.data for action in actions if isinstance(action, Reply)]


def reply(session: Pop3Session, line: str) -> str:
    (data,) = replies(session.receive(line.encode()))
    return data.decode()


def logged_in(entries: list[Entry] = ENTRIES, **options: bool) -> Pop3Session:
    session = Pop3Session(tls_available=options.get("tls_available", False))
    assert reply(session, "USER someone") == "+OK send PASS\r\n"
    (check,) = session.receive(b"PASS secret")
    assert check == CheckLogin("someone", "secret", None)
    session.login_accepted(entries)
    assert session.state is State.TRANSACTION
    return session


def test_user_and_pass_ask_for_a_login_check_and_the_snapshot_decides_the_counts():
    session = Pop3Session(tls_available=False)
    assert session.greeting() == Reply(b"+OK Mailtrap POP3 server ready\r\n")
    session.receive(b"USER a@example.com")
    assert session.receive(b"PASS pass with spaces ") == [
        CheckLogin("a@example.com", "pass with spaces ", "a@example.com")
    ]
    assert replies(session.login_accepted(ENTRIES)) == [
        b"+OK maildrop has 3 messages (350 octets)\r\n"
    ]
    assert session.user == "a@example.com"


def test_a_refused_login_stays_in_authorization_and_needs_user_again():
    session = Pop3Session(tls_available=False)
    session.receive(b"USER a")
    session.receive(b"PASS b")
    assert replies(session.login_refused()) == [b"-ERR [AUTH] invalid user name or password\r\n"]
    assert session.state is State.AUTHORIZATION
    assert reply(session, "PASS b") == "-ERR send USER first\r\n"
    assert reply(session, "STAT") == "-ERR STAT is not valid before login\r\n"


def test_stat_list_uidl_and_deletion_marks():
    session = logged_in()
    assert reply(session, "STAT") == "+OK 3 350\r\n"
    assert (
        reply(session, "LIST") == "+OK 3 messages (350 octets)\r\n1 100\r\n2 200\r\n3 50\r\n.\r\n"
    )
    assert reply(session, "list 2") == "+OK 2 200\r\n"
    assert reply(session, "UIDL 3") == "+OK 3 AAAAAAAA5\r\n"
    assert reply(session, "DELE 2") == "+OK message 2 deleted\r\n"
    assert reply(session, "DELE 2") == "-ERR message 2 already deleted\r\n"
    assert reply(session, "LIST 2") == "-ERR message 2 already deleted\r\n"
    assert reply(session, "STAT") == "+OK 2 150\r\n"
    assert (
        reply(session, "UIDL")
        == "+OK unique-id listing follows\r\n1 AAAAAAAA1\r\n3 AAAAAAAA5\r\n.\r\n"
    )
    assert reply(session, "RSET") == "+OK maildrop has 3 messages (350 octets)\r\n"
    assert reply(session, "LIST 2") == "+OK 2 200\r\n"


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        ("LIST 4", "-ERR no such message, only 3 in maildrop\r\n"),
        ("LIST 0", "-ERR no such message, only 3 in maildrop\r\n"),
        ("RETR -1", "-ERR invalid message number\r\n"),
        ("RETR 1x", "-ERR invalid message number\r\n"),
        ("RETR 99999999999999999999", "-ERR invalid message number\r\n"),
        ("RETR", "-ERR syntax: RETR msg\r\n"),
        ("TOP 1", "-ERR syntax: TOP msg n\r\n"),
        ("TOP 1 -2", "-ERR TOP wants a number of lines (0 or more)\r\n"),
        ("STAT 1", "-ERR syntax: STAT\r\n"),
        ("USER b", "-ERR USER is not valid after login\r\n"),
        ("STLS", "-ERR STLS is not valid after login\r\n"),
        ("XYZZY", "-ERR unknown command\r\n"),
        ("", "-ERR empty command\r\n"),
        ("\x00\xff", "-ERR unknown command\r\n"),
        ("NOOP", "+OK\r\n"),
    ],
)
def test_bad_commands_get_a_reason_and_the_session_goes_on(line: str, answer: str):
    session = logged_in()
    assert reply(session, line) == answer
    assert reply(session, "STAT") == "+OK 3 350\r\n"


def test_retr_and_top_stream_the_entry_and_only_retr_marks_it_read():
    session = logged_in()
    (retr,) = session.receive(b"RETR 2")
    assert retr == SendMessage(
        ENTRIES[1],
        b"+OK 200 octets\r\n",
        b"-ERR message 2 no longer exists: it was deleted since login\r\n",
        None,
        mark_read=True,
    )
    (top,) = session.receive(b"TOP 3 10")
    assert isinstance(top, SendMessage)
    assert (top.entry, top.body_lines, top.mark_read) == (ENTRIES[2], 10, False)


def test_quit_deletes_the_marked_messages_and_then_closes():
    session = logged_in()
    session.receive(b"DELE 3")
    session.receive(b"DELE 1")
    assert session.receive(b"QUIT") == [DeleteMessages(("AAAAAAAA1", "AAAAAAAA5"))]
    assert session.state is State.UPDATE
    assert session.receive(b"NOOP") == []  # nothing after QUIT
    assert session.deletion_done(True) == [
        Reply(b"+OK Mailtrap POP3 server signing off (2 deleted)\r\n"),
        Close(),
    ]
    assert session.deletion_done(False)[0] == Reply(
        b"-ERR [SYS/TEMP] some deleted messages not removed\r\n"
    )


def test_quit_without_deletions_or_before_login_deletes_nothing():
    assert logged_in().receive(b"QUIT")[-1] == Close()
    session = Pop3Session(tls_available=False)
    session.receive(b"USER a")
    assert session.receive(b"QUIT") == [Reply(b"+OK Mailtrap POP3 server signing off\r\n"), Close()]


def test_capa_lists_the_extensions_and_stls_only_where_it_can_start():
    session = Pop3Session(tls_available=True, implementation="Mailtrap 9")
    assert reply(session, "CAPA") == (
        "+OK capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nRESP-CODES\r\n"
        "AUTH-RESP-CODE\r\nPIPELINING\r\nSASL PLAIN\r\nSTLS\r\nIMPLEMENTATION Mailtrap 9\r\n.\r\n"
    )
    assert "STLS" not in reply(Pop3Session(tls_available=False), "CAPA")
    assert "STLS" not in reply(Pop3Session(tls_available=True, tls_active=True), "CAPA")
    assert "STLS" not in reply(logged_in(tls_available=True), "CAPA")


def test_stls_starts_tls_and_forgets_the_user_given_before():
    session = Pop3Session(tls_available=True)
    session.receive(b"USER before-tls")
    assert session.receive(b"STLS") == [Reply(b"+OK begin TLS negotiation\r\n"), StartTLS()]
    session.tls_started()
    assert reply(session, "PASS x") == "-ERR send USER first\r\n"
    assert reply(session, "STLS") == "-ERR TLS is already active\r\n"
    no_certificate = Pop3Session(tls_available=False)
    assert reply(no_certificate, "STLS") == (
        "-ERR STLS is not available: the server has no certificate\r\n"
    )


def plain(*parts: str) -> str:
    return base64.b64encode("\0".join(parts).encode()).decode()


def test_auth_plain_with_an_initial_response_or_after_a_continuation():
    session = Pop3Session(tls_available=False)
    assert session.receive(f"AUTH PLAIN {plain('', 'a@x.test', 'pw')}".encode()) == [
        CheckLogin("a@x.test", "pw", "a@x.test")
    ]
    session = Pop3Session(tls_available=False)
    assert reply(session, "AUTH plain") == "+ \r\n"
    assert session.receive(plain("bob", "bob", "pw pw").encode()) == [
        CheckLogin("bob", "pw pw", None)
    ]


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("*", "-ERR authentication cancelled\r\n"),
        ("not base64!", "-ERR invalid base64 in the AUTH PLAIN response\r\n"),
        ("=", "-ERR AUTH PLAIN wants authzid NUL user NUL password\r\n"),
        (plain("", "", "pw"), "-ERR AUTH PLAIN wants authzid NUL user NUL password\r\n"),
        (
            plain("admin", "bob", "pw"),
            "-ERR [AUTH] the authorization identity must be empty or the user name\r\n",
        ),
    ],
)
def test_bad_auth_plain_responses_are_refused(response: str, answer: str):
    session = Pop3Session(tls_available=False)
    session.receive(b"AUTH PLAIN")
    assert reply(session, response) == answer
    assert session.state is State.AUTHORIZATION
    assert reply(session, "USER again") == "+OK send PASS\r\n"


def test_other_mechanisms_and_apop_are_refused_and_auth_alone_lists_plain():
    session = Pop3Session(tls_available=False)
    assert (
        reply(session, "AUTH LOGIN") == "-ERR unsupported mechanism; PLAIN is the one offered\r\n"
    )
    assert reply(session, "AUTH") == "+OK SASL mechanisms follow\r\nPLAIN\r\n.\r\n"
    assert reply(session, "APOP a 0123").startswith("-ERR APOP is not supported")


def test_arguments_and_lines_have_limits():
    session = Pop3Session(tls_available=False)
    assert reply(session, "USER " + "u" * (MAX_ARGUMENT + 1)).startswith("-ERR argument too long")
    assert reply(session, "USER " + "u" * MAX_ARGUMENT) == "+OK send PASS\r\n"
    assert reply(session, "PASS " + "p" * (MAX_ARGUMENT + 1)).startswith("-ERR password too long")
    assert replies(session.line_too_long()) == [
        b"-ERR line too long (the limit is 1024 octets)\r\n"
    ]


@pytest.mark.parametrize(
    ("user", "recipient"),
    [
        ("a@example.com", "a@example.com"),
        ("A.B+tag@Example.COM", "A.B+tag@Example.COM"),
        ("alice", None),
        ("", None),
        ("a@", None),
        ("@b", None),
        ("a b@c", None),
    ],
)
def test_user_names_that_are_addresses_pick_a_mailbox(user: str, recipient: str | None):
    assert mailbox_recipient(user) == recipient


COMMAND_LINES = st.one_of(
    st.sampled_from(
        [
            b"USER a@b.c",
            b"PASS x",
            b"STAT",
            b"LIST",
            b"LIST 1",
            b"UIDL",
            b"UIDL 2",
            b"RETR 1",
            b"TOP 1 0",
            b"DELE 1",
            b"DELE 2",
            b"RSET",
            b"NOOP",
            b"CAPA",
            b"STLS",
            b"AUTH PLAIN",
            b"AUTH",
            b"*",
            b"QUIT",
            b"APOP x y",
            b"",
            b" ",
            b"LIST 99",
        ]
    ),
    st.binary(max_size=80).filter(lambda line: b"\n" not in line),
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(COMMAND_LINES, max_size=40), accept=st.booleans())
def test_any_sequence_of_lines_gets_well_formed_answers(lines: list[bytes], accept: bool):
    session = Pop3Session(tls_available=True)
    for line in lines:
        for action in session.receive(line):
            if isinstance(action, CheckLogin):
                results = session.login_accepted(ENTRIES) if accept else session.login_refused()
                assert all(isinstance(result, Reply) for result in results)
            elif isinstance(action, StartTLS):
                session.tls_started()
            elif isinstance(action, DeleteMessages):
                assert session.state is State.UPDATE
                assert set(action.ids) <= {entry.id for entry in ENTRIES}
            elif isinstance(action, Reply):
                assert action.data.startswith((b"+OK", b"-ERR ", b"+ \r\n"))
                assert action.data.endswith(b"\r\n")
                assert b"\r\n" not in action.data[:-2] or action.data.endswith(b"\r\n.\r\n")
