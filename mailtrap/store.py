"""Durable message storage in SQLite.

Every write goes to the writer process (:mod:`mailtrap.writer`), in batches:
what is queued while one batch commits travels together as the next (group
commit). Whoever submits a write gets a future that resolves only after the
transaction holding it is committed. Reads use a connection per thread in
this process, and WAL mode keeps them from blocking the writer.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import queue
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from mailtrap.checks import cache as check_cache
from mailtrap.errors import MessageNotFound, StorageError
from mailtrap.events import EventHub
from mailtrap.message import summary
from mailtrap.part_index import BlobSource, stored_chunks
from mailtrap.rows import IncomingMessage
from mailtrap.schema import prepare_database
from mailtrap.search import Search
from mailtrap.spool import make_spool_dir
from mailtrap.tags.arrival import Tagging
from mailtrap.writer import connect, send_batch

__all__ = ["IncomingMessage", "Store"]

log = logging.getLogger(__name__)

MAX_BATCH = 256
READER_MMAP_SIZE = 1 << 30  # bytes of the database each reader maps (address space only)
MAX_IDLE_READERS = 16  # read connections kept for the next threads
# What a MessageSummary needs: listing never reads bodies, headers or search text.
SUMMARY_COLUMNS = (
    "id, message_id, read, from_name, from_address, to_json, cc_json, bcc_json, "
    "reply_to_json, subject, created, auth_user, tags, size, attachments, snippet"
)
WRITER_START_TIMEOUT = 30.0
# More changes than this in one write are announced as one "prune" event (clients
# reload), as Mailpit announces a search deleting more than 200 messages.
PRUNE_EVENT_AFTER = 200
# How long a read waits for the summaries of messages already acknowledged;
# longer than the parser's CPU budget per message.
SETTLE_TIMEOUT = 5.0
SUBJECTS_CHUNK = 500  # IDs bound per query (SQLite's limit on variables is far above)


@dataclass
class Page:
    """One page of messages, newest first, with the counts of everything that matched."""

    rows: list[sqlite3.Row]
    total: int
    unread: int


@dataclass
class _Job:
    name: str
    args: tuple[Any, ...]
    future: Future[Any] = field(default_factory=Future)


@dataclass
class _InFlight:
    """The batch the writer is working on; the receiving thread fills in how it ended."""

    jobs: list[_Job]
    answered: threading.Event = field(default_factory=threading.Event)
    failure: BaseException | None = None


_STOP = object()


class _ThreadToken:
    """Lives exactly as long as a thread's locals."""


def _return_reader(pool: list[sqlite3.Connection], conn: sqlite3.Connection) -> None:
    if conn.in_transaction:  # left open by a thread that died mid-read
        conn.rollback()
    if len(pool) < MAX_IDLE_READERS:
        pool.append(conn)
    else:
        conn.close()


def _deleted_count(jobs: list[_Job], outcomes: list[Any], pruned: list[str]) -> int:
    """How many messages a batch deleted: by request, and by retention."""
    count = len(pruned)
    for job, (ok, value) in zip(jobs, outcomes, strict=True):
        if ok and job.name == "delete":
            count += len(value)
        elif ok and job.name == "delete_all":
            count += value
    return count


