"""Relay state as a test sees it: was a message relayed, to whom, and what did the server say.

``mail.relay`` is the list of :class:`Delivery` now; ``mail.wait_for_relay()``
waits until the deliveries asked for have an outcome. The state comes from a
:class:`RelaySource` (the backend: the in-process store, or an external
server's ``GET /api/v1/message/{ID}/relay``); each wait is woken by the
server's relay events (long-poll over HTTP), never by polling.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

SENT, FAILED, RETRYING, QUEUED, SENDING = "sent", "failed", "retrying", "queued", "sending"
FINAL_STATES = (SENT, FAILED)
STATES = (QUEUED, SENDING, SENT, RETRYING, FAILED)
SETTLED = "settled"  # what wait_for_relay waits for by default: sent or failed


class RelaySource(Protocol):
    """Where a message's relay state comes from (a backend)."""

    def relay_state(self, message_id: str) -> tuple[list[dict[str, Any]], str]:
        """The deliveries (the message JSON's ``Relay``) and a version of them."""
        ...

    def wait_relay(
        self, message_id: str, version: str, timeout: float
    ) -> tuple[list[dict[str, Any]], str]:
        """The state once its version is not ``version``, or after ``timeout`` seconds."""
        ...


@dataclass(frozen=True)
class Delivery:
    """One relay delivery of a message to one recipient, as the server last recorded it.

    ``state`` is ``queued``, ``sending``, ``sent``, ``retrying`` or ``failed``;
    ``reply`` is the remote server's answer (for a failure before any answer,
    what went wrong); ``remote_host`` is ``"name [address]"`` of the server that
    answered; ``reason`` is ``release``, ``auto`` (auto-relay) or ``forward``.
    """

    recipient: str
    state: str
    reason: str
    attempts: int
    remote_host: str
    reply: str
    next_attempt: datetime.datetime | None
    updated: datetime.datetime | None

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Delivery:
        return cls(
            recipient=str(item.get("Recipient", "")),
            state=str(item.get("State", "")),
            reason=str(item.get("Reason", "")),
            attempts=int(item.get("Attempts") or 0),
            remote_host=str(item.get("RemoteHost", "")),
            reply=str(item.get("Reply", "")),
            next_attempt=_moment(item.get("NextAttempt")),
            updated=_moment(item.get("Updated")),
        )

    @property
    def sent(self) -> bool:
        """The remote server accepted the message for this recipient."""
        return self.state == SENT

    @property
    def failed(self) -> bool:
        """Given up for good: a 5xx, a permanent DNS error, an expired lifetime, or in doubt."""
        return self.state == FAILED

    @property
    def settled(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def code(self) -> int | None:
        """The SMTP code the reply starts with (250, 451, 550...), or None."""
        head = self.reply[:3]
        return int(head) if head.isdigit() and self.reply[3:4] in ("", " ", "-") else None

    def describe(self) -> str:
        text = f"{self.recipient}: {self.state}"
        if self.attempts:
            text += f" after {self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        if self.remote_host:
            text += f" at {self.remote_host}"
        return text + (f" ({self.reply})" if self.reply else "")


def deliveries(items: Sequence[dict[str, Any]]) -> list[Delivery]:
    return [Delivery.from_json(item) for item in items]


def wait_for_relay(
    source: RelaySource,
    message_id: str,
    to: str | None,
    state: str,
    timeout: float,
) -> list[Delivery]:
    """The chosen deliveries once each is in ``state`` (``settled``: sent or failed).

    Raises :class:`RelayWaitError`, with the state as it stands, as soon as one
    settles otherwise, or when time runs out.
    """
    if state != SETTLED and state not in STATES:
        raise ValueError(f"state must be one of {', '.join((SETTLED, *STATES))}, not {state!r}")
    deadline = time.monotonic() + timeout
    items, version = source.relay_state(message_id)
    while True:
        chosen = _chosen(deliveries(items), to)
        if chosen and all(_reached(d, state) for d in chosen):
            return chosen
        stuck = [d for d in chosen if d.settled and not _reached(d, state)]
        remaining = deadline - time.monotonic()
        if stuck or remaining <= 0:
            raise RelayWaitError(_explain(message_id, to, state, timeout, chosen, stuck, items))
        items, version = source.wait_relay(message_id, version, remaining)


class RelayWaitError(Exception):
    """The relay of a message did not reach the state waited for (the message says how)."""


def _chosen(found: list[Delivery], to: str | None) -> list[Delivery]:
    if to is None:
        return found
    wanted = to.strip().lower()
    return [d for d in found if d.recipient.lower() == wanted]


def _reached(delivery: Delivery, state: str) -> bool:
    return delivery.settled if state == SETTLED else delivery.state == state


def _explain(
    message_id: str,
    to: str | None,
    state: str,
    timeout: float,
    chosen: list[Delivery],
    stuck: list[Delivery],
    items: Sequence[dict[str, Any]],
) -> str:
    whom = f"to {to}" if to else "to its recipients"
    wanted = "sent or failed" if state == SETTLED else state
    if stuck:
        headline = f"The relay of message {message_id} {whom} ended {stuck[0].state}, not {wanted}"
    else:
        headline = f"Timed out after {timeout:g} s waiting for the relay of message {message_id} "
        headline += f"{whom} to be {wanted}"
    lines = [headline + "."]
    if not chosen:
        lines.append(f"It was never relayed {whom}.")
    everything = deliveries(items)
    if everything:
        lines.append("Its deliveries:")
        lines += [f"  {delivery.describe()}" for delivery in everything]
    else:
        lines.append("It has no relay deliveries at all (released? relay configured?).")
    return "\n".join(lines)


def _moment(text: Any) -> datetime.datetime | None:
    if not text or not isinstance(text, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)
