"""Relay against real servers: a dnslib DNS server and aiosmtpd "remote MX" hosts on loopback.

Each test writes a zone, starts receivers on 127.0.0.x sharing one port (the
relay's MX port), captures mail over SMTP, and releases it through the
HTTP API (or lets auto-relay and forwarding choose it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from api_client import Api, plain, send
from dns_server import ZoneResolver
from metrics_client import scrape, value
from relay_helpers import (
    mx_config,
    settled,
    start_relay,
    states,
    wait_relay,
)
from smtp_receiver import DROP, Receiver

from mailtrap import Server
from mailtrap.config import Address
from mailtrap.tls import self_signed_context


@pytest.fixture
def dns(dns_zone: tuple[ZoneResolver, Address]) -> tuple[ZoneResolver, Address]:
    return dns_zone


@pytest.fixture
def mx() -> Iterator[Callable[..., Receiver]]:
    """Start receivers on 127.0.0.x, all on the port of the first one."""
    started: list[Receiver] = []

    def start(host: str, **options: object) -> Receiver:
        port = started[0].port if started else 0
        receiver = Receiver(host, port, **options).start()  # type: ignore[arg-type]
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def release(server: Server, message_id: str, to: list[str]) -> None:
    reply = Api(server).request("POST", f"/api/v1/message/{message_id}/release", {"To": to})
    assert (reply.status, reply.text) == (200, "ok"), reply.body


def relay_server(
    make_server: Callable[..., Server], tmp_path: Path, dns_address: Address, port: int, *extra: str
) -> Server:
    return start_relay(make_server, tmp_path, dns_address, mx_config(port, *extra))


MESSAGE = (
    b"From: App <app@example.test>\r\nTo: a@example.test\r\nSubject: Hello\r\n"
    b"Message-ID: <orig@app.test>\r\nBcc: hidden@example.test\r\n\r\nBody line\r\n"
)


def test_release_delivers_per_domain_and_reports_state(make_server, tmp_path, dns, mx):
    _zone, address = dns
    first, second = mx("127.0.0.2"), mx("127.0.0.3")
    server = relay_server(make_server, tmp_path, address, first.port)
    message_id = send(server, MESSAGE, rcpt_tos=("a@example.test",))

    release(server, message_id, ["a@example.test", "b@Example.TEST", "c@other.test"])
    deliveries = wait_relay(server, message_id, settled)

    assert states(deliveries) == {
        "a@example.test": "sent", "b@example.test": "sent", "c@other.test": "sent",
    }  # fmt: skip
    # One transaction per domain, each to that domain's MX host.
    assert [m.rcpt_tos for m in first.received] == [["a@example.test", "b@example.test"]]
    assert [m.rcpt_tos for m in second.received] == [["c@other.test"]]
    assert first.received[0].mail_from == "sender@example.com"
    detail = Api(server).message(message_id)["Relay"]
    sent = detail[0]
    assert sent["RemoteHost"] == "mx.example.test [127.0.0.2]"
    assert sent["Reply"] == "250 2.0.0 queued as R1"
    assert (sent["Attempts"], sent["Reason"], sent["NextAttempt"]) == (1, "release", "")
    # The bytes are the captured ones but for the intended changes.
    delivered = first.received[0].data
    received_line, _, rest = delivered.partition(b"\r\n\t")
    assert received_line.startswith(b"Received: by relay.mailtrap.test (Mailtrap relay) id ")
    rest = rest.split(b"\r\n", 1)[1]
    new_id, _, rest = rest.partition(b"\r\n")
    assert new_id.startswith(b"Message-ID: <") and new_id.endswith(b"@relay.mailtrap.test>")
    assert rest == MESSAGE.replace(b"Message-ID: <orig@app.test>\r\n", b"").replace(
        b"Bcc: hidden@example.test\r\n", b""
    )


def test_starttls_is_used_whenever_the_mx_offers_it_and_clear_text_otherwise(
    make_server, tmp_path, dns, mx
):
    _zone, address = dns
    # A self-signed certificate for another name: opportunistic TLS takes it all the same.
    offers_tls = mx("127.0.0.2", tls_context=self_signed_context("not-the-mx.test"))
    clear_only = mx("127.0.0.3")
    server = relay_server(make_server, tmp_path, address, offers_tls.port)
    message_id = send(server, MESSAGE)

    release(server, message_id, ["a@example.test", "c@other.test"])
    deliveries = wait_relay(server, message_id, settled)

    assert states(deliveries) == {"a@example.test": "sent", "c@other.test": "sent"}
    ((encrypted,), (clear,)) = offers_tls.wait_for(1), clear_only.wait_for(1)
    assert (encrypted.rcpt_tos, encrypted.tls) == (["a@example.test"], True)
    assert (clear.rcpt_tos, clear.tls) == (["c@other.test"], False)
    # The same bytes either way.
    assert encrypted.data.split(b"\r\n", 3)[3] == clear.data.split(b"\r\n", 3)[3]


def test_the_queue_shows_in_metrics(make_server, tmp_path, dns, mx):
    _zone, address = dns
    receiver = mx(
        "127.0.0.2",
        replies={"later@example.test": "451 4.3.0 try again", "never@example.test": "550 5.1.1 no"},
    )
    server = relay_server(make_server, tmp_path, address, receiver.port)
    message_id = send(server, MESSAGE, rcpt_tos=("a@example.test",))

    release(server, message_id, ["a@example.test", "never@example.test", "later@example.test"])
    expected = {"a@example.test": "sent", "never@example.test": "failed"}
    expected["later@example.test"] = "retrying"
    wait_relay(server, message_id, lambda deliveries: states(deliveries) == expected)

    samples = scrape(server)
    by_state = {
        state: value(samples, "mailtrap_relay_recipients", state=state)
        for state in ("pending", "deferred", "sending", "delivered", "failed")
    }
    assert by_state["delivered"] == 1 and by_state["failed"] == 1
    assert by_state["deferred"] + by_state["pending"] + by_state["sending"] == 1
    assert value(samples, "mailtrap_relay_queue_length") == 1


def test_mx_preference_fallback_and_each_address_in_turn(make_server, tmp_path, dns, mx):
    zone, address = dns
    zone.add(
        """
        pref.test. 60 IN MX 20 backup.pref.test.
        pref.test. 60 IN MX 10 busy.pref.test.
        busy.pref.test. 60 IN A 127.0.0.4
        busy.pref.test. 60 IN A 127.0.0.5
        backup.pref.test. 60 IN A 127.0.0.6
        backup.pref.test. 60 IN A 127.0.0.7
        """
    )
    busy = mx("127.0.0.4", greeting="421 4.3.2 too busy")
    # 127.0.0.5 and 127.0.0.6 have no listener: their connections are refused.
    backup = mx("127.0.0.7")
    server = relay_server(make_server, tmp_path, address, busy.port)
    message_id = send(server, plain("pref"))

    release(server, message_id, ["someone@pref.test"])
    deliveries = wait_relay(server, message_id, settled)

    assert states(deliveries) == {"someone@pref.test": "sent"}
    assert deliveries[0]["RemoteHost"] == "backup.pref.test [127.0.0.7]"
    assert busy.connections == 1 and busy.received == []
    assert backup.recipients() == ["someone@pref.test"]


def test_implicit_mx_only_without_mx_records(make_server, tmp_path, dns, mx):
    zone, address = dns
    zone.add("implicit.test. 60 IN A 127.0.0.8")
    receiver = mx("127.0.0.8")
    server = relay_server(make_server, tmp_path, address, receiver.port)
    message_id = send(server, plain("implicit"))

    release(server, message_id, ["x@implicit.test"])
    deliveries = wait_relay(server, message_id, settled)

    assert deliveries[0]["RemoteHost"] == "implicit.test [127.0.0.8]"
    assert receiver.recipients() == ["x@implicit.test"]


def test_null_mx_and_nxdomain_fail_at_once_servfail_and_timeout_retry(
    make_server, tmp_path, dns, mx
):
    zone, address = dns
    zone.add("null.test. 60 IN MX 0 .")
    zone.fail("broken.test")
    zone.stall("slow.test")
    receiver = mx("127.0.0.2")
    server = relay_server(make_server, tmp_path, address, receiver.port)
    message_id = send(server, plain("dns"))

    release(server, message_id, ["a@null.test", "b@gone.test", "c@broken.test", "d@slow.test"])
    deliveries = wait_relay(
        server,
        message_id,
        lambda ds: (
            states(ds)
            == {
                "a@null.test": "failed",
                "b@gone.test": "failed",
                "c@broken.test": "retrying",
                "d@slow.test": "retrying",
            }
        ),
    )

    by_recipient = {d["Recipient"]: d for d in deliveries}
    assert "null MX" in by_recipient["a@null.test"]["Reply"]
    assert "NXDOMAIN" in by_recipient["b@gone.test"]["Reply"]
    for temporary in ("c@broken.test", "d@slow.test"):
        assert by_recipient[temporary]["NextAttempt"], by_recipient[temporary]
        assert "DNS lookup of MX" in by_recipient[temporary]["Reply"]
    assert receiver.connections == 0


def test_partial_acceptance_retries_only_the_deferred(make_server, tmp_path, dns, mx):
    _zone, address = dns
    receiver = mx(
        "127.0.0.2",
        replies={"later@example.test": "451 4.2.0 try later", "never@example.test": "550 5.1.1 no"},
    )
    server = relay_server(make_server, tmp_path, address, receiver.port)
    message_id = send(server, plain("partial"))

    release(server, message_id, ["now@example.test", "later@example.test", "never@example.test"])
    deliveries = wait_relay(
        server,
        message_id,
        lambda ds: {d["Attempts"] for d in ds if d["Recipient"] == "later@example.test"} == {2},
    )
    assert states(deliveries)["never@example.test"] == "failed"
    assert states(deliveries)["now@example.test"] == "sent"
    receiver.replies.pop("later@example.test")
    deliveries = wait_relay(server, message_id, settled)

    assert states(deliveries) == {
        "now@example.test": "sent", "later@example.test": "sent", "never@example.test": "failed",
    }  # fmt: skip
    never = next(d for d in deliveries if d["Recipient"] == "never@example.test")
    assert (never["Attempts"], never["Reply"]) == (1, "550 5.1.1 no")
    # Each accepted recipient got the message once; the deferred one on a later try.
    assert receiver.recipients() == ["now@example.test", "later@example.test"]


def test_a_dropped_connection_is_retried(make_server, tmp_path, dns, mx):
    _zone, address = dns
    receiver = mx("127.0.0.2", replies={"flaky@example.test": DROP})
    server = relay_server(make_server, tmp_path, address, receiver.port)
    message_id = send(server, plain("drop"))

    release(server, message_id, ["flaky@example.test"])
    deliveries = wait_relay(server, message_id, lambda ds: ds[0]["Attempts"] >= 1)
    assert deliveries[0]["State"] == "retrying"
    receiver.replies.pop("flaky@example.test")
    deliveries = wait_relay(server, message_id, settled)

    assert deliveries[0]["State"] == "sent"
    assert receiver.recipients() == ["flaky@example.test"]


def test_private_targets_are_refused_unless_allowed(make_server, tmp_path, dns, mx):
    _zone, address = dns
    receiver = mx("127.0.0.2")
    config = mx_config(receiver.port).replace(
        "allow_private_targets = true", "allow_private_targets = false"
    )
    server = start_relay(make_server, tmp_path, address, config)
    message_id = send(server, plain("private"))

    release(server, message_id, ["a@example.test"])
    deliveries = wait_relay(server, message_id, settled)

    assert deliveries[0]["State"] == "failed"
    assert "refused" in deliveries[0]["Reply"] and "127.0.0.2" in deliveries[0]["Reply"]
    assert receiver.connections == 0


def test_release_refuses_recipients_outside_the_allowlist_or_on_the_blocklist(
    make_server, tmp_path, dns, mx
):
    _zone, address = dns
    receiver = mx("127.0.0.2")
    server = relay_server(
        make_server, tmp_path, address, receiver.port, 'blocked_recipients = ["boss@example.test"]'
    )
    message_id = send(server, plain("guarded"))
    api = Api(server)
    path = f"/api/v1/message/{message_id}/release"

    reply = api.request(
        "POST", path, {"To": ["ok@example.test", "x@evil.test", "Boss@EXAMPLE.test"]}
    )
    assert reply.status == 400
    assert reply.error == (
        "Failed: addresses refused: x@evil.test (not on the allowlist), "
        "Boss@EXAMPLE.test (on the blocklist)"
    )
    assert api.request("POST", path, {"To": []}).status == 400
    assert api.request("POST", path, {"To": ["not an address"]}).status == 400
    assert api.request("POST", path, {"To": "a@example.test"}).status == 400
    assert (
        api.request("POST", "/api/v1/message/nope/release", {"To": ["a@example.test"]}).status
        == 404
    )
    assert server.relay.deliveries(message_id) == []
    assert receiver.connections == 0


def test_the_relay_route_long_polls_until_the_state_changes(make_server, tmp_path, dns, mx):
    _zone, address = dns
    receiver = mx("127.0.0.2")
    server = relay_server(make_server, tmp_path, address, receiver.port)
    message_id = send(server, plain("watched"))
    api = Api(server)
    path = f"/api/v1/message/{message_id}/relay"
    before = api.ok("GET", path)
    assert (before["ID"], before["Relay"]) == (message_id, [])

    # A long poll that is answered by the release, not by its 20 s.
    answers: list[dict] = []
    poll = threading.Thread(
        target=lambda: answers.append(api.ok("GET", path, wait=20, changed=before["Version"]))
    )
    poll.start()
    release(server, message_id, ["a@example.test"])
    poll.join(20)

    (changed,) = answers
    assert changed["Version"] != before["Version"]
    assert [d["Recipient"] for d in changed["Relay"]] == ["a@example.test"]
    # Without wait (or with the version it already has) it answers at once.
    settled_state = wait_relay(server, message_id, settled)
    now = api.ok("GET", path)
    assert now["Relay"] == settled_state
    assert api.ok("GET", path, wait=0, changed=now["Version"])["Version"] == now["Version"]
    assert api.request("GET", "/api/v1/message/nope/relay").status == 404
    assert api.request("GET", path, wait="soon", changed="x").status == 400
