"""The part index: where each MIME part of a stored message lies, computed once at ingest.

Reading a message then needs only the byte ranges it shows (the header block,
a body, one attachment), read from the stored blob with ``blobopen`` in
chunks, never the whole message and never the standard ``email`` parser.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from mailtrap.errors import MessageNotFound
from mailtrap.mime import PartInfo, Span, index_parts

CHUNK = 64 * 1024  # bytes per blob read
MAX_HEADER_BLOCK = 1024 * 1024  # bytes of the top-level header block read for /headers

_PART_COLUMNS = (
    "part_id, header_start, header_end, body_start, body_end, content_type, charset, "
    "encoding, disposition, filename, content_id, attachment"
)


def create_tables(conn: sqlite3.Connection) -> None:
    """The index tables (migration m003); a deleted message takes its rows with it."""
    conn.execute(
        "CREATE TABLE message_index (seq INTEGER PRIMARY KEY, header_end INTEGER NOT NULL, "
        "error TEXT)"
    )
    conn.execute(
        """CREATE TABLE parts (
            seq INTEGER NOT NULL, position INTEGER NOT NULL,
            part_id TEXT NOT NULL, header_start INTEGER NOT NULL, header_end INTEGER NOT NULL,
            body_start INTEGER NOT NULL, body_end INTEGER NOT NULL, content_type TEXT NOT NULL,
            charset TEXT NOT NULL, encoding TEXT NOT NULL, disposition TEXT NOT NULL,
            filename TEXT NOT NULL, content_id TEXT NOT NULL, attachment INTEGER NOT NULL,
            PRIMARY KEY (seq, position)
        ) WITHOUT ROWID"""
    )
    conn.execute(
        "CREATE TRIGGER messages_delete_parts AFTER DELETE ON messages BEGIN "
        "DELETE FROM message_index WHERE seq = old.seq; "
        "DELETE FROM parts WHERE seq = old.seq; END"
    )


@dataclass(frozen=True)
class PartIndex:
    """The index of one message, made without the database (in the writer's parser thread)."""

    header_end: int
    parts: list[PartInfo]
    error: str | None


def make_part_index(raw: bytes) -> PartIndex:
    """Index a raw message. Never raises for bad mail: what cannot be indexed has no parts
    and the reason."""
    header, parts, error = _index(raw)
    return PartIndex(header[1], parts, error)


def write_part_index(conn: sqlite3.Connection, seq: int, index: PartIndex) -> None:
    """Store the index of message ``seq`` (in the writer's transaction), replacing any."""
    conn.execute(
        "INSERT OR REPLACE INTO message_index (seq, header_end, error) VALUES (?, ?, ?)",
        [seq, index.header_end, index.error],
    )
    conn.execute("DELETE FROM parts WHERE seq = ?", [seq])
    conn.executemany(
        f"INSERT INTO parts (seq, position, {_PART_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(seq, position, *_row(part)) for position, part in enumerate(index.parts)],
    )


def insert_part_index(conn: sqlite3.Connection, seq: int, raw: bytes) -> None:
    """Index message ``seq`` and store the index (for messages stored before the index)."""
    write_part_index(conn, seq, make_part_index(raw))


def _index(raw: bytes) -> tuple[Span, list[PartInfo], str | None]:
    try:
        return *index_parts(raw), None
    except Exception as failure:  # any parser failure: the raw bytes are still kept
        return (0, 0), [], f"{type(failure).__name__}: {failure}"


def _row(part: PartInfo) -> tuple[object, ...]:
    return (
        part.part_id, *part.header, *part.body, part.content_type, part.charset, part.encoding,
        part.disposition, part.filename, part.content_id, int(part.attachment),
    )  # fmt: skip


def _part(row: tuple[Any, ...]) -> PartInfo:
    part_id, header_start, header_end, body_start, body_end, *fields, attachment = row
    return PartInfo(
        part_id, (header_start, header_end), (body_start, body_end), *fields, bool(attachment)
    )


class MessageSource(Protocol):
    """A stored message as reading sees it: its index, and its bytes by range."""

    header_end: int
    parts: list[PartInfo]

    def chunks(self, span: Span) -> Iterator[bytes]: ...


@dataclass
class BytesSource:
    """A message in memory, indexed on the spot (composed mail, tests)."""

    raw: bytes

    def __post_init__(self) -> None:
        header, self.parts, _ = _index(self.raw)
        self.header_end = header[1]

    def chunks(self, span: Span) -> Iterator[bytes]:
        view = memoryview(self.raw)
        for position in range(span[0], span[1], CHUNK):
            yield bytes(view[position : min(position + CHUNK, span[1])])


class BlobSource:
    """A message in the database: its index from ``parts``, its bytes read by range."""

    def __init__(self, conn: sqlite3.Connection, seq: int):
        self.conn = conn
        self.seq = seq
        row = conn.execute("SELECT header_end FROM message_index WHERE seq = ?", [seq]).fetchone()
        self.header_end = row[0] if row else 0
        sql = f"SELECT {_PART_COLUMNS} FROM parts WHERE seq = ? ORDER BY position"
        self.parts = [_part(tuple(row)) for row in conn.execute(sql, [seq])]

    def chunks(self, span: Span) -> Iterator[bytes]:
        """The bytes of ``span``, a chunk at a time; nothing if the message is gone."""
        try:
            return stored_chunks(self.conn, self.seq, span)
        except MessageNotFound:  # deleted meanwhile
            return iter(())


def stored_chunks(conn: sqlite3.Connection, seq: int, span: Span) -> Iterator[bytes]:
    """The stored bytes of message ``seq`` in ``span``, CHUNK bytes at a time.

    The blob is opened now, not at the first chunk, so that a streamed
    response knows before it starts whether there is anything to send
    (:class:`MessageNotFound` if not).
    """
    try:
        blob = conn.blobopen("raw", "data", seq, readonly=True)
    except sqlite3.OperationalError as error:
        raise MessageNotFound(str(seq)) from error
    return _blob_chunks(blob, span, CHUNK)


def _blob_chunks(blob: sqlite3.Blob, span: Span, size: int) -> Iterator[bytes]:
    with blob:
        start, end = span
        blob.seek(start)
        while start < end and (chunk := blob.read(min(size, end - start))):
            start += len(chunk)
            yield chunk


def read(source: MessageSource, span: Span, limit: int) -> bytes:
    """At most ``limit`` bytes from the start of ``span``."""
    start, end = span
    return b"".join(source.chunks((start, min(end, start + limit))))


def header_block(source: MessageSource) -> bytes:
    """The top-level header block, at most MAX_HEADER_BLOCK bytes (cut after a whole line)."""
    block = read(source, (0, source.header_end), MAX_HEADER_BLOCK)
    if len(block) < source.header_end:
        block = block[: block.rfind(b"\n") + 1]
    return block
