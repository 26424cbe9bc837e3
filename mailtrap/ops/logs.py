"""Logging for ``mailtrap serve``: ``--log-level`` and ``--log-format text|json``."""

from __future__ import annotations

import atexit
import json
import logging
import sys
import threading
from datetime import UTC, datetime

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
# Fields that the message log lines (mailtrap.ops.stats) add to a record.
EXTRA_FIELDS = ("event", "id", "from", "to", "size", "reason")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in EXTRA_FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


# How long the writing thread gathers lines after the first wakes it: one wake
# per batch rather than one per accepted message, on a machine where every
# wake-up of another thread is time taken from a client waiting for its 250.
FLUSH_DELAY = 0.05
MAX_QUEUED = 100_000  # records held while stderr does not take them; the rest are counted


class LineWriter(logging.Handler):
    """Formats and writes records in a thread of its own, a batch at a time.

    The SMTP loop only appends a record to a list; formatting and the write to
    stderr (which may block, if nobody reads it) happen in the thread.
    """

    def __init__(self, target: logging.Handler, delay: float = FLUSH_DELAY):
        super().__init__()
        self.target = target
        self.delay = delay
        self._records: list[logging.LogRecord] = []
        self._dropped = 0
        self._queued = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._stopped = threading.Event()
        self.wakes = 0  # times the thread woke to write
        self._thread = threading.Thread(target=self._run, name="mailtrap-log", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        with self._queued:
            if len(self._records) >= MAX_QUEUED:
                self._dropped += 1
                return
            self._records.append(record)
            first = len(self._records) == 1
        if first:
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait()
            self.wakes += 1
            self._stopped.wait(self.delay)  # the lines that follow join this batch
            self._wake.clear()
            self._write_queued()

    @property
    def queued(self) -> int:
        """Records waiting for the thread."""
        return len(self._records)

    def _write_queued(self) -> None:
        with self._queued:
            records, self._records = self._records, []
            dropped, self._dropped = self._dropped, 0
        for record in records:
            self.target.handle(record)
        if dropped:
            self.target.handle(
                logging.makeLogRecord(
                    {
                        "name": __name__,
                        "levelno": logging.WARNING,
                        "levelname": "WARNING",
                        "msg": "%d log lines dropped: stderr did not take them",
                        "args": (dropped,),
                    }
                )
            )

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        self._stopping = True
        self._stopped.set()
        self._wake.set()
        self._thread.join()
        self._write_queued()
        super().close()


_writer: LineWriter | None = None


@atexit.register
def _stop_writer() -> None:
    """Write what is queued (before the process ends, or before a new configuration)."""
    global _writer
    if _writer is not None:
        _writer.close()
        _writer = None


def configure(level: str = "info", format: str = "text") -> None:
    """Send every log record to stderr at ``level`` and above, as text or JSON lines.

    Records are formatted and written by a thread of their own: a line per
    accepted message, written from the SMTP loop, cost that loop a tenth of
    its time under load (a write to stderr each).
    """
    global _writer
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(TEXT_FORMAT))
    _stop_writer()
    _writer = LineWriter(handler)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(_writer)
    root.setLevel(level.upper())
    # Third-party chatter stays at warnings unless asked for with debug.
    quiet = logging.DEBUG if level == "debug" else logging.WARNING
    logging.getLogger("mail.log").setLevel(quiet)  # aiosmtpd logs every command
    logging.getLogger("werkzeug").setLevel(quiet)  # one line per HTTP request
