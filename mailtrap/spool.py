"""DATA as it arrives: unstuffed chunk by chunk, kept in memory while small, in a file when not.

A 25 MB message used to be held as a list of chunks, then joined, then
unstuffed: three copies in the SMTP process alone. A spool holds one copy of
a small message, and for a large one only a bounded buffer; the writer process
then copies the file into the database in chunks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

SPOOL_MEMORY_LIMIT = 1024 * 1024  # bytes kept in memory before a message goes to a file
SPOOL_DIR_PREFIX = ".mailtrap-spool-"


class Unstuffer:
    """Undo SMTP transparency (RFC 5321 4.5.2) on a stream of DATA chunks.

    A line that starts with a dot lost that dot; chunk boundaries may fall
    anywhere, even between the CR and LF before such a dot.
    """

    def __init__(self) -> None:
        self._tail = b"\r\n"  # DATA starts at the beginning of a line

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        tail = self._tail
        # The dot of a "CRLF ." that starts in the tail is in this chunk, so
        # the tail itself never changes and can be cut off again.
        unstuffed = (tail + chunk).replace(b"\r\n.", b"\r\n")[len(tail) :]
        self._tail = (tail + chunk)[-2:]
        return unstuffed


class Spool:
    """The content of one DATA section; in memory up to ``memory_limit``, then in a file.

    ``directory`` None keeps everything in memory.
    """

    def __init__(self, directory: Path | None, *, memory_limit: int = SPOOL_MEMORY_LIMIT):
        self.directory = directory
        self.memory_limit = memory_limit
        self.size = 0
        self._memory = bytearray()
        self._file: tempfile._TemporaryFileWrapper[bytes] | None = None
        self.path: Path | None = None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._file is not None:
            self._file.write(data)
            return
        self._memory += data
        if len(self._memory) > self.memory_limit and self.directory is not None:
            self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in finish/discard)
                dir=self.directory, prefix="data-", suffix=".eml", delete=False
            )
            self.path = Path(self._file.name)
            self._file.write(self._memory)
            self._memory = bytearray()

    def finish(self) -> bytes | None:
        """The content if it stayed in memory; None if it is in the file at :attr:`path`."""
        if self._file is not None:
            self._file.close()
            self._file = None
            return None
        return bytes(self._memory)

    def discard(self) -> None:
        """Drop the content (and its file): too large, or no longer needed."""
        self.size = 0
        self._memory = bytearray()
        if self._file is not None:
            file, self._file = self._file, None
            # Closing flushes, which fails again on a full disk; the file goes anyway.
            with contextlib.suppress(OSError):
                file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


def make_spool_dir(database: Path) -> Path:
    """A spool folder of this process's own, beside the database (same disk, not tmpfs).

    Folders left by processes that are gone (killed mid-message) are removed.
    """
    parent = database.parent
    for stale in parent.glob(SPOOL_DIR_PREFIX + "*"):
        pid = stale.name.removeprefix(SPOOL_DIR_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{SPOOL_DIR_PREFIX}{os.getpid()}-", dir=parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
