"""Clients that try to hold every SMTP or POP3 slot: many connections from one address,
NOOP loops, junk commands. 127.0.0.2 plays the greedy client, 127.0.0.3 everyone else."""

from __future__ import annotations

import contextlib
import select
import smtplib
import time
from collections.abc import Callable, Iterator

import pytest
from pop3_client import Pop3Wire
from smtp_wire import Reply, WireClient

from mailtrap import Server

MakeServer = Callable[..., Server]
GREEDY, OTHER = "127.0.0.2", "127.0.0.3"
SIMPLE = b"From: a@example.com\r\nSubject: hello\r\n\r\nBody\r\n"


@contextlib.contextmanager
def connections(count: int, make: Callable[[], WireClient | Pop3Wire]) -> Iterator[list]:
    opened = []
    try:
        for _ in range(count):
            opened.append(make())
        yield opened
    finally:
        for connection in opened:
            connection.close()


def send_from(server: Server, source: str) -> None:
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10, source_address=(source, 0)) as client:
        client.sendmail("a@example.com", ["b@example.com"], SIMPLE)


# -- one address cannot take every slot -------------------------------------------------


def test_one_address_cannot_take_every_smtp_slot_by_default(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
):
    server = make_server()  # 100 connections, 20 per address
    address = server.smtp_address
    with connections(20, lambda: WireClient(address, source=GREEDY)) as held:
        assert all(client.greeting and client.greeting.code == 220 for client in held)
        with WireClient(address, read_greeting=False, source=GREEDY) as one_more:
            assert one_more.read_until_closed() == (
                b"421 4.7.0 Too many connections from your address\r\n"
            )
        send_from(server, OTHER)
    assert "refusing a connection to SMTP from 127.0.0.2: it has 20 open" in caplog.text
    send_from(server, GREEDY)  # the slots are given back
    assert server.store.count() == 2


def test_the_smtp_per_address_cap_is_configurable(make_server: MakeServer):
    server = make_server(smtp_max_connections_per_ip=2)
    address = server.smtp_address
    with connections(2, lambda: WireClient(address, source=GREEDY)):
        with WireClient(address, read_greeting=False, source=GREEDY) as one_more:
            assert one_more.read_until_closed().startswith(b"421 4.7.0")
        with WireClient(address, source=OTHER) as other:
            assert other.greeting is not None and other.greeting.code == 220


def test_one_address_cannot_take_every_pop3_slot_by_default(make_server: MakeServer):
    server = make_server()
    address = server.pop3_address
    with connections(20, lambda: Pop3Wire(address, source=GREEDY)) as held:
        assert all(client.greeting.startswith(b"+OK") for client in held)
        with Pop3Wire(address, read_greeting=False, source=GREEDY) as one_more:
            assert one_more.read_until_closed(timeout=5) == (
                b"-ERR [SYS/TEMP] too many connections from your address\r\n"
            )
        with Pop3Wire(address, source=OTHER) as other:
            assert other.greeting.startswith(b"+OK")
            assert other.login().startswith(b"+OK")


def test_the_pop3_per_address_cap_is_configurable(make_server: MakeServer):
    server = make_server(pop3_max_connections_per_ip=1)
    address = server.pop3_address
    with Pop3Wire(address, source=GREEDY):
        with Pop3Wire(address, read_greeting=False, source=GREEDY) as one_more:
            assert one_more.read_until_closed(timeout=5).startswith(b"-ERR [SYS/TEMP]")
        with Pop3Wire(address, source=OTHER) as other:
            assert other.greeting.startswith(b"+OK")


# -- idle time runs from the last command that made progress ---------------------------------


def junk_until_closed(
    client: WireClient | Pop3Wire,
    lines: list[str],
    read: Callable[[], bytes | Reply],
    *,
    each_round: Callable[[], None] = lambda: None,
) -> list:
    """Send one of ``lines`` every quarter second, for three seconds; the replies,
    up to the one the server sent on its own before it hung up."""
    replies = []
    for line in (lines * 12)[:12]:
        time.sleep(0.25)
        each_round()
        if select.select([client.sock], [], [], 0)[0]:  # the server spoke first
            replies.append(read())
            break
        client.send_line(line)
        replies.append(read())
    return replies


