"""The delivery plan, without I/O: what to send, in which transactions, and what replies mean.

Everything here takes values and returns values: grouping queued deliveries
into SMTP transactions, the bytes to send (line endings normalised, header
edits, a ``Received:`` line, lone dots stuffed), how an SMTP reply decides a
recipient's fate, and when to try again. Each costs time linear in the message.
"""

from __future__ import annotations

import email.utils
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailtrap.relay.config import Retry

MAX_RECIPIENTS_PER_TRANSACTION = 100  # RFC 5321 4.5.3.1.8: servers must take at least 100

SENT = "sent"
RETRY = "retry"
FAIL = "fail"
# The message went out but its reply never came: it may have arrived, so it is
# never sent again (a recipient must not get it twice).
IN_DOUBT = "doubt"


@dataclass(frozen=True)
class Delivery:
    """One recipient of one message on the queue."""

    id: int
    message_seq: int
    message_id: str
    recipient: str
    domain: str
    mail_from: str
    attempts: int
    created: float


@dataclass(frozen=True)
class Transaction:
    """Deliveries that share one SMTP transaction: one message, one sender, one domain."""

    message_seq: int
    message_id: str
    mail_from: str
    domain: str | None  # None through a smarthost: it takes every domain at once
    deliveries: tuple[Delivery, ...]


@dataclass(frozen=True)
class Outcome:
    state: str  # SENT, RETRY, FAIL or IN_DOUBT
    reply: str  # the remote reply, or what went wrong
    host: str = ""


def transactions(
    deliveries: Iterable[Delivery],
    *,
    by_domain: bool = True,
    max_recipients: int = MAX_RECIPIENTS_PER_TRANSACTION,
) -> list[Transaction]:
    """Group deliveries into transactions, in the order their first delivery came."""
    groups: dict[tuple[int, str, str | None], list[Delivery]] = {}
    for delivery in deliveries:
        key = (delivery.message_seq, delivery.mail_from, delivery.domain if by_domain else None)
        groups.setdefault(key, []).append(delivery)
    planned: list[Transaction] = []
    for (seq, mail_from, domain), members in groups.items():
        for start in range(0, len(members), max_recipients):
            chunk = tuple(members[start : start + max_recipients])
            planned.append(Transaction(seq, chunk[0].message_id, mail_from, domain, chunk))
    return planned


# -- the bytes -------------------------------------------------------------------

_LINE_END = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
_HEADER_END = re.compile(rb"\r\n\r\n")
_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
DROPPED_FIELDS = {b"bcc", b"return-path"}  # Bcc must not travel; Return-Path is the receiver's


def normalize_line_endings(raw: bytes) -> bytes:
    """Every CR, LF and CRLF becomes CRLF, and the message ends with CRLF."""
    normalized = _LINE_END.sub(b"\r\n", raw)
    return normalized if normalized.endswith(b"\r\n") else normalized + b"\r\n"


def stuff_dots(data: bytes) -> bytes:
    """RFC 5321 4.5.2: a line starting with "." gets another, so none can end DATA early.

    ``data`` must have CRLF line endings (:func:`normalize_line_endings`), else a
    bare LF followed by "." could still look like the end to a lenient server.
    """
    return _LEADING_DOT.sub(b"..", data)


def relayed_message(
    raw: bytes,
    *,
    received: bytes,
    new_message_id: bytes | None = None,
) -> bytes:
    """The bytes to send for a captured message, before dot-stuffing.

    Line endings become CRLF; Bcc and Return-Path fields are dropped; the
    Message-ID is replaced by ``new_message_id`` unless that is None; a
    ``Received:`` field goes first. The rest is the captured bytes unchanged.
    """
    message = normalize_line_endings(raw)
    end = _HEADER_END.search(message)
    split = end.start() + 2 if end else len(message)
    if message.startswith(b"\r\n"):  # no header at all
        split = 0
    header, body = message[:split], message[split:]
    dropped = set(DROPPED_FIELDS)
    if new_message_id is not None:
        dropped.add(b"message-id")
    kept = _without_fields(header, dropped)
    if new_message_id is not None:
        kept = b"Message-ID: " + new_message_id + b"\r\n" + kept
    return received + kept + body


def _without_fields(header: bytes, names: set[bytes]) -> bytes:
    """The header block without the fields named (lower case), continuation lines and all."""
    lines = header.split(b"\r\n")
    kept: list[bytes] = []
    dropping = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):  # a continuation belongs to the field before it
            if not dropping:
                kept.append(line)
            continue
        match = _FIELD_NAME.match(line)
        dropping = bool(match) and match[1].lower() in names  # type: ignore[index]
        if not dropping:
            kept.append(line)
    return b"\r\n".join(kept)


def received_field(helo: str, queue_id: str, now: float | None = None) -> bytes:
    """Our ``Received:`` trace field (RFC 5321 4.4); no recipient, so none leaks to another."""
    date = email.utils.formatdate(now if now is not None else time.time())
    return f"Received: by {helo} (Mailtrap relay) id {queue_id};\r\n\t{date}\r\n".encode()


LOOP_CHECK_BYTES = 64 * 1024  # how much of a message's start is searched for our trace field


def relayed_by_us(start: bytes, helo: str) -> bool:
    """Whether the header in ``start`` (a message's first bytes) has our own ``Received:`` field.

    Such a message is one Mailtrap relayed that came back to it (a smarthost or
    MX that is Mailtrap's own SMTP port, or two instances forwarding to each
    other): relaying it again by rule would loop for ever.
    """
    header = _LINE_END.sub(b"\r\n", start).split(b"\r\n\r\n", 1)[0]
    return f"\r\nReceived: by {helo} (Mailtrap relay) id ".encode() in b"\r\n" + header


def new_message_id(helo: str) -> bytes:
    return f"<{secrets.token_hex(12)}@{helo}>".encode()


# -- replies ----------------------------------------------------------------------


def reply_state(code: int) -> str:
    """2xx: accepted; 4xx (and anything odd): try again later; 5xx: failed for good."""
    if 200 <= code < 300:
        return SENT
    if 500 <= code < 600:
        return FAIL
    return RETRY


def describe_reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}"[:500]


def after_rcpt(replies: Sequence[tuple[Delivery, int, str]]) -> dict[int, Outcome]:
    """What the RCPT replies settle already: refused recipients (4xx retry, 5xx fail)."""
    settled: dict[int, Outcome] = {}
    for delivery, code, text in replies:
        state = reply_state(code)
        if state != SENT:
            settled[delivery.id] = Outcome(state, text)
    return settled


def next_attempt(attempts: int, created: float, now: float, retry: Retry) -> float | None:
    """When to try a deferred delivery again (after ``attempts`` tries), or None: give up.

    The delay doubles from ``first_delay`` up to ``max_delay``; nothing is tried
    after ``lifetime`` has passed since the delivery was queued.
    """
    delay = min(retry.first_delay * 2 ** min(max(attempts - 1, 0), 40), retry.max_delay)
    when = now + delay
    if when > created + retry.lifetime:
        return None
    return when
