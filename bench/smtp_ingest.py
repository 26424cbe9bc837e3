"""SMTP ingest benchmark: Mailtrap against a bare aiosmtpd sink.

For every server, connection count K and message kind, a fresh server process receives N
messages over K persistent connections. Throughput comes from Postfix's C load generator
`smtp-source` (a Python client would steal the server's CPU on a small machine); per-message
latency comes from a smaller pass with an asyncio client that times end-of-data -> 250.
Peak RSS is the summed VmHWM of the server's process tree, which is per scenario because
each scenario gets a fresh process. For Mailtrap the rows in its SQLite file are compared
with the messages acknowledged.

Usage:
    python bench/smtp_ingest.py [--messages N] [--connections 1,4,16] [--sizes 2k,50k]
                                [--servers bare,mailtrap] [--big]

Sizes under 10k are a plain-text message; larger ones are a multipart/mixed message with a
text part, an HTML part and a base64 attachment. smtp-source is fetched once with
`apt-get download postfix` into bench/.cache/; without it the asyncio client does the
throughput pass too, and the output says so.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import re
import shlex
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid
from pathlib import Path

from proc_memory import RssSampler, tree_mb

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(REPO_DIR / "tests"))  # postfix_tools: the tests fetch smtp-sink the same way
from postfix_tools import PostfixTool as SmtpSource  # noqa: E402
from postfix_tools import find_tool  # noqa: E402

CACHE_DIR = BENCH_DIR / ".cache"  # shared with the tests' smtp-sink (tests/postfix_tools.py)
HOST = "127.0.0.1"
SENDER = "bench@bench.example"
RECIPIENT = "inbox@bench.example"
CLIENT_HOSTNAME = "bench.example"
LISTENING_RE = re.compile(r"SMTP listening on [^\s:]+:(\d+)")
MULTIPART_THRESHOLD = 10 * 1024
WARMUP_MESSAGES = 20
SERVER_START_TIMEOUT = 30.0
SERVER_STOP_TIMEOUT = 10.0
REPLY_TIMEOUT = 120.0
SERVERS = ("bare", "mailtrap")
FILLER_WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")


# --------------------------------------------------------------------------- messages


def filler_text(rng: random.Random, size: int) -> str:
    """ASCII prose wrapped at 72 columns: 7bit-safe, so no encoding hides the size."""
    out: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(FILLER_WORDS)
        out.append(word)
        length += len(word) + 1
    return "\n".join(textwrap.wrap(" ".join(out)[:size], 72)) + "\n"


def base_message(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Bench Sender <{SENDER}>"
    msg["To"] = f"Inbox <{RECIPIENT}>"
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=CLIENT_HOSTNAME)
    return msg


def serialize(msg: EmailMessage) -> bytes:
    # The SMTP policy gives CRLF line endings, as on the wire.
    return msg.as_bytes(policy=SMTP_POLICY)


def build_plain_message(target_size: int, seed: int = 1) -> bytes:
    msg = base_message(f"Plain benchmark message ({target_size} bytes)")
    body_size = target_size
    for _ in range(3):  # converge: headers and CRLF line endings add to the body's size
        msg.set_content(filler_text(random.Random(seed), max(0, body_size)))
        body_size -= len(serialize(msg)) - target_size
    msg.set_content(filler_text(random.Random(seed), max(0, body_size)))
    return serialize(msg)


def build_multipart(text_size: int, attachment: bytes, rng: random.Random) -> EmailMessage:
    msg = base_message("Multipart benchmark message")
    msg.set_content(filler_text(rng, text_size))
    paragraphs = "".join(f"<p>{line}</p>\n" for line in filler_text(rng, text_size).splitlines())
    msg.add_alternative(f"<html><body>\n{paragraphs}</body></html>\n", subtype="html")
    msg.add_attachment(
        attachment, maintype="application", subtype="octet-stream", filename="payload.bin"
    )
    return msg


def build_multipart_message(target_size: int, seed: int = 2) -> bytes:
    """multipart/mixed: text + HTML alternatives and a base64 attachment filling the rest."""
    text_size = min(4096, target_size // 8)
    overhead = len(serialize(build_multipart(text_size, b"", random.Random(seed))))
    # base64 turns 57 raw bytes into a 76-character line plus CRLF.
    raw_size = max(0, (target_size - overhead) * 57 // 78)
    attachment = random.Random(seed).randbytes(raw_size)
    return serialize(build_multipart(text_size, attachment, random.Random(seed)))


def build_message(size: int) -> bytes:
    if size < MULTIPART_THRESHOLD:
        return build_plain_message(size)
    return build_multipart_message(size)


def parse_size(token: str) -> int:
    match = re.fullmatch(r"(\d+)([kKmM]?)", token.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"bad size {token!r}; use e.g. 2k, 50k, 1m")
    number, unit = int(match[1]), match[2].lower()
    return number * {"": 1, "k": 1024, "m": 1024 * 1024}[unit]


def wire_body(message: bytes) -> bytes:
    """Dot-stuffed DATA payload without its final CRLF; the client sends CRLF . CRLF itself."""
    stuffed = re.sub(rb"(?m)^\.", b"..", message)
    return stuffed.removesuffix(b"\r\n")


# --------------------------------------------------------------------------- smtp-source


def find_smtp_source(cache_dir: Path, explicit: Path | None) -> tuple[SmtpSource | None, str]:
    """Return a runnable smtp-source (fetching it into the cache if needed) and a note."""
    return find_tool("smtp-source", cache_dir, explicit)


def write_smtp_source_file(message: bytes, path: Path) -> None:
    # smtp-source -F appends CRLF to every line and dot-stuffs itself, so it wants LF lines.
    # (It also sends one empty line after the last: the wire copy is 2 bytes longer.)
    path.write_bytes(message.replace(b"\r\n", b"\n"))


def run_smtp_source(
    tool: SmtpSource, port: int, message_file: Path, messages: int, connections: int, timeout: float
) -> tuple[float, int]:
    """Send `messages` over `connections` persistent sessions; return (seconds, acknowledged).

    smtp-source exits non-zero on any non-2xx reply, so a clean exit means every message got
    its 250. With -d a session keeps sending until the shared message count runs out.
    """
    cmd = [
        str(tool.binary),
        *("-4", "-c", "-d"),
        *("-s", str(connections), "-m", str(messages)),
        *("-M", CLIENT_HOSTNAME, "-f", SENDER, "-t", RECIPIENT),
        *("-F", str(message_file)),
        f"{HOST}:{port}",
    ]
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=tool.env(), capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"smtp-source failed ({proc.returncode}): {proc.stderr.strip()}")
    counts = re.findall(r"\d+", proc.stdout)
    sent = int(counts[-1]) if counts else 0
    if sent != messages:
        raise RuntimeError(f"smtp-source sent {sent} of {messages} messages")
    return elapsed, messages


# --------------------------------------------------------------------------- asyncio client


class SmtpReplyError(RuntimeError):
    pass


@dataclass
class MessageTiming:
    total: float  # from the first DATA byte to the 250
    after_end_of_data: float  # from writing CRLF . CRLF to the 250


@dataclass
class LoadResult:
    elapsed: float
    acknowledged: int
    latencies: list[float] = field(default_factory=list)


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    text = b""
    while True:
        line = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT)
        if not line:
            raise SmtpReplyError("connection closed by server")
        text += line
        if line[3:4] != b"-":  # "250-" continues a multi-line reply, "250 " ends it
            return int(line[:3]), text


async def expect(reader: asyncio.StreamReader, code: int) -> None:
    got, text = await read_reply(reader)
    if got != code:
        raise SmtpReplyError(f"expected {code}, got {text.decode(errors='replace').strip()}")


async def command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes, code: int
) -> None:
    writer.write(line + b"\r\n")
    await writer.drain()
    await expect(reader, code)


async def open_session(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port)
    await expect(reader, 220)
    await command(reader, writer, b"EHLO " + CLIENT_HOSTNAME.encode(), 250)
    return reader, writer


async def close_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, SmtpReplyError, asyncio.TimeoutError):
        await command(reader, writer, b"QUIT", 221)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def send_one(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes
) -> MessageTiming:
    await command(reader, writer, f"MAIL FROM:<{SENDER}>".encode(), 250)
    await command(reader, writer, f"RCPT TO:<{RECIPIENT}>".encode(), 250)
    await command(reader, writer, b"DATA", 354)
    started = time.perf_counter()
    writer.write(body)
    await writer.drain()
    end_of_data = time.perf_counter()
    writer.write(b"\r\n.\r\n")
    await writer.drain()
    await expect(reader, 250)
    done = time.perf_counter()
    return MessageTiming(total=done - started, after_end_of_data=done - end_of_data)


async def send_over_connection(port: int, body: bytes, count: int) -> list[MessageTiming]:
    reader, writer = await open_session(port)
    try:
        return [await send_one(reader, writer, body) for _ in range(count)]
    finally:
        await close_session(reader, writer)


def split_evenly(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


async def python_load(port: int, body: bytes, messages: int, connections: int) -> LoadResult:
    counts = [c for c in split_evenly(messages, connections) if c > 0]
    started = time.perf_counter()
    per_connection = await asyncio.gather(
        *(send_over_connection(port, body, count) for count in counts)
    )
    elapsed = time.perf_counter() - started
    timings = [t for conn in per_connection for t in conn]
    return LoadResult(elapsed, len(timings), [t.after_end_of_data for t in timings])


def run_python_load(port: int, message: bytes, messages: int, connections: int) -> LoadResult:
    return asyncio.run(python_load(port, wire_body(message), messages, connections))


def send_single(port: int, message: bytes) -> MessageTiming:
    return asyncio.run(send_over_connection(port, wire_body(message), 1))[0]


# --------------------------------------------------------------------------- servers


def server_command(name: str, python: str, db_path: Path, extra: Sequence[str] = ()) -> list[str]:
    if name == "bare":
        return [python, str(BENCH_DIR / "bare_sink.py")]
    # As users run it, the web inbox and POP3 listening too (on free ports).
    mailtrap = [python, "-m", "mailtrap", "serve", "--smtp", f"{HOST}:0", "--db", str(db_path)]
    mailtrap += ["--http", f"{HOST}:0", "--pop3", f"{HOST}:0"]
    return [*mailtrap, *extra]


class ServerProcess:
    """A server subprocess: started, its port parsed from stdout, stopped by PID."""

    def __init__(self, name: str, cmd: list[str], workdir: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.stderr_path = workdir / f"{name}.stderr"
        self.stdout_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._port: int | None = None
        self._port_found = threading.Event()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> int:
        # Unbuffered, so the "listening" line arrives even if the server forgets to flush.
        # MAILTRAP_* settings from the caller's shell would silently change what is measured;
        # --mailtrap-args is the explicit way.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILTRAP_")}
        env["PYTHONUNBUFFERED"] = "1"
        with self.stderr_path.open("w") as stderr:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=REPO_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                errors="replace",
            )
        # Keep draining stdout: a server that logs per message would block on a full pipe.
        threading.Thread(target=self._drain_stdout, daemon=True).start()
        if not self._port_found.wait(SERVER_START_TIMEOUT) or self._port is None:
            self.stop()
            raise RuntimeError(f"{self.name} did not report its port:\n{self.diagnostics()}")
        return self._port

    def _drain_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout_tail.append(line.rstrip())
            match = LISTENING_RE.search(line)
            if match and self._port is None:
                self._port = int(match[1])
                self._port_found.set()
        self._port_found.set()  # exited without a port: stop waiting

    @property
    def port(self) -> int:
        assert self._port is not None, "server not started"
        return self._port

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def peak_rss_mb(self) -> float | None:
        """Summed VmHWM (high-water resident set size) of the server and its children.

        Mailtrap writes through a child process (mailtrap.writer), so the
        server's memory is the sum over its process tree.
        """
        return tree_mb(self.pid, "VmHWM") or None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # It may exit between poll() and kill(); the wait below still reaps it.
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.proc.wait(SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.proc.wait()

    def diagnostics(self) -> str:
        stderr = self.stderr_path.read_text(errors="replace")[-2000:]
        stdout = "\n".join(self.stdout_tail)
        return f"--- stdout tail ---\n{stdout}\n--- stderr tail ---\n{stderr}"


@contextlib.contextmanager
def running_server(
    name: str, python: str, extra: Sequence[str] = ()
) -> Iterator[tuple[ServerProcess, Path]]:
    """A fresh server process with its own temp dir (and SQLite file for Mailtrap)."""
    with tempfile.TemporaryDirectory(prefix=f"smtp-bench-{name}-") as tmp:
        workdir = Path(tmp)
        db_path = workdir / "bench.db"
        server = ServerProcess(name, server_command(name, python, db_path, extra), workdir)
        try:
            server.start()
            yield server, db_path
        finally:
            server.stop()


def count_stored_messages(db_path: Path) -> int | str:
    """Rows in Mailtrap's messages table, or the error text (the schema may still change)."""
    if not db_path.exists():
        return f"error: no database at {db_path}"
    try:
        # Not mode=ro: a read-only connection cannot recover a WAL left by a killed server.
        with contextlib.closing(sqlite3.connect(db_path)) as db:
            db.execute("PRAGMA busy_timeout = 5000")
            return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])
    except sqlite3.Error as exc:
        return f"error: {exc}"


