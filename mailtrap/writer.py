"""The writer process: the only code that writes messages to the database.

It runs in a process of its own so that committing mail uses the second core
instead of competing with the SMTP loop for the GIL; parsing and indexing run
in a third (:mod:`mailtrap.summarizer`). It takes
batches of operations from a socket, applies each batch in one transaction
(group commit), and answers with one result per operation once it is
committed. Started as ``python -m mailtrap.writer FD PATH MAX_MESSAGES MAX_AGE SYNC TAGGING``
by :class:`mailtrap.store.Store`; it imports only what writing needs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import selectors
import signal
import sqlite3
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from mailtrap.archive import Archive
from mailtrap.checks import cache as check_cache
from mailtrap.part_index import write_part_index
from mailtrap.relay import queue as relay_queue
from mailtrap.rows import INSERT_ENVELOPE, UPDATE_SUMMARY, IncomingMessage, envelope_row
from mailtrap.summarizer import Parsed, Summarizer, unparsed
from mailtrap.tags.arrival import Tagging, stored_tags
from mailtrap.tags.names import tag_key

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL = 60.0  # seconds between --max-age sweeps
SPOOL_COPY_CHUNK = 1024 * 1024  # bytes of a spooled message copied into its blob at a time
# Summaries written in one transaction once this many are ready, and at most
# this many at once: each costs about the same (70-100 us of 2 KB text) in
# groups of 8 to 64, but a group holds up the commits waiting behind it for
# as long as it takes (1.4 ms for 16, 5.5 ms for 64).
SUMMARY_BATCH = 16
SUMMARY_DELAY = 0.02  # seconds a ready summary waits for others at most


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def _chunks(ids: list[str], size: int = 500) -> list[list[str]]:
    """Slices small enough for SQLite's limit on bound parameters."""
    return [ids[start : start + size] for start in range(0, len(ids), size)]


Operation = tuple[str, tuple[Any, ...]]  # ("add", (message,)), ("delete", (ids,)), ...
Outcome = tuple[bool, Any]  # (True, result) or (False, reason)


INLINE_RAW_LIMIT = 64 * 1024  # raw bytes that travel inside the batch's own message


def batch_payloads(batch: list[Operation]) -> list[bytes]:
    """A batch as the payloads of its frames: one, and one more per large raw message.

    Small raw bytes ride in the batch's own payload, so a lone 2 KB message
    costs one system call and one wake-up of the writer, not two. Larger ones
    follow as plain byte strings: pickling them would copy them once more on
    each side. A spooled message travels as its file's name.
    """
    large = [
        args[0].raw for name, args in batch if name == "add" and len(args[0].raw) > INLINE_RAW_LIMIT
    ]
    encoded = [_encoded(name, args) for name, args in batch]
    return [pickle.dumps(encoded, protocol=pickle.HIGHEST_PROTOCOL), *large]


def send_batch(pipe: Connection, batch: list[Operation]) -> None:
    """Send a batch on a blocking connection (the server writes it from its event loop)."""
    for payload in batch_payloads(batch):
        pipe.send_bytes(payload)


def _encoded(name: str, args: tuple[Any, ...]) -> Operation:
    if name != "add":
        return (name, args)
    message: IncomingMessage = args[0]
    inline = message.raw if len(message.raw) <= INLINE_RAW_LIMIT else None
    fields = tuple(getattr(message, field) for field in _MESSAGE_FIELDS)
    return (name, (fields, inline))


# IncomingMessage's fields after its first, raw, in their order.
_MESSAGE_FIELDS = [field.name for field in dataclasses.fields(IncomingMessage)][1:]


def receive_batch(pipe: Connection) -> list[Operation]:
    batch: list[Operation] = pipe.recv()
    for index, (name, args) in enumerate(batch):
        if name == "add":
            fields, inline = args
            raw = inline if inline is not None else pipe.recv_bytes()
            message = IncomingMessage(raw, *fields)  # raw is its first field, the rest follow
            batch[index] = (name, (message,))
    return batch


