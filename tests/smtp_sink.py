"""Postfix's ``smtp-sink`` as a real receiving MTA on loopback, for the relay tests.

Its options make it misbehave the way real servers do: ``-r CMD`` answers a
command with a 4xx, ``-f CMD`` with a 5xx (``-b``/``-B`` set the reply text),
``-Q CMD`` answers 421 and hangs up, ``-q CMD`` hangs up without a word. Every
transaction it takes is appended to a dump file (``-D``), which
:meth:`SmtpSink.messages` reads back. It listens on port 0; the port it got is
read from ``/proc`` (the socket of its process), so nothing guesses a free port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from postfix_tools import PostfixTool

START_TIMEOUT = 10.0
LISTEN_STATE = "0A"  # TCP_LISTEN in /proc/net/tcp


@dataclass(frozen=True)
class SunkMessage:
    """One transaction from the dump: the MAIL and RCPT arguments and the message text."""

    mail_from: str
    rcpt_tos: list[str]
    text: str


class SmtpSink:
    """One ``smtp-sink`` process on ``host``:``port`` with extra ``options``."""

    def __init__(self, tool: PostfixTool, host: str, port: int = 0, *options: str):
        self.tool, self.host, self.port, self.options = tool, host, port, options
        # smtp-sink run as root must drop to another user (-u), who writes the dump:
        # a folder of its own that user can write to, outside pytest's private tree.
        self._folder = Path(tempfile.mkdtemp(prefix="smtp-sink-"))
        self._folder.chmod(0o777)
        self.dump = self._folder / "dump"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> SmtpSink:
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        command = [str(self.tool.binary), *user, "-h", "sink.test", "-D", str(self.dump)]
        command += [*self.options, f"{self.host}:{self.port}", "16"]
        with open(self._folder / "stderr", "wb") as stderr:  # the child keeps its own copy
            self._process = subprocess.Popen(
                command, env=self.tool.env(), stdout=subprocess.DEVNULL, stderr=stderr
            )
        self.port = self._listening_port(self._process)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None
        shutil.rmtree(self._folder, ignore_errors=True)

    def messages(self) -> list[SunkMessage]:
        """Every transaction it took so far, in order."""
        if not self.dump.exists():
            return []
        found = []
        for entry in self.dump.read_text(errors="replace").split("X-Client-Addr: ")[1:]:
            lines = entry.splitlines()
            mail_from = next(line for line in lines if line.startswith("X-Mail-Args: "))
            rcpts = [line[len("X-Rcpt-Args: ") :] for line in lines if line.startswith("X-Rcpt-")]
            found.append(SunkMessage(mail_from[len("X-Mail-Args: ") :], rcpts, entry))
        return found

    def _listening_port(self, process: subprocess.Popen[bytes]) -> int:
        """The port of the socket the process listens on, once it listens."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:  # a process starting up: there is nothing to wait on
            if process.poll() is not None:
                error = (self._folder / "stderr").read_text(errors="replace")
                raise RuntimeError(f"smtp-sink exited {process.returncode}: {error.strip()}")
            port = _listening_port_of(process.pid)
            if port is not None:
                return port
            time.sleep(0.02)
        raise RuntimeError(f"smtp-sink did not listen within {START_TIMEOUT:g} s")


def _listening_port_of(pid: int) -> int | None:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN_STATE and fields[9] in inodes:
                return int(fields[1].rpartition(":")[2], 16)
    return None