def wait_until_parsed(db_path: Path, timeout: float = 120.0) -> None:
    """Wait until Mailtrap has written every summary (it does so after the 250)."""
    deadline = time.monotonic() + timeout
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        db.execute("PRAGMA busy_timeout = 5000")
        while time.monotonic() < deadline:
            if not db.execute("SELECT count(*) FROM messages WHERE parsed = 0").fetchone()[0]:
                return
            time.sleep(0.05)


# --------------------------------------------------------------------------- scenarios


@dataclass
class ScenarioResult:
    server: str
    kind: str
    connections: int
    message_bytes: int
    client: str
    round: int = 1
    msgs_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    peak_rss_mb: float | None = None
    acknowledged: int = 0
    rows_while_running: int | str | None = None
    rows_after_stop: int | str | None = None
    error: str | None = None


@dataclass
class Plan:
    python: str
    mailtrap_args: list[str]
    messages: int
    latency_messages: int
    smtp_source: SmtpSource | None
    timeout: float


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def measure_throughput(
    plan: Plan, port: int, message: bytes, message_file: Path, connections: int
) -> LoadResult:
    if plan.smtp_source is not None:
        elapsed, acked = run_smtp_source(
            plan.smtp_source, port, message_file, plan.messages, connections, plan.timeout
        )
        return LoadResult(elapsed, acked)
    return run_python_load(port, message, plan.messages, connections)


