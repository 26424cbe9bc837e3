"""The writer process's second stage: parse committed messages in a thread of their own.

Messages come here after their raw bytes are committed and acknowledged, so
parsing never holds up a ``250``; and because it runs in a thread, a message
that is slow to parse (up to its CPU budget) shares the GIL with the commits
of other clients' messages instead of stopping them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import queue
import socket
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailtrap.mime import Summary, summarize
from mailtrap.part_index import PartIndex, make_part_index
from mailtrap.rows import storable, summary_values
from mailtrap.tags.arrival import Tagging

log = logging.getLogger(__name__)


_Job = tuple[int, str, bytes | None, list[str], str | None]  # seq, ID, raw, RCPT TOs, login


@dataclass
class Parsed:
    """A message's summary columns, ready to be written by the writer's main thread.

    ``values`` and ``index`` are None for a message deleted before it was parsed.
    """

    seq: int
    message_id: str
    values: dict[str, Any] | None
    index: PartIndex | None = None


class Summarizer:
    """A worker thread that turns (seq, ID, raw bytes or None) into :class:`Parsed`.

    Without raw bytes (a large message, or one left unparsed by a crash) it
    reads them from the database itself. ``wake`` gets a byte whenever a
    result is ready, so the writer can wait on it beside its pipe.
    """

    def __init__(
        self,
        path: Path,
        connect: Callable[[Path], sqlite3.Connection],
        tagging: Tagging | None = None,
    ):
        self.path = path
        self._connect = connect
        self.tagging = tagging or Tagging()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._done: list[Parsed] = []
        self._lock = threading.Lock()
        self.wake, self._waker = socket.socketpair()
        self.wake.setblocking(False)
        self._waker.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="mailtrap-summarizer", daemon=True)
        self._thread.start()

    def submit(
        self,
        seq: int,
        message_id: str,
        raw: bytes | None,
        rcpt_tos: list[str],
        auth_user: str | None = None,
    ) -> None:
        self._jobs.put((seq, message_id, raw, rcpt_tos, auth_user))

    def take_done(self) -> list[Parsed]:
        """The results so far (and clear the wake-up bytes that announced them)."""
        with contextlib.suppress(BlockingIOError):
            while self.wake.recv(4096):
                pass
        with self._lock:
            done, self._done = self._done, []
        return done

    def close(self) -> list[Parsed]:
        """Finish what is queued, stop the thread, and return the results not taken yet."""
        self._jobs.put(None)
        self._thread.join()
        done = self.take_done()
        self._waker.close()
        self.wake.close()
        return done

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        while (job := self._jobs.get()) is not None:
            seq, message_id, raw, rcpt_tos, auth_user = job
            if raw is None:
                conn = conn or self._connect(self.path)
                raw = _stored_raw(conn, seq)
            # Deleted before its turn came: nothing to write, but still done.
            parsed = Parsed(seq, message_id, None)
            if raw is not None:
                summary = _summary(raw, rcpt_tos)
                # Names as found: the writer cleans them and spells them as stored.
                summary.tags = self.tagging.header_tags(summary, auth_user)
                values = _storable(summary_values(summary))
                parsed = Parsed(seq, message_id, values, _storable_index(make_part_index(raw)))
            with self._lock:
                self._done.append(parsed)
            # Full: the writer has plenty of wake-ups unread already.
            with contextlib.suppress(BlockingIOError):
                self._waker.send(b"!")
        if conn is not None:
            conn.close()


def _summary(raw: bytes, rcpt_tos: list[str]) -> Summary:
    try:
        return summarize(raw, rcpt_tos)
    except Exception as error:  # summarize catches parser errors; this is the last net
        log.exception("summarizing a message failed")
        return Summary(parse_error=f"{type(error).__name__}: {error}")


def _storable(values: dict[str, Any]) -> dict[str, Any]:
    """The values with lone surrogates replaced (see :func:`mailtrap.rows.storable`)."""
    return {
        name: storable(value) if isinstance(value, str) else value for name, value in values.items()
    }


def _storable_index(index: PartIndex) -> PartIndex:
    parts = [
        dataclasses.replace(
            part, filename=storable(part.filename), content_id=storable(part.content_id)
        )
        for part in index.parts
    ]
    return dataclasses.replace(index, parts=parts)


def _stored_raw(conn: sqlite3.Connection, seq: int) -> bytes | None:
    # Through the blob API: a SELECT would hold the value twice, SQLite's copy and ours.
    try:
        with conn.blobopen("raw", "data", seq, readonly=True) as blob:
            return blob.read()
    except sqlite3.OperationalError:  # no such row: deleted before its turn came
        return None


def unparsed(conn: sqlite3.Connection) -> list[tuple[int, str, list[str], str | None]]:
    """(seq, ID, envelope recipients, login) of rows whose summary is not written yet."""
    sql = "SELECT seq, id, rcpt_tos, auth_user FROM messages WHERE parsed = 0 ORDER BY seq"
    return [
        (seq, id_, json.loads(rcpts or "[]"), user) for seq, id_, rcpts, user in conn.execute(sql)
    ]
