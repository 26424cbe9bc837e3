"""Run the ``mailtrap`` command as a real subprocess, the way users and supervisors do.

The server's output is read on background threads so that a chatty server
can never fill a pipe and stall; tests look at it once the process is done.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from mailtrap.config import Address, parse_address

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def command_env(
    extra: Mapping[str, str] | None = None, *, drop: Sequence[str] = ()
) -> dict[str, str]:
    """The test process's environment without any ``MAILTRAP_*`` setting, plus ``extra``.

    HTTP and POP3 listen on free ports unless a test says otherwise: the
    defaults 8025 and 1110 would collide between tests running side by side.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILTRAP_")}
    env["MAILTRAP_HTTP"] = "127.0.0.1:0"
    env["MAILTRAP_POP3"] = "127.0.0.1:0"
    for name in drop:
        env.pop(name, None)
    env.update(extra or {})
    return env


def run_mailtrap(
    *args: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mailtrap ARGS`` to completion (for commands that are not servers)."""
    return subprocess.run(
        [sys.executable, "-m", "mailtrap", *map(str, args)],
        capture_output=True,
        text=True,
        env=command_env(env),
        cwd=cwd,
        timeout=timeout,
    )


class ServeProcess:
    """``python -m mailtrap serve ARGS`` running in the background."""

    def __init__(
        self,
        args: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        drop_env: Sequence[str] = (),
        cwd: Path | None = None,
    ):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mailtrap", "serve", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=command_env(env, drop=drop_env),
            cwd=cwd,
        )
        self._stdout_lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._drain, args=(self.process.stdout, True), daemon=True),
            threading.Thread(target=self._drain, args=(self.process.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.address: Address | None = None
        self.database: str | None = None

    def _drain(self, stream: IO[str], is_stdout: bool) -> None:
        with stream:
            for line in stream:
                (self._stdout if is_stdout else self._stderr).append(line)
                if is_stdout:
                    self._stdout_lines.put(line)
        if is_stdout:
            self._stdout_lines.put(None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def next_line(self, timeout: float = STARTUP_TIMEOUT) -> str:
        """The next line of output; fails if the process ends or stays silent first."""
        try:
            line = self._stdout_lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise AssertionError(f"no output after {timeout} s: {self.stdout!r}") from None
        if line is None:
            self.wait()
            raise AssertionError(
                f"mailtrap serve exited with {self.process.returncode} before it was ready:"
                f"\nstdout: {self.stdout}\nstderr: {self.stderr}"
            )
        return line

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> ServeProcess:
        """Read the banner up to ``Database: ...``; fails if the process ends first."""
        while self.database is None:
            line = self.next_line(timeout)
            if line.startswith("SMTP listening on "):
                self.address = parse_address(line.removeprefix("SMTP listening on ").strip())
            elif line.startswith("Database: "):
                self.database = line.removeprefix("Database: ").rstrip("\n")
        assert self.address is not None, f"no SMTP address in the banner: {self.stdout!r}"
        return self

    @property
    def smtp_address(self) -> Address:
        assert self.address is not None, "call wait_ready() first"
        return self.address

    def send_signal(self, number: signal.Signals) -> None:
        self.process.send_signal(number)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for the process to end and its output to be read; returns the exit code."""
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return code

    def stop(self, number: signal.Signals = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send ``number`` and wait for the exit code."""
        self.send_signal(number)
        return self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the process if it is still running (by its PID, nothing else)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    @property
    def stdout(self) -> str:
        return "".join(self._stdout)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)
