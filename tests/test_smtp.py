"""SMTP behaviour with well-behaved clients: what is accepted, replied and stored."""

from __future__ import annotations

import base64
import json
import os
import re
import smtplib
from collections.abc import Callable

import pytest
from smtp_wire import WireClient, deliver, queued_id, send_message

from mailtrap import Server
from mailtrap.config import MiB

SIMPLE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Hello\r\n\r\nBody\r\n"


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    """This module's tests need no special settings: they share one server, emptied."""
    return emptied_module_server


def ehlo_keywords(client: smtplib.SMTP) -> dict[str, str]:
    code, _ = client.ehlo()
    assert code == 250
    return dict(client.esmtp_features)


# -- acceptance ----------------------------------------------------------------


@pytest.mark.parametrize(
    "sender",
    [
        "someone@example.com",
        "Mixed.Case+tag@Sub.Example.ORG",
        "no-reply@localhost",
        "x@[127.0.0.1]",
        "very.unusual.local-part_123@example.museum",
    ],
)
def test_any_sender_is_accepted_and_stored(server: Server, smtp: smtplib.SMTP, sender: str):
    message_id = deliver(smtp, SIMPLE, mail_from=sender)
    assert server.store.get(message_id)["mail_from"] == sender


def test_the_null_sender_is_accepted_and_stored_as_empty(server: Server, smtp: smtplib.SMTP):
    message_id = deliver(smtp, SIMPLE, mail_from="<>")
    row = server.store.get(message_id)
    assert row["mail_from"] == ""
    assert server.store.raw(message_id) == SIMPLE


def test_any_recipient_on_any_domain_is_accepted_and_stored_in_order(
    server: Server, smtp: smtplib.SMTP
):
    recipients = (
        "user@example.com",
        "other@gmail.com",
        "postmaster@does-not-exist.invalid",
        "root@localhost",
        "a@[192.0.2.1]",
    )
    message_id = deliver(smtp, SIMPLE, rcpt_tos=recipients)
    assert json.loads(server.store.get(message_id)["rcpt_tos"]) == list(recipients)


def test_utf8_addresses_with_smtputf8_are_stored(server: Server, smtp: smtplib.SMTP):
    raw = "From: Zoë <zoë@exämple.com>\r\nSubject: café\r\n\r\nhi\r\n".encode()
    message_id = deliver(
        smtp,
        raw,
        mail_from="zoë@exämple.com",
        rcpt_tos=("jürgen@exämple.de",),
        mail_options=("SMTPUTF8", "BODY=8BITMIME"),
    )
    row = server.store.get(message_id)
    assert row["mail_from"] == "zoë@exämple.com"
    assert json.loads(row["rcpt_tos"]) == ["jürgen@exämple.de"]
    assert row["subject"] == "café"
    assert row["from_address"] == "zoë@exämple.com"
    assert server.store.raw(message_id) == raw


# -- EHLO ----------------------------------------------------------------------


def test_ehlo_advertises_the_extensions_and_no_starttls_without_tls(
    make_server: Callable[..., Server],
):
    server = make_server(max_message_size=5 * MiB)
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=5) as client:
        keywords = ehlo_keywords(client)
    assert keywords["size"] == str(5 * MiB)
    for keyword in ("pipelining", "8bitmime", "smtputf8"):
        assert keyword in keywords
    assert set(keywords["auth"].split()) == {"PLAIN", "LOGIN"}
    assert "starttls" not in keywords


def test_ehlo_advertises_starttls_when_tls_is_configured(make_server: Callable[..., Server]):
    server = make_server(smtp_tls_self_signed=True)
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=5) as client:
        keywords = ehlo_keywords(client)
    assert "starttls" in keywords
    assert "pipelining" in keywords


def test_ehlo_reply_ends_with_a_single_final_line(server: Server):
    with WireClient(server.smtp_address) as client:
        reply = client.ehlo()
        assert reply.lines[0] == "mailtrap"
        assert "PIPELINING" in reply.lines
        # Nothing left over: the next reply is the NOOP's.
        assert client.command("NOOP").code == 250


