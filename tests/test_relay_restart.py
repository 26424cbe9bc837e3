"""The relay queue survives SIGKILL of a real ``mailtrap serve``, and never sends twice.

A message goes to three recipients: one the remote MX accepts, one it defers
(451), one whose MX holds the end of DATA. The process is killed while that
one is between its final "." and the reply. After a restart on the same
database the deferred recipient is delivered, the accepted one is not sent
again, and the held one, which may have arrived (here it did), is never
sent again either.
"""

from __future__ import annotations

import contextlib
import json
import signal
import smtplib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_client import plain
from dns_server import ZoneResolver
from relay_helpers import (
    mx_config,
    write_config,
)
from serve_process import ServeProcess
from simple_websocket import Client, ConnectionClosed
from smtp_receiver import Receiver
from smtp_wire import deliver

from mailtrap.config import Address
from mailtrap.relay.queue import INTERRUPTED


@pytest.fixture
def dns(dns_zone: tuple[ZoneResolver, Address]) -> Address:
    return dns_zone[1]


def http_address(process: ServeProcess) -> str:
    line = next(line for line in process.stdout.splitlines() if line.startswith("HTTP listening"))
    return line.split()[3]


@contextlib.contextmanager
def relay_events(process: ServeProcess) -> Iterator[Client]:
    client = Client.connect(f"ws://{http_address(process)}/api/events")
    try:
        yield client
    finally:
        with contextlib.suppress(ConnectionClosed):
            client.close()


def wait_for_states(client: Client, wanted: dict[str, str], timeout: float = 20.0) -> None:
    """Read websocket frames until a ``relay`` frame shows the states ``wanted``."""
    while True:
        text = client.receive(timeout=timeout)
        assert text is not None, f"no relay frame showing {wanted}"
        frame = json.loads(text)
        if frame["Type"] == "relay":
            states = {d["Recipient"]: d["State"] for d in frame["Data"]["Relay"]}
            if all(states.get(k) == v for k, v in wanted.items()):
                return


def rows(db: Path) -> dict[str, tuple[str, int, str]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        found = conn.execute("SELECT recipient, state, attempts, reply FROM relay_deliveries")
        return {recipient: (state, attempts, reply) for recipient, state, attempts, reply in found}


def test_sigkill_resumes_the_queue_and_sends_no_recipient_twice(start_serve, tmp_path, dns):
    accepting = Receiver("127.0.0.2", replies={"later@example.test": "451 4.3.0 not now"}).start()
    holding = Receiver("127.0.0.3", accepting.port).start()
    holding.hold = threading.Event()
    db = tmp_path / "mail.db"
    config = write_config(tmp_path, mx_config(accepting.port, "[[auto_relay]]"))
    args = ["--db", db, "--smtp", "127.0.0.1:0", "--relay-config", config, "--dns", str(dns)]
    try:
        first = start_serve(*args)
        with relay_events(first) as events:
            address = first.smtp_address
            with smtplib.SMTP(address.host, address.port, timeout=10) as client:
                deliver(
                    client,
                    plain("Important"),
                    rcpt_tos=("now@example.test", "later@example.test", "held@other.test"),
                )
            wait_for_states(events, {"now@example.test": "sent", "later@example.test": "retrying"})
        assert holding.data_started.wait(20)  # held@other.test: after the final ".", no reply yet

        first.kill()  # SIGKILL, mid-delivery
        assert first.process.returncode == -signal.SIGKILL
        holding.hold.set()
        accepting.replies.clear()

        second = start_serve(*args)
        accepting.wait_for(2)  # later@example.test, on the retry
        assert second.stop() == 0  # a clean stop records what is in flight

        assert [m.rcpt_tos for m in accepting.received] == [
            ["now@example.test"],
            ["later@example.test"],
        ]
        assert [m.rcpt_tos for m in holding.received] == [["held@other.test"]]
        found = rows(db)
        assert found["now@example.test"][:2] == ("sent", 1)
        assert found["later@example.test"][0] == "sent"
        assert found["later@example.test"][1] >= 2
        assert found["held@other.test"] == ("failed", 1, INTERRUPTED)
    finally:
        accepting.stop()
        holding.stop()
