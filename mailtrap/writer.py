"""The writer process: the only code that writes messages to the database.

It runs in a process of its own so that parsing and indexing mail uses the
second core instead of competing with the SMTP loop for the GIL. It takes
batches of operations from a socket, applies each batch in one transaction
(group commit), and answers with one result per operation once it is
committed. Started as ``python -m mailtrap.writer FD PATH MAX_MESSAGES MAX_AGE``
by :class:`mailtrap.store.Store`; it imports only what writing needs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import signal
import sqlite3
import string
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from mailtrap.mime import summarize
from mailtrap.part_index import insert_part_index

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL = 60.0  # seconds between --max-age sweeps


@dataclass
class IncomingMessage:
    """A message as received, with its envelope and session facts."""

    raw: bytes
    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str] = field(default_factory=list)
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
        # [[name, value], ...] for `header:` searches; UTF-8 kept so LIKE can prefilter.
        "headers": json.dumps(summary.headers, ensure_ascii=False),
    }


_ROW_COLUMNS = [
    "seq", "id", "created", "size", "message_id", "subject", "from_name", "from_address",
    "to_json", "cc_json", "bcc_json", "reply_to_json", "date", "attachments", "snippet", "tags",
    "mail_from", "rcpt_tos", "mail_options", "peer", "helo", "tls", "auth_user", "parse_error",
    "addresses", "attachment_names", "body", "headers",
]  # fmt: skip
# sqlite-utils' insert() inspects the table and converts every value on each
# call, costing as much as parsing the message; the hot path uses one
# prepared statement instead (the schema itself stays with sqlite-utils).
_INSERT_MESSAGE = (
    f"INSERT INTO messages ({', '.join(_ROW_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _ROW_COLUMNS)})"
)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def _chunks(ids: list[str], size: int = 500) -> list[list[str]]:
    """Slices small enough for SQLite's limit on bound parameters."""
    return [ids[start : start + size] for start in range(0, len(ids), size)]


Operation = tuple[str, tuple[Any, ...]]  # ("add", (message,)), ("delete", (ids,)), ...
Outcome = tuple[bool, Any]  # (True, result) or (False, reason)


def send_batch(pipe: Connection, batch: list[Operation]) -> None:
    """Send a batch; raw messages travel as plain byte strings after it.

    Pickling a message would copy its raw bytes once more on each side, which
    a 25 MB message feels.
    """
    raws = [args[0].raw for name, args in batch if name == "add"]
    pipe.send([(name, _without_raw(args) if name == "add" else args) for name, args in batch])
    for raw in raws:
        pipe.send_bytes(raw)