def measure_scenario(
    plan: Plan,
    server: ServerProcess,
    db_path: Path,
    message: bytes,
    message_file: Path,
    result: ScenarioResult,
) -> None:
    # Warm-up keeps lazy imports and first-connection setup out of the timings.
    result.acknowledged += run_python_load(server.port, message, WARMUP_MESSAGES, 1).acknowledged
    throughput = measure_throughput(plan, server.port, message, message_file, result.connections)
    result.acknowledged += throughput.acknowledged
    result.msgs_per_s = throughput.acknowledged / throughput.elapsed

    latency = throughput
    if not throughput.latencies:  # smtp-source times nothing per message
        latency = run_python_load(server.port, message, plan.latency_messages, result.connections)
        result.acknowledged += latency.acknowledged
    result.p50_ms = statistics.median(latency.latencies) * 1000
    result.p99_ms = percentile(latency.latencies, 99) * 1000

    server.check_alive()
    result.peak_rss_mb = server.peak_rss_mb()
    if result.server == "mailtrap":
        # Counted while running (a 250 must mean committed) and again after a clean stop.
        result.rows_while_running = count_stored_messages(db_path)
        server.stop()
        result.rows_after_stop = count_stored_messages(db_path)


def run_scenario(
    plan: Plan, name: str, kind: str, message: bytes, message_file: Path, connections: int
) -> ScenarioResult:
    client = "smtp-source" if plan.smtp_source else "python"
    result = ScenarioResult(name, kind, connections, len(message), client)
    try:
        with running_server(name, plan.python, plan.mailtrap_args) as (server, db_path):
            try:
                measure_scenario(plan, server, db_path, message, message_file, result)
            except Exception:
                print(server.diagnostics(), file=sys.stderr)
                raise
    except Exception as exc:  # one broken scenario must not sink the whole run
        result.error = f"{type(exc).__name__}: {exc}"
    return result


