"""What the relay tests share: a relay config file, a server with it, and event-driven waits."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailtrap import Server
from mailtrap.config import Address

WAIT = 20.0


Deliveries = list[dict[str, Any]]


def write_config(folder: Path, text: str, name: str = "relay.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


TEST_DOMAINS = '["example.test", "other.test", "pref.test", "implicit.test", "null.test", "gone.test", "broken.test", "slow.test", "private.test"]'  # noqa: E501


def mx_config(port: int, *extra: str, allowed: str = TEST_DOMAINS, lifetime: str = "30s") -> str:
    """A direct-delivery config for the test zones, on ``port``, with quick retries."""
    lines = [
        'mode = "mx"',
        f"allowed_recipients = {allowed}",
        'helo = "relay.mailtrap.test"',
        'timeout = "5s"',
        'dns_timeout = "1s"',
        *extra,
        "[mx]",
        f"port = {port}",
        "allow_private_targets = true",
        "[retry]",
        'first_delay = "0.2s"',
        'max_delay = "0.4s"',
        f'lifetime = "{lifetime}"',
    ]
    return "\n".join(lines) + "\n"


def start_relay(
    make_server: Callable[..., Server], folder: Path, dns: Address, config: str, **settings: Any
) -> Server:
    return make_server(relay_config=write_config(folder, config), dns=dns, **settings)


def wait_relay(
    server: Server,
    message_id: str,
    done: Callable[[Deliveries], bool],
    timeout: float = WAIT,
) -> Deliveries:
    """Wait, woken by the relay's events, until ``done(deliveries)`` holds; returns them."""
    assert server.relay is not None
    deadline = time.monotonic() + timeout
    subscription = server.store.hub.subscribe()
    try:
        while True:
            deliveries = server.relay.deliveries(message_id)
            if done(deliveries):
                return deliveries
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"relay of {message_id} still {deliveries}")
            subscription.get(timeout=remaining)
    finally:
        subscription.close()


def states(deliveries: Deliveries) -> dict[str, str]:
    return {d["Recipient"]: d["State"] for d in deliveries}


def settled(deliveries: Deliveries) -> bool:
    """Every delivery is sent or failed."""
    return bool(deliveries) and all(d["State"] in ("sent", "failed") for d in deliveries)