class Writer:
    """Applies operations to the database; one instance lives in the writer process.

    Adding a message commits its envelope and raw bytes; the
    :class:`~mailtrap.summarizer.Summarizer` then parses it, and
    :meth:`apply_parsed` writes the summary and search index in a later
    transaction. The answers on the pipe are ``("batch", outcomes, commits,
    pruned IDs)`` for each batch, and ``("parsed", IDs)`` as summaries land.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_messages: int = 0,
        max_age: float | None = None,
        sync: str = "normal",
        tagging: Tagging | None = None,
        archive: Archive | None = None,
    ):
        self.conn = connect(path)
        self.tagging = tagging or Tagging()
        self.tagging.prepare(self.conn)
        self.archive = archive
        # FULL: a message acknowledged with 250 survives a power cut, not just
        # a crash; group commit keeps the fsyncs few. NORMAL in WAL mode: it
        # survives Mailtrap crashing or being killed, without an fsync per commit.
        self.sync = {"full": "FULL", "normal": "NORMAL"}[sync]
        self.conn.execute(f"PRAGMA synchronous = {self.sync}")
        self.max_messages = max_messages
        self.max_age = max_age
        self.count = 0  # kept as rows come and go; re-counted on every prune
        self.commits = 0
        self.pruned: list[str] = []  # IDs pruned since the last answer, for delete events
        self._added: list[tuple[int, str, IncomingMessage]] = []  # in the open transaction
        self._committed: list[tuple[int, str, IncomingMessage]] = []  # not yet being parsed
        self.summarizer = Summarizer(path, self.tagging)
        self._summaries: list[Parsed] = []  # parsed, not written yet
        self._summaries_since = 0.0  # when the oldest of them was collected
        self.prune()
        # Committed before a crash but never parsed: parse them now.
        for seq, message_id, rcpt_tos, auth_user in unparsed(self.conn):
            self.summarizer.submit(seq, message_id, rcpt_tos, auth_user)

    def close(self) -> None:
        """Parse and write what is still queued, then close the database."""
        self.parse_committed()
        self.apply_parsed(self._summaries + self.summarizer.close())
        self._summaries = []
        self.conn.close()

    # -- operations ----------------------------------------------------------

    def op_add(self, message: IncomingMessage) -> str:
        # Read under the write lock: another process (mailtrap ingest) may
        # have written to the same file meanwhile.
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'")
        last = row.fetchone()
        seq = (last[0] if last else 0) + 1
        values = envelope_row(seq, message)
        self.conn.execute(INSERT_ENVELOPE, values)
        if message.spool is None:
            self.conn.execute("INSERT INTO raw (seq, data) VALUES (?, ?)", [seq, message.raw])
        else:
            self._copy_spool(seq, message)
        self.count += 1
        self._added.append((seq, values["id"], message))
        return values["id"]

    def _copy_spool(self, seq: int, message: IncomingMessage) -> None:
        """Stream a spooled message into its blob, a chunk at a time (bounded memory)."""
        assert message.spool is not None
        insert = "INSERT INTO raw (seq, data) VALUES (?, zeroblob(?))"
        self.conn.execute(insert, [seq, message.size])
        with open(message.spool, "rb") as source, self.conn.blobopen("raw", "data", seq) as blob:
            copied = 0
            while chunk := source.read(SPOOL_COPY_CHUNK):
                blob.write(chunk)
                copied += len(chunk)
        if copied != message.size:
            raise OSError(f"spool file {message.spool} has {copied} bytes, not {message.size}")

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

    def op_flush(self) -> None:
        """Nothing: answered once everything sent before it is committed."""

    def op_prune(self) -> None:
        """Retention now: another process (``mailtrap ingest``) may have added messages."""
        self._delete_expired()

    def op_set_tags(self, ids: list[str], tags: list[str]) -> list[tuple[str, list[str]]]:
        """Replace the tags of messages; returns (ID, tags) of those that exist."""
        names = stored_tags(self.conn, tags)
        value = json.dumps(names)
        updated: list[tuple[str, list[str]]] = []
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            sql = f"UPDATE messages SET tags = ? WHERE id IN ({marks}) RETURNING id"
            updated += [(row[0], names) for row in self.conn.execute(sql, [value, *chunk])]
        return updated

    def op_add_tags(self, ids: list[str], tags: list[str]) -> list[tuple[str, list[str]]]:
        """Add tags to messages; returns (ID, tags) of those whose tags changed."""
        changed: list[tuple[str, list[str]]] = []
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id, tags FROM messages WHERE id IN ({marks})"
            for message_id, old in self.conn.execute(sql, chunk).fetchall():
                current = json.loads(old or "[]")
                names = stored_tags(self.conn, current + tags)
                if names != current:
                    self._write_tags(message_id, names)
                    changed.append((message_id, names))
        return changed

    def op_rename_tag(self, old: str, new: str) -> tuple[str, list[str]]:
        """Rename a tag on every message: ("renamed", IDs), "not found" or "exists"."""
        key, new_key = tag_key(old), tag_key(new)
        if self._spelling(key) is None:
            return ("not found", [])
        if new_key != key and self._spelling(new_key) is not None:
            return ("exists", [])
        ids = self._retag(key, new)
        # A change of case only: the counting triggers kept the old spelling.
        self.conn.execute("UPDATE tag_names SET name = ? WHERE key = ?", [new, new_key])
        return ("renamed", ids)

    def op_delete_tag(self, name: str) -> tuple[str, list[str]]:
        """Take a tag off every message: ("deleted", IDs) or "not found"."""
        key = tag_key(name)
        if self._spelling(key) is None:
            return ("not found", [])
        return ("deleted", self._retag(key, None))

    def _retag(self, key: str, new: str | None) -> list[str]:
        """Replace (None: drop) the tag ``key`` on every message that has it."""
        sql = (
            "SELECT id, tags FROM messages WHERE tags != '[]' AND EXISTS "
            "(SELECT 1 FROM json_each(messages.tags) WHERE lower(value) = ?)"
        )
        ids = []
        for message_id, old in self.conn.execute(sql, [key]).fetchall():
            others = [name for name in json.loads(old) if tag_key(name) != key]
            self._write_tags(message_id, sorted([*others, new] if new else others))
            ids.append(message_id)
        return ids

    def _write_tags(self, message_id: str, names: list[str]) -> None:
        self.conn.execute(
            "UPDATE messages SET tags = ? WHERE id = ?", [json.dumps(names), message_id]
        )

    def _spelling(self, key: str) -> str | None:
        row = self.conn.execute("SELECT name FROM tag_names WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def op_relay(self, name: str, *args: Any) -> Any:
        """A write to the relay queue (:data:`mailtrap.relay.queue.WRITES`)."""
        return relay_queue.WRITES[name](self.conn, *args)

    def op_save_check(self, message_id: str, name: str, key: str, result: str) -> bool:
        """Cache a check result of a message; False if the message is gone."""
        return check_cache.save(self.conn, message_id, name, key, result)

    # -- batches -------------------------------------------------------------

    def apply_batch(self, batch: list[Operation], parsed: Sequence[Parsed] = ()) -> list[Outcome]:
        """Apply a batch (and write ``parsed`` summaries) in one transaction.

        If that fails, each operation on its own, and the summaries apart:
        one bad write must not fail its neighbours.
        """
        try:
            results = self._transaction(batch, parsed)
        except Exception:
            self.apply_parsed(list(parsed))
            return [self._apply_alone(operation) for operation in batch]
        return [(True, result) for result in results]

    def _apply_alone(self, operation: Operation) -> Outcome:
        try:
            (result,) = self._transaction([operation])
        except Exception as error:
            log.exception("write %s failed", operation[0])
            return (False, f"{type(error).__name__}: {error}")
        return (True, result)

    def _transaction(self, batch: list[Operation], parsed: Sequence[Parsed] = ()) -> list[Any]:
        count, pruned = self.count, len(self.pruned)
        self._added = []
        try:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                results = [getattr(self, "op_" + name)(*args) for name, args in batch]
                self._write_parsed_rows(parsed)
                # Pruned in the same transaction, so no reader ever sees more
                # than max_messages.
                if self.over_limit:
                    self._delete_oldest()
        except BaseException:
            self.count = count
            del self.pruned[pruned:]  # rolled back: those were not pruned after all
            raise
        self.commits += 1
        self._committed += self._added
        return results

    def parse_committed(self) -> None:
        """Hand the messages committed since the last call to the summarizer.

        Called after the answer is sent, so that the answer goes out first.
        """
        for seq, message_id, message in self._committed:
            self.summarizer.submit(seq, message_id, message.rcpt_tos, message.auth_user)
        self._committed = []

    def apply_parsed(self, parsed: list[Parsed]) -> list[str]:
        """Write summaries, search index entries and part indexes; returns the IDs they were for.

        Committed without an fsync of its own (synchronous NORMAL): the next
        acknowledged write syncs the log, and a summary lost in a power cut
        is parsed again at the next start (its row still says ``parsed = 0``).
        If the batch fails, each is written alone, and one that cannot be
        written is marked parsed with the reason, so it is not tried forever.
        """
        if not parsed:
            return []
        try:
            self.conn.execute("PRAGMA synchronous = NORMAL")
            try:
                self._write_parsed(parsed)
            except Exception:  # whatever it is, the writer must live on to commit messages
                for item in parsed:
                    self._write_parsed_alone(item)
        finally:
            self.conn.execute(f"PRAGMA synchronous = {self.sync}")
        return [item.message_id for item in parsed]

    def _write_parsed(self, parsed: list[Parsed]) -> None:
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self._write_parsed_rows(parsed)

    def _write_parsed_rows(self, parsed: Sequence[Parsed]) -> None:
        for item in parsed:
            values = None
            if item.values is not None:
                tags = stored_tags(self.conn, json.loads(item.values["tags"] or "[]"))
                values = {**item.values, "tags": json.dumps(tags), "seq": item.seq}
                self.conn.execute(UPDATE_SUMMARY, values)
            if item.index is not None:
                write_part_index(self.conn, item.seq, item.index)
            if values is not None:
                # The rules search the summary just written, in this transaction.
                extra = self.tagging.rule_tags(self.conn, item.seq, values)
                if extra:
                    self.conn.execute(
                        "UPDATE messages SET tags = ? WHERE seq = ?",
                        [json.dumps(stored_tags(self.conn, tags + extra)), item.seq],
                    )

    def _write_parsed_alone(self, item: Parsed) -> None:
        try:
            self._write_parsed([item])
        except Exception as error:
            log.exception("writing the summary of %s failed", item.message_id)
            reason = f"summary not stored: {type(error).__name__}"
            try:
                with self.conn:
                    self.conn.execute(
                        "UPDATE messages SET parsed = 1, parse_error = ? WHERE seq = ?",
                        [reason, item.seq],
                    )
            except sqlite3.Error:
                log.exception("marking %s parsed failed; parsed again at restart", item.message_id)

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
            if not self._archived("SELECT seq FROM messages WHERE created < ?", [cutoff]):
                return
            sql = "DELETE FROM messages WHERE created < ? RETURNING id"
            pruned = [row[0] for row in self.conn.execute(sql, [cutoff])]
            self.count -= len(pruned)
            self.pruned += pruned
        if self.over_limit:
            self._delete_oldest()

    def _delete_oldest(self) -> None:
        oldest = "SELECT seq FROM messages ORDER BY seq LIMIT ?"
        excess = self.count - self.max_messages
        if not self._archived(oldest, [excess]):
            return
        sql = f"DELETE FROM messages WHERE seq IN ({oldest}) RETURNING id"
        pruned = [row[0] for row in self.conn.execute(sql, [excess])]
        self.count -= len(pruned)
        self.pruned += pruned

    def _archived(self, select_seqs: str, params: list[Any]) -> bool:
        """Write the messages about to be pruned to the archive; False if that failed.

        A message that cannot be archived is not deleted: the archive is there
        to keep history, so retention waits until it can be written.
        """
        if self.archive is None:
            return True
        seqs = [row[0] for row in self.conn.execute(select_seqs, params)]
        try:
            self.archive.save(self.conn, seqs)
        except OSError as error:
            log.error("cannot archive %d messages, so they are kept for now: %s", len(seqs), error)
            return False
        return True

    # -- the process ---------------------------------------------------------

    def serve(self, pipe: Connection) -> None:
        """Answer batches from ``pipe`` until it closes; write summaries and sweep by age meanwhile.

        Batches come first: they hold clients waiting for their 250. Summaries
        wait until ``SUMMARY_BATCH`` are ready or the oldest has waited
        ``SUMMARY_DELAY``: the full-text index makes every commit that touches
        it cost far more than the rows do, so one client sending mail after
        mail is not slowed by one such commit per message.
        """
        next_sweep = time.monotonic() + MAINTENANCE_INTERVAL
        # One selector for the writer's life, rather than one built per wait:
        # a lone client pays for every wait on the way to its 250.
        selector = selectors.DefaultSelector()
        selector.register(pipe.fileno(), selectors.EVENT_READ, "pipe")
        wake: Connection | None = None
        wake_fd = -1
        try:
            while True:
                if self.summarizer.wake is not wake:  # a new parser after one died
                    if wake is not None:
                        selector.unregister(wake_fd)
                    wake = self.summarizer.wake
                    wake_fd = wake.fileno()
                    selector.register(wake_fd, selectors.EVENT_READ, "wake")
                ready = {key.data for key, _ in selector.select(self._wait_time())}
                if "wake" in ready:
                    self._take_summaries()
                if "pipe" in ready:
                    batch = receive_batch(pipe)
                    # Under load (several clients in one batch), summaries ready by
                    # now share the batch's transaction: one commit instead of two.
                    # A lone client's 250 does not wait for them.
                    parsed = self._take_summaries(everything=True) if len(batch) > 1 else []
                    outcomes = self.apply_batch(batch, parsed)
                    pipe.send(("batch", outcomes, self.commits, self.take_pruned()))
                    self.parse_committed()
                    if parsed:
                        pipe.send(("parsed", [item.message_id for item in parsed]))
                if self._summaries_due():
                    ids = self.apply_parsed(self._take_summaries(everything=True))
                    pipe.send(("parsed", ids))
                if self.max_age is not None and time.monotonic() >= next_sweep:
                    self.prune()
                    next_sweep = time.monotonic() + MAINTENANCE_INTERVAL
        except (EOFError, OSError):  # the server is gone: everything asked for is committed
            return
        finally:
            selector.close()

    def _take_summaries(self, everything: bool = False) -> list[Parsed]:
        """Collect the parser's results; with ``everything``, hand over a group of them."""
        done = self.summarizer.take_done()
        if done and not self._summaries:
            self._summaries_since = time.monotonic()
        self._summaries += done
        if not everything:
            return []
        taken = self._summaries[:SUMMARY_BATCH]
        del self._summaries[:SUMMARY_BATCH]
        if self._summaries:
            self._summaries_since = time.monotonic()  # the rest: a group of their own, soon
        return taken

    def _summaries_due(self) -> bool:
        if not self._summaries:
            return False
        waited = time.monotonic() - self._summaries_since
        return len(self._summaries) >= SUMMARY_BATCH or waited >= SUMMARY_DELAY

    def _wait_time(self) -> float:
        if not self._summaries:
            return MAINTENANCE_INTERVAL
        return max(0.0, self._summaries_since + SUMMARY_DELAY - time.monotonic())


def main(argv: list[str]) -> None:
    """Entry point of the writer process: FD PATH MAX_MESSAGES MAX_AGE (or "-") SYNC TAGGING
    [ARCHIVE FORMAT]."""
    # Ctrl+C reaches the whole process group; the server decides when the
    # writer stops (by closing the socket), so queued writes are never cut off.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd, path, max_messages, max_age, sync, tagging = argv[:6]
    archive = Archive(Path(argv[6]), argv[7]) if len(argv) > 6 else None
    pipe = Connection(int(fd))
    try:
        writer = Writer(
            Path(path),
            max_messages=int(max_messages),
            max_age=None if max_age == "-" else float(max_age),
            sync=sync,
            tagging=Tagging.from_json(tagging),
            archive=archive,
        )
    except Exception as error:
        pipe.send(("failed", f"{type(error).__name__}: {error}"))
        return
    pipe.send(("ready", None))
    try:
        writer.serve(pipe)
    finally:
        writer.close()


if __name__ == "__main__":
    main(sys.argv[1:])
