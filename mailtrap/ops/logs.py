"""Logging for ``mailtrap serve``: ``--log-level`` and ``--log-format text|json``."""

from __future__ import annotations

import json
import logging
import sys
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


def configure(level: str = "info", format: str = "text") -> None:
    """Send every log record to stderr at ``level`` and above, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Third-party chatter stays at warnings unless asked for with debug.
    quiet = logging.DEBUG if level == "debug" else logging.WARNING
    logging.getLogger("mail.log").setLevel(quiet)  # aiosmtpd logs every command
    logging.getLogger("werkzeug").setLevel(quiet)  # one line per HTTP request
