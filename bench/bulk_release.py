"""Releasing many messages: one POST /api/v1/messages/release against one request per message.

Fills a database with N messages (10,000 by default), starts `mailtrap serve`
on it with a relay config, and measures, on one keep-alive HTTP connection:

- **baseline**: K messages (1,000 by default) released one by one with
  Mailpit's POST /api/v1/message/{ID}/release, as a client without the bulk
  route must;
- **bulk**: the same K released with one POST /api/v1/messages/release
  ``{"IDs": [...]}``, and then every message (``{"To": [...]}``: N
  deliveries, the documented limit by default).

The relay's smarthost is a port nobody listens on, so each delivery fails
to connect at once and waits a minute for its retry: what is measured is the
release itself (the checks, the queue write, the "relay" frames), not SMTP.
Reported as the ratio baseline / bulk, since the machine is shared.

Usage:
    python bench/bulk_release.py [--messages N] [--singles K] [--json PATH]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

from http_api import HOST, ServeProcess, fill

BULK = "/api/v1/messages/release"
RELAY_CONFIG = """
mode = "smarthost"
allowed_recipients = ["example.com"]
[smarthost]
host = "127.0.0.1"
port = {port}
tls = "none"
"""


def closed_port() -> int:
    """A loopback port with no listener (bound, read, released)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def post(connection: http.client.HTTPConnection, path: str, body: object) -> tuple[float, bytes]:
    """Seconds for one POST of ``body`` as JSON on ``connection``, and the answer."""
    started = time.perf_counter()
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.read()
    if response.status != 200:
        raise RuntimeError(f"POST {path}: {response.status} {answer[:200]!r}")
    return time.perf_counter() - started, answer


def message_ids(connection: http.client.HTTPConnection, count: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < count:
        connection.request("GET", f"/api/v1/messages?start={len(ids)}&limit=1000")
        page = json.loads(connection.getresponse().read())["messages"]
        if not page:
            break
        ids += [message["ID"] for message in page]
    return ids[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--singles", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        print(f"Filling {args.messages:,} messages...")
        fill(workdir / "mail.db", args.messages)
        config = workdir / "relay.toml"
        config.write_text(RELAY_CONFIG.format(port=closed_port()))
        server = ServeProcess(
            workdir / "mail.db", "--relay-config", str(config), "--log-level", "warning"
        )
        try:
            connection = http.client.HTTPConnection(HOST, server.http_port, timeout=120)
            ids = message_ids(connection, args.singles)
            started = time.perf_counter()
            for each in ids:
                post(connection, f"/api/v1/message/{each}/release", {"To": ["a@example.com"]})
            singles = time.perf_counter() - started
            bulk, _ = post(connection, BULK, {"IDs": ids, "To": ["b@example.com"]})
            every, answer = post(connection, BULK, {"To": ["c@example.com"]})
            released = len(json.loads(answer)["Messages"])
        finally:
            server.stop()
    results = {
        "singles": len(ids),
        "singles_s": round(singles, 3),
        "bulk_s": round(bulk, 3),
        "ratio": round(singles / bulk, 1),
        "every": released,
        "every_s": round(every, 3),
    }
    print(
        f"{len(ids):,} releases one by one: {singles:.2f} s; in one request: {bulk:.3f} s "
        f"(ratio {singles / bulk:.0f}); all {released:,} messages in one request: {every:.2f} s"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