@dataclass
class BigResult:
    server: str
    message_bytes: int
    copies: int = 1
    idle_rss_mb: float | None = None
    total_s: float | None = None
    after_end_of_data_s: float | None = None
    peak_rss_mb: float | None = None
    sampled_peak_mb: float | None = None  # the most the tree held at one moment
    rows_after_stop: int | str | None = None
    error: str | None = None


def build_big_message(size: int) -> bytes:
    return build_multipart_message(size, seed=3)


def run_big(plan: Plan, name: str, message: bytes, copies: int = 1) -> BigResult:
    """Send ``copies`` of a big message at once, each on its own connection, to a fresh server."""
    result = BigResult(name, len(message), copies)
    try:
        with running_server(name, plan.python, plan.mailtrap_args) as (server, db_path):
            result.idle_rss_mb = tree_mb(server.pid, "VmRSS") or None
            body = wire_body(message)

            async def send_all() -> list[MessageTiming]:
                sends = [send_over_connection(server.port, body, 1) for _ in range(copies)]
                return [timings[0] for timings in await asyncio.gather(*sends)]

            with RssSampler(server.pid) as sampler:
                timings = asyncio.run(send_all())
                result.total_s = max(t.total for t in timings)
                result.after_end_of_data_s = max(t.after_end_of_data for t in timings)
                if name == "mailtrap":  # parsing comes after the 250, and counts too
                    wait_until_parsed(db_path)
            result.sampled_peak_mb = sampler.peak_mb or None
            server.check_alive()
            result.peak_rss_mb = server.peak_rss_mb()
            if name == "mailtrap":
                server.stop()
                result.rows_after_stop = count_stored_messages(db_path)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