def test_pipelined_mail_rcpt_rcpt_data_in_one_write_are_answered_in_order(server: Server):
    raw = b"Subject: pipelined\r\n\r\nbody\r\n"
    with WireClient(server.smtp_address) as client:
        assert "PIPELINING" in client.ehlo().lines
        client.send(
            b"MAIL FROM:<p@example.com>\r\n"
            b"RCPT TO:<one@example.com>\r\n"
            b"RCPT TO:<two@example.com>\r\n"
            b"DATA\r\n"
        )
        replies = client.replies(4)
        assert [reply.code for reply in replies] == [250, 250, 250, 354]
        # The message, the end marker and the next transaction's commands in one write too.
        client.send(raw + b".\r\nRSET\r\nNOOP\r\n")
        message_id = queued_id(client.reply())
        assert [reply.code for reply in client.replies(2)] == [250, 250]
    row = server.store.get(message_id)
    assert row["mail_from"] == "p@example.com"
    assert json.loads(row["rcpt_tos"]) == ["one@example.com", "two@example.com"]
    assert server.store.raw(message_id) == raw


def test_helo_without_extensions_works_and_is_stored(server: Server):
    with WireClient(server.smtp_address) as client:
        assert client.command("HELO old.client.test").code == 250
        message_id = queued_id(send_message(client, SIMPLE + b".\r\n"))
    assert server.store.get(message_id)["helo"] == "old.client.test"


def test_help_lists_the_transaction_commands(server: Server):
    with WireClient(server.smtp_address) as client:
        reply = client.command("HELP")
        assert reply.code == 250
        commands = set(reply.text.split(":", 1)[1].split())
        assert {"EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT"} <= commands
        assert client.command("HELP MAIL").code == 250


# -- DATA and what is stored -----------------------------------------------------


def test_the_reply_to_data_names_the_stored_id(server: Server, smtp: smtplib.SMTP):
    smtp.ehlo()
    smtp.mail("a@example.com")
    smtp.rcpt("b@example.com")
    code, text = smtp.data(SIMPLE)
    assert code == 250
    match = re.fullmatch(r"2\.0\.0 Ok: queued as ([A-Za-z0-9]+)", text.decode())
    assert match is not None, text
    assert server.store.ids() == [match[1]]
    assert server.store.raw(match[1]) == SIMPLE


def test_several_messages_in_one_session_get_distinct_ids(server: Server, smtp: smtplib.SMTP):
    ids = [
        deliver(smtp, b"Subject: %d\r\n\r\nbody %d\r\n" % (n, n), rcpt_tos=(f"r{n}@example.com",))
        for n in range(3)
    ]
    assert len(set(ids)) == 3
    assert server.store.ids() == ids
    for n, message_id in enumerate(ids):
        assert server.store.raw(message_id) == b"Subject: %d\r\n\r\nbody %d\r\n" % (n, n)
        assert json.loads(server.store.get(message_id)["rcpt_tos"]) == [f"r{n}@example.com"]


def test_rset_forgets_the_envelope(server: Server, smtp: smtplib.SMTP):
    smtp.ehlo()
    smtp.mail("first@example.com")
    smtp.rcpt("forgotten@example.com")
    assert smtp.rset()[0] == 250
    message_id = deliver(smtp, SIMPLE, mail_from="second@example.com")
    row = server.store.get(message_id)
    assert row["mail_from"] == "second@example.com"
    assert json.loads(row["rcpt_tos"]) == ["rcpt@example.com"]


