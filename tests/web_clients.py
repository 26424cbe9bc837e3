"""Real HTTP and websocket clients for the web tests, with full control of the headers.

urllib and browsers decide Host and Origin themselves; these tests must send
exactly what a hostile page, a reverse proxy or a plain script would.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from simple_websocket import Client, ConnectionClosed

from mailtrap import Server

# A fixed key is fine for tests: it only proves the server speaks websocket.
HANDSHAKE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def origin_of(server: Server) -> str:
    """The Origin a page of this server's own inbox sends."""
    address = server.http_address
    return f"http://{address.host}:{address.port}"


def request(
    server: Server,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    json_body: Any = None,
) -> Reply:
    """One request to ``path`` (from the server's root, webroot not added)."""
    headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers.setdefault("Content-Type", "application/json")
    address = server.http_address
    connection = http.client.HTTPConnection(address.host, address.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        # A 101 has no body to read: the connection now speaks websocket.
        content = b"" if response.status == 101 else response.read()
        return Reply(response.status, response.headers, content)
    finally:
        connection.close()


class EventsClient(Client):
    """simple_websocket's client, minus a race: frames that arrive in the same read as
    the ``101`` wait inside wsproto until the next read, so a lone first frame (the
    server's ``stats``) could seem never to come. Look at them right after the handshake.
    """

    def handshake(self) -> None:
        super().handshake()
        self._handle_events()


def events_url(server: Server) -> str:
    address = server.http_address
    return f"ws://{address.host}:{address.port}{server.config.webroot}api/events"


@contextlib.contextmanager
def events(server: Server, headers: dict[str, str] | None = None) -> Iterator[Client]:
    """A websocket client on ``/api/events``; closed on exit."""
    client = EventsClient.connect(events_url(server), headers=headers)
    try:
        yield client
    finally:
        with contextlib.suppress(ConnectionClosed):
            client.close()


def next_frame(client: Client, timeout: float = 5.0) -> dict[str, Any]:
    text = client.receive(timeout=timeout)
    assert text is not None, f"no frame within {timeout} s"
    return json.loads(text)


def next_change(client: Client, timeout: float = 5.0) -> dict[str, Any]:
    """The next frame that is not ``stats``."""
    deadline = time.monotonic() + timeout
    while True:
        frame = next_frame(client, max(0.0, deadline - time.monotonic()))
        if frame["Type"] != "stats":
            return frame


def frames_until_quiet(client: Client, quiet: float = 0.6) -> list[tuple[float, dict[str, Any]]]:
    """(arrival time, frame) of every frame until none comes for ``quiet`` seconds."""
    frames = []
    while (text := client.receive(timeout=quiet)) is not None:
        frames.append((time.monotonic(), json.loads(text)))
    return frames


def wait_until(condition: Any, timeout: float = 2.0) -> bool:
    """Whether ``condition()`` became true within ``timeout`` (for effects on other threads)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
