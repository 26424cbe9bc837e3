"""pytest plugin benchmark: what the ``mailtrap`` fixture costs a session, and how soon
``wait_for`` returns after the SMTP ``250``.

Start-up:
- **in-process**: ``Server`` start and stop for the session fixture (temporary database,
  SMTP, HTTP and POP3 on ephemeral ports), the first time in this process (imports
  included) and then warm;
- **per session**: the wall time of ``pytest`` on one test that uses ``mailtrap`` minus
  the same test without it, in fresh subprocesses (median of ``--sessions`` runs each).

Wake-up latency: a thread sends message i over a persistent SMTP connection while the
main thread is already blocked in ``wait_for(subject=i)``; the figure is the time from
``sendmail`` returning (the ``250`` has been read) to ``wait_for`` returning. It is
negative when the wait returned first: the hub publishes right after the commit that
releases the ``250``. Measured for the in-process backend (event hub) and for the HTTP
backend (``--mailtrap-url`` mode: long-poll search) against the same server.

Usage:
    python bench/pytest_plugin.py [--messages 200] [--sessions 5] [--json PATH]

The target is p99 < 20 ms for the in-process backend; the exit code is 1 if it is missed.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_P99_MS = 20.0
SEND_DELAY = 0.005  # seconds between the wait starting and the message being sent


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 0.50) * 1000, 2),
        "p99_ms": round(percentile(values, 0.99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }


def server_startup(repeats: int) -> dict[str, Any]:
    """Start and stop the session fixture's server; the first start pays for imports."""
    started = time.perf_counter()
    from mailtrap.pytest_plugin.backends import running_server, server_settings

    imports = time.perf_counter() - started
    starts, stops = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            began = time.perf_counter()
            with running_server(server_settings(Path(folder))):
                ready = time.perf_counter()
            stops.append(time.perf_counter() - ready)
            starts.append(ready - began)
    return {
        "plugin_import_s": round(imports, 3),
        "first_start_s": round(starts[0], 3),
        "warm_start_median_s": round(statistics.median(starts[1:] or starts), 3),
        "stop_median_s": round(statistics.median(stops), 3),
    }


def session_overhead(sessions: int) -> dict[str, Any]:
    """Median pytest wall time with and without the fixture, in fresh processes."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "test_with.py").write_text("def test_it(mailtrap):\n    assert not mailtrap\n")
        (root / "test_without.py").write_text("def test_it():\n    pass\n")

        def run(name: str) -> float:
            began = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name],
                cwd=root,
                check=True,
                capture_output=True,
            )
            return time.perf_counter() - began

        run("test_without.py")  # warm the file system cache
        with_fixture = [run("test_with.py") for _ in range(sessions)]
        without = [run("test_without.py") for _ in range(sessions)]
    return {
        "session_with_fixture_s": round(statistics.median(with_fixture), 3),
        "session_without_s": round(statistics.median(without), 3),
        "fixture_cost_s": round(statistics.median(with_fixture) - statistics.median(without), 3),
    }


def wake_latency(make_inbox: Callable[[], Any], smtp: tuple[str, int], count: int) -> list[float]:
    """Seconds from each 250 to the matching wait_for returning."""
    inbox = make_inbox()
    acknowledged: dict[int, float] = {}
    ready = [threading.Event() for _ in range(count)]
    sent = [threading.Event() for _ in range(count)]

    def send_all() -> None:
        with smtplib.SMTP(*smtp, timeout=30) as client:
            for number in range(count):
                ready[number].wait(30)
                time.sleep(SEND_DELAY)  # let the waiter block first
                raw = f"From: bench@example.com\r\nSubject: m{number}\r\n\r\nbody {number}\r\n"
                client.sendmail("bench@example.com", ["inbox@example.com"], raw)
                acknowledged[number] = time.perf_counter()
                sent[number].set()

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    delays = []
    for number in range(count):
        ready[number].set()
        inbox.wait_for(timeout=30, subject=f"m{number}")
        returned = time.perf_counter()
        sent[number].wait(30)  # the wait may return before sendmail has read the 250
        delays.append(returned - acknowledged[number])
        inbox.clear()  # keep each wait's look at one message, as in a test
    sender.join(30)
    return delays


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--starts", type=int, default=6)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    results: dict[str, Any] = {"startup": server_startup(args.starts)}
    results["startup"].update(session_overhead(args.sessions))

    from mailtrap.pytest_plugin.backends import LocalBackend, running_server, server_settings
    from mailtrap.pytest_plugin.capture import Inbox
    from mailtrap.pytest_plugin.remote import HttpBackend

    with (
        tempfile.TemporaryDirectory() as folder,
        running_server(server_settings(Path(folder))) as server,
    ):
        smtp = (server.smtp_address.host, server.smtp_address.port)
        local = wake_latency(lambda: Inbox(LocalBackend(server)), smtp, args.messages)
        remote = wake_latency(lambda: Inbox(HttpBackend(server.http_url)), smtp, args.messages)
    results["wake_latency"] = {
        "messages": args.messages,
        "in_process": summary_ms(local),
        "http_long_poll": summary_ms(remote),
    }

    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    missed = results["wake_latency"]["in_process"]["p99_ms"] >= TARGET_P99_MS
    if missed:
        print(f"target missed: in-process p99 >= {TARGET_P99_MS} ms", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