class Store:
    """The message store of one SQLite file.

    ``max_messages`` (0 = unlimited) and ``max_age`` (seconds, None = off)
    prune the oldest messages. ``sync`` is SQLite's synchronous setting for
    acknowledged writes: "full" (fsync before every answer) or "normal".
    """

    def __init__(
        self,
        path: Path,
        *,
        max_messages: int = 0,
        max_age: float | None = None,
        sync: str = "normal",
        hub: EventHub | None = None,
        tagging: Tagging | None = None,
        archive: Path | None = None,
        archive_format: str = "maildir",
    ):
        self.path = Path(path)
        self.tagging = tagging or Tagging()
        self.hub = hub if hub is not None else EventHub()
        self.max_messages = max_messages
        self.max_age = max_age
        self.sync = sync
        self.archive = archive  # where retention writes messages before deleting them
        self.archive_format = archive_format
        self.deleted = 0  # messages deleted or pruned through this store, ever
        self.commits = 0  # transactions the writer has committed, as last reported
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._dispatcher: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._pipe: Connection | None = None
        self._receiver: threading.Thread | None = None
        self._in_flight: _InFlight | None = None
        self._readers = threading.local()
        self._idle_readers: list[sqlite3.Connection] = []  # of threads that have ended
        # Acknowledged messages whose summary is not written yet; reads wait for them.
        self._unparsed: set[str] = set()
        self._parsed = threading.Condition()
        self.spool_dir: Path | None = None
        self._parsed_listeners: list[Callable[[list[str]], None]] = []
        # Unique across stores and restarts without a system call per message.
        self._receipt_prefix = secrets.token_hex(6) + "-"
        self._receipts = itertools.count()

    # -- lifecycle -----------------------------------------------------------

    def open(self) -> Store:
        """Create or migrate the database and start the writer."""
        try:
            prepare_database(self.path)
        except (OSError, sqlite3.Error) as error:
            raise StorageError(f"cannot open database {self.path}: {error}") from error
        self.spool_dir = make_spool_dir(self.path)
        # Left unparsed by a crash: the writer parses them first, and reads wait for that.
        self._unparsed.update(
            row[0] for row in self.reader.execute("SELECT id FROM messages WHERE parsed = 0")
        )
        self._start_writer()
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="mailtrap-store", daemon=True
        )
        self._dispatcher.start()
        return self

    def close(self) -> None:
        """Finish every queued write and summary, then stop the writer."""
        if self._dispatcher is not None:
            self._jobs.put(_STOP)
            self._dispatcher.join()
            self._dispatcher = None
        self.settle()  # so that the last messages' events go out
        self._stop_writer()
        if self.spool_dir is not None:
            shutil.rmtree(self.spool_dir, ignore_errors=True)
            self.spool_dir = None

    def __enter__(self) -> Store:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start_writer(self) -> None:
        # A plain subprocess rather than multiprocessing: it never re-imports
        # the caller's __main__, and it imports only the writer's own needs.
        ours, theirs = socket.socketpair()
        max_age = "-" if self.max_age is None else repr(self.max_age)
        command = [sys.executable, "-m", "mailtrap.writer", str(theirs.fileno()), str(self.path)]
        command += [str(self.max_messages), max_age, self.sync, self.tagging.to_json()]
        if self.archive is not None:
            command += [str(self.archive), self.archive_format]
        try:
            process = subprocess.Popen(
                command,
                pass_fds=[theirs.fileno()],
            )
        finally:
            theirs.close()
        pipe = Connection(ours.detach())
        if not pipe.poll(WRITER_START_TIMEOUT):
            process.kill()
            process.wait()
            raise StorageError("the writer process did not start")
        try:
            status, detail = pipe.recv()
        except EOFError:
            status, detail = "failed", f"exit status {process.wait()}"
        if status != "ready":
            process.wait()
            raise StorageError(f"cannot open database {self.path}: {detail}")
        self._process, self._pipe = process, pipe
        self._receiver = threading.Thread(
            target=self._receive, args=(pipe,), name="mailtrap-store-answers", daemon=True
        )
        self._receiver.start()
        # A writer that died took its queue of messages to parse along; the new
        # one parses those still unparsed, and no read waits for the others.
        with self._parsed:
            if self._unparsed:
                sql = "SELECT id FROM messages WHERE parsed = 0"
                self._unparsed &= {row[0] for row in self.reader.execute(sql)}
                self._parsed.notify_all()

    def _stop_writer(self) -> None:
        if self._pipe is not None:
            # The writer sees EOF, finishes and exits; its end closing ends the
            # receiving thread, which a plain close() here would not wake.
            with (
                socket.fromfd(self._pipe.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as ours,
                contextlib.suppress(OSError),  # the writer is gone already
            ):
                ours.shutdown(socket.SHUT_WR)
        if self._process is not None:
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._receiver is not None:
            self._receiver.join(10)
            self._receiver = None
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None

    # -- writes --------------------------------------------------------------

    def add(self, message: IncomingMessage) -> Future[str]:
        """Queue a message; the future gives its ID once it is committed."""
        return self._submit("add", message)

    def delete(self, ids: Iterable[str]) -> Future[list[str]]:
        """Delete messages by ID; the future gives the IDs that existed."""
        return self._submit("delete", list(ids))

    def delete_all(self) -> Future[int]:
        """Delete every message; the future gives how many there were."""
        return self._submit("delete_all")

    def set_read(self, ids: Iterable[str] | None, read: bool = True) -> Future[list[str]]:
        """Mark messages (``ids`` None: all) read or unread; gives the IDs that changed."""
        return self._submit("set_read", None if ids is None else list(ids), read)

    def set_tags(
        self, ids: Iterable[str], tags: Iterable[str]
    ) -> Future[list[tuple[str, list[str]]]]:
        """Replace the tags of messages; gives (ID, tags as stored) of those that exist.

        Waits for pending summaries first: a summary written after these tags
        would put back the tags the message itself carries.
        """
        self.settle()
        return self._submit("set_tags", list(ids), list(tags))

    def add_tags(
        self, ids: Iterable[str], tags: Iterable[str]
    ) -> Future[list[tuple[str, list[str]]]]:
        """Add tags to messages; gives (ID, tags) of those whose tags changed."""
        self.settle()  # as set_tags: no summary written later may undo this
        return self._submit("add_tags", list(ids), list(tags))

    def rename_tag(self, old: str, new: str) -> Future[tuple[str, list[str]]]:
        """Rename a tag everywhere: ("renamed", IDs), ("not found", []) or ("exists", [])."""
        self.settle()  # as set_tags: no summary written later may undo this
        return self._submit("rename_tag", old, new)

    def delete_tag(self, name: str) -> Future[tuple[str, list[str]]]:
        """Take a tag off every message: ("deleted", IDs) or ("not found", [])."""
        self.settle()  # as set_tags: no summary written later may undo this
        return self._submit("delete_tag", name)

    def relay_write(self, name: str, *args: Any) -> Future[Any]:
        """A write to the relay queue, by its name in :data:`mailtrap.relay.queue.WRITES`."""
        return self._submit("relay", name, *args)

    def add_parsed_listener(self, listener: Callable[[list[str]], None]) -> None:
        """Call ``listener(IDs)`` (on the store's answer thread) when summaries are written."""
        self._parsed_listeners.append(listener)

    def save_check(self, message_id: str, name: str, key: str, result: Any) -> Future[bool]:
        """Cache a check result (JSON-able) of a message; gives False if the message is gone."""
        return self._submit("save_check", message_id, name, key, json.dumps(result))

    def apply_retention(self) -> Future[None]:
        """Prune now by ``max_messages`` and ``max_age``, as after a write of another process."""
        return self._submit("prune")

    @property
    def receipt_prefix(self) -> str:
        """What the receipts of this store's writes start with (``mailtrap.live_ingest``)."""
        return self._receipt_prefix

    def _submit(self, name: str, *args: Any) -> Future[Any]:
        if self._dispatcher is None:
            raise StorageError("the store is not open")
        job = _Job(name, args)
        self._jobs.put(job)
        return job.future

    def _dispatch(self) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
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
            # A caller may have given up on a write; it is then not sent at all.
            batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if batch:
                self._send(batch)

    def _send(self, batch: list[_Job]) -> None:
        for job in batch:
            if job.name == "add":
                job.args[0].receipt = f"{self._receipt_prefix}{next(self._receipts)}"
        # A writer that dies with a batch in hand may have committed some of
        # it: those are found by their receipts, and the rest is sent once more.
        for retries_left in (1, 0):
            failure = self._send_once(batch)
            if failure is None:
                return
            self._stop_writer()
            batch = self._recover(batch)
            try:
                # At once, even with nothing left to send: the new writer parses
                # what the dead one committed but never summarized.
                self._start_writer()
            except StorageError as error:
                failure, retries_left = error, 0
            if not batch:
                return
            if not retries_left:
                for job in batch:
                    self._finish(job, StorageError(f"the writer process failed: {failure}"))
                return

    def _send_once(self, batch: list[_Job]) -> BaseException | None:
        """Send a batch and wait for its outcomes; the error if the writer failed."""
        try:
            if self._process is not None and self._process.poll() is not None:
                self._stop_writer()  # it died while idle: nothing of this batch is lost yet
            if self._pipe is None:
                self._start_writer()
            assert self._pipe is not None
            self._in_flight = in_flight = _InFlight(batch)
            send_batch(self._pipe, [(job.name, job.args) for job in batch])
        except (OSError, StorageError) as error:
            self._in_flight = None
            return error
        in_flight.answered.wait()
        return in_flight.failure

    def _recover(self, batch: list[_Job]) -> list[_Job]:
        """Resolve the adds of ``batch`` that were committed; return the jobs still to do."""
        waiting = {job.args[0].receipt: job for job in batch if job.name == "add"}
        if waiting:
            # Only the newest rows can hold them: look no further back than that.
            sql = "SELECT id, receipt, parsed FROM messages ORDER BY seq DESC LIMIT ?"
            for message_id, receipt, parsed in self.reader.execute(sql, [len(batch) + MAX_BATCH]):
                job = waiting.pop(receipt, None)
                if job is not None:
                    log.warning(
                        "the writer died after committing %s; answered from the database",
                        message_id,
                    )
                    if not parsed:
                        self._unparsed.add(message_id)
                    self._finish(job, message_id)
        return [job for job in batch if not job.future.done()]

    def _finish(self, job: _Job, outcome: Any) -> None:
        """Resolve a job (an exception fails it); a spooled message's file goes then."""
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)
        if job.name == "add" and job.args[0].spool is not None:
            Path(job.args[0].spool).unlink(missing_ok=True)

    def _receive(self, pipe: Connection) -> None:
        """The writer's answers, in a thread: batch outcomes, and summaries as they land."""
        while True:
            try:
                answer = pipe.recv()
            except (OSError, EOFError) as error:
                in_flight, self._in_flight = self._in_flight, None
                if in_flight is not None:
                    in_flight.failure = error
                    in_flight.answered.set()
                return
            if answer[0] == "parsed":
                self._guarded(self._on_parsed, answer[1])
                continue
            _, outcomes, self.commits, pruned = answer
            in_flight, self._in_flight = self._in_flight, None
            assert in_flight is not None
            for job, (ok, value) in zip(in_flight.jobs, outcomes, strict=True):
                if ok and job.name == "add":
                    with self._parsed:
                        self._unparsed.add(value)  # before the 250: reads after it wait
                self._finish(job, value if ok else StorageError(f"could not write: {value}"))
            self.deleted += _deleted_count(in_flight.jobs, outcomes, pruned)
            in_flight.answered.set()
            if self.hub.has_subscribers:
                self._guarded(self._publish, in_flight.jobs, outcomes, pruned)

    def _guarded(self, function: Callable[..., None], *args: Any) -> None:
        """Run an event step; should it fail, this thread must live on, or no write is answered."""
        try:
            function(*args)
        except Exception:
            log.exception("publishing events failed")

    def _on_parsed(self, ids: list[str]) -> None:
        # Announced before reads stop waiting: whoever settle() lets through has had the event.
        try:
            if self.hub.has_subscribers:
                for message_id in ids:
                    try:
                        self.hub.publish("new", summary(self._row(message_id)))
                    except MessageNotFound:  # pruned or deleted in the same breath
                        continue
        finally:
            with self._parsed:
                self._unparsed.difference_update(ids)
                self._parsed.notify_all()
            for listener in self._parsed_listeners:
                self._guarded(listener, ids)

    def settle(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Wait until every message acknowledged so far has its summary written.

        Reads that show summaries call this, so a message is never listed
        half-parsed after its 250; it costs nothing while nothing is pending.
        """
        if not self._unparsed:
            return
        process = self._process
        if process is not None and process.poll() is not None and self._dispatcher is not None:
            # The writer died with summaries to write, and nothing restarts it
            # until the next write: this empty one does, and the new writer
            # parses what the dead one left.
            self.set_read([], True)
        deadline = time.monotonic() + timeout
        with self._parsed:
            waiting = set(self._unparsed)
            while not waiting.isdisjoint(self._unparsed):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # Something is wrong with them; later reads need not wait too.
                    log.warning("reading before %d summaries are written", len(waiting))
                    self._unparsed -= waiting
                    return
                self._parsed.wait(remaining)

    def _publish(self, batch: list[_Job], outcomes: list[Any], pruned: list[str]) -> None:
        """Tell subscribers what the batch changed, in Mailpit's event shapes.

        New messages are announced when their summary is in (:meth:`_on_parsed`).
        """
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            if not ok:
                continue
            if job.name == "delete":
                self._publish_each("delete", value, lambda message_id: {"ID": message_id})
            elif job.name == "delete_all":
                self.hub.publish("truncate")
            elif job.name == "set_read":
                self._publish_each(
                    "update",
                    value,
                    lambda message_id, read=job.args[1]: {"ID": message_id, "Read": read},
                )
            elif job.name in ("set_tags", "add_tags"):
                self._publish_each("update", value, lambda pair: {"ID": pair[0], "Tags": pair[1]})
            elif job.name in ("rename_tag", "delete_tag") and value[1]:
                self.hub.publish("prune")  # as Mailpit: clients reload what they show
        self._publish_each("delete", pruned, lambda message_id: {"ID": message_id})

    def _publish_each(self, type: str, items: list[Any], data: Callable[[Any], Any]) -> None:
        """An event per message; more than PRUNE_EVENT_AFTER of them: one ``prune`` event."""
        if len(items) > PRUNE_EVENT_AFTER:
            self.hub.publish("prune")
            return
        for item in items:
            self.hub.publish(type, data(item))

    # -- reads ---------------------------------------------------------------

    @property
    def reader(self) -> sqlite3.Connection:
        """This thread's read connection.

        When the thread ends, its connection goes back to a pool for the next
        one: the HTTP server starts a thread per request, and a new connection
        would read the schema and map the file again (page faults) every time.
        """
        conn = getattr(self._readers, "conn", None)
        if conn is None:
            try:
                conn = self._idle_readers.pop()
            except IndexError:
                conn = connect(self.path)
                conn.row_factory = sqlite3.Row
                # Searches that scan the table read it from the page cache in place
                # instead of a system call and a copy per page: 3-4x faster at 100k.
                conn.execute(f"PRAGMA mmap_size = {READER_MMAP_SIZE}")
            self._readers.conn = conn
            # This thread's locals, and so the token, are dropped when it ends.
            self._readers.token = token = _ThreadToken()
            weakref.finalize(token, _return_reader, self._idle_readers, conn)
        return conn

    def cached_check(
        self, message_id: str, name: str, key: str, max_age: float | None = None
    ) -> Any | None:
        """A cached check result with fingerprint ``key``, or None."""
        return check_cache.load(self.reader, message_id, name, key, max_age)

    def count(self) -> int:
        return self.reader.execute("SELECT count(*) FROM messages").fetchone()[0]

    def ids(self) -> list[str]:
        """Every stored ID, oldest first."""
        return [row[0] for row in self.reader.execute("SELECT id FROM messages ORDER BY seq")]

    def get(self, message_id: str) -> sqlite3.Row:
        self.settle()
        return self._row(message_id)

    def _row(self, message_id: str) -> sqlite3.Row:
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

    def source(self, message_id: str) -> tuple[sqlite3.Row, BlobSource]:
        """A message's row, and its part index and bytes to read by range."""
        with self.snapshot() as conn:
            row = self.get(message_id)
            return row, BlobSource(conn, row["seq"])

    def raw_chunks(self, message_id: str) -> tuple[int, Iterator[bytes]]:
        """A message's size and its raw bytes in chunks, to stream in bounded memory."""
        row = self.reader.execute(
            "SELECT seq, size FROM messages WHERE id = ?", [message_id]
        ).fetchone()
        if row is None:
            raise MessageNotFound(message_id)
        return row["size"], stored_chunks(self.reader, row["seq"], (0, row["size"]))

    def iter_raw(self) -> Iterator[tuple[str, bytes]]:
        """(ID, raw bytes) of every message, oldest first, one at a time."""
        for message_id in self.ids():
            try:
                yield message_id, self.raw(message_id)
            except MessageNotFound:  # deleted meanwhile
                continue

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """This thread's read connection, inside one read transaction: a consistent view."""
        conn = self.reader
        if conn.in_transaction:  # already inside one
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def counts(self) -> tuple[int, int]:
        """(messages, unread messages), both from the ``read`` index."""
        self.settle()
        with self.snapshot() as conn:
            total = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
            unread = conn.execute("SELECT count(*) FROM messages WHERE read = 0").fetchone()[0]
        return total, unread

    def page(self, search: Search, start: int = 0, limit: int = 50) -> Page:
        """Summary rows of the messages matching ``search``, newest first."""
        self.settle()
        with self.snapshot() as conn:
            rows = conn.execute(
                f"SELECT {SUMMARY_COLUMNS} FROM messages WHERE {search.where} "
                "ORDER BY seq DESC LIMIT ? OFFSET ?",
                [*search.params, limit, start],
            ).fetchall()
            if search.matches_everything:
                total, unread = self.counts()
            else:
                total, unread = conn.execute(
                    f"SELECT count(*), coalesce(sum(read = 0), 0) FROM messages "
                    f"WHERE {search.where}",
                    search.params,
                ).fetchone()
        return Page(rows, total, unread)

    def matching_ids(self, search: Search, limit: int = -1) -> list[str]:
        """IDs of every message matching ``search`` (the newest ``limit``), newest first."""
        self.settle()
        sql = f"SELECT id FROM messages WHERE {search.where} ORDER BY seq DESC LIMIT ?"
        return [row[0] for row in self.reader.execute(sql, [*search.params, limit])]

    def subjects(self, message_ids: list[str]) -> dict[str, str]:
        """The subject of each of ``message_ids`` that exists."""
        self.settle()
        found: dict[str, str] = {}
        for start in range(0, len(message_ids), SUBJECTS_CHUNK):
            chunk = message_ids[start : start + SUBJECTS_CHUNK]
            sql = f"SELECT id, subject FROM messages WHERE id IN ({', '.join('?' * len(chunk))})"
            found.update((row[0], row[1] or "") for row in self.reader.execute(sql, chunk))
        return found

    def latest_id(self, search: Search | None = None) -> str:
        """The ID of the newest message (matching ``search``); MessageNotFound if none."""
        search = search or Search()
        self.settle()
        sql = f"SELECT id FROM messages WHERE {search.where} ORDER BY seq DESC LIMIT 1"
        row = self.reader.execute(sql, search.params).fetchone()
        if row is None:
            raise MessageNotFound("latest")
        return row[0]

    def tag_counts(self) -> dict[str, int]:
        """Every tag in use, sorted, with how many messages have it."""
        self.settle()
        sql = "SELECT name, messages FROM tag_names ORDER BY name"
        return {name: count for name, count in self.reader.execute(sql)}

    def tags(self) -> list[str]:
        return list(self.tag_counts())

    def database_size(self) -> int:
        """Bytes on disk: the database file and its write-ahead log."""
        paths = [self.path, self.path.with_name(self.path.name + "-wal")]
        return sum(path.stat().st_size for path in paths if path.exists())
