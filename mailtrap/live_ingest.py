"""``mailtrap ingest`` into the database of a running server: seen live, pruned by its rules.

The server listens on a Unix datagram socket in Linux's abstract namespace,
named by a hash of its database's real path: no file to leave behind, gone
when the process is, and shared with ``docker exec`` in the same container.
An import that has committed its messages sends one datagram with its store's
receipt prefix; the server then applies its retention (``--max-messages``,
``--max-age``) and announces the imported messages that are still there, as
if they had come over SMTP. Nothing waits on the other side: a server that is
not running simply misses a datagram nobody sent it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import socket
import sys
from pathlib import Path

from mailtrap.errors import MessageNotFound
from mailtrap.message import summary
from mailtrap.store import Store

log = logging.getLogger(__name__)

MAX_ANNOUNCED = 1000  # new events per import; the inbox's counts cover the rest
MAX_DATAGRAM = 256
RETENTION_TIMEOUT = 60.0
_RECEIPT_PREFIX = re.compile(r"[0-9a-f]{12}-")  # what Store makes


def socket_name(db: Path) -> bytes:
    """The abstract socket address of the server that owns ``db``."""
    digest = hashlib.sha256(str(db.resolve()).encode()).hexdigest()[:32]
    return b"\0mailtrap-ingest-" + digest.encode()


def notify(db: Path, receipt_prefix: str) -> bool:
    """Tell a server running on ``db`` that messages were added; False if none listens."""
    if not sys.platform.startswith("linux"):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(receipt_prefix.encode(), socket_name(db))
        except OSError:  # ECONNREFUSED: nobody bound it
            return False
    return True


class IngestListener:
    """The server's side: on a datagram, retention, then "new" events for what came in."""

    def __init__(self, store: Store):
        self.store = store
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Listen (from ``loop``'s thread); only logs when another server has the name."""
        if not sys.platform.startswith("linux"):
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(socket_name(self.store.path))
        except OSError as error:
            sock.close()
            log.warning("imports into %s will not show live: %s", self.store.path, error)
            return
        sock.setblocking(False)
        self._sock, self._loop = sock, loop
        loop.add_reader(sock.fileno(), self._readable)

    def close(self) -> None:
        """Stop listening (from the loop's thread)."""
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _readable(self) -> None:
        assert self._sock is not None and self._loop is not None
        try:
            prefix = self._sock.recv(MAX_DATAGRAM).decode("ascii", "replace")
        except OSError:
            return
        # The store's reads and its writer's answer must not hold up the event loop.
        self._loop.run_in_executor(None, self.adopt, prefix)

    def adopt(self, receipt_prefix: str) -> None:
        """Prune by this server's rules, then announce the import's surviving messages."""
        store = self.store
        try:
            store.apply_retention().result(timeout=RETENTION_TIMEOUT)
            if not store.hub.has_subscribers or not _RECEIPT_PREFIX.fullmatch(receipt_prefix):
                return
            sql = (
                "SELECT id FROM messages WHERE substr(receipt, 1, ?) = ? ORDER BY seq DESC LIMIT ?"
            )
            params = [len(receipt_prefix), receipt_prefix, MAX_ANNOUNCED]
            ids = [row[0] for row in store.reader.execute(sql, params)]
            for message_id in reversed(ids):
                try:
                    store.hub.publish("new", summary(store.get(message_id)))
                except MessageNotFound:  # deleted meanwhile
                    continue
        except Exception:
            log.exception("taking in messages imported by another process failed")
