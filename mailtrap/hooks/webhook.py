"""``--webhook-url``: a POST of each new message's summary, as Mailpit sends it.

A background thread takes the "new" events of the hub, never the SMTP
transaction: a slow or dead receiver cannot delay a 250. Requests are spaced
by ``--webhook-limit`` per second, time out after ``timeout`` and are tried
:data:`ATTEMPTS` times with growing pauses; past that the event is dropped
with a log line. A receiver so slow that the hub's queue overflows loses the
events it missed, and a warning says so.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

from mailtrap import __version__
from mailtrap.events import EventHub, Subscription

log = logging.getLogger(__name__)

ATTEMPTS = 3
RETRY_PAUSE = 1.0  # seconds before the second attempt; doubles after that
STOP_CHECK = 0.5  # seconds between looks at the stop flag while idle


class Webhook:
    """Posts new message summaries to ``url`` from its own thread; :meth:`stop` ends it."""

    def __init__(self, url: str, hub: EventHub, *, limit: float = 5.0, timeout: float = 5.0):
        self.url = url
        self.limit = limit
        self.timeout = timeout
        self.outcomes: Counter[str] = Counter()  # "delivered", "failed", "dropped"
        self._hub = hub
        self._stop = threading.Event()
        self._next_allowed = 0.0
        self._subscription: Subscription | None = hub.subscribe()
        self._thread = threading.Thread(target=self._run, name="mailtrap-webhook", daemon=True)
        # Direct: a proxy from the environment is no business of a test server's hook.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def start(self) -> Webhook:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    def _run(self) -> None:
        while not self._stop.is_set():
            subscription = self._subscription
            assert subscription is not None
            event = subscription.get(timeout=STOP_CHECK)
            if event is None:
                if subscription.overflowed:
                    log.warning("webhook: the receiver fell behind; missed messages are not sent")
                    self.outcomes["dropped"] += 1
                    self._subscription = self._hub.subscribe()
                continue
            if event.type == "new":
                self._deliver(event.data)

    def _deliver(self, summary: dict[str, Any]) -> None:
        body = json.dumps(summary).encode()
        pause = RETRY_PAUSE
        for attempt in range(1, ATTEMPTS + 1):
            self._wait_for_rate_limit()
            if self._stop.is_set():
                return
            error = self._post(body)
            if error is None:
                self.outcomes["delivered"] += 1
                return
            log.warning("webhook: POST %s failed (attempt %d): %s", self.url, attempt, error)
            if attempt < ATTEMPTS and self._stop.wait(pause):
                return
            pause *= 2
        self.outcomes["failed"] += 1
        log.error("webhook: gave up on message %s after %d attempts", summary.get("ID"), ATTEMPTS)

    def _wait_for_rate_limit(self) -> None:
        if self.limit > 0:
            delay = self._next_allowed - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            self._next_allowed = max(time.monotonic(), self._next_allowed) + 1 / self.limit

    def _post(self, body: bytes) -> str | None:
        """None when the receiver answered 2xx; else what went wrong."""
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": f"Mailtrap/{__version__}"},
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(64 * 1024)
        except urllib.error.HTTPError as error:
            return f"HTTP {error.code}"
        except (OSError, ValueError) as error:
            return str(error)
        return None
