"""A legitimate HTTP client's latency while hundreds of slow clients hold connections.

Starts `mailtrap serve` as a subprocess, then for each count of slow
connections (0, 500 and 1,500 by default), in the same run:

- opens that many connections from 10 loopback addresses (127.0.0.2-11), each
  sending half a request header and then one more header byte a second, never
  finishing; one the server closes (at --http-header-timeout) is reopened, so
  the count stays up, as a slowloris attacker would keep it;
- meanwhile a legitimate client (127.0.0.1) sends `GET /api/v1/messages`, one
  request per new connection, and its latency is recorded (p50/p99);
- the server's thread count and RSS are sampled (the most seen in the phase;
  RSS of the server process, and of its tree with the writer process).

Usage:
    python bench/http_slow.py [--slow 0,500,1500] [--seconds 20] [--server-args "..."] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import re
import resource
import selectors
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from proc_memory import proc_kb, tree_mb

HOST = "127.0.0.1"
ATTACKERS = [f"127.0.0.{n}" for n in range(2, 12)]
SERVER_FLAGS = "--http-max-connections 4000 --http-max-connections-per-ip 200"
LISTENING_RE = re.compile(r"HTTP listening on [^\s:]+:(\d+)")


def start_server(folder: Path, flags: list[str]) -> tuple[subprocess.Popen[str], int]:
    command = [
        sys.executable, "-m", "mailtrap", "serve", "--db", str(folder / "mail.db"),
        "--smtp", f"{HOST}:0", "--http", f"{HOST}:0", "--pop3", "off", *flags,
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    for line in process.stdout:
        if match := LISTENING_RE.search(line):
            threading.Thread(target=process.stdout.read, daemon=True).start()  # drain
            return process, int(match[1])
    raise SystemExit("mailtrap serve did not start")


class SlowClients:
    """Keeps ``count`` half-sent requests open, dripping a header byte a second each."""

    def __init__(self, port: int, count: int):
        self._port = port
        self._count = count
        self._selector = selectors.DefaultSelector()
        self._sockets: set[socket.socket] = set()
        self._stop = threading.Event()
        self.reopened = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SlowClients:
        self._fill()
        self._thread.start()
        return self

    def held(self) -> int:
        return len(self._sockets)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in list(self._sockets):
            self._close(sock)
        self._selector.close()

    def _fill(self) -> None:
        while len(self._sockets) < self._count:
            source = ATTACKERS[len(self._sockets) % len(ATTACKERS)]
            try:
                sock = socket.create_connection(
                    (HOST, self._port), timeout=5, source_address=(source, 0)
                )
                header = f"GET /api/v1/messages HTTP/1.1\r\nHost: {HOST}:{self._port}\r\n"
                sock.sendall(header.encode() + b"X-Slow: ")
            except OSError:
                time.sleep(0.01)
                continue
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ)
            self._sockets.add(sock)

    def _close(self, sock: socket.socket) -> None:
        self._selector.unregister(sock)
        self._sockets.discard(sock)
        sock.close()

    def _run(self) -> None:
        next_drip = time.monotonic() + 1.0
        while not self._stop.is_set():
            for key, _ in self._selector.select(max(0.0, next_drip - time.monotonic())):
                with contextlib.suppress(BlockingIOError):
                    key.fileobj.recv(65536)  # type: ignore[union-attr]  # an answer (408): closing
                self._close(key.fileobj)  # type: ignore[arg-type]
                self.reopened += 1
            if time.monotonic() >= next_drip:
                for sock in list(self._sockets):
                    try:
                        sock.send(b"a")
                    except OSError:
                        self._close(sock)
                        self.reopened += 1
                next_drip += 1.0
            self._fill()


def legitimate_request(port: int) -> float:
    started = time.perf_counter()
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", "/api/v1/messages")
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
    finally:
        connection.close()
    return (time.perf_counter() - started) * 1000


def server_threads(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^Threads:\s+(\d+)", text, re.MULTILINE)
    return int(match[1]) if match else 0


def measure(pid: int, port: int, slow: int, seconds: float) -> dict[str, float]:
    attack = SlowClients(port, slow).start() if slow else None
    latencies: list[float] = []
    threads = rss = tree = 0.0
    held: list[int] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            latencies.append(legitimate_request(port))
            threads = max(threads, server_threads(pid))
            rss = max(rss, (proc_kb(pid, "VmRSS") or 0) / 1024)
            tree = max(tree, tree_mb(pid, "VmRSS"))
            held.append(attack.held() if attack else 0)
            time.sleep(0.02)
    finally:
        reopened = attack.reopened if attack else 0
        if attack:
            attack.stop()
    latencies.sort()
    return {
        "slow": slow,
        "held_median": statistics.median(held),
        "held_min": min(held),
        "reopened": reopened,
        "requests": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "max_ms": latencies[-1],
        "threads": threads,
        "rss_mb": rss,
        "tree_rss_mb": tree,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slow", default="0,500,1500", help="slow-connection counts, in order")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time per count")
    parser.add_argument("--server-args", default=SERVER_FLAGS, help="flags for mailtrap serve")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it
    print(f"{'slow':>5} {'held':>9} {'reopened':>8} {'requests':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'threads':>7} {'RSS MB':>7} {'tree MB':>7}", flush=True)  # fmt: skip
    results = []
    with tempfile.TemporaryDirectory() as folder:
        process, port = start_server(Path(folder), shlex.split(args.server_args))
        try:
            legitimate_request(port)  # warm up
            for count in args.slow.split(","):
                results.append(r := measure(process.pid, port, int(count), args.seconds))
                held = f"{r['held_median']:.0f}/{r['held_min']}"
                print(f"{r['slow']:>5} {held:>9} {r['reopened']:>8} {r['requests']:>8} "
                      f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['max_ms']:>7.1f} "
                      f"{r['threads']:>7.0f} {r['rss_mb']:>7.1f} {r['tree_rss_mb']:>7.1f}",
                      flush=True)  # fmt: skip
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print("the server did not stop within 30 s of SIGTERM: killed")
                process.kill()
                process.wait()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
