"""An in-process publish/subscribe hub: new, deleted and read messages fan out
to websocket clients, long-polling API calls and pytest waits. Nobody polls."""

from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass
from typing import Any

MAX_PENDING = 10_000  # events a slow subscriber may fall behind before it is dropped


@dataclass(frozen=True)
class Event:
    """One change: ``type`` is Mailpit's frame type ("new", "delete", "update", "truncate")."""

    type: str
    data: Any


class Subscription:
    """A subscriber's queue of events; use as a context manager to unsubscribe."""

    def __init__(self, hub: EventHub):
        self._hub = hub
        self._events: queue.Queue[Event | None] = queue.Queue(MAX_PENDING)
        self.overflowed = False

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when ``timeout`` passes or the subscriber was dropped."""
        if self.overflowed:  # it missed events: the caller must start over
            return None
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def _deliver(self, event: Event) -> bool:
        try:
            self._events.put_nowait(event)
        except queue.Full:
            self.overflowed = True
            return False
        return True

    def close(self) -> None:
        self._hub._unsubscribe(self)
        with contextlib.suppress(queue.Full):
            self._events.put_nowait(None)  # wake a waiting get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EventHub:
    """Thread-safe fan-out of :class:`Event` to every :class:`Subscription`."""

    def __init__(self) -> None:
        self._changed = threading.Condition()  # guards _subscribers; notified on unsubscribe
        self._subscribers: set[Subscription] = set()

    def subscribe(self) -> Subscription:
        subscription = Subscription(self)
        with self._changed:
            self._subscribers.add(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._changed:
            self._subscribers.discard(subscription)
            self._changed.notify_all()

    def wait_until_unsubscribed(self, timeout: float) -> bool:
        """Wait until every subscriber has gone (as on shutdown); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._subscribers, timeout)

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    def publish(self, type: str, data: Any = None) -> None:
        event = Event(type, data)
        with self._changed:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            if not subscription._deliver(event):
                # Too far behind to catch up; it learns so from get() returning None.
                subscription.close()
