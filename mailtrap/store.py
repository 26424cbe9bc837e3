"""Durable message storage in SQLite.

All writes go through one writer thread that commits in batches (group
commit): whoever submits a write gets a future that resolves only after the
transaction holding it is committed. Readers use their own connections, and
WAL mode keeps them from blocking the writer.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import sqlite3
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from mailtrap.errors import MessageNotFound, StorageError
from mailtrap.mime import summarize

log = logging.getLogger(__name__)

MAX_BATCH = 256
MAINTENANCE_INTERVAL = 60.0  # seconds between --max-age sweeps

migrations = Migrations("mailtrap")


@migrations()
def m001_messages(db: Database) -> None:
    # AUTOINCREMENT keeps sqlite_sequence, so a deleted message's seq (and so
    # its ID) is never handed out again, even after a restart.
    db.execute(
        """CREATE TABLE messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            created REAL NOT NULL,
            size INTEGER NOT NULL,
            read INTEGER NOT NULL DEFAULT 0,
            message_id TEXT, subject TEXT, from_name TEXT, from_address TEXT,
            to_json TEXT, cc_json TEXT, bcc_json TEXT, reply_to_json TEXT,
            date TEXT, attachments INTEGER, snippet TEXT, tags TEXT,
            mail_from TEXT, rcpt_tos TEXT, mail_options TEXT,
            peer TEXT, helo TEXT, tls INTEGER, auth_user TEXT, parse_error TEXT,
            addresses TEXT, attachment_names TEXT, body TEXT
        )"""
    )
    db.execute("CREATE INDEX messages_created ON messages(created)")
    # Raw bytes live apart so that listing never drags blobs through the cache.
    db.execute("CREATE TABLE raw (seq INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    db.execute(
        "CREATE TRIGGER messages_delete_raw AFTER DELETE ON messages "
        "BEGIN DELETE FROM raw WHERE seq = old.seq; END"
    )
    db["messages"].enable_fts(
        ["subject", "addresses", "body", "attachment_names"],
        create_triggers=True,
        tokenize="unicode61 remove_diacritics 2",
    )


@dataclass
class IncomingMessage:
    """A message as received, with its envelope and session facts."""

    raw: bytes
    mail_from: str
    rcpt_tos: Sequence[str]
    mail_options: Sequence[str] = ()
    peer: str = ""
    helo: str = ""
    tls: bool = False
    auth_user: str | None = None
    received: float = field(default_factory=time.time)


_ID_ALPHABET = string.ascii_letters + string.digits


def _base62(number: int) -> str:
    digits = ""
    while True:
        number, rest = divmod(number, 62)
        digits = _ID_ALPHABET[rest] + digits
        if not number:
            return digits


def make_id(seq: int) -> str:
    """A short ID: 8 random characters (unguessable) then the sequence number.

    The fixed-width random part makes the suffix unambiguous, and sequence
    numbers are never reused, so neither is an ID.
    """
    return _base62(secrets.randbits(47)).rjust(8, "0") + _base62(seq)  # 2**47 < 62**8


def message_row(seq: int, message: IncomingMessage) -> dict[str, Any]:
    """The ``messages`` row of a message: envelope, session facts and parsed summary."""
    summary = summarize(message.raw, message.rcpt_tos)
    everyone = ([summary.from_] if summary.from_ else []) + summary.to + summary.cc + summary.bcc
    return {
        "seq": seq,
        "id": make_id(seq),
        "created": message.received,
        "size": len(message.raw),
        "message_id": summary.message_id,
        "subject": summary.subject,
        "from_name": summary.from_["Name"] if summary.from_ else "",
        "from_address": summary.from_["Address"] if summary.from_ else "",
        "to_json": json.dumps(summary.to),
        "cc_json": json.dumps(summary.cc),
        "bcc_json": json.dumps(summary.bcc),
        "reply_to_json": json.dumps(summary.reply_to),
        "date": summary.date,
        "attachments": summary.attachments,
        "snippet": summary.snippet,
        "tags": json.dumps(summary.tags),
        "mail_from": message.mail_from,
        "rcpt_tos": json.dumps(list(message.rcpt_tos)),
        "mail_options": json.dumps(list(message.mail_options)),
        "peer": message.peer,
        "helo": message.helo,
        "tls": int(message.tls),
        "auth_user": message.auth_user,
        "parse_error": summary.parse_error,
        "addresses": " ".join(f"{p['Name']} {p['Address']}" for p in everyone),
        "attachment_names": " ".join(summary.attachment_names),
        "body": summary.text,
    }


_ROW_COLUMNS = [
    "seq", "id", "created", "size", "message_id", "subject", "from_name", "from_address",
    "to_json", "cc_json", "bcc_json", "reply_to_json", "date", "attachments", "snippet", "tags",
    "mail_from", "rcpt_tos", "mail_options", "peer", "helo", "tls", "auth_user", "parse_error",
    "addresses", "attachment_names", "body",
]  # fmt: skip
# sqlite-utils' insert() inspects the table and converts every value on each
# call, costing as much as parsing the message; the hot path uses one
# prepared statement instead (the schema itself stays with sqlite-utils).
_INSERT_MESSAGE = (
    f"INSERT INTO messages ({', '.join(_ROW_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _ROW_COLUMNS)})"
)


@dataclass
class _Job:
    """One write, applied inside the writer's transaction; its future resolves after commit."""

    apply: Callable[[Database], Any]
    future: Future[Any] = field(default_factory=Future)


