"""The database side of POP3: a user's maildrop, message sizes, and raw bytes in chunks.

Reads only; deletions and read marks go through :class:`mailtrap.store.Store`
like every other write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from mailtrap.errors import MessageNotFound
from mailtrap.pop3.wire import wire_size
from mailtrap.writer import connect

CHUNK = 64 * 1024  # bytes per blob read: small enough to keep memory flat, big enough to be fast
MAX_CACHED_SIZES = 200_000


class Entry(NamedTuple):
    """One message of a maildrop: ``seq`` finds its bytes, ``id`` is its POP3 unique-id."""

    seq: int
    id: str
    size: int  # octets as RETR sends them (CRLF line ends)


class SizeCache:
    """Wire sizes of the messages of one database, counted once.

    Counting means reading a whole message; but stored bytes never change and
    a seq is never reused, so a size once counted stays true. One cache per
    database: seqs of different files are unrelated.
    """

    def __init__(self, limit: int = MAX_CACHED_SIZES):
        self._sizes: dict[int, int] = {}
        self._limit = limit

    def size(self, conn: sqlite3.Connection, seq: int) -> int:
        size = self._sizes.get(seq)
        if size is None:
            with open_blob(conn, seq) as blob:
                size = wire_size(read_chunks(blob))
            if len(self._sizes) >= self._limit:
                self._sizes.clear()
            self._sizes[seq] = size
        return size


def open_connection(path: Path) -> sqlite3.Connection:
    """A read connection of one POP3 session.

    Its own, not the thread's shared one: a blob open for a slow client holds
    a read transaction, and other sessions must not be stuck in its past.
    """
    return connect(path)


def snapshot(conn: sqlite3.Connection, recipient: str | None, sizes: SizeCache) -> list[Entry]:
    """The maildrop, oldest first: messages with ``recipient`` among their envelope
    recipients (case-insensitively), or every message when it is None."""
    conn.execute("BEGIN")  # one read transaction: rows and sizes agree
    try:
        if recipient is None:
            # "id >= ''" lets SQLite read (seq, id) from the small index on id
            # instead of scanning the wide rows; sorting 10,000 pairs is cheap.
            rows = sorted(conn.execute("SELECT seq, id FROM messages WHERE id >= ''"))
        else:
            rows = conn.execute(
                """SELECT seq, id FROM messages
                WHERE json_valid(rcpt_tos) AND EXISTS (
                    SELECT 1 FROM json_each(messages.rcpt_tos) WHERE lower(value) = lower(?)
                )
                ORDER BY seq""",
                [recipient],
            ).fetchall()
        entries = []
        for seq, message_id in rows:
            try:
                entries.append(Entry(seq, message_id, sizes.size(conn, seq)))
            except MessageNotFound:  # a row without its bytes cannot be retrieved: leave it out
                continue
        return entries
    finally:
        conn.execute("COMMIT")


def open_blob(conn: sqlite3.Connection, seq: int) -> sqlite3.Blob:
    """The stored bytes of message ``seq``, to read incrementally.

    Raises :class:`MessageNotFound` when the message is gone.
    """
    try:
        return conn.blobopen("raw", "data", seq, readonly=True)
    except sqlite3.OperationalError as error:
        raise MessageNotFound(str(seq)) from error


def read_chunks(blob: sqlite3.Blob, size: int = CHUNK) -> Iterator[bytes]:
    while chunk := blob.read(size):
        yield chunk
