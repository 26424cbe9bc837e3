"""Fairness per client address: the authentication-failure throttle and connection counts.

Pure logic with an injectable clock and no I/O, in the spirit of Postfix's
``anvil`` service behind ``smtpd``: SMTP, POP3 and HTTP basic auth share one
:class:`AuthThrottle` per server, and each listener caps its connections
with :class:`ConnectionLimits`.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

FREE_FAILURES = 2  # a typo or two costs nothing; delays start after these
MAX_DELAY_FACTOR = 8  # the longest delay, in multiples of the first one
MAX_TRACKED = 65536  # addresses remembered at once, whatever an attacker sends from


def client_key(host: str) -> str:
    """The address a per-client limit applies to.

    An IPv4 address as it is; an IPv6 address by its /64, which is what one
    site or one customer usually gets; an IPv4-mapped IPv6 address as IPv4.
    """
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def peer_host(peer: Any) -> str:
    """The host of a ``peername`` (a tuple for TCP; anything else for other transports)."""
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "")


@dataclass
class _Record:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


class AuthThrottle:
    """Failed logins per client address: growing delays, then a lockout.

    After :data:`FREE_FAILURES` failures, each further failure waits
    ``failure_delay`` seconds, doubling up to :data:`MAX_DELAY_FACTOR` times
    that, before its reply; the ``failure_limit``-th failure locks the address
    out for ``lockout`` seconds. Failures are forgotten after ``lockout``
    seconds without one, and a success forgets them at once. So one address
    gets at most ``failure_limit`` guesses per ``lockout``. Thread-safe: the
    event loop and the HTTP threads share one.

    ``failures``, ``lockouts`` and :attr:`locked_addresses` are counters for
    monitoring.
    """

    def __init__(
        self,
        *,
        failure_limit: int = 10,
        lockout: float = 600.0,
        failure_delay: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.failure_limit = failure_limit
        self.lockout = lockout
        self.failure_delay = failure_delay
        self.failures = 0  # failed logins seen, ever
        self.lockouts = 0  # lockouts started, ever
        self._clock = clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    @property
    def locked_addresses(self) -> int:
        """How many client addresses are locked out now."""
        now = self._clock()
        with self._lock:
            return sum(1 for record in self._records.values() if record.locked_until > now)

    def retry_after(self, host: str) -> float:
        """Seconds until ``host`` may try again; 0.0 when it is not locked out."""
        now = self._clock()
        with self._lock:
            record = self._records.get(client_key(host))
            return max(0.0, record.locked_until - now) if record is not None else 0.0

    def recent_failures(self, host: str) -> int:
        """Failed logins from ``host`` not yet forgotten (0 for a client in good standing)."""
        now = self._clock()
        with self._lock:
            record = self._records.get(client_key(host))
            if record is None or now - record.last_failure > self.lockout:
                return 0
            return record.failures

    def failed(self, host: str) -> float:
        """Count a failed login from ``host``; returns the seconds to wait before replying."""
        key = client_key(host)
        now = self._clock()
        with self._lock:
            self.failures += 1
            record = self._records.pop(key, None) or _Record()
            if now - record.last_failure > self.lockout:
                record.failures = 0
            record.failures += 1
            record.last_failure = now
            beyond = record.failures - FREE_FAILURES
            delay = 0.0
            if beyond > 0:
                delay = self.failure_delay * min(2 ** (beyond - 1), MAX_DELAY_FACTOR)
            if record.failures >= self.failure_limit:
                record.failures = 0
                record.locked_until = now + self.lockout
                self.lockouts += 1
                log.warning(
                    "locking out %s for %.0f s after %d failed logins",
                    key,
                    self.lockout,
                    self.failure_limit,
                )
            self._records[key] = record  # re-inserted: the dict stays oldest first
            self._forget_old(now)
            return delay

    def succeeded(self, host: str) -> None:
        """A good login from ``host``: its failures are forgotten."""
        with self._lock:
            self._records.pop(client_key(host), None)

    def _forget_old(self, now: float) -> None:
        if len(self._records) <= MAX_TRACKED:
            return
        for key, record in list(self._records.items()):
            if record.locked_until <= now and now - record.last_failure > self.lockout:
                del self._records[key]
        while len(self._records) > MAX_TRACKED:  # all recent: drop the oldest
            del self._records[next(iter(self._records))]


class Refusal(enum.Enum):
    """Why :meth:`ConnectionLimits.admit` turned a connection away."""

    LOCKED_OUT = "the address is locked out after failed logins"
    FULL = "every connection slot is taken"
    CLIENT_FULL = "the address has all the connections it may have"


class ConnectionLimits:
    """The connection caps of one listener: in total, per client address, and none at
    all for an address the :class:`AuthThrottle` has locked out. Event loop only."""

    def __init__(
        self,
        service: str,
        *,
        total: int,
        per_client: int | None = None,
        throttle: AuthThrottle | None = None,
    ):
        self.service = service
        self.total = total
        self.per_client = per_client or total
        self._throttle = throttle
        self._open: Counter[str] = Counter()
        self._count = 0

    def admit(self, host: str) -> Refusal | None:
        """Count a new connection from ``host``, or say why it is refused (and log it)."""
        key = client_key(host)
        if self._throttle is not None and self._throttle.retry_after(host):
            return Refusal.LOCKED_OUT
        if self._count >= self.total:
            log.warning("refusing a connection to %s: %d are open", self.service, self.total)
            return Refusal.FULL
        if self._open[key] >= self.per_client:
            log.warning(
                "refusing a connection to %s from %s: it has %d open",
                self.service,
                key,
                self.per_client,
            )
            return Refusal.CLIENT_FULL
        self._open[key] += 1
        self._count += 1
        return None

    def leave(self, host: str) -> None:
        """An admitted connection from ``host`` has ended."""
        key = client_key(host)
        self._count -= 1
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]
