"""Reading large and many-part messages: server CPU time and peak memory per request.

Stores two messages with the code under test (a 45 MB message with text, HTML
and a 33 MB base64 attachment; a 4.3 MB message of 100,000 MIME parts), starts
`mailtrap serve` on them as a subprocess and, for each message, measures one
GET /api/v1/message/{ID} and then four at once:

- **cpu**: the server process's user + system time over the request(s);
- **peak anon**: the highest private memory (RssAnon, sampled every 2 ms)
  above what it was before;
- **peak rss**: the rise of VmHWM (reset through /proc/PID/clear_refs before
  each measurement), which also counts database pages that SQLite maps.

`--python PATH` runs the server and the fill with another interpreter (an
older checkout, for a before/after comparison).

Usage:
    python bench/reads.py [--python PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from http_api import LISTENING_RE, ServeProcess

HOST = "127.0.0.1"
TICKS = os.sysconf("SC_CLK_TCK")

FILL = r"""
import base64, os, sys
from pathlib import Path
from mailtrap.store import IncomingMessage, Store

attachment = base64.encodebytes(os.urandom(33 * 1024 * 1024)).replace(b"\n", b"\r\n")
large = b"".join([
    b"From: a@example.com\r\nTo: b@example.com\r\nSubject: large\r\n",
    b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n",
    b"--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n",
    b"--outer\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hello</p>\r\n",
    b"--outer\r\nContent-Type: application/octet-stream\r\n",
    b'Content-Disposition: attachment; filename="big.bin"\r\n',
    b"Content-Transfer-Encoding: base64\r\n\r\n", attachment, b"--outer--\r\n",
])
part = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
many = (b"From: a@example.com\r\nSubject: many\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + part * 100_000 + b"--b--\r\n")
with Store(Path(sys.argv[1])) as store:
    for raw in (large, many):
        print(store.add(IncomingMessage(raw, "a@example.com", ["b@example.com"])).result(300))
"""


class Serve(ServeProcess):
    """``mailtrap serve`` run by ``python``; stopped as bench/http_api.py stops it."""

    def __init__(self, python: str, db: Path):
        command = [python, "-m", "mailtrap", "serve", "--db", str(db), "--max-messages", "0"]
        command += ["--http", f"{HOST}:0", "--smtp", f"{HOST}:0", "--pop3", "off"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if (match := LISTENING_RE.search(line)) and match[1] == "HTTP":
                self.port = int(match[2])
                return
        raise RuntimeError(f"mailtrap serve exited with {self.process.wait()}")

    def status_kb(self, key: str) -> int:
        text = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
        return int(match[1]) if match else 0

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS


def get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection(HOST, port, timeout=600)
    connection.request("GET", path)
    response = connection.getresponse()
    size = 0
    while chunk := response.read(1 << 16):
        size += len(chunk)
    connection.close()
    assert response.status == 200, (path, response.status)
    return size


def measure(server: Serve, path: str, clients: int) -> dict[str, float]:
    Path(f"/proc/{server.process.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    rss, anon = server.status_kb("VmRSS"), server.status_kb("RssAnon")
    peak_anon = [anon]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            peak_anon[0] = max(peak_anon[0], server.status_kb("RssAnon"))

    sampler = threading.Thread(target=sample)
    sampler.start()
    cpu, started = server.cpu(), time.perf_counter()
    threads = [threading.Thread(target=get, args=(server.port, path)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    return {
        "cpu_s": round(server.cpu() - cpu, 2),
        "wall_s": round(elapsed, 2),
        "peak_anon_mb": round((peak_anon[0] - anon) / 1024, 1),
        "peak_rss_mb": round((server.status_kb("VmHWM") - rss) / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "mail.db"
        filled = subprocess.run(
            [args.python, "-c", FILL, str(db)], check=True, capture_output=True, text=True
        )
        large, many = filled.stdout.split()
        server = Serve(args.python, db)
        try:
            for name, message_id in [("45 MB", large), ("100,000 parts", many)]:
                path = f"/api/v1/message/{message_id}"
                get(server.port, path)  # warm: marks it read, loads the code
                for clients in (1, 4):
                    results[f"{name}, {clients} at once"] = measure(server, path, clients)
        finally:
            server.stop()
    for name, numbers in results.items():
        print(f"{name:>24}: " + ", ".join(f"{key} {value}" for key, value in numbers.items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