def test_envelope_and_session_facts_are_stored(server: Server):
    with smtplib.SMTP(timeout=5) as client:
        client.connect(server.smtp_address.host, server.smtp_address.port)
        assert client.sock is not None
        local_host, local_port = client.sock.getsockname()[:2]
        client.ehlo("facts.client.test")
        message_id = deliver(
            client,
            SIMPLE,
            mail_from="from@example.com",
            rcpt_tos=("b@example.com", "c@example.com"),
            mail_options=("BODY=8BITMIME", f"SIZE={len(SIMPLE)}"),
        )
    row = server.store.get(message_id)
    assert row["mail_from"] == "from@example.com"
    assert json.loads(row["rcpt_tos"]) == ["b@example.com", "c@example.com"]
    assert json.loads(row["mail_options"]) == ["BODY=8BITMIME", f"SIZE={len(SIMPLE)}"]
    assert row["peer"] == f"{local_host}:{local_port}"
    assert row["helo"] == "facts.client.test"
    assert row["tls"] == 0
    assert row["auth_user"] is None
    assert row["size"] == len(SIMPLE)
    assert row["subject"] == "Hello"
    assert row["parse_error"] is None


def test_envelope_recipients_missing_from_to_and_cc_are_recorded_as_bcc(
    server: Server, smtp: smtplib.SMTP
):
    raw = b"From: a@example.com\r\nTo: To <to@example.com>\r\nCc: cc@example.com\r\n\r\nx\r\n"
    message_id = deliver(
        smtp, raw, rcpt_tos=("TO@example.com", "cc@example.com", "blind@example.com")
    )
    row = server.store.get(message_id)
    assert json.loads(row["bcc_json"]) == [{"Name": "", "Address": "blind@example.com"}]
    assert json.loads(row["to_json"]) == [{"Name": "To", "Address": "to@example.com"}]


def test_8bit_nul_and_invalid_utf8_bytes_survive_byte_exact(server: Server, smtp: smtplib.SMTP):
    raw = (
        b"From: a@example.com\r\n"
        b"Subject: caf\xc3\xa9 \xff\xfe bad \x00 nul\r\n"
        b"X-Latin1: Gr\xfc\xdfe\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"every byte value: " + bytes(range(256)).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"
        b"invalid utf-8: \xc3\x28 \xa0\xa1 \xf0\x28\x8c\x28\r\n"
        b"nul: \x00\x00\x00\r\n"
    )
    message_id = deliver(smtp, raw, mail_options=("BODY=8BITMIME",))
    assert server.store.raw(message_id) == raw
    assert server.store.get(message_id)["size"] == len(raw)


def test_dot_lines_round_trip_through_smtplib_dot_stuffing(server: Server, smtp: smtplib.SMTP):
    raw = b".starts with a dot\r\n.\r\n..\r\n...\r\n.x\r\nmiddle . dot\r\n. \r\n.\r\n"
    message_id = deliver(smtp, raw)
    assert server.store.raw(message_id) == raw


def test_dot_stuffed_lines_on_the_wire_are_unstuffed(server: Server):
    with WireClient(server.smtp_address) as client:
        client.ehlo()
        reply = send_message(client, b"..first\r\n..\r\n...\r\nplain\r\n.\r\n")
    assert server.store.raw(queued_id(reply)) == b".first\r\n.\r\n..\r\nplain\r\n"


def test_an_empty_message_is_stored_empty(server: Server):
    with WireClient(server.smtp_address) as client:
        client.ehlo()
        message_id = queued_id(send_message(client, b".\r\n"))
    assert server.store.raw(message_id) == b""
    row = server.store.get(message_id)
    assert row["size"] == 0
    assert row["subject"] == ""
    assert row["parse_error"] is None


def test_a_message_without_final_crlf_gets_one_from_smtplib(server: Server, smtp: smtplib.SMTP):
    message_id = deliver(smtp, b"Subject: no newline\r\n\r\nlast line")
    assert server.store.raw(message_id) == b"Subject: no newline\r\n\r\nlast line\r\n"


def test_long_base64_body_without_any_dot_crlf_for_over_64kib_round_trips(
    server: Server, smtp: smtplib.SMTP
):
    payload = base64.encodebytes(os.urandom(300_000)).replace(b"\n", b"\r\n")
    assert b".\r\n" not in payload and len(payload) > 4 * 64 * 1024
    raw = (
        b"Subject: attachment\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename=blob.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + payload + b"--b--\r\n"
    )
    message_id = deliver(smtp, raw)
    assert server.store.raw(message_id) == raw
    row = server.store.get(message_id)
    assert (row["attachments"], row["snippet"]) == (1, "see attached")


