"""Live events on the websocket /api/events: Mailpit's frames, timing, stats, lifecycle."""

from __future__ import annotations

import itertools
import re
import smtplib
import threading
import time
from collections.abc import Callable
from concurrent.futures import wait
from pathlib import Path
from typing import Any

import pytest
from simple_websocket import ConnectionClosed
from web_clients import (
    HANDSHAKE,
    events,
    frames_until_quiet,
    next_change,
    next_frame,
    origin_of,
    request,
    wait_until,
)
from wsproto.frame_protocol import CloseReason

from mailtrap import Server
from mailtrap.events import MAX_PENDING, EventHub
from mailtrap.message import summary
from mailtrap.store import IncomingMessage
from mailtrap.web.api import MAILPIT_API_VERSION
from mailtrap.web.events import STATS_INTERVAL, EventStream

SUMMARY_KEYS = [
    "ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo", "Subject",
    "Created", "Username", "Tags", "Size", "Attachments", "Snippet",
]  # fmt: skip


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    """A shared server, emptied, with no websocket client left from an earlier test."""
    assert wait_until(lambda: not emptied_module_server.store.hub.has_subscribers)
    return emptied_module_server


def incoming(subject: str = "Hello") -> IncomingMessage:
    raw = f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {subject}\r\n\r\nHi\r\n"
    return IncomingMessage(raw=raw.encode(), mail_from="a@example.com", rcpt_tos=["b@example.com"])


def add(server: Server, count: int = 1) -> list[str]:
    futures = [server.store.add(incoming(f"Message {n}")) for n in range(count)]
    wait(futures, timeout=30)
    server.store.settle()  # their `new` events are out too: none arrives late
    return [future.result() for future in futures]


def test_first_frame_is_stats(server: Server) -> None:
    add(server, 2)
    server.store.set_read([server.store.ids()[0]]).result(10)
    with events(server) as client:
        assert next_frame(client) == {
            "Type": "stats",
            "Data": {"Total": 2, "Unread": 1, "Version": MAILPIT_API_VERSION},
        }


def test_new_arrives_within_a_second_of_the_250(server: Server) -> None:
    with events(server) as client:
        next_frame(client)  # the stats of the empty inbox
        smtp = server.smtp_address
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as sender:
            sender.sendmail(
                "alice@example.com",
                ["bob@example.com"],
                b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\n"
                b"Subject: Live\r\nMessage-ID: <live@example.com>\r\n\r\nHello there\r\n",
            )
            acknowledged = time.monotonic()  # sendmail returns on the 250
        frame = next_frame(client, timeout=5)
        latency = time.monotonic() - acknowledged
    assert latency < 1.0
    assert frame["Type"] == "new"
    (message_id,) = server.store.ids()
    assert frame["Data"] == summary(server.store.get(message_id))
    assert list(frame["Data"]) == SUMMARY_KEYS
    assert frame["Data"]["From"] == {"Name": "Alice", "Address": "alice@example.com"}
    assert frame["Data"]["To"] == [{"Name": "", "Address": "bob@example.com"}]
    assert frame["Data"]["Subject"] == "Live"
    assert frame["Data"]["MessageID"] == "live@example.com"
    assert frame["Data"]["Read"] is False


def test_update_delete_and_truncate_follow_store_writes(server: Server) -> None:
    first, second, third = add(server, 3)
    store = server.store
    with events(server) as client:
        next_frame(client)
        store.set_read([first]).result(10)
        assert next_change(client) == {"Type": "update", "Data": {"ID": first, "Read": True}}
        store.set_tags([second], ["urgent", "billing"]).result(10)
        assert next_change(client) == {
            "Type": "update",
            "Data": {"ID": second, "Tags": ["billing", "urgent"]},
        }
        store.delete([third]).result(10)
        assert next_change(client) == {"Type": "delete", "Data": {"ID": third}}
        store.delete_all().result(10)
        assert next_change(client) == {"Type": "truncate", "Data": None}
        last = frames_until_quiet(client)[-1][1]
    assert last == {
        "Type": "stats",
        "Data": {"Total": 0, "Unread": 0, "Version": MAILPIT_API_VERSION},
    }


def test_stats_are_coalesced_and_the_last_one_is_current(server: Server) -> None:
    with events(server) as client:
        next_frame(client)
        ids = add(server, 40)
        frames = frames_until_quiet(client)
    new = [frame["Data"]["ID"] for _, frame in frames if frame["Type"] == "new"]
    stats = [(at, frame["Data"]) for at, frame in frames if frame["Type"] == "stats"]
    assert new == ids
    assert frames[-1][1]["Type"] == "stats"
    assert stats[-1][1] == {"Total": 40, "Unread": 40, "Version": MAILPIT_API_VERSION}
    # One per interval at most: never one per message.
    span = frames[-1][0] - frames[0][0]
    assert len(stats) <= span / STATS_INTERVAL + 2
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(stats)]
    assert all(gap > STATS_INTERVAL * 0.6 for gap in gaps), gaps


