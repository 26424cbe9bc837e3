"""Durable message storage in SQLite.

Every write goes to the writer process (:mod:`mailtrap.writer`), in batches:
what is queued while one batch commits travels together as the next (group
commit). Whoever submits a write gets a future that resolves only after the
transaction holding it is committed. The store talks to the writer from an
asyncio loop of its own, which the server's SMTP and POP3 listeners share
(:attr:`Store.loop`): a message handed over on that loop goes straight to the
writer's socket, and its answer is read there, with no other thread on the way
to the ``250``. Reads use a connection per thread in this process, and WAL
mode keeps them from blocking the writer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailtrap.checks import cache as check_cache
from mailtrap.errors import MessageNotFound, StorageError
from mailtrap.events import EventHub
from mailtrap.frames import FrameReader, frame
from mailtrap.message import summary
from mailtrap.part_index import BlobSource, stored_chunks
from mailtrap.rows import IncomingMessage
from mailtrap.schema import prepare_database
from mailtrap.search import Search
from mailtrap.spool import make_spool_dir
from mailtrap.tags.arrival import Tagging
from mailtrap.writer import batch_payloads, connect

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


class _ThreadToken:
    """Lives exactly as long as a thread's locals."""


def _return_reader(pool: list[sqlite3.Connection], conn: sqlite3.Connection) -> None:
    if conn.in_transaction:  # left open by a thread that died mid-read
        conn.rollback()
    if len(pool) < MAX_IDLE_READERS:
        pool.append(conn)
    else:
        conn.close()


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Wait for a writer process to end; one that does not within 10 s is killed."""
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
        # The loop the store talks to the writer from, and its thread.
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._accepting = False  # writes are taken (from open() until close())
        self._queue: collections.deque[_Job] = collections.deque()
        self._queue_lock = threading.Lock()
        # On the loop only: the writer, its socket, and the batch it holds.
        self._process: subprocess.Popen[bytes] | None = None
        self._link: FrameReader | None = None
        self._ready: asyncio.Future[tuple[str, Any]] | None = None
        self._in_flight: list[_Job] | None = None
        self._attempt = 1  # of the batch in flight: a batch is sent at most twice
        self._restarting = False
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Events and parsed listeners run here, in order, off the loop.
        self._events: ThreadPoolExecutor | None = None
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
        """Create or migrate the database and start the loop and the writer."""
        try:
            prepare_database(self.path)
        except (OSError, sqlite3.Error) as error:
            raise StorageError(f"cannot open database {self.path}: {error}") from error
        self.spool_dir = make_spool_dir(self.path)
        # Left unparsed by a crash: the writer parses them first, and reads wait for that.
        self._unparsed.update(
            row[0] for row in self.reader.execute("SELECT id FROM messages WHERE parsed = 0")
        )
        self._events = ThreadPoolExecutor(1, thread_name_prefix="mailtrap-store-events")
        self._stopping = self._restarting = False
        self._in_flight = None
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self.loop.run_forever, name="mailtrap-loop", daemon=True
        )
        self._loop_thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start_writer(), self.loop).result()
        except BaseException:
            self._stop_loop()
            raise
        self._accepting = True
        return self

    def close(self) -> None:
        """Finish every queued write and summary, then stop the writer and the loop."""
        if self.loop is None:
            return
        if self._accepting:
            with self._queue_lock:
                self._accepting = False
            # Batches are answered in order: once this is, so is everything before it.
            with contextlib.suppress(StorageError):
                self._enqueue(_Job("flush", ())).result()
            self.settle()  # so that the last messages' events go out
        asyncio.run_coroutine_threadsafe(self._stop_writer(), self.loop).result()
        self._stop_loop()
        if self.spool_dir is not None:
            shutil.rmtree(self.spool_dir, ignore_errors=True)
            self.spool_dir = None

    def _stop_loop(self) -> None:
        assert self.loop is not None and self._loop_thread is not None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_thread.join()
        self.loop.close()
        self.loop = self._loop_thread = None
        if self._events is not None:
            self._events.shutdown(wait=True)
            self._events = None

    def __enter__(self) -> Store:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def _on_loop(self) -> bool:
        return threading.current_thread() is self._loop_thread

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` as a task on the loop, holding on to it until it ends."""
        assert self.loop is not None
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_writer(self) -> None:
        """Start a writer process and connect to it; StorageError if it does not come up."""
        # A plain subprocess rather than multiprocessing: it never re-imports
        # the caller's __main__, and it imports only the writer's own needs.
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        max_age = "-" if self.max_age is None else repr(self.max_age)
        command = [sys.executable, "-m", "mailtrap.writer", str(theirs.fileno()), str(self.path)]
        command += [str(self.max_messages), max_age, self.sync, self.tagging.to_json()]
        if self.archive is not None:
            command += [str(self.archive), self.archive_format]
        try:
            process = subprocess.Popen(command, pass_fds=[theirs.fileno()])
        finally:
            theirs.close()
        self._ready = ready = loop.create_future()
        link = FrameReader(self._on_answer, lambda error: self._on_lost(link, error))
        await loop.create_unix_connection(lambda: link, sock=ours)
        try:
            status, detail = await asyncio.wait_for(ready, WRITER_START_TIMEOUT)
        except (TimeoutError, EOFError) as error:
            status, detail = "failed", "it did not start" if isinstance(error, TimeoutError) else ""
        if status != "ready":
            assert link.transport is not None
            link.transport.abort()
            await loop.run_in_executor(None, _reap, process)
            detail = detail or f"exit status {process.returncode}"
            raise StorageError(f"cannot open database {self.path}: {detail}")
        self._process, self._link = process, link
        # A writer that died took its queue of messages to parse along; the new
        # one parses those still unparsed, and no read waits for the others.
        with self._parsed:
            if self._unparsed:
                sql = "SELECT id FROM messages WHERE parsed = 0"
                self._unparsed &= {row[0] for row in self.reader.execute(sql)}
                self._parsed.notify_all()

    async def _stop_writer(self) -> None:
        """Let the writer finish and exit: it sees the end of its input, writes what is left."""
        link, process = self._link, self._process
        self._stopping = True
        if link is not None and link.transport is not None:
            link.transport.write_eof()
        if process is not None:
            await asyncio.get_running_loop().run_in_executor(None, _reap, process)
        if link is not None and link.transport is not None:
            link.transport.close()
        self._link = self._process = None

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
        """Call ``listener(IDs)`` (in the store's events thread) when summaries are written."""
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
        return self._enqueue(_Job(name, args))

    def _enqueue(self, job: _Job) -> Future[Any]:
        with self._queue_lock:
            if not self._accepting and job.name != "flush":
                raise StorageError("the store is not open")
            first = not self._queue
            self._queue.append(job)
        if self._on_loop:
            self._kick()  # the SMTP handler's message goes to the writer right now
        elif first:
            # Behind others, it is sent with them: a kick is due already, or the
            # answer of the batch in flight (or the restart of the writer) kicks.
            assert self.loop is not None
            self.loop.call_soon_threadsafe(self._kick)
        return job.future

    def _kick(self) -> None:
        """Send what is queued as one batch, unless one is with the writer (group commit)."""
        if self._in_flight is not None or self._restarting or self._stopping:
            return
        if self._link is None:  # the last start failed: try again for these writes
            if self._queue:
                self._begin_restart()
            return
        while self._queue:
            with self._queue_lock:
                taken = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
            # A caller may have given up on a write; it is then not sent at all.
            batch = [job for job in taken if job.future.set_running_or_notify_cancel()]
            if batch:
                self._send(batch)
                return

    def _send(self, batch: list[_Job]) -> None:
        for job in batch:
            if job.name == "add":
                job.args[0].receipt = f"{self._receipt_prefix}{next(self._receipts)}"
        self._in_flight, self._attempt = batch, 1
        self._transmit(batch)

    def _transmit(self, batch: list[_Job]) -> None:
        assert self._link is not None and self._link.transport is not None
        try:
            payloads = batch_payloads([(job.name, job.args) for job in batch])
        except Exception as error:  # cannot be sent at all (not picklable)
            self._in_flight = None
            for job in batch:
                self._finish(job, StorageError(f"could not write: {error}"))
            self._kick()
            return
        self._link.transport.writelines([part for payload in payloads for part in frame(payload)])

    def _on_answer(self, answer: tuple[Any, ...]) -> None:
        """An answer of the writer, on the loop: batch outcomes, summaries written, or ready."""
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(answer)
            return
        if answer[0] == "parsed":
            self._in_events(self._on_parsed, answer[1])
            return
        _, outcomes, self.commits, pruned = answer
        batch, self._in_flight = self._in_flight, None
        assert batch is not None
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            if ok and job.name == "add":
                with self._parsed:
                    self._unparsed.add(value)  # before the 250: reads after it wait
            self._finish(job, value if ok else StorageError(f"could not write: {value}"))
        self.deleted += _deleted_count(batch, outcomes, pruned)
        if self.hub.has_subscribers:
            self._in_events(self._publish, batch, outcomes, pruned)
        self._kick()

    def _on_lost(self, link: FrameReader, error: Exception | None) -> None:
        """A writer's socket closed: on purpose, or the writer died."""
        if link is not self._link:  # one that never came up, or was replaced already
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(EOFError())
            return
        if self._stopping:
            return
        log.warning("the writer process stopped (%s); starting a new one", error or "end of input")
        self._link = None
        self._begin_restart()

    def _begin_restart(self) -> None:
        self._restarting = True  # from now: no second restart, and nothing is sent meanwhile
        self._spawn(self._restart_writer())

    async def _restart_writer(self) -> None:
        """Replace a dead writer; the batch it held is answered from the database or sent again.

        A writer that dies with a batch in hand may have committed some of it:
        those are found by their receipts. Started at once, even with nothing
        to send: the new writer parses what the dead one committed but never
        summarized.
        """
        batch, self._in_flight = self._in_flight, None
        try:
            if self._process is not None:
                await asyncio.get_running_loop().run_in_executor(None, _reap, self._process)
                self._process = None
            if self._link is not None and self._link.transport is not None:
                self._link.transport.close()
            self._link = None
            if batch:
                batch = self._recover(batch)
            try:
                await self._start_writer()
            except StorageError as error:
                self._fail(batch or [], error)
                return
            if batch and self._attempt >= 2:
                self._fail(batch, StorageError("the writer process died twice with it"))
            elif batch:
                self._in_flight, self._attempt = batch, 2
                self._transmit(batch)
        finally:
            self._restarting = False
        self._kick()

    def _fail(self, batch: list[_Job], error: StorageError) -> None:
        for job in batch:
            self._finish(job, StorageError(f"the writer process failed: {error}"))

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
                        with self._parsed:
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

    def _in_events(self, function: Callable[..., None], *args: Any) -> None:
        """Run an event step in the events thread: in order, and off the loop."""
        assert self._events is not None
        self._events.submit(self._guarded, function, *args)

    def _guarded(self, function: Callable[..., None], *args: Any) -> None:
        """Run an event step; should it fail, the steps after it must still run."""
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
        if not self._unparsed or self._on_loop:  # the loop cannot wait for its own answers
            return
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