# --------------------------------------------------------------------------- report


def fmt(value: float | int | str | None, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def rows_cell(result: ScenarioResult) -> str:
    if result.server != "mailtrap":
        return "-"
    return f"{fmt(result.rows_while_running)}/{fmt(result.rows_after_stop)}"


def durability_verdict(result: ScenarioResult) -> str:
    if result.server != "mailtrap" or result.error:
        return "-"
    counts = (result.rows_while_running, result.rows_after_stop)
    if any(isinstance(c, str) for c in counts):
        return "n/a"
    return "ok" if all(c == result.acknowledged for c in counts) else "MISMATCH"


def print_results(results: Sequence[ScenarioResult]) -> None:
    headers = [
        "server",
        "kind",
        "bytes",
        "K",
        "round",
        "msgs/s",
        "p50 ms",
        "p99 ms",
        "peak RSS MB",
        "acked",
        "rows live/stopped",
        "durable",
    ]
    rows = [
        [
            r.server,
            r.kind,
            str(r.message_bytes),
            str(r.connections),
            str(r.round),
            fmt(r.msgs_per_s),
            fmt(r.p50_ms, ".2f"),
            fmt(r.p99_ms, ".2f"),
            fmt(r.peak_rss_mb),
            str(r.acknowledged),
            rows_cell(r),
            durability_verdict(r),
        ]
        for r in results
    ]
    print_table(headers, rows)
    for r in results:
        if r.error:
            print(f"  ! {r.server} {r.kind} K={r.connections}: {r.error}")


def round_ratios(results: Sequence[ScenarioResult]) -> dict[tuple[str, int], list[float]]:
    """Mailtrap / bare throughput of each round, by (kind, K)."""
    by_key = {(r.server, r.kind, r.connections, r.round): r.msgs_per_s for r in results}
    ratios: dict[tuple[str, int], list[float]] = {}
    for r in results:
        if r.server != "mailtrap":
            continue
        bare = by_key.get(("bare", r.kind, r.connections, r.round))
        if r.msgs_per_s and bare:
            ratios.setdefault((r.kind, r.connections), []).append(r.msgs_per_s / bare)
    return ratios


def print_ratios(results: Sequence[ScenarioResult]) -> None:
    rows = [
        [
            kind,
            str(connections),
            fmt(statistics.median(values), ".2f"),
            f"{min(values):.2f}-{max(values):.2f}",
            str(len(values)),
        ]
        for (kind, connections), values in round_ratios(results).items()
    ]
    if rows:
        print("\nMailtrap / bare throughput (median of the rounds' ratios)")
        print_table(["kind", "K", "ratio", "range", "rounds"], rows)


def print_big_results(results: Sequence[BigResult]) -> None:
    print("\nBig messages, sent at once over one connection each, to a fresh server")
    headers = [
        "server",
        "bytes",
        "copies",
        "slowest 250 s",
        "after end-of-data s",
        "idle RSS MB",
        "peak RSS MB",
        "(peak-idle)/bytes",
        "sampled peak MB",
        "rows",
    ]
    rows = []
    for r in results:
        cost = None
        if r.peak_rss_mb and r.idle_rss_mb:
            cost = (r.peak_rss_mb - r.idle_rss_mb) * 1024 * 1024 / r.message_bytes
        rows.append(
            [
                r.server,
                str(r.message_bytes),
                str(r.copies),
                fmt(r.total_s, ".2f"),
                fmt(r.after_end_of_data_s, ".2f"),
                fmt(r.idle_rss_mb),
                fmt(r.peak_rss_mb),
                fmt(cost, ".2f"),
                fmt(r.sampled_peak_mb),
                fmt(r.rows_after_stop),
            ]
        )
    print_table(headers, rows)
    for r in results:
        if r.error:
            print(f"  ! {r.server} big x{r.copies}: {r.error}")


def comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="SMTP ingest benchmark: Mailtrap against a bare aiosmtpd sink."
    )
    parser.add_argument("--messages", type=int, default=2000, help="messages per scenario")
    parser.add_argument("--connections", default="1,4,16", help="comma list of K")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="runs of each scenario, the servers taking turns; the ratio is their median",
    )
    parser.add_argument(
        "--sizes",
        default="2k,50k",
        help="comma list of sizes; under 10k plain text, else multipart",
    )
    parser.add_argument("--servers", default="bare,mailtrap", help="comma list: bare,mailtrap")
    parser.add_argument(
        "--latency-messages",
        type=int,
        default=None,
        help="messages in the asyncio latency pass (default: messages/4)",
    )
    parser.add_argument("--big", action="store_true", help="also send one big message")
    parser.add_argument(
        "--big-size",
        type=parse_size,
        default=25 * 1000 * 1000,
        help="size of the --big message (default 25 MB)",
    )
    parser.add_argument(
        "--big-copies",
        type=comma_list,
        default=["1", "10"],
        help="how many --big messages to send at once, per fresh server (default 1,10)",
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter for the servers")
    parser.add_argument(
        "--mailtrap-args",
        default="",
        help="extra arguments for `mailtrap serve`, e.g. to lift its message-count cap",
    )
    parser.add_argument(
        "--client",
        choices=("auto", "smtp-source", "python"),
        default="auto",
        help="throughput load generator (auto: smtp-source if it runs)",
    )
    parser.add_argument(
        "--smtp-source",
        type=Path,
        default=None,
        help="path to an smtp-source binary (default: fetched into bench/.cache)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds one throughput pass may take"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    args = parser.parse_args(argv)
    args.connections = [int(k) for k in comma_list(args.connections)]
    args.sizes = comma_list(args.sizes)
    for size in args.sizes:
        parse_size(size)
    args.servers = comma_list(args.servers)
    unknown = set(args.servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    if args.messages < 1 or args.rounds < 1 or any(k < 1 for k in args.connections):
        parser.error("--messages, --rounds and --connections must be positive")
    return args


def choose_load_generator(args: argparse.Namespace) -> tuple[SmtpSource | None, str]:
    if args.client == "python":
        return None, "asyncio client (requested with --client python)"
    tool, note = find_smtp_source(CACHE_DIR, args.smtp_source)
    if tool is None and args.client == "smtp-source":
        raise SystemExit(f"smtp-source unavailable: {note}")
    if tool is None:
        return None, f"asyncio client, because smtp-source is unavailable ({note})"
    return tool, note


def run_all_scenarios(args: argparse.Namespace, plan: Plan, workdir: Path) -> list[ScenarioResult]:
    results = []
    for size_label in args.sizes:
        message = build_message(parse_size(size_label))
        message_file = workdir / f"message-{size_label}.txt"
        write_smtp_source_file(message, message_file)
        for connections in args.connections:
            # Rounds alternate the servers, so a burst of other work on the
            # machine falls on both, and each round's ratio compares like with like.
            for round_number in range(1, args.rounds + 1):
                for name in args.servers:
                    print(
                        f"... {name} {size_label} K={connections} round {round_number}",
                        file=sys.stderr,
                        flush=True,
                    )
                    result = run_scenario(
                        plan, name, size_label, message, message_file, connections
                    )
                    result.round = round_number
                    results.append(result)
    return results


def run_big_scenarios(args: argparse.Namespace, plan: Plan) -> list[BigResult]:
    message = build_big_message(args.big_size)
    results = []
    for copies in map(int, args.big_copies):
        for name in args.servers:
            print(f"... {name} big message x{copies}", file=sys.stderr, flush=True)
            results.append(run_big(plan, name, message, copies))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    tool, client_note = choose_load_generator(args)
    latency_messages = args.latency_messages or max(max(args.connections), args.messages // 4)
    mailtrap_args = shlex.split(args.mailtrap_args)
    plan = Plan(args.python, mailtrap_args, args.messages, latency_messages, tool, args.timeout)

    print(
        f"SMTP ingest benchmark: {args.messages} messages per scenario "
        f"(+{WARMUP_MESSAGES} warm-up), servers run by {args.python}"
    )
    print(f"throughput client: {client_note}")
    latency_note = "same pass" if tool is None else f"separate pass of {latency_messages} messages"
    print(f"latency: asyncio client, end-of-data -> 250, {latency_note}")
    with tempfile.TemporaryDirectory(prefix="smtp-bench-") as tmp:
        results = run_all_scenarios(args, plan, Path(tmp))
    print()
    print_results(results)
    print_ratios(results)
    big_results = run_big_scenarios(args, plan) if args.big else []
    if big_results:
        print_big_results(big_results)
    if args.json:
        payload = {
            "scenarios": [asdict(r) for r in results],
            "big": [asdict(r) for r in big_results],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    failed = any(r.error for r in results) or any(r.error for r in big_results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
