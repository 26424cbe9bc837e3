"""POP3 against a real server: poplib and raw sockets, every command, the maildrop rules."""

from __future__ import annotations

import base64
import logging
import poplib
import smtplib
import socket
import ssl
import threading
import time
import tracemalloc
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from conftest import EPHEMERAL
from htpasswd import write_htpasswd
from pop3_client import Pop3Wire, pop3_login, retrieved, unstuff
from smtp_wire import deliver

from mailtrap import Server
from mailtrap.config import Address
from mailtrap.errors import ConfigError, ListenError
from mailtrap.events import Event, Subscription
from mailtrap.store import IncomingMessage
from mailtrap.tls import self_signed_pem

MakeServer = Callable[..., Server]


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    """Tests with default settings share one server, emptied before each."""
    return emptied_module_server


@pytest.fixture
def make_server(make_server: MakeServer) -> MakeServer:
    """Servers with special settings, without HTTP: POP3 tests need none, and it costs
    half a second to stop."""

    def make(**settings: object) -> Server:
        settings.setdefault("http", None)
        return make_server(**settings)

    return make


def message(subject: str, body: bytes = b"Hello.\r\n") -> bytes:
    return (
        f"From: app@example.com\r\nTo: you@example.com\r\nSubject: {subject}\r\n\r\n".encode()
        + body
    )


def send(server: Server, raw: bytes, *rcpt_tos: str) -> str:
    """Deliver over SMTP; returns the stored ID."""
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        return deliver(client, raw, rcpt_tos=rcpt_tos or ("you@example.com",))


def store_directly(server: Server, raw: bytes, *rcpt_tos: str) -> str:
    """Store bytes SMTP could not carry unchanged (bare LF, no final line end)."""
    incoming = IncomingMessage(raw=raw, mail_from="a@example.com", rcpt_tos=list(rcpt_tos))
    return server.store.add(incoming).result(timeout=10)


def wait_for_no_sessions(server: Server, timeout: float = 10.0) -> None:
    """Wait until the server has seen every POP3 client go."""
    service = server._pop3_service
    assert service is not None
    deadline = time.monotonic() + timeout
    while service.connections:
        assert time.monotonic() < deadline, "POP3 sessions still open"
        time.sleep(0.01)


def next_event(subscription: Subscription, kind: str) -> Event:
    while True:
        event = subscription.get(timeout=10)
        assert event is not None, f"no {kind} event"
        if event.type == kind:
            return event


# -- every command --------------------------------------------------------------------


def test_every_command_with_poplib(server: Server):
    first = message("first")
    second = message("second", b"line 1\r\nline 2\r\nline 3\r\n")
    ids = [send(server, first), send(server, second)]
    address = server.pop3_address
    client = poplib.POP3(address.host, address.port, timeout=10)
    with closing(client):
        check_every_command(client, server, first, second, ids)


def check_every_command(
    client: poplib.POP3, server: Server, first: bytes, second: bytes, ids: list[str]
) -> None:
    assert client.getwelcome() == b"+OK Mailtrap POP3 server ready"
    capabilities = client.capa()
    for name in ("TOP", "USER", "UIDL", "RESP-CODES", "PIPELINING", "SASL", "IMPLEMENTATION"):
        assert name in capabilities
    assert capabilities["SASL"] == ["PLAIN"]
    assert "STLS" not in capabilities  # no certificate configured
    assert client.user("anyone").startswith(b"+OK")
    assert client.pass_("anything") == b"+OK maildrop has 2 messages (%d octets)" % (
        len(first) + len(second)
    )
    assert client.stat() == (2, len(first) + len(second))
    assert client.list()[1] == [b"1 %d" % len(first), b"2 %d" % len(second)]
    assert client.list(2) == b"+OK 2 %d" % len(second)
    assert client.uidl()[1] == [f"1 {ids[0]}".encode(), f"2 {ids[1]}".encode()]
    assert client.uidl(2) == f"+OK 2 {ids[1]}".encode()
    assert retrieved(client, 1) == first
    assert client.top(2, 2)[1] == [*second.split(b"\r\n")[:4], b"line 1", b"line 2"]
    assert client.noop() == b"+OK"
    assert client.dele(1) == b"+OK message 1 deleted"
    assert client.stat() == (1, len(second))
    with pytest.raises(poplib.error_proto, match="already deleted"):
        client.retr(1)
    assert client.rset().startswith(b"+OK maildrop has 2 messages")
    assert client.dele(2) == b"+OK message 2 deleted"
    assert client.quit() == b"+OK Mailtrap POP3 server signing off (1 deleted)"
    assert server.store.ids() == [ids[0]]