_STOP = object()


def _last_seq(db: Database) -> int:
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
    return row[0] if row else 0


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class Store:
    """The message store of one SQLite file.

    ``max_messages`` (0 = unlimited) and ``max_age`` (seconds, None = off)
    prune the oldest messages.
    """

    def __init__(self, path: Path, *, max_messages: int = 0, max_age: float | None = None):
        self.path = Path(path)
        self.max_messages = max_messages
        self.max_age = max_age
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers = threading.local()
        self._count = 0  # kept by the writer; re-counted on every prune
        self._next_seq = 1

    # -- lifecycle -----------------------------------------------------------

    def open(self) -> Store:
        """Create or migrate the database and start the writer thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path)
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a message acknowledged with 250 survives a power cut, not just a crash;
        # group commit keeps the fsyncs few.
        conn.execute("PRAGMA synchronous = FULL")
        db = Database(conn)
        migrations.apply(db)
        self._prune(db)
        self._writer = threading.Thread(
            target=self._write_loop, args=(db,), name="mailtrap-writer", daemon=True
        )
        self._writer.start()
        return self

    def close(self) -> None:
        """Finish every queued write, then stop the writer."""
        if self._writer is not None:
            self._jobs.put(_STOP)
            self._writer.join()
            self._writer = None

    def __enter__(self) -> Store:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writes --------------------------------------------------------------

    def add(self, message: IncomingMessage) -> Future[str]:
        """Queue a message; the future gives its ID once it is committed."""

        def apply(db: Database) -> str:
            seq = self._next_seq
            self._next_seq += 1
            row = message_row(seq, message)
            db.conn.execute(_INSERT_MESSAGE, row)
            db.conn.execute("INSERT INTO raw (seq, data) VALUES (?, ?)", [seq, message.raw])
            self._count += 1
            return row["id"]

        return self._submit(apply)

    def delete(self, ids: Iterable[str]) -> Future[int]:
        """Delete messages by ID; the future gives how many were deleted."""
        id_list = list(ids)

        def apply(db: Database) -> int:
            deleted = 0
            for start in range(0, len(id_list), 500):
                chunk = id_list[start : start + 500]
                marks = ",".join("?" * len(chunk))
                deleted += db.execute(f"DELETE FROM messages WHERE id IN ({marks})", chunk).rowcount
            self._count -= deleted
            return deleted

        return self._submit(apply)

    def delete_all(self) -> Future[int]:
        def apply(db: Database) -> int:
            deleted = db.execute("DELETE FROM messages").rowcount
            self._count -= deleted
            return deleted

        return self._submit(apply)

    def _submit(self, apply: Callable[[Database], Any]) -> Future[Any]:
        if self._writer is None:
            raise StorageError("the store is not open")
        job = _Job(apply)
        self._jobs.put(job)
        return job.future

    def _write_loop(self, db: Database) -> None:
        next_sweep = time.monotonic() + MAINTENANCE_INTERVAL
        stopping = False
        while not stopping:
            try:
                first = self._jobs.get(timeout=MAINTENANCE_INTERVAL)
            except queue.Empty:
                first = None
            stopping = first is _STOP
            batch = [first] if isinstance(first, _Job) else []
            # Group commit: everything queued meanwhile shares one transaction.
            while not stopping and len(batch) < MAX_BATCH:
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    break
                stopping = item is _STOP
                if isinstance(item, _Job):
                    batch.append(item)
            if batch:
                self._run_batch(db, batch)
            over_limit = bool(self.max_messages) and self._count > self.max_messages
            if over_limit or (self.max_age is not None and time.monotonic() >= next_sweep):
                self._prune(db)
                next_sweep = time.monotonic() + MAINTENANCE_INTERVAL
        db.conn.close()

    def _run_batch(self, db: Database, batch: list[_Job]) -> None:
        try:
            results = self._transaction(db, batch)
        except Exception:
            # One bad write must not fail its neighbours: retry each on its own.
            for job in batch:
                self._run_alone(db, job)
            return
        for job, result in zip(batch, results, strict=True):
            job.future.set_result(result)

    def _run_alone(self, db: Database, job: _Job) -> None:
        try:
            (result,) = self._transaction(db, [job])
        except Exception as error:
            job.future.set_exception(StorageError(f"could not write: {error}"))
        else:
            job.future.set_result(result)

    def _transaction(self, db: Database, jobs: list[_Job]) -> list[Any]:
        count = self._count
        try:
            with db.conn:
                db.execute("BEGIN IMMEDIATE")
                # Read under the write lock: another process (mailtrap ingest)
                # may have written to the same file meanwhile.
                self._next_seq = _last_seq(db) + 1
                return [job.apply(db) for job in jobs]
        except BaseException:
            self._count = count
            raise

    def _prune(self, db: Database) -> None:
        """Delete the oldest messages beyond ``max_messages`` and older than ``max_age``."""
        try:
            self._delete_expired(db)
        except sqlite3.Error:
            log.exception("pruning old messages failed; will retry")

    def _delete_expired(self, db: Database) -> None:
        with db.conn:
            db.execute("BEGIN IMMEDIATE")
            self._count = db.execute("SELECT count(*) FROM messages").fetchone()[0]
            if self.max_age is not None:
                cutoff = time.time() - self.max_age
                self._count -= db.execute(
                    "DELETE FROM messages WHERE created < ?", [cutoff]
                ).rowcount
            if self.max_messages and self._count > self.max_messages:
                excess = self._count - self.max_messages
                self._count -= db.execute(
                    "DELETE FROM messages WHERE seq IN "
                    "(SELECT seq FROM messages ORDER BY seq LIMIT ?)",
                    [excess],
                ).rowcount

    # -- reads ---------------------------------------------------------------

    @property
    def reader(self) -> sqlite3.Connection:
        """This thread's read connection."""
        conn = getattr(self._readers, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.row_factory = sqlite3.Row
            self._readers.conn = conn
        return conn

    def count(self) -> int:
        return self.reader.execute("SELECT count(*) FROM messages").fetchone()[0]

    def ids(self) -> list[str]:
        """Every stored ID, oldest first."""
        return [row[0] for row in self.reader.execute("SELECT id FROM messages ORDER BY seq")]

    def get(self, message_id: str) -> sqlite3.Row:
        row = self.reader.execute("SELECT * FROM messages WHERE id = ?", [message_id]).fetchone()
        if row is None:
            raise MessageNotFound(message_id)
        return row

    def raw(self, message_id: str) -> bytes:
        row = self.reader.execute(
            "SELECT data FROM raw JOIN messages USING (seq) WHERE id = ?", [message_id]
        ).fetchone()
        if row is None:
            raise MessageNotFound(message_id)
        return bytes(row[0])

    def iter_raw(self) -> Iterator[tuple[str, bytes]]:
        """(ID, raw bytes) of every message, oldest first, one at a time."""
        for message_id in self.ids():
            try:
                yield message_id, self.raw(message_id)
            except MessageNotFound:  # deleted meanwhile
                continue
