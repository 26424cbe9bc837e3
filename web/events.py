"""Live events on the websocket ``/api/events``, in Mailpit's frames.

Each change the store commits comes from the event hub and goes out at once as
``{"Type": "new"|"delete"|"update"|"truncate", "Data": ...}``. A ``stats``
frame (``{"Total", "Unread", "Version"}``) goes out on connect and after
changes, at most one per ``STATS_INTERVAL``, always reflecting the state after
the last change. The Origin was checked before the handshake
(:mod:`mailtrap.web.security`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, abort, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed
from wsproto.frame_protocol import CloseReason

from mailtrap.web.api import MAILPIT_API_VERSION

if TYPE_CHECKING:
    from simple_websocket import Server as WebSocket

    from mailtrap.events import Subscription
    from mailtrap.server import Server
    from mailtrap.store import Store

log = logging.getLogger(__name__)

TICK = 0.25  # longest wait before looking again at the client and at shutdown
STATS_INTERVAL = 0.25  # Mailpit's rate too: a burst of mail costs four counts a second
STATS_ATTEMPTS = 3  # counts read again while events keep arriving, then sent all the same
MAX_CLIENT_FRAMES = 16  # read (and ignore) per tick, so a chatty client cannot stall us
SERVER_OPTIONS = {
    "ping_interval": 25,  # finds dead peers and keeps proxies from closing idle sockets
    "max_message_size": 4096,  # clients have nothing to say
}


def mailbox_stats(store: Store) -> dict[str, Any]:
    """Mailpit's ``stats`` data: message and unread totals, and the version."""
    total, unread = store.counts()
    return {"Total": total, "Unread": unread, "Version": MAILPIT_API_VERSION}


def frame(type: str, data: Any) -> str:
    return json.dumps({"Type": type, "Data": data}, separators=(",", ":"))


class EventStream:
    """Feeds one websocket from one hub subscription until either side goes away.

    ``stats`` computes the data of a ``stats`` frame; ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        ws: WebSocket,
        subscription: Subscription,
        stats: Callable[[], dict[str, Any]],
        stopping: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._ws = ws
        self._subscription = subscription
        self._stats = stats
        self._stopping = stopping
        self._clock = clock
        self._stats_due: float | None = clock()  # a first frame at once, as Mailpit does
        self._stats_sent_at = float("-inf")

    def run(self) -> None:
        """Send events until the server stops; ConnectionClosed when the client leaves."""
        while not self._stopping.is_set():
            self._ignore_client_frames()
            event = self._subscription.get(timeout=self._wait())
            if event is not None:
                self._send(frame(event.type, event.data))
                self._schedule_stats()
            elif self._subscription.overflowed:
                # It missed events: closing makes the client reconnect and reload.
                self._ws.close(CloseReason.TRY_AGAIN_LATER, "too far behind, reconnect")
                return
            if self._stats_due is not None and self._clock() >= self._stats_due:
                self._send_stats()
                self._stats_sent_at = self._clock()
                self._stats_due = None
        self._ws.close(CloseReason.GOING_AWAY, "server stopping")

    def _send_stats(self) -> None:
        """A ``stats`` frame that counts no message whose ``new`` frame is still to come.

        A message is counted once its summary is written, and its ``new`` event
        is published just before that: events that arrived while the counts
        were read go out first, and the counts are read again, or a page would
        add those messages to a total that has them already.
        """
        for _ in range(STATS_ATTEMPTS):
            stats = self._stats()
            late = self._subscription.get(timeout=0)
            if late is None:
                break
            while late is not None:
                self._send(frame(late.type, late.data))
                late = self._subscription.get(timeout=0)
        self._send(frame("stats", stats))

    def _wait(self) -> float:
        if self._stats_due is None:
            return TICK
        return min(TICK, max(0.0, self._stats_due - self._clock()))

    def _schedule_stats(self) -> None:
        if self._stats_due is None:
            self._stats_due = max(self._clock(), self._stats_sent_at + STATS_INTERVAL)

    def _ignore_client_frames(self) -> None:
        # receive() is also how a closed connection shows: it raises ConnectionClosed.
        for _ in range(MAX_CLIENT_FRAMES):
            if self._ws.receive(timeout=0) is None:
                return

    def _send(self, text: str) -> None:
        try:
            self._ws.send(text)
        except OSError as error:  # the peer vanished between two frames
            raise ConnectionClosed(CloseReason.ABNORMAL_CLOSURE, str(error)) from error


def register(app: Flask) -> None:
    """Add the ``/api/events`` websocket route to ``app``."""
    server: Server = app.config["MAILTRAP_SERVER"]
    stopping: threading.Event = app.config["MAILTRAP_STOPPING"]
    app.config["SOCK_SERVER_OPTIONS"] = SERVER_OPTIONS
    sock = Sock(app)

    @app.before_request
    def refuse_broken_handshakes() -> None:
        # wsproto raises on a handshake without a valid key; say so instead of a 500.
        handshake = request.path.endswith("/api/events") and request.headers.get("Upgrade")
        if handshake and not _valid_key(request.headers.get("Sec-WebSocket-Key", "")):
            abort(400, "a websocket handshake needs a Sec-WebSocket-Key of 16 bytes")

    @sock.route("/api/events")
    def events(ws: WebSocket) -> None:
        store = server.store
        with server.stats.websocket_client(), store.hub.subscribe() as subscription:
            try:
                EventStream(ws, subscription, lambda: mailbox_stats(store), stopping).run()
            except ConnectionClosed:
                log.debug("websocket client went away")


def _valid_key(key: str) -> bool:
    """RFC 6455 4.1: the key is 16 random bytes, base64-encoded."""
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False
