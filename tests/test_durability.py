"""Every message acknowledged with 250 survives the server being killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import smtplib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from serve_process import ServeProcess

from mailtrap.config import Address
from mailtrap.store import Store

CONNECTIONS = 16
LOAD_SECONDS = 1.5
MINIMUM_ACKNOWLEDGED = 50


def numbered_message(client_number: int, sequence: int) -> bytes:
    """A distinct message, with 8-bit bytes and a leading dot so exactness is tested too."""
    return (
        f"From: client{client_number}@example.com\r\nTo: rcpt@example.com\r\n"
        f"Subject: client {client_number} message {sequence}\r\n\r\n".encode()
        + b".a line that smtplib dot-stuffs\r\n"
        # No bare CR or LF: smtplib would dot-stuff after a bare LF, which SMTP does not.
        + bytes([0x80 + client_number, 0x80 + sequence % 128, 0x00, 0xFF]) * 50
        + b"\r\n"
    )


def load(
    address: Address,
    client_number: int,
    stop: threading.Event,
    acknowledged: list[tuple[str, bytes]],
) -> None:
    """Send messages until the server goes away; record (ID, bytes) of each one acknowledged."""
    sequence = 0
    try:
        with smtplib.SMTP(address.host, address.port, timeout=10) as client:
            client.ehlo()
            while not stop.is_set():
                raw = numbered_message(client_number, sequence)
                sequence += 1
                client.mail("sender@example.com")
                client.rcpt("rcpt@example.com")
                code, reply = client.data(raw)
                if code == 250:
                    acknowledged.append((reply.decode().rsplit(" ", 1)[1], raw))
    except (smtplib.SMTPException, OSError):
        pass  # the server was killed mid-conversation: what was acknowledged is recorded


def child_pids(pid: int) -> list[int]:
    """The PIDs whose parent is ``pid`` (the server's writer process)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            # "pid (command) state ppid ...": the command may hold spaces and parentheses.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


@pytest.mark.parametrize(
    ("victims", "sync"),
    [("server", "full"), ("server and writer", "full"), ("server and writer", "normal")],
)
def test_every_acknowledged_message_survives_sigkill(
    start_serve: Callable[..., ServeProcess], tmp_path: Path, victims: str, sync: str
) -> None:
    # --sync normal gives up only power-cut safety: a killed process loses nothing.
    db = tmp_path / "mail.db"
    serve = start_serve("--smtp", "127.0.0.1:0", "--db", db, "--sync", sync)
    writers = child_pids(serve.pid) if victims == "server and writer" else []
    if victims == "server and writer":
        assert writers, "the server has no writer process"
    stop = threading.Event()
    acknowledged: list[tuple[str, bytes]] = []  # list.append is atomic
    clients = [
        threading.Thread(target=load, args=(serve.smtp_address, number, stop, acknowledged))
        for number in range(CONNECTIONS)
    ]
    for client in clients:
        client.start()

    time.sleep(LOAD_SECONDS)
    serve.send_signal(signal.SIGKILL)
    for pid in writers:  # as in a power cut: nothing gets to finish
        os.kill(pid, signal.SIGKILL)
    assert serve.wait() == -signal.SIGKILL
    stop.set()
    for client in clients:
        client.join(15)
        assert not client.is_alive()

    assert len(acknowledged) > MINIMUM_ACKNOWLEDGED
    assert len({message_id for message_id, _ in acknowledged}) == len(acknowledged)
    with Store(db) as store:  # opening runs recovery and migrations, as a restart would
        for message_id, raw in acknowledged:
            assert store.raw(message_id) == raw, message_id
        # Summaries lost with the writer are made again from the raw bytes.
        assert store.get(acknowledged[-1][0])["subject"]
