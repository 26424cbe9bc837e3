"""A message's relay state with a version, and a wait for it to change, woken by the event hub.

The long-poll ``GET /api/v1/message/{ID}/relay?wait=S&changed=V`` and the
pytest plugin's in-process backend both wait with :func:`wait_for_change`:
it subscribes before it reads, so a change between a caller's look and its
wait still answers at once. The version is a digest of the state itself, so
a caller only has to hand back the one it saw. Nothing polls.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import TYPE_CHECKING, Any

from mailtrap.relay import queue

if TYPE_CHECKING:
    from mailtrap.store import Store

STOP_CHECK_INTERVAL = 1.0  # how soon a wait notices ``stopping``


def relay_state(store: Store, message_id: str) -> tuple[list[dict[str, Any]], str]:
    """The message's deliveries as its JSON shows them, and their version."""
    deliveries = queue.of_message(store.reader, message_id)
    digest = hashlib.sha256(json.dumps(deliveries, sort_keys=True).encode()).hexdigest()
    return deliveries, digest[:16]


def wait_for_change(
    store: Store,
    message_id: str,
    seen: str,
    timeout: float,
    stopping: threading.Event | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """The state once its version is no longer ``seen``, or as it is after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    subscription = store.hub.subscribe()
    try:
        while True:
            deliveries, version = relay_state(store, message_id)
            if version != seen:
                return deliveries, version
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (stopping is not None and stopping.is_set()):
                    return deliveries, version
                event = subscription.get(timeout=min(remaining, STOP_CHECK_INTERVAL))
                if subscription.overflowed:  # dropped for falling behind: listen afresh
                    subscription.close()
                    subscription = store.hub.subscribe()
                    break
                if event is not None and _concerns(event.type, event.data, message_id):
                    break
    finally:
        subscription.close()


def _concerns(type: str, data: Any, message_id: str) -> bool:
    if type == "relay" or type == "delete":
        return isinstance(data, dict) and data.get("ID") == message_id
    return type == "truncate"
