"""POP3 benchmark: LIST/UIDL over a big maildrop, RETR throughput, peak RSS.

Each scenario fills a fresh database through ``Store.add`` (many writes in flight,
so the writer commits in large batches), then starts ``mailtrap serve`` on it as
a subprocess, so the server's memory counts only what POP3 made it use. Over
loopback, with a raw-socket client that reads in bulk:

- **maildrop**: N messages of ~2 KB to ten recipients. The first login (which
  counts every message's CRLF size once: the stored bytes are read), later
  logins, STAT, LIST and UIDL of all N, and a login + UIDL of one recipient's
  mailbox (N/10);
- **retr 50 KB**: M multipart messages of 50 KB, every one RETR'd over 1 and
  over 4 connections (MB/s of message bytes received);
- **retr 25 MB**: one 25 MB message RETR'd three times;
- **ceiling**: the same client reading the same 25 MB from a plain Python
  socket server that sends a buffer it holds, i.e. what loopback and the
  client manage on this machine;
- **peak RSS**: summed VmHWM of the server's process tree (writer included),
  and its RSS right after start for comparison.

Usage:
    python bench/pop3.py [--messages 10000] [--retr-messages 200] [--big-size 25M]
                         [--repeat 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(REPO_DIR))

from proc_memory import tree_mb  # noqa: E402
from smtp_ingest import build_message, parse_size  # noqa: E402

from mailtrap.store import IncomingMessage, Store  # noqa: E402

HOST = "127.0.0.1"
RECIPIENTS = [f"user{n}@bench.example" for n in range(10)]
POP3_RE = re.compile(r"POP3 listening on [^\s]+:(\d+)")
IN_FLIGHT = 5000
START_TIMEOUT = 60.0
READ_SIZE = 1 << 20


# -- filling a database -------------------------------------------------------------


def fill(db: Path, messages: Iterator[tuple[bytes, str]]) -> float:
    """Store every (raw, recipient); returns the seconds it took."""
    started = time.perf_counter()
    with Store(db) as store:
        pending = []
        for raw, recipient in messages:
            message = IncomingMessage(raw=raw, mail_from="b@bench.example", rcpt_tos=[recipient])
            pending.append(store.add(message))
            if len(pending) >= IN_FLIGHT:
                for future in pending:
                    future.result()
                pending.clear()
        for future in pending:
            future.result()
    return time.perf_counter() - started


def small_messages(count: int) -> Iterator[tuple[bytes, str]]:
    base = build_message(2048)
    for number in range(count):
        yield base.replace(b"Subject: ", b"Subject: %d " % number, 1), RECIPIENTS[number % 10]


# -- the server --------------------------------------------------------------------


class Pop3Server:
    """``mailtrap serve`` on a database, POP3 on a free port; stopped by PID."""

    def __init__(self, db: Path, workdir: Path):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILTRAP_")}
        env["PYTHONUNBUFFERED"] = "1"
        command = [sys.executable, "-m", "mailtrap", "serve", "--db", str(db)]
        command += ["--smtp", f"{HOST}:0", "--pop3", f"{HOST}:0", "--http", "off"]
        command += ["--max-messages", "0"]
        self._stderr = (workdir / "server.stderr").open("w")
        self.proc = subprocess.Popen(
            command,
            cwd=REPO_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.port = self._read_port()
        self.rss_at_start_mb = tree_mb(self.proc.pid, "VmRSS")

    def _read_port(self) -> int:
        found: list[int] = []
        ready = threading.Event()

        def drain() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if match := POP3_RE.search(line):
                    found.append(int(match[1]))
                if line.startswith("Press Ctrl+C"):
                    ready.set()
            ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(START_TIMEOUT) or not found:
            self.stop()
            raise RuntimeError("mailtrap serve did not report a POP3 port")
        return found[0]

    def peak_rss_mb(self) -> float:
        return tree_mb(self.proc.pid, "VmHWM")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


@contextlib.contextmanager
def running(db: Path, workdir: Path) -> Iterator[Pop3Server]:
    server = Pop3Server(db, workdir)
    try:
        yield server
    finally:
        server.stop()


# -- the client ----------------------------------------------------------------------


class Client:
    """A POP3 client reading in bulk: the cost of the client stays small."""

    def __init__(self, port: int):
        self.sock = socket.create_connection((HOST, port), timeout=300)
        self.buffer = bytearray()
        self.line()

    def line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            self._receive()
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    def command(self, text: str) -> bytes:
        self.sock.sendall(text.encode() + b"\r\n")
        reply = self.line()
        assert reply.startswith(b"+OK"), reply
        return reply

    def multiline(self, text: str) -> int:
        """Send a command with a multi-line reply; returns the octets of its body (stuffed)."""
        self.command(text)
        received = 0
        tail = b"\r\n"  # the body starts at a line start, so ".\r\n" alone ends it
        while True:
            data = bytes(self.buffer)
            end = (tail + data).find(b"\r\n.\r\n")
            if end >= 0:
                dot = end + 2 - len(tail)  # where the final dot is in data (< 0: in tail)
                self.buffer = bytearray(data[dot + 3 :])
                return received + dot
            received += len(data)
            tail = (tail + data)[-4:]
            self.buffer.clear()
            self._receive()

    def login(self, user: str = "bench") -> None:
        self.command(f"USER {user}")
        self.command("PASS x")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"QUIT\r\n")
        self.sock.close()

    def _receive(self) -> None:
        chunk = self.sock.recv(READ_SIZE)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median_ms(action: Callable[[], object], repeat: int) -> float:
    return statistics.median(timed(action) for _ in range(repeat)) * 1000


# -- scenarios ---------------------------------------------------------------------------


def maildrop_scenario(count: int, repeat: int, workdir: Path) -> dict[str, float]:
    db = workdir / "maildrop.db"
    fill_s = fill(db, small_messages(count))
    with running(db, workdir) as server:
        client = Client(server.port)
        first_login = timed(client.login)
        stat = client.command("STAT")
        assert int(stat.split()[1]) == count, stat
        result = {
            "messages": count,
            "fill_s": fill_s,
            "first_login_ms": first_login * 1000,
            "stat_ms": median_ms(lambda: client.command("STAT"), repeat),
            "list_ms": median_ms(lambda: client.multiline("LIST"), repeat),
            "uidl_ms": median_ms(lambda: client.multiline("UIDL"), repeat),
        }
        client.close()

        def login_again() -> None:
            again = Client(server.port)
            again.login()
            again.close()

        result["later_login_ms"] = median_ms(login_again, repeat)

        def one_recipient() -> None:
            mailbox = Client(server.port)
            mailbox.login(RECIPIENTS[3])
            mailbox.multiline("UIDL")
            mailbox.close()

        result["recipient_login_uidl_ms"] = median_ms(one_recipient, repeat)
        result["peak_rss_mb"] = server.peak_rss_mb()
        result["rss_at_start_mb"] = server.rss_at_start_mb
    return result


def retrieve_all(port: int, numbers: Sequence[int]) -> int:
    client = Client(port)
    client.login()
    received = sum(client.multiline(f"RETR {number}") for number in numbers)
    client.close()
    return received


def retr_scenario(
    name: str, raw: bytes, count: int, connections: Sequence[int], passes: int, workdir: Path
) -> dict[str, object]:
    db = workdir / f"{name}.db"
    fill(db, ((raw, RECIPIENTS[0]) for _ in range(count)))
    result: dict[str, object] = {"message_bytes": len(raw), "messages": count}
    with running(db, workdir) as server:
        Client(server.port).login()  # the first login counts sizes; not part of RETR
        for k in connections:
            rates = []
            for _ in range(passes):
                shares = [list(range(1 + i, count + 1, k)) for i in range(k)]
                started = time.perf_counter()
                with ThreadPoolExecutor(k) as pool:
                    totals = list(pool.map(functools.partial(retrieve_all, server.port), shares))
                elapsed = time.perf_counter() - started
                assert sum(totals) >= len(raw) * count, (sum(totals), len(raw) * count)
                rates.append(len(raw) * count / elapsed / 1e6)
            result[f"mb_per_s_k{k}"] = statistics.median(rates)
        result["peak_rss_mb"] = server.peak_rss_mb()
        result["rss_at_start_mb"] = server.rss_at_start_mb
    return result


def ceiling(raw: bytes, passes: int) -> float:
    """MB/s of the same client reading ``raw`` as a multi-line reply from a plain socket."""
    listener = socket.create_server((HOST, 0))
    reply = b"+OK\r\n" + raw + b".\r\n"

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.sendall(b"+OK ready\r\n")
            for _ in range(passes):
                connection.recv(100)
                connection.sendall(reply)

    thread = threading.Thread(target=serve)
    thread.start()
    client = Client(listener.getsockname()[1])
    rates = []
    for _ in range(passes):
        elapsed = timed(lambda: client.multiline("RETR 1"))
        rates.append(len(raw) / elapsed / 1e6)
    client.sock.close()
    thread.join()
    listener.close()
    return statistics.median(rates)


# -- report ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="maildrop size for LIST/UIDL")
    parser.add_argument("--retr-messages", type=int, default=200, help="50 KB messages to RETR")
    parser.add_argument("--big-size", type=parse_size, default=25 * 1000 * 1000)
    parser.add_argument("--repeat", type=int, default=5, help="timings per figure (median)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="pop3-bench-") as tmp:
        workdir = Path(tmp)
        print(f"... maildrop of {args.messages} messages", file=sys.stderr, flush=True)
        maildrop = maildrop_scenario(args.messages, args.repeat, workdir)
        results["maildrop"] = maildrop
        print(f"... RETR {args.retr_messages} x 50 KB", file=sys.stderr, flush=True)
        results["retr_50k"] = retr_scenario(
            "retr50k", build_message(50 * 1024), args.retr_messages, (1, 4), 3, workdir
        )
        print(f"... RETR {args.big_size / 1e6:.0f} MB", file=sys.stderr, flush=True)
        big = build_message(args.big_size)
        results["retr_big"] = retr_scenario("retrbig", big, 1, (1,), 3, workdir)
        results["ceiling_mb_per_s"] = ceiling(big, 3)

    m = results["maildrop"]
    assert isinstance(m, dict)
    print(f"\nPOP3 maildrop of {m['messages']} messages (~2 KB, filled in {m['fill_s']:.1f} s)")
    print(f"  first login (sizes counted) {m['first_login_ms']:8.1f} ms")
    print(f"  later login                 {m['later_login_ms']:8.1f} ms")
    print(f"  STAT                        {m['stat_ms']:8.2f} ms")
    print(f"  LIST                        {m['list_ms']:8.1f} ms")
    print(f"  UIDL                        {m['uidl_ms']:8.1f} ms")
    print(f"  login + UIDL, 1 recipient   {m['recipient_login_uidl_ms']:8.1f} ms")
    print(f"  peak RSS {m['peak_rss_mb']:.0f} MB (at start {m['rss_at_start_mb']:.0f} MB)")
    for key, label in (("retr_50k", "50 KB"), ("retr_big", f"{args.big_size / 1e6:.0f} MB")):
        r = results[key]
        assert isinstance(r, dict)
        rates = ", ".join(
            f"K={key[len('mb_per_s_k') :]}: {value:.0f} MB/s"
            for key, value in r.items()
            if key.startswith("mb_per_s")
        )
        print(
            f"RETR {label} x {r['messages']}: {rates}; "
            f"peak RSS {r['peak_rss_mb']:.0f} MB (at start {r['rss_at_start_mb']:.0f} MB)"
        )
    print(f"ceiling (plain socket server, same client): {results['ceiling_mb_per_s']:.0f} MB/s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
