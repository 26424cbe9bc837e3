"""POST /api/v1/messages/release over real HTTP: many messages released in one request.

A loopback dnslib zone sends example.test to an aiosmtpd "MX" on 127.0.0.2.
Each test checks what arrived there (or that nothing did) and what the queue
holds, not only the answer.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest
from api_client import Api, plain
from dns_server import ZoneResolver
from relay_helpers import mx_config, settled, start_relay, wait_relay
from smtp_receiver import Receiver
from smtp_wire import deliver

from mailtrap import Server
from mailtrap.config import Address
from mailtrap.web.relay_api import MAX_RELEASE_DELIVERIES

RELEASE = "/api/v1/messages/release"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver("127.0.0.2", replies={"never@example.test": "550 5.1.1 no"}).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def relay_server(make_server, tmp_path, dns_zone: tuple[ZoneResolver, Address], receiver) -> Server:
    return start_relay(make_server, tmp_path, dns_zone[1], mx_config(receiver.port))


def capture(server: Server, *subjects: str) -> list[str]:
    """Send one message per subject over one SMTP connection; their IDs, in that order."""
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        return [deliver(client, plain(subject)) for subject in subjects]


def queued(server: Server, message_ids: list[str]) -> dict[str, list[str]]:
    """Each message's queued recipients (none: never released)."""
    assert server.relay is not None
    return {each: [d["Recipient"] for d in server.relay.deliveries(each)] for each in message_ids}


def settle(server: Server, message_ids: list[str]) -> None:
    for each in message_ids:
        wait_relay(server, each, settled)


def test_ids_are_released_in_one_request_and_only_they_arrive(relay_server: Server, receiver):
    ids = capture(relay_server, "One", "Two", "Three", "Four")
    chosen = [ids[1], ids[3], ids[1]]  # an ID twice is released once
    answer = Api(relay_server).ok(
        "POST", RELEASE, {"IDs": chosen, "To": ["Carol <carol@EXAMPLE.test>", "never@example.test"]}
    )
    assert answer == {
        "Messages": [{"ID": ids[1], "Subject": "Two"}, {"ID": ids[3], "Subject": "Four"}],
        "To": ["carol@example.test", "never@example.test"],
        "Missing": [],
    }
    settle(relay_server, [ids[1], ids[3]])
    arrived = receiver.wait_for(2)
    assert sorted((m.rcpt_tos, m.data.split(b"Subject: ")[1][:4]) for m in arrived) == [
        (["carol@example.test"], b"Four"),
        (["carol@example.test"], b"Two\r"),
    ]
    assert queued(relay_server, [ids[0], ids[2]]) == {ids[0]: [], ids[2]: []}
    assert relay_server.relay is not None
    refused = [d for d in relay_server.relay.deliveries(ids[1]) if d["State"] == "failed"]
    assert [(d["Recipient"], d["Reply"]) for d in refused] == [
        ("never@example.test", "550 5.1.1 no")
    ]
    assert len(receiver.received) == 2


def test_a_search_releases_its_matches_only(relay_server: Server, receiver):
    ids = capture(relay_server, "Invoice 1", "Newsletter", "Invoice 2", "Invoice 3")
    answer = Api(relay_server).ok(
        "POST", RELEASE, {"Search": "subject:invoice", "To": ["carol@example.test"]}
    )
    released = [message["ID"] for message in answer["Messages"]]
    assert released == [ids[3], ids[2], ids[0]]  # newest first, as the search lists them
    settle(relay_server, released)
    assert sorted(m.data.split(b"Subject: ")[1][:9] for m in receiver.wait_for(3)) == [
        b"Invoice 1", b"Invoice 2", b"Invoice 3",
    ]  # fmt: skip
    assert queued(relay_server, [ids[1]]) == {ids[1]: []}
    assert len(receiver.received) == 3


def test_neither_ids_nor_search_is_every_message(relay_server: Server, receiver):
    ids = capture(relay_server, "A", "B")
    answer = Api(relay_server).ok("POST", RELEASE, {"To": ["carol@example.test"]})
    assert sorted(message["ID"] for message in answer["Messages"]) == sorted(ids)
    settle(relay_server, ids)
    assert [m.rcpt_tos for m in receiver.wait_for(2)] == [["carol@example.test"]] * 2