def test_retr_sends_the_stored_bytes_exactly_with_dot_stuffing_on_the_wire(server: Server):
    raw = message(
        "dots",
        b".\r\n..\r\n.x\r\n...\r\n\xc3\xa9t\xe9 8-bit\r\nNUL \x00 here\r\n"
        + b"long " * 300
        + b"\r\n. \r\nlast\r\n",
    )
    send(server, raw)
    with Pop3Wire(server.pop3_address) as client:
        client.login()
        assert client.command("LIST 1") == b"+OK 1 %d" % len(raw)
        reply = client.multiline("RETR 1")
    header, rest = reply.split(b"\r\n", 1)
    assert header == b"+OK %d octets" % len(raw)
    assert b"\r\n..\r\n...\r\n..x\r\n....\r\n" in rest  # each dot-led line got one more dot
    assert unstuff(reply) == raw
    with pop3_login(server.pop3_address) as client:
        assert retrieved(client, 1) == raw


def test_bare_lf_and_an_unterminated_last_line_go_out_as_crlf_and_are_counted_so(server: Server):
    bare = b"Subject: bare\n\n.dot\nline\n"
    unterminated = b"Subject: open\r\n\r\nno line end"
    store_directly(server, bare, "you@example.com")
    store_directly(server, unterminated, "you@example.com")
    as_sent = [bare.replace(b"\n", b"\r\n"), unterminated + b"\r\n"]
    with Pop3Wire(server.pop3_address) as client:
        client.login()
        listing = client.multiline("LIST")
        assert listing.split(b"\r\n")[1:3] == [b"1 %d" % len(as_sent[0]), b"2 %d" % len(as_sent[1])]
        for number, expected in enumerate(as_sent, 1):
            reply = client.multiline(f"RETR {number}")
            assert reply.startswith(b"+OK %d octets\r\n" % len(expected))
            assert unstuff(reply) == expected


def test_an_empty_message_is_an_empty_multiline_reply(server: Server):
    store_directly(server, b"", "you@example.com")
    with Pop3Wire(server.pop3_address) as client:
        client.login()
        assert client.command("STAT") == b"+OK 1 0"
        assert client.multiline("RETR 1") == b"+OK 0 octets\r\n.\r\n"
        assert client.multiline("TOP 1 5") == b"+OK top of message follows\r\n.\r\n"


def test_top_sends_the_header_and_the_first_lines_and_no_more(server: Server):
    body = b"".join(b"line %d\r\n" % n for n in range(1, 2000)) + b".dot at the end\r\n"
    raw = message("top", body)
    send(server, raw)
    header = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    with Pop3Wire(server.pop3_address) as client:
        client.login()
        assert unstuff(client.multiline("TOP 1 0")) == header
        assert unstuff(client.multiline("TOP 1 3")) == header + b"line 1\r\nline 2\r\nline 3\r\n"
        assert unstuff(client.multiline("TOP 1 99999")) == raw


# -- maildrop semantics ---------------------------------------------------------------


def test_uids_are_stable_across_sessions_and_restarts_and_never_reused(
    make_server: MakeServer, tmp_path: Path
):
    db = tmp_path / "uid.db"
    server = make_server(db=db)
    ids = [send(server, message(f"m{n}")) for n in range(3)]
    with pop3_login(server.pop3_address) as client:
        assert client.uidl()[1] == [f"{n} {i}".encode() for n, i in enumerate(ids, 1)]
        client.dele(2)
        client.quit()
    with pop3_login(server.pop3_address) as client:
        assert client.uidl()[1] == [f"1 {ids[0]}".encode(), f"2 {ids[2]}".encode()]
        client.quit()
    server.stop()
    restarted = make_server(db=db)
    newer = send(restarted, message("after restart"))
    with pop3_login(restarted.pop3_address) as client:
        listing = [line.split()[1].decode() for line in client.uidl()[1]]
        assert listing == [ids[0], ids[2], newer]
        client.dele(1)
        client.dele(2)
        client.dele(3)
        client.quit()
    fresh = [send(restarted, message(f"again {n}")) for n in range(3)]
    assert not set(fresh) & {*ids, newer}


