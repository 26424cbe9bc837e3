"""The writer process: the only code that writes messages to the database.

It runs in a process of its own so that committing mail uses the second core
instead of competing with the SMTP loop for the GIL; parsing and indexing run
in a third (:mod:`mailtrap.summarizer`). It takes
batches of operations from a socket, applies each batch in one transaction
(group commit), and answers with one result per operation once it is
committed. Started as ``python -m mailtrap.writer FD PATH MAX_MESSAGES MAX_AGE SYNC``
by :class:`mailtrap.store.Store`; it imports only what writing needs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import sqlite3
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from mailtrap.archive import Archive
from mailtrap.checks import cache as check_cache
from mailtrap.part_index import write_part_index
from mailtrap.relay import queue as relay_queue
from mailtrap.rows import INSERT_ENVELOPE, UPDATE_SUMMARY, IncomingMessage, envelope_row
from mailtrap.summarizer import Parsed, Summarizer, unparsed

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL = 60.0  # seconds between --max-age sweeps
SPOOL_COPY_CHUNK = 1024 * 1024  # bytes of a spooled message copied into its blob at a time
SUMMARY_BATCH = 64  # summaries written in one transaction once this many are ready
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


def send_batch(pipe: Connection, batch: list[Operation]) -> None:
    """Send a batch; raw messages travel as plain byte strings after it.

    Pickling a message would copy its raw bytes once more on each side, which
    a 25 MB message feels. A spooled message travels as its file's name.
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
        sync: str = "full",
        archive: Archive | None = None,
    ):
        self.conn = connect(path)
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
        self.summarizer = Summarizer(path)
        self._summaries: list[Parsed] = []  # parsed, not written yet
        self._summaries_since = 0.0  # when the oldest of them was collected
        self.prune()
        # Committed before a crash but never parsed: parse them now.
        for seq, message_id, rcpt_tos in unparsed(self.conn):
            self.summarizer.submit(seq, message_id, rcpt_tos)

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

    def op_prune(self) -> None:
        """Retention now: another process (``mailtrap ingest``) may have added messages."""
        self._delete_expired()

    def op_set_tags(self, ids: list[str], tags: list[str]) -> list[str]:
        """Replace the tags of messages; returns the IDs that exist."""
        value = json.dumps(sorted(set(tags)))
        updated: list[str] = []
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            sql = f"UPDATE messages SET tags = ? WHERE id IN ({marks}) RETURNING id"
            updated += [row[0] for row in self.conn.execute(sql, [value, *chunk])]
        return updated

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
            self.summarizer.submit(seq, message_id, message.rcpt_tos)
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
            if item.values is not None:
                self.conn.execute(UPDATE_SUMMARY, {**item.values, "seq": item.seq})
            if item.index is not None:
                write_part_index(self.conn, item.seq, item.index)

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
        try:
            while True:
                wake = self.summarizer.wake  # a new one if the parser was restarted
                ready = wait([pipe, wake], self._wait_time())
                if wake in ready:
                    self._take_summaries()
                if pipe in ready:
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

    def _take_summaries(self, everything: bool = False) -> list[Parsed]:
        """Collect the parser's results; with ``everything``, hand them all over."""
        done = self.summarizer.take_done()
        if done and not self._summaries:
            self._summaries_since = time.monotonic()
        self._summaries += done
        if not everything:
            return []
        taken, self._summaries = self._summaries, []
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
    """Entry point of the writer process: FD PATH MAX_MESSAGES MAX_AGE (or "-") SYNC
    [ARCHIVE FORMAT]."""
    # Ctrl+C reaches the whole process group; the server decides when the
    # writer stops (by closing the socket), so queued writes are never cut off.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd, path, max_messages, max_age, sync = argv[:5]
    archive = Archive(Path(argv[5]), argv[6]) if len(argv) > 5 else None
    pipe = Connection(int(fd))
    try:
        writer = Writer(
            Path(path),
            max_messages=int(max_messages),
            max_age=None if max_age == "-" else float(max_age),
            sync=sync,
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
