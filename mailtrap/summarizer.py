"""The writer's second stage: parse committed messages in a process of their own.

Messages come here after their raw bytes are committed and acknowledged, so
parsing never holds up a ``250``. The parser is a separate process, not a
thread of the writer: a thread parsing would hold the writer's GIL while the
writer waits to commit other clients' messages (up to the switch interval at
every system call it makes), and a parser that crashes or runs out of memory
on a hostile message would take the writer with it. The parser runs at a
lower priority, so under load the operating system gives the processes that
answer clients the CPU first.

Started as ``python -m mailtrap.summarizer FD PATH``; it reads each message
from the database itself, so a job on the socket is a few bytes whatever the
message's size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from mailtrap.mime import Summary, summarize
from mailtrap.part_index import PartIndex, make_part_index
from mailtrap.rows import storable, summary_values
from mailtrap.tags.arrival import Tagging

log = logging.getLogger(__name__)

PARSER_NICENESS = 19  # where SCHED_IDLE is not there: the lowest priority a process can take
WINDOW = 64  # jobs on the socket at once: a few KiB, so sending one never blocks the writer
ATTEMPTS = 2  # a message the parser dies on twice is stored without its summary


@dataclass
class Parsed:
    """A message's summary columns, ready to be written by the writer.

    ``values`` and ``index`` are None for a message deleted before it was parsed.
    """

    seq: int
    message_id: str
    values: dict[str, Any] | None
    index: PartIndex | None = None


Job = tuple[int, str, list[str], str | None]  # seq, message ID, envelope recipients, login


class Summarizer:
    """The writer's handle on the parser process: jobs go in, :class:`Parsed` come out.

    ``wake`` is readable whenever results are ready, so the writer waits on
    it beside its own socket. A parser that dies is started again, and the
    jobs it had are sent again; the one it died on is tried ``ATTEMPTS``
    times, then stored as unparsed with the reason.
    """

    def __init__(self, path: Path, tagging: Tagging | None = None):
        self.path = path
        self.tagging = tagging or Tagging()
        self._queued: deque[Job] = deque()  # not sent yet
        self._sent: dict[int, Job] = {}  # seq -> job, in the order sent (and parsed)
        self._deaths: dict[int, int] = {}  # seq -> times the parser died on it
        self._process: subprocess.Popen[bytes] | None = None
        self._pipe: Connection | None = None
        self._start()

    @property
    def wake(self) -> Connection:
        assert self._pipe is not None
        return self._pipe

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-m", "mailtrap.summarizer", str(theirs.fileno())]
        try:
            self._process = subprocess.Popen(
                [*command, str(self.path), self.tagging.to_json()], pass_fds=[theirs.fileno()]
            )
        finally:
            theirs.close()
        self._pipe = Connection(ours.detach())

    def submit(
        self, seq: int, message_id: str, rcpt_tos: list[str], auth_user: str | None = None
    ) -> None:
        self._queued.append((seq, message_id, rcpt_tos, auth_user))
        self._send_queued()

    def _send_queued(self) -> None:
        assert self._pipe is not None
        try:
            while self._queued and len(self._sent) < WINDOW:
                job = self._queued[0]
                self._pipe.send(job)
                self._sent[job[0]] = self._queued.popleft()
        except OSError:  # the parser is gone: take_done() notices and starts another
            return

    def take_done(self) -> list[Parsed]:
        """The results so far; restarts a parser that died."""
        assert self._pipe is not None
        done: list[Parsed] = []
        try:
            while self._pipe.poll(0):
                parsed: Parsed = self._pipe.recv()
                self._sent.pop(parsed.seq, None)
                self._deaths.pop(parsed.seq, None)
                done.append(parsed)
        except (EOFError, OSError):
            done += self._restart()
        self._send_queued()
        return done

    def _restart(self) -> list[Parsed]:
        """Start a new parser after one died; gives up on a job it died on too often."""
        status = self._stop_process()
        failed: list[Parsed] = []
        if self._sent:
            seq, message_id, *_ = suspect = next(iter(self._sent.values()))
            self._deaths[seq] = self._deaths.get(seq, 0) + 1
            log.warning("the parser process ended (%s) while parsing %s", status, message_id)
            if self._deaths[seq] >= ATTEMPTS:
                del self._sent[seq], self._deaths[seq]
                failed.append(unparsable(suspect, f"the parser process ended ({status})"))
        self._queued.extendleft(reversed(self._sent.values()))
        self._sent = {}
        self._start()
        return failed

    def _stop_process(self) -> str:
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        assert self._process is not None
        try:
            code = self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = self._process.wait()
        return f"signal {-code}" if code < 0 else f"exit status {code}"

    def close(self) -> list[Parsed]:
        """Finish every job, stop the parser, and return the results not taken yet."""
        done: list[Parsed] = []
        while self._queued or self._sent:
            assert self._pipe is not None
            self._pipe.poll(1.0)
            done += self.take_done()
        self._stop_process()
        return done


def unparsable(job: Job, reason: str) -> Parsed:
    """A message stored byte-exact whose summary could not be made, with the reason."""
    seq, message_id, *_ = job
    values = _storable(summary_values(Summary(parse_error=reason)))
    return Parsed(seq, message_id, values, PartIndex(0, [], reason))


def parse(conn: sqlite3.Connection, job: Job, tagging: Tagging | None = None) -> Parsed:
    """What the parser process does with one job: read the message and summarize it."""
    seq, message_id, rcpt_tos, auth_user = job
    raw = _stored_raw(conn, seq)
    if raw is None:  # deleted before its turn came: nothing to write, but still done
        return Parsed(seq, message_id, None)
    summary = _summary(raw, rcpt_tos)
    # Names as found: the writer cleans them and spells them as they are stored.
    summary.tags = (tagging or Tagging()).header_tags(summary, auth_user)
    values = _storable(summary_values(summary))
    return Parsed(seq, message_id, values, _storable_index(make_part_index(raw)))


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


def yield_the_cpu() -> None:
    """Run this process only when nothing that answers clients wants the CPU.

    Parsing follows the 250, so it can wait. With a niceness alone, the parser
    still took the core a lone client's next command arrived on often enough
    to cost that client a tenth of its messages per second; Linux's SCHED_IDLE
    gives way at once. Summaries then lag during a burst and catch up after.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or refused
        with contextlib.suppress(OSError):
            os.nice(PARSER_NICENESS)


def main(argv: list[str]) -> None:
    """Entry point of the parser process: FD PATH TAGGING."""
    # Ctrl+C reaches the whole process group; the writer ends this process by
    # closing its socket, once every job is parsed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    yield_the_cpu()
    fd, path, tagging_json = argv
    tagging = Tagging.from_json(tagging_json)
    pipe = Connection(int(fd))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    try:
        while True:
            job: Job = pipe.recv()
            pipe.send(parse(conn, job, tagging))
    except (EOFError, OSError):  # the writer closed its end: everything asked is answered
        return
    finally:
        conn.close()


if __name__ == "__main__":
    # Through the imported module, so what it sends pickles as
    # mailtrap.summarizer.Parsed, not __main__.Parsed.
    from mailtrap import summarizer

    summarizer.main(sys.argv[1:])