def _without_raw(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (dataclasses.replace(args[0], raw=b""),)


def receive_batch(pipe: Connection) -> list[Operation]:
    batch: list[Operation] = pipe.recv()
    for name, args in batch:
        if name == "add":
            args[0].raw = pipe.recv_bytes()
    return batch


class Writer:
    """Applies operations to the database; one instance lives in the writer process."""

    def __init__(self, path: Path, *, max_messages: int = 0, max_age: float | None = None):
        self.conn = connect(path)
        # FULL: a message acknowledged with 250 survives a power cut, not just
        # a crash; group commit keeps the fsyncs few.
        self.conn.execute("PRAGMA synchronous = FULL")
        self.max_messages = max_messages
        self.max_age = max_age
        self.count = 0  # kept as rows come and go; re-counted on every prune
        self.commits = 0
        self.pruned: list[str] = []  # IDs pruned since the last answer, for delete events
        self.prune()

    # -- operations ----------------------------------------------------------

    def op_add(self, message: IncomingMessage) -> str:
        # Read under the write lock: another process (mailtrap ingest) may
        # have written to the same file meanwhile.
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'")
        last = row.fetchone()
        seq = (last[0] if last else 0) + 1
        values = message_row(seq, message)
        self.conn.execute(_INSERT_MESSAGE, values)
        self.conn.execute("INSERT INTO raw (seq, data) VALUES (?, ?)", [seq, message.raw])
        insert_part_index(self.conn, seq, message.raw)
        self.count += 1
        return values["id"]

    def op_delete(self, ids: list[str]) -> list[str]:
        """Delete by ID; returns the IDs that existed."""
        deleted: list[str] = []
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            sql = f"DELETE FROM messages WHERE id IN ({marks}) RETURNING id"
            deleted += [row[0] for row in self.conn.execute(sql, chunk)]
        self.count -= len(deleted)
        return deleted

    def op_delete_all(self) -> int:
        deleted = self.conn.execute("DELETE FROM messages").rowcount
        self.count -= deleted
        return deleted

    def op_set_read(self, ids: list[str] | None, read: bool) -> list[str]:
        """Mark messages read or unread (``ids`` None: all); returns the IDs that changed."""
        if ids is None:
            sql = "UPDATE messages SET read = ? WHERE read != ? RETURNING id"
            return [row[0] for row in self.conn.execute(sql, [int(read), int(read)])]
        changed: list[str] = []
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            sql = f"UPDATE messages SET read = ? WHERE read != ? AND id IN ({marks}) RETURNING id"
            changed += [row[0] for row in self.conn.execute(sql, [int(read), int(read), *chunk])]
        return changed

    def op_set_tags(self, ids: list[str], tags: list[str]) -> list[str]:
        """Replace the tags of messages; returns the IDs that exist."""
        value = json.dumps(sorted(set(tags)))
        updated: list[str] = []
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            sql = f"UPDATE messages SET tags = ? WHERE id IN ({marks}) RETURNING id"
            updated += [row[0] for row in self.conn.execute(sql, [value, *chunk])]
        return updated

    # -- batches -------------------------------------------------------------

    def apply_batch(self, batch: list[Operation]) -> list[Outcome]:
        """Apply a batch in one transaction; if it fails, each operation on its own.

        One bad write must not fail its neighbours.
        """
        try:
            results = self._transaction(batch)
        except Exception:
            return [self._apply_alone(operation) for operation in batch]
        return [(True, result) for result in results]

    def _apply_alone(self, operation: Operation) -> Outcome:
        try:
            (result,) = self._transaction([operation])
        except Exception as error:
            log.exception("write %s failed", operation[0])
            return (False, f"{type(error).__name__}: {error}")
        return (True, result)

    def _transaction(self, batch: list[Operation]) -> list[Any]:
        count, pruned = self.count, len(self.pruned)
        try:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                results = [getattr(self, "op_" + name)(*args) for name, args in batch]
                # Pruned in the same transaction, so no reader ever sees more
                # than max_messages.
                if self.over_limit:
                    self._delete_oldest()
        except BaseException:
            self.count = count
            del self.pruned[pruned:]  # rolled back: those were not pruned after all
            raise
        self.commits += 1
        return results

    # -- pruning -------------------------------------------------------------

    def take_pruned(self) -> list[str]:
        pruned, self.pruned = self.pruned, []
        return pruned

    @property
    def over_limit(self) -> bool:
        return bool(self.max_messages) and self.count > self.max_messages

    def prune(self) -> None:
        """Delete the oldest messages beyond ``max_messages`` and older than ``max_age``."""
        try:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self._delete_expired()
        except sqlite3.Error:
            log.exception("pruning old messages failed; will retry")

    def _delete_expired(self) -> None:
        self.count = self.conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        if self.max_age is not None:
            cutoff = time.time() - self.max_age
            sql = "DELETE FROM messages WHERE created < ? RETURNING id"
            pruned = [row[0] for row in self.conn.execute(sql, [cutoff])]
            self.count -= len(pruned)
            self.pruned += pruned
        if self.over_limit:
            self._delete_oldest()

    def _delete_oldest(self) -> None:
        sql = (
            "DELETE FROM messages WHERE seq IN "
            "(SELECT seq FROM messages ORDER BY seq LIMIT ?) RETURNING id"
        )
        pruned = [row[0] for row in self.conn.execute(sql, [self.count - self.max_messages])]
        self.count -= len(pruned)
        self.pruned += pruned

    # -- the process ---------------------------------------------------------

    def serve(self, pipe: Connection) -> None:
        """Answer batches from ``pipe`` until it closes; sweep by age meanwhile."""
        next_sweep = time.monotonic() + MAINTENANCE_INTERVAL
        while True:
            if pipe.poll(MAINTENANCE_INTERVAL):
                try:
                    batch = receive_batch(pipe)
                except EOFError:  # the server is gone: everything asked for is committed
                    return
                outcomes = self.apply_batch(batch)
                pipe.send((outcomes, self.commits, self.take_pruned()))
            if self.max_age is not None and time.monotonic() >= next_sweep:
                self.prune()
                next_sweep = time.monotonic() + MAINTENANCE_INTERVAL


def main(argv: list[str]) -> None:
    """Entry point of the writer process: FD PATH MAX_MESSAGES MAX_AGE (or "-")."""
    # Ctrl+C reaches the whole process group; the server decides when the
    # writer stops (by closing the socket), so queued writes are never cut off.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd, path, max_messages, max_age = argv
    pipe = Connection(int(fd))
    try:
        writer = Writer(
            Path(path),
            max_messages=int(max_messages),
            max_age=None if max_age == "-" else float(max_age),
        )
    except Exception as error:
        pipe.send(("failed", f"{type(error).__name__}: {error}"))
        return
    pipe.send(("ready", None))
    try:
        writer.serve(pipe)
    finally:
        writer.conn.close()


if __name__ == "__main__":
    main(sys.argv[1:])
