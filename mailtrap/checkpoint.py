"""WAL checkpoints in a thread of the writer process, off the path of a commit.

SQLite copies the write-ahead log back into the database file after the
commit that crosses 1,000 pages, inside that commit: with 2 KB messages (about
11 pages each) every 90th client waited for 4 MB to be written and the
database file to be synced. The writer turns that off and this thread runs a
PASSIVE checkpoint every ``interval`` seconds instead, on its own connection:
it never takes the write lock, so commits go on meanwhile (SQLite releases
the GIL while it works).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL = 0.05  # seconds; the log holds at most this long of writes


class Checkpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` until stopped."""

    def __init__(self, path: Path, interval: float = CHECKPOINT_INTERVAL):
        self.path = path
        self.interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mailtrap-checkpoint", daemon=True)

    def start(self) -> Checkpointer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 1000")
            while not self._stopping.wait(self.interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as error:  # busy, or the disk: the next round tries again
                    log.debug("checkpoint skipped: %s", error)
        finally:
            conn.close()
