"""Durable message storage in SQLite.

Every write goes to the writer process (:mod:`mailtrap.writer`), in batches:
what is queued while one batch commits travels together as the next (group
commit). Whoever submits a write gets a future that resolves only after the
transaction holding it is committed. Reads use a connection per thread in
this process, and WAL mode keeps them from blocking the writer.
"""

from __future__ import annotations

import queue
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from mailtrap.errors import MessageNotFound, StorageError
from mailtrap.events import EventHub
from mailtrap.message import summary
from mailtrap.schema import prepare_database
from mailtrap.writer import IncomingMessage, connect, send_batch

__all__ = ["IncomingMessage", "Store"]

MAX_BATCH = 256
WRITER_START_TIMEOUT = 30.0


@dataclass
class _Job:
    name: str
    args: tuple[Any, ...]
    future: Future[Any] = field(default_factory=Future)


_STOP = object()


class Store:
    """The message store of one SQLite file.

    ``max_messages`` (0 = unlimited) and ``max_age`` (seconds, None = off)
    prune the oldest messages.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_messages: int = 0,
        max_age: float | None = None,
        hub: EventHub | None = None,
    ):
        self.path = Path(path)
        self.hub = hub if hub is not None else EventHub()
        self.max_messages = max_messages
        self.max_age = max_age
        self.commits = 0  # transactions the writer has committed, as last reported
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._dispatcher: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._pipe: Connection | None = None
        self._readers = threading.local()

    # -- lifecycle -----------------------------------------------------------

    def open(self) -> Store:
        """Create or migrate the database and start the writer."""
        try:
            prepare_database(self.path)
        except (OSError, sqlite3.Error) as error:
            raise StorageError(f"cannot open database {self.path}: {error}") from error
        self._start_writer()
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="mailtrap-store", daemon=True
        )
        self._dispatcher.start()
        return self

    def close(self) -> None:
        """Finish every queued write, then stop the writer."""
        if self._dispatcher is not None:
            self._jobs.put(_STOP)
            self._dispatcher.join()
            self._dispatcher = None
        self._stop_writer()

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
        try:
            process = subprocess.Popen(
                [*command, str(self.max_messages), max_age], pass_fds=[theirs.fileno()]
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

    def _stop_writer(self) -> None:
        if self._pipe is not None:
            self._pipe.close()  # the writer sees EOF and exits
            self._pipe = None
        if self._process is not None:
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

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

    def set_tags(self, ids: Iterable[str], tags: Iterable[str]) -> Future[list[str]]:
        """Replace the tags of messages; gives the IDs that exist."""
        return self._submit("set_tags", list(ids), list(tags))

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
        try:
            if self._process is not None and self._process.poll() is not None:
                self._stop_writer()  # it died while idle: nothing of this batch is lost yet
            if self._pipe is None:
                self._start_writer()
            assert self._pipe is not None
            send_batch(self._pipe, [(job.name, job.args) for job in batch])
            outcomes, self.commits, pruned = self._pipe.recv()
        except (OSError, EOFError, StorageError) as error:
            self._stop_writer()
            for job in batch:
                job.future.set_exception(StorageError(f"the writer process failed: {error}"))
            return
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(StorageError(f"could not write: {value}"))
        if self.hub.has_subscribers:
            self._publish(batch, outcomes, pruned)

    def _publish(self, batch: list[_Job], outcomes: list[Any], pruned: list[str]) -> None:
        """Tell subscribers what the batch changed, in Mailpit's event shapes."""
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            if not ok:
                continue
            if job.name == "add":
                try:
                    self.hub.publish("new", summary(self.get(value)))
                except MessageNotFound:  # pruned or deleted in the same breath
                    continue
            elif job.name == "delete":
                for message_id in value:
                    self.hub.publish("delete", {"ID": message_id})
            elif job.name == "delete_all":
                self.hub.publish("truncate")
            elif job.name == "set_read":
                for message_id in value:
                    self.hub.publish("update", {"ID": message_id, "Read": job.args[1]})
            elif job.name == "set_tags":
                for message_id in value:
                    self.hub.publish("update", {"ID": message_id, "Tags": sorted(set(job.args[1]))})
        for message_id in pruned:
            self.hub.publish("delete", {"ID": message_id})

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
