"""HTTP API and live-event benchmark with a large mailbox.

Fills a database with N messages (100,000 by default; kept in bench/.cache/ and
copied for each run, so later runs skip the fill), starts `mailtrap serve` on it
as a subprocess, and measures:

- p50/p99 latency of the first page of the list (GET /api/v1/messages?limit=50);
- p50/p99 latency of searches: a common word alone, and a word with a from: filter;
- p50/p99 time from an SMTP `250` to the websocket `new` frame of that message
  (negative when the frame arrived before the `250`: both follow the commit);
- the server's peak RSS: the summed VmHWM of its process tree (writer included).

Usage:
    python bench/http_api.py [--messages N] [--requests N] [--events N] [--fresh] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import random
import re
import shutil
import signal
import smtplib
import sqlite3
import string
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import wait
from pathlib import Path
from urllib.parse import urlencode

from proc_memory import tree_mb
from simple_websocket import Client, ConnectionClosed

from mailtrap.store import IncomingMessage, Store

BENCH_DIR = Path(__file__).resolve().parent
CACHE_DIR = BENCH_DIR / ".cache"
HOST = "127.0.0.1"
LISTENING_RE = re.compile(r"(SMTP|HTTP) listening on [^\s:]+:(\d+)")
IN_FLIGHT = 5000  # store writes queued at once while filling: the writer batches them
WARMUP = 20
SEED = 3
DATA_VERSION = 3  # of the generated mailbox: part of the cache file name (3: fully summarized)
SUMMARIES_TIMEOUT = 1800.0  # s: the writer process parses ~1,000 messages/s
TARGETS_MS = {"list": 50.0, "search": 200.0, "event": 100.0}


def vocabulary(size: int = 5000) -> list[str]:
    """Made-up words of random letters: like real words, few are prefixes of others
    (search matches word prefixes). Used with Zipf weights, as real text is."""
    rng = random.Random(SEED)
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 10))))
    ranked = sorted(words)
    rng.shuffle(ranked)  # which words are common: random, but the same every run
    return ranked


VOCABULARY = vocabulary()
WORD_WEIGHTS = list(itertools.accumulate(1 / rank for rank in range(1, len(VOCABULARY) + 1)))
QUERY_WORDS = VOCABULARY[50:500]  # neither in every message nor in none
SENDERS = [(f"Sender {n}", f"user{n}@sender{n % 10}.example") for n in range(100)]


# -- the mailbox ------------------------------------------------------------------


def message(rng: random.Random, number: int) -> IncomingMessage:
    name, address = rng.choice(SENDERS)
    subject = " ".join(rng.choices(VOCABULARY, cum_weights=WORD_WEIGHTS, k=rng.randint(3, 7)))
    body = "\r\n".join(
        textwrap.wrap(
            " ".join(rng.choices(VOCABULARY, cum_weights=WORD_WEIGHTS, k=rng.randint(40, 250)))
        )
    )
    raw = (
        f"From: {name} <{address}>\r\nTo: inbox{number % 50}@example.com\r\n"
        f"Subject: {subject}\r\nMessage-ID: <fill-{number}@bench.example>\r\n"
        f"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n{body}\r\n"
    ).encode()
    return IncomingMessage(raw=raw, mail_from=address, rcpt_tos=[f"inbox{number % 50}@example.com"])


def fill(path: Path, count: int) -> float:
    """Write ``count`` messages through the store; returns the seconds it took."""
    rng = random.Random(SEED)
    started = time.monotonic()
    with Store(path, max_messages=0) as store:
        for first in range(0, count, IN_FLIGHT):
            futures = [
                store.add(message(rng, n)) for n in range(first, min(count, first + IN_FLIGHT))
            ]
            wait(futures)
            for future in futures:
                future.result()  # raise if a write failed
            print(f"\r  filled {min(count, first + IN_FLIGHT):,}/{count:,}", end="", flush=True)
        # Summaries are written after the commits; a mailbox saved before they
        # all are leaves the server a backlog to parse while it is measured.
        print(" (writing summaries)", end="", flush=True)
        store.settle(SUMMARIES_TIMEOUT)
    print()
    with contextlib.closing(sqlite3.connect(path)) as db:
        left = db.execute("SELECT count(*) FROM messages WHERE parsed = 0").fetchone()[0]
    if left:
        raise RuntimeError(f"{left:,} messages of {path} have no summary")
    return time.monotonic() - started


def prepared_database(count: int, fresh: bool, workdir: Path) -> Path:
    """A copy of the cached N-message database (built first if needed) in ``workdir``."""
    cached = CACHE_DIR / f"http_api-v{DATA_VERSION}-{count}.db"
    if fresh or not cached.exists():
        CACHE_DIR.mkdir(exist_ok=True)
        for stale in CACHE_DIR.glob(f"{cached.name}*"):
            stale.unlink()
        print(f"Filling {cached} with {count:,} messages...")
        seconds = fill(cached, count)
        print(f"  {count / seconds:,.0f} messages/s ({seconds:.1f} s)")
    copy = workdir / "mail.db"
    shutil.copyfile(cached, copy)
    return copy


# -- the server -------------------------------------------------------------------


class ServeProcess:
    """`python -m mailtrap serve` on ephemeral ports, with its ports read from the banner.

    ``extra``: more flags of ``serve``; ``python``: another checkout's interpreter
    runs that checkout's server.
    """

    def __init__(self, db: Path, *extra: str, python: str = sys.executable):
        command = [python, "-m", "mailtrap", "serve", "--db", str(db)]
        command += ["--http", f"{HOST}:0", "--smtp", f"{HOST}:0", "--pop3", "off"]
        command += ["--max-messages", "0", *extra]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        ports: dict[str, int] = {}
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if match := LISTENING_RE.search(line):
                ports[match[1]] = int(match[2])
            if len(ports) == 2:
                break
        else:
            raise RuntimeError(f"mailtrap serve exited with {self.process.wait()}")
        self.http_port, self.smtp_port = ports["HTTP"], ports["SMTP"]

    def memory_mb(self) -> dict[str, float]:
        """Memory of the server and its descendants (the writer process), summed, in MB.

        ``peak_rss``: VmHWM. It counts every page mapped, and each SQLite reader
        maps the database file (mmap_size), so file pages read by several readers
        count several times. ``anon`` (private memory: heap, stacks) and
        ``file_pss`` (mapped file pages, each counted once) say what it is made of.
        """
        fields = {"peak_rss": ("status", "VmHWM"), "rss": ("status", "VmRSS")}
        fields |= {"anon": ("smaps_rollup", "Pss_Anon"), "file_pss": ("smaps_rollup", "Pss_File")}
        return {
            name: tree_mb(self.process.pid, key, source) for name, (source, key) in fields.items()
        }

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- measurements -----------------------------------------------------------------


def get(port: int, path: str) -> tuple[float, bytes]:
    """Seconds for one GET (connect to last byte), and the body."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
    return time.perf_counter() - started, body


