"""What a running server has done since it started: the counters behind ``/metrics``
and ``/api/v1/info``, and the log line of every accepted and rejected message."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

log = logging.getLogger("mailtrap.messages")

MAX_LOGGED_RECIPIENTS = 10  # a log line names this many, then says how many more


def printable(text: str) -> str:
    """``text`` with control characters escaped, so a log line stays one line."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in text)


def _recipients(rcpt_tos: Sequence[str]) -> str:
    shown = ",".join(printable(rcpt) for rcpt in rcpt_tos[:MAX_LOGGED_RECIPIENTS])
    more = len(rcpt_tos) - MAX_LOGGED_RECIPIENTS
    return f"{shown} (+{more} more)" if more > 0 else shown


class ServerStats:
    """Counters of one server, safe to update from the event loop and HTTP threads."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.smtp_accepted = 0
        self.smtp_accepted_bytes = 0
        self.smtp_rejected: Counter[str] = Counter()  # by reason
        self.pop3_sessions = 0
        self.websocket_clients = 0  # connected now

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started

    @property
    def smtp_rejected_total(self) -> int:
        with self._lock:
            return sum(self.smtp_rejected.values())

    def count_accepted(self, size: int) -> None:
        """Count a message that gets its 250 (logged apart, by :meth:`log_accepted`)."""
        with self._lock:
            self.smtp_accepted += 1
            self.smtp_accepted_bytes += size

    def log_accepted(
        self, message_id: str, mail_from: str, rcpt_tos: Sequence[str], size: int
    ) -> None:
        log.info(
            "accepted %s from=<%s> to=%s size=%d",
            message_id,
            printable(mail_from),
            _recipients(rcpt_tos),
            size,
            extra={
                "event": "accepted",
                "id": message_id,
                "from": mail_from,
                "to": list(rcpt_tos),
                "size": size,
            },
        )

    def rejected(
        self, reason: str, mail_from: str | None, rcpt_tos: Sequence[str], size: int | None = None
    ) -> None:
        """Count and log a message (or its envelope) refused, with a short reason."""
        with self._lock:
            self.smtp_rejected[reason] += 1
        log.info(
            "rejected from=<%s> to=%s size=%s reason=%s",
            printable(mail_from or ""),
            _recipients(rcpt_tos),
            "-" if size is None else size,
            reason,
            extra={
                "event": "rejected",
                "from": mail_from or "",
                "to": list(rcpt_tos),
                "size": size,
                "reason": reason,
            },
        )

    def pop3_session_started(self) -> None:
        with self._lock:
            self.pop3_sessions += 1

    @contextmanager
    def websocket_client(self) -> Iterator[None]:
        """Counts a websocket client for as long as the block runs."""
        with self._lock:
            self.websocket_clients += 1
        try:
            yield
        finally:
            with self._lock:
                self.websocket_clients -= 1