def test_a_lone_change_gets_its_stats_promptly(server: Server) -> None:
    with events(server) as client:
        next_frame(client)
        time.sleep(STATS_INTERVAL)  # the connect-time stats frame is long enough ago
        add(server)
        assert next_frame(client)["Type"] == "new"
        started = time.monotonic()
        assert next_frame(client)["Data"]["Total"] == 1
        assert time.monotonic() - started < STATS_INTERVAL


def test_every_client_gets_every_event(server: Server) -> None:
    with events(server) as one, events(server) as two:
        next_frame(one)
        next_frame(two)
        (message_id,) = add(server)
        assert next_change(one)["Data"]["ID"] == message_id
        assert next_change(two)["Data"]["ID"] == message_id


def test_a_departed_client_is_dropped(server: Server) -> None:
    with events(server) as client:
        next_frame(client)
        assert server.store.hub.has_subscribers
    assert wait_until(lambda: not server.store.hub.has_subscribers, timeout=2)


def test_stopping_the_server_closes_the_socket_promptly(
    make_server: Callable[..., Server],
) -> None:
    server = make_server()
    with events(server) as client:
        next_frame(client)
        started = time.monotonic()
        server.stop()
        with pytest.raises(ConnectionClosed) as closed:
            client.receive(timeout=2)
        assert time.monotonic() - started < 2
    assert closed.value.reason == CloseReason.GOING_AWAY
    assert not server.store.hub.has_subscribers


def test_plain_get_is_not_a_websocket(server: Server) -> None:
    reply = request(server, "GET", "/api/events")
    assert reply.status == 400
    assert "Error" in reply.json()


def test_the_readme_python_example_prints_new_mail(server: Server) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    match = re.search(r"## Live events.*?```python\n(.*?)```", readme, re.DOTALL)
    assert match, "no Python example in the README's Live events section"
    example = match[1].replace("127.0.0.1:8025", f"127.0.0.1:{server.http_address.port}")
    assert example != match[1]
    printed: list[tuple[Any, ...]] = []
    namespace = {"print": lambda *args: printed.append(args)}
    runner = threading.Thread(target=exec, args=(example, namespace), daemon=True)
    runner.start()
    assert wait_until(lambda: server.store.hub.has_subscribers)
    add(server)
    runner.join(5)
    assert printed == [("new mail:", "Message 0")]


# -- the Origin is checked before the handshake -------------------------------


def upgrade(server: Server, **headers: str) -> Any:
    return request(server, "GET", "/api/events", headers={**HANDSHAKE, **headers})


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # same host, another port: another origin
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_cross_site_websocket_is_refused_before_the_upgrade(
    server: Server, headers: dict[str, str]
) -> None:
    reply = upgrade(server, **headers)
    assert reply.status == 403
    assert "Upgrade" not in reply.headers
    assert "refused" in reply.json()["Error"]
    assert not server.store.hub.has_subscribers


def test_same_origin_websocket_is_accepted(server: Server) -> None:
    reply = upgrade(server, Origin=origin_of(server), **{"Sec-Fetch-Site": "same-origin"})
    assert reply.status == 101
    assert reply.headers["Upgrade"].lower() == "websocket"


def test_an_origin_named_in_api_cors_may_listen(make_server: Callable[..., Server]) -> None:
    server = make_server(api_cors=("http://app.example:3000",))
    assert upgrade(server, Origin="http://app.example:3000").status == 101
    assert upgrade(server, Origin="http://other.example:3000").status == 403


# -- the stream itself, without sockets ------------------------------------------


class RecordingSocket:
    """Stands in for the websocket: records what is sent and how it is closed."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None

    def receive(self, timeout: float | None = None) -> None:
        return None

    def send(self, text: str) -> None:
        self.sent.append(text)

    def close(self, reason: int, message: str) -> None:
        self.closed = (reason, message)


def test_a_subscriber_that_fell_too_far_behind_is_told_to_reconnect() -> None:
    hub = EventHub()
    socket = RecordingSocket()
    with hub.subscribe() as subscription:
        for number in range(MAX_PENDING + 1):
            hub.publish("delete", {"ID": str(number)})
        stream = EventStream(socket, subscription, dict, threading.Event())  # type: ignore[arg-type]
        stream.run()
    assert socket.closed is not None
    assert socket.closed[0] == CloseReason.TRY_AGAIN_LATER
    assert not socket.sent