def test_deletion_happens_at_quit_only_and_rset_takes_marks_back(server: Server):
    ids = [send(server, message(f"m{n}")) for n in range(3)]
    with pop3_login(server.pop3_address) as client:
        client.dele(1)
        client.dele(3)
        assert server.store.ids() == ids  # marked, not deleted
        client.rset()
        client.dele(2)
        assert server.store.ids() == ids
        client.quit()
    assert server.store.ids() == [ids[0], ids[2]]


def test_a_dropped_connection_deletes_nothing(server: Server):
    ids = [send(server, message(f"m{n}")) for n in range(2)]
    with Pop3Wire(server.pop3_address) as client:
        client.login()
        assert client.command("DELE 1").startswith(b"+OK")
        assert client.command("DELE 2").startswith(b"+OK")
        client.sock.shutdown(socket.SHUT_RDWR)
    wait_for_no_sessions(server)
    assert server.store.ids() == ids


def test_quit_deletes_through_the_store_so_the_web_inbox_sees_it_live(server: Server):
    kept, deleted = send(server, message("kept")), send(server, message("deleted"))
    with server.store.hub.subscribe() as events, pop3_login(server.pop3_address) as client:
        client.dele(2)
        client.quit()
        assert next_event(events, "delete").data == {"ID": deleted}
    assert server.store.ids() == [kept]


def test_retr_marks_the_message_read_and_top_does_not(server: Server):
    message_id = send(server, message("read me"))
    with server.store.hub.subscribe() as events, pop3_login(server.pop3_address) as client:
        client.top(1, 0)
        client.uidl()  # a round trip after TOP: a read mark would be queued by now
        assert server.store.get(message_id)["read"] == 0
        client.retr(1)
        assert next_event(events, "update").data == {"ID": message_id, "Read": True}
    assert server.store.get(message_id)["read"] == 1


def test_the_maildrop_is_a_snapshot_taken_at_login(server: Server):
    first, second = send(server, message("first")), send(server, message("second"))
    with pop3_login(server.pop3_address) as client:
        third = send(server, message("arrives during the session"))
        assert server.store.delete([first]).result(timeout=10) == [first]  # as the web inbox does
        assert client.stat() == (2, len(message("first")) + len(message("second")))
        assert client.uidl()[1] == [f"1 {first}".encode(), f"2 {second}".encode()]
        with pytest.raises(poplib.error_proto, match="no such message"):
            client.list(3)
        with pytest.raises(poplib.error_proto, match="message 1 no longer exists"):
            client.retr(1)
        with pytest.raises(poplib.error_proto, match="message 1 no longer exists"):
            client.top(1, 0)
        assert retrieved(client, 2) == message("second")
        assert client.dele(1) == b"+OK message 1 deleted"  # gone already: nothing to undo
        assert client.quit().startswith(b"+OK")
    with pop3_login(server.pop3_address) as client:
        assert [line.split()[1].decode() for line in client.uidl()[1]] == [second, third]


def test_sessions_stay_consistent_while_smtp_and_deletes_run_concurrently(server: Server):
    sent: list[str] = []

    def keep_sending() -> None:
        address = server.smtp_address
        with smtplib.SMTP(address.host, address.port, timeout=10) as smtp:
            for number in range(60):
                sent.append(deliver(smtp, message(f"busy {number}", b"x" * number + b"\r\n")))

    sender = threading.Thread(target=keep_sending)
    sender.start()
    sessions = 0
    try:
        while sender.is_alive() or sessions < 3:
            sessions += 1
            if len(sent) > 3:
                server.store.delete(sent[-3:-2])  # not awaited: races with the session
            with pop3_login(server.pop3_address) as client:
                count, total = client.stat()
                sizes = [int(line.split()[1]) for line in client.list()[1]]
                assert (len(sizes), sum(sizes)) == (count, total)
                for number, size in enumerate(sizes, 1):
                    try:
                        _, lines, _ = client.retr(number)
                    except poplib.error_proto as error:
                        assert b"no longer exists" in error.args[0]
                        continue
                    assert sum(len(line) + 2 for line in lines) == size
                client.quit()
    finally:
        sender.join()
    assert len(sent) == 60
    with pop3_login(server.pop3_address) as client:
        assert client.stat()[0] == len(server.store.ids())