def test_ids_deleted_before_the_release_are_reported_missing(relay_server: Server):
    ids = capture(relay_server, "Kept", "Gone")
    api = Api(relay_server)
    api.ok("DELETE", "/api/v1/messages", {"IDs": [ids[1]]})
    answer = api.ok("POST", RELEASE, {"IDs": [*ids, "no-such-id"], "To": ["carol@example.test"]})
    assert [message["ID"] for message in answer["Messages"]] == [ids[0]]
    assert answer["Missing"] == [ids[1], "no-such-id"]
    # Nothing at all left to release: 404, and nothing queued.
    reply = api.request("POST", RELEASE, {"IDs": [ids[1]], "To": ["carol@example.test"]})
    assert (reply.status, reply.error) == (404, f"message not found: {ids[1]}")
    body = {"Search": "subject:nothing", "To": ["carol@example.test"]}
    reply = api.request("POST", RELEASE, body)
    assert (reply.status, reply.error) == (404, "no message matches the search")


def test_a_refused_recipient_is_named_and_nothing_is_queued(relay_server: Server, receiver):
    ids = capture(relay_server, "One", "Two")
    reply = Api(relay_server).request(
        "POST", RELEASE, {"IDs": ids, "To": ["carol@example.test", "x@evil.test"]}
    )
    assert (reply.status, reply.error) == (
        400,
        "Failed: address refused: x@evil.test (not on the allowlist)",
    )
    assert queued(relay_server, ids) == {ids[0]: [], ids[1]: []}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"IDs": ["a"]}, "No valid addresses found"),
        ({"IDs": ["a"], "To": ["not an address"]}, "Invalid email address: 'not an address'"),
        ({"IDs": ["a"], "To": "carol@example.test"}, "To must be an array of strings"),
        ({"IDs": "a", "To": ["carol@example.test"]}, "IDs must be an array of strings"),
        ({"Search": 3, "To": ["carol@example.test"]}, "Search must be a string"),
        (
            {"IDs": ["a"], "Search": "x", "To": ["carol@example.test"]},
            "give either IDs or Search, not both",
        ),
        (
            {"Search": "header:a@b", "To": ["carol@example.test"]},
            "invalid header name in 'header:a@b'",
        ),
    ],
)
def test_bad_requests_are_400_with_a_reason(relay_server: Server, body, error):
    ids = capture(relay_server, "Stay")
    reply = Api(relay_server).request("POST", RELEASE, body)
    assert (reply.status, reply.error) == (400, error)
    assert queued(relay_server, ids) == {ids[0]: []}


def test_more_deliveries_than_the_limit_are_refused_whole(relay_server: Server):
    api = Api(relay_server)
    # IDs: the limit is messages times recipients, judged before any lookup.
    ids = [f"id{number}" for number in range(MAX_RELEASE_DELIVERIES // 2 + 1)]
    reply = api.request(
        "POST", RELEASE, {"IDs": ids, "To": ["carol@example.test", "dan@example.test"]}
    )
    assert (reply.status, reply.error) == (
        400,
        f"a release queues at most {MAX_RELEASE_DELIVERIES} deliveries (messages times "
        f"recipients): {len(ids)} messages to 2 recipients would be {len(ids) * 2}",
    )
    # A search: its matches are counted, and with 100 recipients 101 messages are too many.
    captured = capture(relay_server, *(f"Bulk {number}" for number in range(101)))
    to = [f"r{number}@example.test" for number in range(100)]
    reply = api.request("POST", RELEASE, {"Search": "subject:bulk", "To": to})
    assert (reply.status, reply.error) == (
        400,
        f"a release queues at most {MAX_RELEASE_DELIVERIES} deliveries (messages times "
        "recipients): 101 messages to 100 recipients would be 10100",
    )
    assert set(map(len, queued(relay_server, captured).values())) == {0}
    # One message fewer is within the limit: all 10,000 deliveries are queued in one write.
    api.ok("DELETE", "/api/v1/messages", {"IDs": [captured[0]]})
    answer = api.ok("POST", RELEASE, {"Search": "subject:bulk", "To": to})
    assert len(answer["Messages"]) == 100
    assert set(map(len, queued(relay_server, captured[1:]).values())) == {100}
    api.ok("DELETE", "/api/v1/messages")  # which cancels what is still queued


def test_without_relay_the_bulk_release_is_refused(make_server):
    server = make_server()
    reply = Api(server).request("POST", RELEASE, {"To": ["carol@example.test"]})
    assert (reply.status, reply.error) == (
        400,
        "relay is not configured (start the server with --relay-config)",
    )
