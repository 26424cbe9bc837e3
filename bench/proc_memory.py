"""Memory of a server's whole process tree, read from /proc (Linux).

Mailtrap writes through a child process, so a server's memory is the sum
over the server and its descendants.
"""

from __future__ import annotations

import contextlib
import re
import threading
from pathlib import Path


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc/<pid>/task/*/children)."""
    tree, index = [pid], 0
    while index < len(tree):
        for task in Path(f"/proc/{tree[index]}/task").glob("*"):
            with contextlib.suppress(OSError):
                tree += [int(child) for child in (task / "children").read_text().split()]
        index += 1
    return tree


def proc_kb(pid: int, key: str, source: str = "status") -> int | None:
    """A ``key: N kB`` field of /proc/<pid>/<source>, or None if unreadable."""
    try:
        text = Path(f"/proc/{pid}/{source}").read_text()
    except OSError:
        return None
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match[1]) if match else None


def tree_mb(pid: int, key: str, source: str = "status") -> float:
    """``key`` summed over the process tree of ``pid``, in MB."""
    values = [proc_kb(child, key, source) for child in process_tree(pid)]
    return sum(value for value in values if value is not None) / 1024


class RssSampler:
    """The largest summed VmRSS of a process tree seen while it runs, sampled every few ms.

    Summed VmHWM overstates a tree whose processes peak one after another (the
    writer copying a message in, then the parser reading it): this is the
    memory the tree held at one moment.
    """

    def __init__(self, pid: int, interval: float = 0.005):
        self.pid = pid
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, tree_mb(self.pid, "VmRSS"))