def test_a_noop_loop_does_not_keep_an_smtp_slot_past_the_idle_timeout(make_server: MakeServer):
    server = make_server(smtp_idle_timeout=1.0)
    junk = ["NOOP", "RSET", "HELP", "VRFY <a@example.com>", "RCPT TO:<b@example.com>"]
    with WireClient(server.smtp_address) as idle, WireClient(server.smtp_address) as busy:
        idle.ehlo()
        busy.ehlo()
        assert busy.command("MAIL FROM:<a@example.com>").code == 250

        def add_recipient() -> None:  # progress, each round
            assert busy.command("RCPT TO:<b@example.com>").code == 250

        replies = junk_until_closed(idle, junk, idle.reply, each_round=add_recipient)
        assert str(replies[-1]) == "421 4.4.2 Idle timeout, closing connection"
        assert idle.read_until_closed() == b""
        assert busy.command("DATA").code == 354
        assert busy.command(SIMPLE + b".").code == 250


def test_junk_commands_in_a_row_end_the_session_with_421(make_server: MakeServer):
    server = make_server(smtp_junk_command_limit=5)
    with WireClient(server.smtp_address) as client:
        client.ehlo()
        codes = [client.command(line).code for line in ("NOOP", "RSET", "HELP", "VRFY <a@b.c>")]
        assert codes == [250, 250, 250, 252]
        assert client.command("RCPT TO:<b@example.com>").code == 503  # refused: junk too
        reply = client.reply()
        assert str(reply) == "421 4.7.0 Too many commands without progress, closing connection"
        assert client.read_until_closed() == b""


def test_a_message_sent_resets_the_junk_count(make_server: MakeServer):
    server = make_server(smtp_junk_command_limit=5)
    with WireClient(server.smtp_address) as client:
        client.ehlo()
        for _ in range(3):
            assert [client.command("NOOP").code for _ in range(3)] == [250] * 3
            assert client.command("MAIL FROM:<a@example.com>").code == 250
            assert client.command("RCPT TO:<b@example.com>").code == 250
            assert client.command("DATA").code == 354
            assert client.command(SIMPLE + b".").code == 250
        # A repeated EHLO changes nothing: it counts as junk.
        assert [client.command("EHLO again").code for _ in range(4)] == [250] * 4
        assert client.command("EHLO again").code == 250
        assert client.reply().code == 421


def test_a_mail_rset_loop_ends_like_any_other_junk(make_server: MakeServer):
    # MAIL and RCPT lead towards a message; abandoned with RSET, they lead nowhere.
    server = make_server(smtp_junk_command_limit=5)
    with WireClient(server.smtp_address) as client:
        client.ehlo()
        for _ in range(4):
            assert client.command("MAIL FROM:<a@example.com>").code == 250
            assert client.command("RCPT TO:<b@example.com>").code == 250
            assert client.command("RSET").code == 250
        assert client.command("MAIL FROM:<a@example.com>").code == 250
        assert client.command("RSET").code == 250
        reply = client.reply()
        assert str(reply) == "421 4.7.0 Too many commands without progress, closing connection"
        assert client.read_until_closed() == b""


def test_a_noop_loop_does_not_keep_a_pop3_slot_past_the_idle_timeout(make_server: MakeServer):
    server = make_server(pop3_idle_timeout=1.0)
    with Pop3Wire(server.pop3_address) as idle:
        assert idle.login().startswith(b"+OK")
        replies = junk_until_closed(idle, ["NOOP", "NOOP", "BOGUS", "RETR 99"], idle.line)
        assert replies[-1] == b"-ERR disconnected for inactivity"
        assert idle.read_until_closed(timeout=5) == b""
