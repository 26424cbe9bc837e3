"""``--archive``: messages that retention is about to delete, written to a Maildir or mbox.

Called by the writer inside the transaction that deletes them, so a message
is on disk (fsynced) in the archive before its row goes. A crash between
the two can archive a message twice, never lose it. Lines end in LF, as
Unix mail tools expect; ``mailtrap ingest`` reads either format back.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)  # quoted as mboxrd does
_SAFE_SENDER = re.compile(r"[^\x21-\x7e]")


class Archive:
    """A Maildir folder or an mbox file that pruned messages are appended to."""

    def __init__(self, path: Path, format: str = "maildir"):
        if format not in ("maildir", "mbox"):
            raise ValueError(f"unknown archive format {format!r}")
        self.path = Path(path)
        self.format = format
        self._names = itertools.count()

    def save(self, conn: sqlite3.Connection, seqs: Iterable[int]) -> int:
        """Archive the messages of ``seqs`` (one in memory at a time); returns how many."""
        sql = "SELECT m.mail_from, m.created, r.data FROM messages m JOIN raw r USING (seq) "
        sql += "WHERE seq = ?"
        saved = 0
        if self.format == "mbox":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as mbox:
                for seq in seqs:
                    row = conn.execute(sql, [seq]).fetchone()
                    if row is not None:
                        mbox.write(mbox_entry(row[0] or "", row[1], bytes(row[2])))
                        saved += 1
                mbox.flush()
                os.fsync(mbox.fileno())
            return saved
        for folder in ("tmp", "new", "cur"):
            (self.path / folder).mkdir(parents=True, exist_ok=True)
        for seq in seqs:
            row = conn.execute(sql, [seq]).fetchone()
            if row is not None:
                self._maildir_add(_unix_lines(bytes(row[2])))
                saved += 1
        _fsync_folder(self.path / "new")
        return saved

    def _maildir_add(self, data: bytes) -> None:
        # The Maildir convention: written to tmp/, synced, then renamed into new/.
        name = f"{time.time():.6f}.P{os.getpid()}Q{next(self._names)}.{socket.gethostname()}"
        name = name.replace("/", "_").replace(":", "_")
        temporary = self.path / "tmp" / name
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.rename(temporary, self.path / "new" / name)


def mbox_entry(mail_from: str, created: float, raw: bytes) -> bytes:
    """One mboxrd entry: the From_ line, the message with From_ lines quoted, a blank line."""
    sender = _SAFE_SENDER.sub("_", mail_from) or "MAILER-DAEMON"
    stamp = time.asctime(time.gmtime(created))
    body = _FROM_LINE.sub(rb">\1", _unix_lines(raw))
    if not body.endswith(b"\n"):
        body += b"\n"
    return f"From {sender} {stamp}\n".encode() + body + b"\n"


def _unix_lines(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def _fsync_folder(folder: Path) -> None:
    """Make the renames into ``folder`` durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
