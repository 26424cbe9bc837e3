"""A real DNS server on loopback (dnslib) whose zone a test writes, for relay and checks."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dnslib import QTYPE, RCODE, RR, TXT, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from mailtrap.config import Address

STALL_LIMIT = 30.0  # seconds a stalled answer waits at most


class ZoneResolver(BaseResolver):  # type: ignore[misc]
    """Answers from records a test adds; unknown names are NXDOMAIN, as a real zone has it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RR] = []
        self._failing: set[str] = set()
        self._stalling: set[str] = set()
        self.released = threading.Event()  # set when the server stops: stalled answers end
        self.queries: list[tuple[str, str]] = []  # (name, type) in the order they came

    def add(self, zone: str) -> None:
        """Add records in zone-file syntax: ``example.com. 60 IN MX 10 mx.example.com.``"""
        records = RR.fromZone(textwrap.dedent(zone).strip())
        with self._lock:
            self._records.extend(records)

    def add_txt(self, name: str, text: str, ttl: int = 60) -> None:
        """A TXT record of any length: split into strings of 255 bytes, as DNS needs.

        Zone-file syntax takes one quoted string of at most 255 bytes; a DKIM
        key of 2048 bits or an SPF record with many terms is longer.
        """
        data = text.encode()
        strings = [data[start : start + 255] for start in range(0, len(data), 255)] or [b""]
        record = RR(name, QTYPE.TXT, rdata=TXT(strings), ttl=ttl)
        with self._lock:
            self._records.append(record)

    def fail(self, name: str) -> None:
        """Answer SERVFAIL for every query about ``name`` (a broken authoritative server)."""
        with self._lock:
            self._failing.add(_canonical(name))

    def stall(self, name: str) -> None:
        """Answer nothing about ``name`` until the server stops (a lookup that times out)."""
        with self._lock:
            self._stalling.add(_canonical(name))

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        name = _canonical(str(request.q.qname))
        qtype = QTYPE[request.q.qtype]
        with self._lock:
            self.queries.append((name, qtype))
            stalling = name in self._stalling
        if stalling:  # each request has a thread of its own: only this one waits
            self.released.wait(STALL_LIMIT)
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        with self._lock:
            if name in self._failing:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            known = [rr for rr in self._records if _canonical(str(rr.rname)) == name]
        for record in known:
            if QTYPE[record.rtype] == qtype or (qtype == "ANY"):
                reply.add_answer(record)
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def _canonical(name: str) -> str:
    return name.rstrip(".").lower()


@contextmanager
def dns_server() -> Iterator[tuple[ZoneResolver, Address]]:
    """A UDP DNS server on an ephemeral loopback port, stopped when the block ends."""
    zone = ZoneResolver()
    quiet = DNSLogger("-request,-reply,-truncated,-error", prefix=False)
    server = DNSServer(zone, address="127.0.0.1", port=0, logger=quiet)
    server.start_thread()
    try:
        yield zone, Address("127.0.0.1", server.server.server_address[1])
    finally:
        zone.released.set()
        server.stop()
        server.server.server_close()