def test_a_user_name_that_is_an_address_sees_the_mail_sent_to_it(server: Server):
    to_a = send(server, message("for a"), "a@example.com")
    to_both = send(server, message("for a and b"), "b@example.com", "A@Example.com")
    to_c = send(server, message("for c, To: header says a"), "c@example.com")

    def uids(user: str) -> list[str]:
        with pop3_login(server.pop3_address, user) as client:
            return [line.split()[1].decode() for line in client.uidl()[1]]

    assert uids("a@example.com") == [to_a, to_both]
    assert uids("a@EXAMPLE.com") == [to_a, to_both]  # addresses compare case-insensitively
    assert uids("b@example.com") == [to_both]
    assert uids("nobody@example.com") == []
    assert uids("any-other-name") == [to_a, to_both, to_c]


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    """alice (bcrypt, lowest cost to stay fast) and bob@example.com (apr1-md5)."""
    users = {"alice": ("bcrypt", "alice-secret"), "bob@example.com": ("apr1", "bob-secret")}
    return write_htpasswd(tmp_path / "pop3.htpasswd", users)


def test_with_an_auth_file_only_its_users_log_in_and_the_same_rule_picks_the_mailbox(
    make_server: MakeServer, htpasswd: Path
):
    server = make_server(pop3_auth_file=htpasswd)
    for_bob = send(server, message("for bob"), "bob@example.com")
    other = send(server, message("for someone else"), "carol@example.com")
    for user, password in [("alice", "wrong"), ("mallory", "alice-secret"), ("bob", "bob-secret")]:
        with Pop3Wire(server.pop3_address) as client:
            assert client.login(user, password) == b"-ERR [AUTH] invalid user name or password"
            assert client.login("alice", "alice-secret").startswith(b"+OK")  # may try again
    with pop3_login(server.pop3_address, "alice", "alice-secret") as client:
        assert [line.split()[1].decode() for line in client.uidl()[1]] == [for_bob, other]
    with pop3_login(server.pop3_address, "bob@example.com", "bob-secret") as client:
        assert [line.split()[1].decode() for line in client.uidl()[1]] == [for_bob]


def plain(*parts: str) -> str:
    return base64.b64encode("\0".join(parts).encode()).decode()


def test_auth_plain_with_and_without_an_initial_response(make_server: MakeServer, htpasswd: Path):
    server = make_server(pop3_auth_file=htpasswd)
    send(server, message("sasl"), "bob@example.com")
    with Pop3Wire(server.pop3_address) as client:
        assert client.command("AUTH PLAIN " + plain("", "alice", "nope")).startswith(b"-ERR [AUTH]")
        assert client.command("AUTH PLAIN " + plain("", "alice", "alice-secret")).startswith(
            b"+OK maildrop has 1 messages"
        )
    with Pop3Wire(server.pop3_address) as client:
        assert client.command("AUTH PLAIN") == b"+ "
        assert client.command("*") == b"-ERR authentication cancelled"
        assert client.command("AUTH PLAIN") == b"+ "
        assert client.command(plain("bob@example.com", "bob@example.com", "bob-secret")).startswith(
            b"+OK"
        )
        assert client.command("STAT").startswith(b"+OK 1 ")