def request_latencies(port: int, paths: list[str], count: int) -> list[float]:
    for n in range(WARMUP):
        get(port, paths[n % len(paths)])
    return [get(port, paths[n % len(paths)])[0] for n in range(count)]


def search_paths(word_only: bool) -> list[str]:
    rng = random.Random(SEED + 1)
    queries = []
    for _ in range(20):
        word = rng.choice(QUERY_WORDS)
        queries.append(word if word_only else f"{word} from:{rng.choice(SENDERS)[1]}")
    return [f"/api/v1/search?{urlencode({'query': q, 'limit': 50})}" for q in queries]


def event_latencies(server: ServeProcess, count: int) -> list[float]:
    """Seconds from each SMTP 250 to the websocket frame announcing that message."""
    arrivals: dict[str, float] = {}
    ws = Client.connect(f"ws://{HOST}:{server.http_port}/api/events")

    def listen() -> None:
        with contextlib.suppress(ConnectionClosed):
            while (text := ws.receive()) is not None:
                frame = json.loads(text)
                if frame["Type"] == "new":
                    arrivals[frame["Data"]["MessageID"]] = time.perf_counter()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    acknowledged: dict[str, float] = {}
    with smtplib.SMTP(HOST, server.smtp_port, timeout=30) as smtp:
        for number in range(count):
            message_id = f"event-{number}@bench.example"
            body = (
                f"From: a@bench.example\r\nTo: b@bench.example\r\nSubject: Event {number}\r\n"
                f"Message-ID: <{message_id}>\r\n\r\nHello\r\n"
            )
            smtp.sendmail("a@bench.example", ["b@bench.example"], body.encode())
            acknowledged[message_id] = time.perf_counter()
            time.sleep(0.005)  # one message at a time, as a test suite sends them
    deadline = time.monotonic() + 10
    while len(arrivals) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    ws.close()
    missing = count - len(arrivals)
    if missing:
        raise RuntimeError(f"{missing} of {count} messages never showed up on the websocket")
    return [arrivals[key] - acknowledged[key] for key in acknowledged]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300, help="per measured request kind")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached database")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        db = prepared_database(args.messages, args.fresh, Path(workdir))
        server = ServeProcess(db)
        try:
            _, first_page = get(server.http_port, "/api/v1/messages?limit=50")
            total = json.loads(first_page)["total"]
            if total != args.messages:
                raise RuntimeError(f"the server reports {total} messages, not {args.messages}")
            list_path = ["/api/v1/messages?limit=50"]
            rows = {
                "list": request_latencies(server.http_port, list_path, args.requests),
                "search (word)": request_latencies(
                    server.http_port, search_paths(True), args.requests
                ),
                "search (word + from:)": request_latencies(
                    server.http_port, search_paths(False), args.requests
                ),
                "event": event_latencies(server, args.events),
            }
            memory = server.memory_mb()
        finally:
            server.stop()

    print(
        f"\n{args.messages:,} messages stored; {args.requests} requests per kind; "
        f"{args.events} events\n"
    )
    print(f"{'measure':<24}{'p50 ms':>10}{'p99 ms':>10}{'target p99':>12}  ok")
    figures: dict[str, object] = {"messages": args.messages}
    figures |= {f"{name}_mb": round(value, 1) for name, value in memory.items()}
    passed = True
    for name, seconds in rows.items():
        p50, p99 = percentile(seconds, 0.5) * 1000, percentile(seconds, 0.99) * 1000
        target = TARGETS_MS["search" if name.startswith("search") else name]
        ok = p99 < target
        passed &= ok
        print(f"{name:<24}{p50:>10.1f}{p99:>10.1f}{target:>12.0f}  {'yes' if ok else 'NO'}")
        figures[name] = {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "target_ms": target}
    print(
        f"\nserver memory (process tree): peak RSS {memory['peak_rss']:.0f} MB (VmHWM); now "
        f"RSS {memory['rss']:.0f} MB = private {memory['anon']:.0f} MB + database pages "
        f"mapped by the readers ({memory['file_pss']:.0f} MB once each)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
