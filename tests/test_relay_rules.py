"""Relay rules and guards against real servers: auto-relay, forwarding, cancelling by delete,
the retry lifetime, Mailpit's webui settings, and SMTP smuggling through relayed content."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from api_client import Api, plain, send
from dns_server import ZoneResolver
from relay_helpers import (
    mx_config,
    settled,
    start_relay,
    states,
    wait_relay,
)
from smtp_receiver import Receiver
from smtp_wire import WireClient, queued_id, send_message

from mailtrap import Server
from mailtrap.config import Address
from mailtrap.relay.plan import normalize_line_endings


@pytest.fixture
def dns(dns_zone: tuple[ZoneResolver, Address]) -> Address:
    return dns_zone[1]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver("127.0.0.2").start()
    yield started
    started.stop()


def relay_server(
    make_server: Callable[..., Server], tmp_path: Path, dns: Address, port: int, *extra: str
) -> Server:
    return start_relay(make_server, tmp_path, dns, mx_config(port, *extra))


def test_auto_relay_takes_matching_mail_to_allowed_recipients(make_server, tmp_path, dns, receiver):
    server = relay_server(
        make_server, tmp_path, dns, receiver.port, "[[auto_relay]]", 'query = "subject:Welcome"'
    )
    welcome = send(
        server, plain("Welcome aboard"), rcpt_tos=("new@example.test", "someone@elsewhere.test")
    )
    other = send(server, plain("Invoice"), rcpt_tos=("new@example.test",))

    deliveries = wait_relay(server, welcome, settled)

    # The recipient outside the allowlist is skipped, never queued.
    assert states(deliveries) == {"new@example.test": "sent"}
    assert deliveries[0]["Reason"] == "auto"
    assert server.relay.deliveries(other) == []
    [delivered] = receiver.received
    assert (
        delivered.rcpt_tos == ["new@example.test"] and b"Subject: Welcome aboard" in delivered.data
    )


def test_mail_from_before_auto_relay_was_configured_is_never_relayed(
    make_server, tmp_path, dns, receiver
):
    db = tmp_path / "mail.db"
    plain_server = make_server(db=db)
    old = send(plain_server, plain("Welcome from before"), rcpt_tos=("old@example.test",))
    plain_server.stop()

    server = start_relay(
        make_server,
        tmp_path,
        dns,
        mx_config(receiver.port, "[[auto_relay]]", 'query = "subject:Welcome"'),
        db=db,
    )
    new = send(server, plain("Welcome now"), rcpt_tos=("new@example.test",))
    wait_relay(server, new, settled)

    assert server.relay.deliveries(old) == []
    assert receiver.recipients() == ["new@example.test"]


def test_forwarding_sends_matching_mail_to_fixed_addresses(make_server, tmp_path, dns, receiver):
    server = relay_server(
        make_server,
        tmp_path,
        dns,
        receiver.port,
        "[[forward]]",
        'to = ["qa@example.test", "lead@example.test"]',
        'query = "to:@customers.test"',
    )
    forwarded = send(
        server, plain("Order", to="buyer@customers.test"), rcpt_tos=("buyer@customers.test",)
    )
    kept = send(
        server, plain("Internal", to="staff@internal.test"), rcpt_tos=("staff@internal.test",)
    )

    deliveries = wait_relay(server, forwarded, settled)

    assert states(deliveries) == {"qa@example.test": "sent", "lead@example.test": "sent"}
    assert {d["Reason"] for d in deliveries} == {"forward"}
    assert server.relay.deliveries(kept) == []
    # The envelope says where it goes; the message itself is unchanged (To: stays the buyer).
    [delivered] = receiver.received
    assert delivered.rcpt_tos == ["qa@example.test", "lead@example.test"]


def test_deleting_a_message_cancels_its_pending_deliveries(make_server, tmp_path, dns, receiver):
    receiver.replies["slow@example.test"] = "451 4.3.0 later"
    server = relay_server(make_server, tmp_path, dns, receiver.port)
    message_id = send(server, plain("doomed"))
    api = Api(server)
    assert api.ok("POST", f"/api/v1/message/{message_id}/release", {"To": ["slow@example.test"]})
    wait_relay(server, message_id, lambda ds: ds[0]["State"] == "retrying")
    assert server.relay_counts()["deferred"] == 1

    assert api.ok("DELETE", "/api/v1/messages", {"IDs": [message_id]}) == "ok"
    receiver.replies.clear()

    assert server.relay.deliveries(message_id) == []
    assert server.relay_counts()["deferred"] == 0
    # Another message goes through the same queue; the cancelled one never does.
    probe = send(server, plain("probe"))
    api.ok("POST", f"/api/v1/message/{probe}/release", {"To": ["probe@example.test"]})
    wait_relay(server, probe, settled)
    assert receiver.recipients() == ["probe@example.test"]


def test_a_deferred_delivery_gives_up_after_its_lifetime(make_server, tmp_path, dns, receiver):
    receiver.replies["busy@example.test"] = "452 4.2.2 mailbox full"
    config = mx_config(receiver.port).replace('lifetime = "30s"', 'lifetime = "1s"')
    server = start_relay(make_server, tmp_path, dns, config)
    message_id = send(server, plain("persistent"))
    Api(server).ok("POST", f"/api/v1/message/{message_id}/release", {"To": ["busy@example.test"]})

    deliveries = wait_relay(server, message_id, settled)

    assert deliveries[0]["State"] == "failed"
    assert deliveries[0]["Reply"].startswith("gave up after the retry lifetime; last: 452 4.2.2")
    assert deliveries[0]["Attempts"] >= 2
    assert server.relay_counts() == {
        "pending": 0, "deferred": 0, "delivered": 0, "failed": 1, "sending": 0,
    }  # fmt: skip


def test_webui_reports_the_relay_settings_as_mailpit_does(make_server, tmp_path, dns, receiver):
    server = relay_server(
        make_server,
        tmp_path,
        dns,
        receiver.port,
        'sender = "bounces@example.test"',
        "keep_message_id = true",
        'blocked_recipients = ["ceo@example.test"]',
    )
    relay = Api(server).ok("GET", "/api/v1/webui")["MessageRelay"]
    assert relay["Enabled"] is True
    assert relay["SMTPServer"] == f"MX hosts of each domain, port {receiver.port}"
    assert relay["ReturnPath"] == "bounces@example.test"
    assert relay["BlockedRecipients"] == "ceo@example.test"
    assert relay["PreserveMessageIDs"] is True
    assert "example.test" in relay["AllowedRecipients"].split(", ")
    assert relay["RecipientAllowlist"] == relay["AllowedRecipients"]

    # The sender override is the envelope sender; keep_message_id keeps the Message-ID.
    message_id = send(server, plain("kept", headers="Message-ID: <keep@app.test>\r\n"))
    Api(server).ok("POST", f"/api/v1/message/{message_id}/release", {"To": ["a@example.test"]})
    wait_relay(server, message_id, settled)
    [delivered] = receiver.received
    assert delivered.mail_from == "bounces@example.test"
    assert b"\r\nMessage-ID: <keep@app.test>\r\n" in delivered.data


def test_webui_says_relay_is_off_without_a_config(server):
    relay = Api(server).ok("GET", "/api/v1/webui")["MessageRelay"]
    assert relay["Enabled"] is False
    reply = Api(server).request("POST", "/api/v1/message/latest/release", {"To": ["a@b.test"]})
    assert reply.status == 400 and "--relay-config" in reply.error


SMUGGLING = (
    b"From: app@example.test\r\nSubject: smuggler\r\n\r\nfirst line\n.\n"
    b"MAIL FROM:<evil@example.test>\nRCPT TO:<victim@example.test>\nDATA\n"
    b"Subject: smuggled\n\nyou have been had\n.\r\n"
    b"bare CR\r.\rand CR LF dot LF\r\n.\nlast line\r\n"
)


def test_captured_bare_lf_dots_cannot_smuggle_a_second_message(
    make_server, tmp_path, dns, receiver
):
    server = relay_server(make_server, tmp_path, dns, receiver.port, "keep_message_id = true")
    with WireClient(server.smtp_address) as client:
        client.ehlo()
        # Dot-stuffed as a client must (only after CRLF); the bare LF dots go as they are.
        wire = SMUGGLING.replace(b"\r\n.", b"\r\n..")
        reply = send_message(client, wire + b".\r\n", rcpt_tos=("a@example.test",))
    message_id = queued_id(reply)
    assert server.store.raw(message_id) == SMUGGLING  # captured as it came, lone dots and all

    Api(server).ok("POST", f"/api/v1/message/{message_id}/release", {"To": ["a@example.test"]})
    wait_relay(server, message_id, settled)

    # One message, one recipient: the lone dots were stuffed, so the receiver read
    # them as content and never saw "MAIL FROM:<evil...>" as a command.
    [delivered] = receiver.received
    assert receiver.rcpt_seen == ["a@example.test"]
    assert delivered.rcpt_tos == ["a@example.test"]
    body = delivered.data.split(b"\r\n", 2)[2]  # after our Received field (two lines)
    assert body == normalize_line_endings(SMUGGLING)
    assert b"\r\n.\r\nMAIL FROM:<evil@example.test>\r\n" in body


def test_relay_does_not_block_smtp_while_a_remote_is_slow(make_server, tmp_path, dns, receiver):
    receiver.hold = threading.Event()
    server = relay_server(make_server, tmp_path, dns, receiver.port)
    message_id = send(server, plain("slow remote"))
    Api(server).ok("POST", f"/api/v1/message/{message_id}/release", {"To": ["a@example.test"]})
    assert receiver.data_started.wait(10)

    # The remote holds the end of DATA; capturing and reading go on meanwhile.
    other = send(server, plain("meanwhile"))
    assert Api(server).message(other)["Subject"] == "meanwhile"
    assert server.relay_counts()["sending"] == 1

    receiver.hold.set()
    deliveries = wait_relay(server, message_id, settled)
    assert deliveries[0]["State"] == "sent"


JS = Path(__file__).parent / "js"
NODE = shutil.which("node")


@pytest.mark.skipif(
    NODE is None or not (JS / "node_modules" / "mailpit-api").is_dir(),
    reason="node and the npm client are needed: npm install --prefix tests/js",
)
def test_mailpit_npm_client_releases_a_message(make_server, tmp_path, dns, receiver):
    server = relay_server(make_server, tmp_path, dns, receiver.port)
    message_id = send(server, plain("through the npm client"))
    assert NODE is not None
    completed = subprocess.run(
        [NODE, str(JS / "mailpit_release.mjs"), server.http_url, message_id,
         "qa@example.test", "x@evil.test"],
        cwd=JS, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    results = json.loads(completed.stdout)
    assert results["released"] == "ok"
    assert "x@evil.test" in results["refused"]
    if results["webui"] is not None:
        assert results["webui"]["MessageRelay"]["Enabled"] is True
    deliveries = wait_relay(server, message_id, settled)
    assert states(deliveries) == {"qa@example.test": "sent"}
    assert receiver.recipients() == ["qa@example.test"]