def test_a_single_line_longer_than_64kib_round_trips(server: Server, smtp: smtplib.SMTP):
    raw = b"Subject: one long line\r\n\r\n" + b"x" * 200_000 + b".\r\n" + b"y" * 70_000 + b"\r\n"
    message_id = deliver(smtp, raw)
    assert server.store.raw(message_id) == raw


def test_a_5_mb_message_round_trips_byte_exact(server: Server, smtp: smtplib.SMTP):
    line = b"0123456789abcdefghijklmnopqrstuvwxyz ." * 2 + b"\r\n"
    body = b"".join(b"%06d " % n + line for n in range(5 * 1024 * 1024 // len(line)))
    raw = b"Subject: big\r\n\r\n" + body + b".\r\n..\r\n"
    assert len(raw) > 5 * 1000 * 1000
    message_id = deliver(smtp, raw)
    assert server.store.raw(message_id) == raw
    assert server.store.get(message_id)["size"] == len(raw)


# -- command order and syntax --------------------------------------------------


def test_data_without_rcpt_is_refused_with_503(server: Server):
    with WireClient(server.smtp_address) as client:
        client.ehlo()
        assert client.command("DATA").code == 503
        assert client.command("MAIL FROM:<a@example.com>").code == 250
        assert client.command("DATA").code == 503
        # The session still works.
        assert client.command("RCPT TO:<b@example.com>").code == 250
        assert client.command("DATA").code == 354
        queued_id(client.command(b"x\r\n."))
    assert server.store.count() == 1


@pytest.mark.parametrize(
    "command", ["MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>", "DATA"]
)
def test_transaction_commands_before_ehlo_are_refused_with_503(server: Server, command: str):
    with WireClient(server.smtp_address) as client:
        assert client.command(command).code == 503
    assert server.store.count() == 0


def test_rcpt_before_mail_and_nested_mail_are_refused_with_503(server: Server):
    with WireClient(server.smtp_address) as client:
        client.ehlo()
        assert client.command("RCPT TO:<b@example.com>").code == 503
        assert client.command("MAIL FROM:<a@example.com>").code == 250
        assert client.command("MAIL FROM:<c@example.com>").code == 503


def test_an_unknown_command_gets_500_and_the_session_goes_on(server: Server):
    with WireClient(server.smtp_address) as client:
        client.ehlo()
        reply = client.command("FROBNICATE now")
        assert reply.code == 500
        assert client.command("NOOP").code == 250


def test_too_many_unknown_commands_end_the_session(server: Server):
    with WireClient(server.smtp_address) as client:
        codes = [client.command(f"BOGUS{n}").code for n in range(5)]
        assert codes == [500, 500, 500, 500, 502]
        assert client.read_until_closed(timeout=2) == b""


def test_a_bare_lf_does_not_end_a_command_line(server: Server):
    # Finding: only CRLF ends a line (RFC 5321 2.3.8). "NOOP\n" gets no reply;
    # the LF stays inside the line, and a line holding a bare LF is refused
    # once CRLF ends it. Neither half is executed as a command of its own.
    with WireClient(server.smtp_address, timeout=0.3) as client:
        client.send(b"EHLO lf.client.test\nMAIL FROM:<a@example.com>\n")
        with pytest.raises(TimeoutError):
            client.reply()
        client.sock.settimeout(5)
        client.send(b"\r\n")
        assert client.reply().code == 501  # EHLO with LF inside its argument
        client.send(b"NOOP\nNOOP\r\n")
        assert client.reply().code == 500  # one unknown command "NOOP\nNOOP"
        # Nothing else was queued up: the next reply is this EHLO's.
        assert "PIPELINING" in client.ehlo().lines
        assert client.command("RCPT TO:<b@example.com>").code == 503  # no MAIL was run