# -- TLS ---------------------------------------------------------------------------------


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A test certificate for 127.0.0.1 and its key."""
    cert_pem, key_pem = self_signed_pem("mailtrap.test")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    return cert, key


def trusting(cert: Path) -> ssl.SSLContext:
    """A client context that verifies the server against the test certificate."""
    return ssl.create_default_context(cafile=str(cert))


def test_stls_with_a_test_certificate(make_server: MakeServer, tls_files: tuple[Path, Path]):
    cert, key = tls_files
    server = make_server(smtp_tls_cert=cert, smtp_tls_key=key)
    raw = message("over tls")
    send(server, raw)
    address = server.pop3_address
    with closing(poplib.POP3(address.host, address.port, timeout=10)) as client:
        assert "STLS" in client.capa()
        assert client.stls(context=trusting(cert)) == b"+OK begin TLS negotiation"
        assert "STLS" not in client.capa()
        client.user("user")
        client.pass_("secret")
        assert retrieved(client, 1) == raw
        client.quit()


def test_plaintext_pipelined_after_stls_is_discarded(make_server: MakeServer):
    server = make_server(smtp_tls_self_signed=True)
    with Pop3Wire(server.pop3_address) as client:
        client.send(b"STLS\r\nUSER injected@example.com\r\n")
        assert client.line() == b"+OK begin TLS negotiation"
        unverified = ssl.create_default_context()
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        client.start_tls(unverified)
        assert client.command("PASS x") == b"-ERR send USER first"


def test_a_failed_tls_handshake_ends_the_session_quietly(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
):
    server = make_server(smtp_tls_self_signed=True)
    with Pop3Wire(server.pop3_address) as client:
        assert client.command("STLS") == b"+OK begin TLS negotiation"
        client.send(b"USER this is no TLS ClientHello\r\n" * 20)
        client.read_until_closed()  # perhaps a TLS alert, then the end
    wait_for_no_sessions(server)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_pop3s_speaks_tls_from_the_first_byte(
    make_server: MakeServer, tls_files: tuple[Path, Path]
):
    cert, key = tls_files
    server = make_server(smtp_tls_cert=cert, smtp_tls_key=key, pop3s=EPHEMERAL)
    raw = message("implicit tls")
    send(server, raw)
    address = server.pop3s_address
    assert address.port not in (0, server.pop3_address.port)
    tls = poplib.POP3_SSL(address.host, address.port, context=trusting(cert), timeout=10)
    with closing(tls) as client:
        assert "STLS" not in client.capa()
        client.user("user")
        client.pass_("secret")
        assert retrieved(client, 1) == raw
        client.quit()


def test_pop3s_needs_a_certificate():
    with pytest.raises(ConfigError, match="--pop3s needs a certificate"):
        Server(pop3s=EPHEMERAL).config.validate()


# -- abuse and limits -----------------------------------------------------------------


def test_pipelined_commands_are_answered_in_order(server: Server):
    raw = message("pipelined")
    send(server, raw)
    with Pop3Wire(server.pop3_address) as client:
        client.send(b"USER u\r\nPASS p\r\nSTAT\r\nRETR 1\r\nNOOP\r\nDELE 1\r\nQUIT\r\n")
        assert client.line() == b"+OK send PASS"
        assert client.line().startswith(b"+OK maildrop has 1 messages")
        assert client.line() == b"+OK 1 %d" % len(raw)
        assert unstuff(client.read_multiline()) == raw
        assert client.line() == b"+OK"
        assert client.line() == b"+OK message 1 deleted"
        assert client.line().startswith(b"+OK Mailtrap POP3 server signing off")
        assert client.read_until_closed() == b""
    assert server.store.ids() == []


def test_garbage_and_over_long_lines_get_err_and_the_session_goes_on(server: Server):
    send(server, message("still here"))
    with Pop3Wire(server.pop3_address) as client:
        for garbage in [b"\x00\x01\x02", b"\xff\xfe\xfd", b"GET / HTTP/1.1", b"RETR 1", b"   "]:
            assert client.command(garbage).startswith(b"-ERR ")
        assert client.command(b"NOOP " + b"A" * 2000) == (
            b"-ERR line too long (the limit is 1024 octets)"
        )
        client.send(b"B" * 300_000)  # no line end yet: dropped as it comes
        assert client.line() == b"-ERR line too long (the limit is 1024 octets)"
        client.send(b"B" * 100_000 + b" USER end of the long line\r\n")  # no reply: still dropped
        assert client.multiline("CAPA").startswith(b"+OK capability list follows\r\n")
        assert client.login().startswith(b"+OK maildrop has 1 messages")
        assert client.command("STAT").startswith(b"+OK 1 ")


def test_a_line_just_under_the_limit_is_a_command(server: Server):
    with Pop3Wire(server.pop3_address) as client:
        line = b"USER " + b"u" * (1024 - len(b"USER \r\n"))
        assert client.command(line) == b"-ERR argument too long (the limit is 255 characters)"
        assert client.command(b"USER " + b"u" * 255) == b"+OK send PASS"
        too_long = b"USER " + b"u" * (1025 - len(b"USER \r\n"))
        assert client.command(too_long) == b"-ERR line too long (the limit is 1024 octets)"
        assert client.command(b"PASS x").startswith(b"+OK maildrop has")  # the USER before it


def test_connections_over_the_cap_are_refused(make_server: MakeServer):
    server = make_server(pop3_max_connections=2)
    first, second = Pop3Wire(server.pop3_address), Pop3Wire(server.pop3_address)
    with Pop3Wire(server.pop3_address, read_greeting=False) as third:
        assert third.read_until_closed() == (
            b"-ERR [SYS/TEMP] too many connections, try again later\r\n"
        )
    first.command("QUIT")
    first.close()
    wait_until = time.monotonic() + 10
    while len(server._pop3_service.connections) > 1:  # type: ignore[union-attr]
        assert time.monotonic() < wait_until
        time.sleep(0.01)
    with Pop3Wire(server.pop3_address) as fourth:
        assert fourth.greeting == b"+OK Mailtrap POP3 server ready"
    second.close()


def test_an_idle_session_is_closed_and_a_busy_one_is_not(make_server: MakeServer):
    server = make_server(pop3_idle_timeout=1.0)
    with Pop3Wire(server.pop3_address) as busy, Pop3Wire(server.pop3_address) as idle:
        busy.login()
        started = time.monotonic()
        while time.monotonic() - started < 1.5:  # past the timeout, never silent that long
            time.sleep(0.2)
            # A command that does something: a NOOP would not put the timeout off.
            assert busy.command("STAT").startswith(b"+OK")
        assert idle.read_until_closed() == b"-ERR disconnected for inactivity\r\n"


def test_a_session_closed_for_inactivity_lingers_and_a_stop_meanwhile_is_clean(
    make_server: MakeServer,
):
    # The server half-closes and keeps reading for a moment, so a command sent
    # as the timeout fires is not answered with a reset that eats the -ERR.
    server = make_server(pop3_idle_timeout=1.0)
    with Pop3Wire(server.pop3_address) as idle:  # greeted
        time.sleep(1.2)
        idle.send(b"NOOP\r\n")  # after the server's -ERR, unread by it
        assert idle.read_until_closed() == b"-ERR disconnected for inactivity\r\n"
        server.stop()  # while the session still waits for this client's FIN


def test_retr_of_a_big_message_streams_without_holding_it_in_memory(server: Server):
    line = b"y" * 998 + b"\r\n"
    raw = message("big", line * 8000)  # 8 MB
    message_id = store_directly(server, raw, "you@example.com")
    with Pop3Wire(server.pop3_address) as client:
        client.login()
        tracemalloc.start()
        try:
            client.send(b"RETR 1\r\n")
            received = 0
            tail = b""
            while not tail.endswith(b"\r\n.\r\n"):
                chunk = client.sock.recv(1 << 16)
                assert chunk
                received += len(chunk)
                tail = (tail + chunk)[-5:]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert received == len(f"+OK {len(raw)} octets\r\n") + len(raw) + 3
    assert peak < 2_000_000, f"{peak} bytes traced while sending {len(raw)}"
    assert server.store.raw(message_id) == raw


# -- the service in the server -------------------------------------------------------


def test_stopping_the_server_ends_sessions_and_deletes_nothing(
    make_server: MakeServer, tmp_path: Path
):
    db = tmp_path / "stop.db"
    server = make_server(db=db)
    message_id = send(server, message("survives"))
    client = Pop3Wire(server.pop3_address)
    client.login()
    assert client.command("DELE 1").startswith(b"+OK")
    server.stop()
    assert client.read_until_closed() == b"-ERR [SYS/TEMP] server shutting down\r\n"
    client.close()
    assert make_server(db=db).store.ids() == [message_id]


def test_two_servers_in_one_process_keep_their_sizes_apart(make_server: MakeServer):
    # Both first messages have seq 1 in their own database.
    small, big = make_server(), make_server()
    send(small, message("small"))
    send(big, message("big", b"x" * 5000 + b"\r\n"))
    for server, raw in ((small, message("small")), (big, message("big", b"x" * 5000 + b"\r\n"))):
        with pop3_login(server.pop3_address) as client:
            assert client.stat() == (1, len(raw))


def test_pop3_can_be_off(make_server: MakeServer):
    server = make_server(pop3=None)
    with pytest.raises(RuntimeError, match="POP3 is not running"):
        _ = server.pop3_address


def test_a_busy_pop3_port_is_a_listen_error(make_server: MakeServer):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match=f"cannot listen for POP3 on 127.0.0.1:{port}"):
            make_server(pop3=Address("127.0.0.1", port))


def test_list_and_uidl_of_a_few_hundred_messages(server: Server):
    incoming = [
        IncomingMessage(raw=message(f"n{n}"), mail_from="a@example.com", rcpt_tos=["y@example.com"])
        for n in range(300)
    ]
    ids = [future.result(timeout=30) for future in [server.store.add(m) for m in incoming]]
    with pop3_login(server.pop3_address) as client:
        assert client.stat() == (300, sum(len(m.raw) for m in incoming))
        assert [line.split()[1].decode() for line in client.uidl()[1]] == ids
        assert len(client.list()[1]) == 300
