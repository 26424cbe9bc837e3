"""Attacks on the write path: big messages, slow messages, a writer that dies at the wrong moment.

Each test here failed before the write path was reshaped: raw bytes spooled
and committed before the summary is made, receipts that find a commit whose
answer was lost.
"""

from __future__ import annotations

import os
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from mailtrap import Server
from mailtrap.events import Event
from mailtrap.search import parse
from mailtrap.store import IncomingMessage, Store

MakeServer = Callable[..., Server]

SIMPLE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: small\r\n\r\nhello\r\n"


def _attachment_message(size: int) -> bytes:
    """A message of about ``size`` bytes: a short text part and a base64-looking attachment."""
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n"
    return (
        b"From: big@example.com\r\nTo: b@example.com\r\nSubject: big one\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b'--B\r\nContent-Type: application/octet-stream; name="blob.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + line * (size // len(line)) + b"--B--\r\n"
    )


def _send_from_another_process(address: tuple[str, int], path: Path) -> None:
    """Send the message in ``path`` with smtplib in a child process, so its copy is not ours."""
    script = (
        "import smtplib, sys\n"
        "with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=60) as client:\n"
        "    raw = open(sys.argv[3], 'rb').read()\n"
        "    client.sendmail('big@example.com', ['b@example.com'], raw)\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, address[0], str(address[1]), str(path)],
        check=True,
        timeout=120,
    )


def smtp_address(server: Server) -> tuple[str, int]:
    return server.smtp_address.host, server.smtp_address.port


def _vm_hwm(pid: int) -> int:
    """Peak resident memory of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _reset_hwm(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def test_a_25_mb_message_is_streamed_not_copied(make_server: MakeServer, tmp_path: Path):
    # Before: the SMTP side held the chunks, their join and the unstuffed copy
    # (3x), and the writer received a copy and bound another into SQLite.
    server = make_server()
    raw = _attachment_message(25 * 1024 * 1024)
    source = tmp_path / "big.eml"
    source.write_bytes(raw)
    writer_pid = server.store._process.pid
    _reset_hwm(writer_pid)
    writer_before = _vm_hwm(writer_pid)

    tracemalloc.start()
    try:
        _send_from_another_process(smtp_address(server), source)
        server.store.settle()
        _, smtp_side_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    writer_growth = _vm_hwm(writer_pid) - writer_before

    (message_id,) = server.store.ids()
    assert server.store.raw(message_id) == raw.replace(b"\r\n", b"\r\n")  # byte-exact
    assert server.store.get(message_id)["subject"] == "big one"
    # The SMTP process holds a bounded buffer, not the message (1 MiB spool
    # memory plus read buffers); the writer at most about one copy, to parse it.
    assert smtp_side_peak < 4 * 1024 * 1024, smtp_side_peak
    assert writer_growth < 1.6 * len(raw), writer_growth
    assert list(server.store.spool_dir.iterdir()) == []  # the spool file is gone


def test_a_client_hanging_up_mid_data_leaves_no_spool_file(make_server: MakeServer):
    server = make_server()
    with smtplib.SMTP(*smtp_address(server), timeout=10) as client:
        client.ehlo()
        client.mail("a@example.com")
        client.rcpt("b@example.com")
        client.putcmd("DATA")
        assert client.getreply()[0] == 354
        client.send(b"Subject: cut short\r\n\r\n" + (b"x" * 998 + b"\r\n") * 2000)
        deadline = time.monotonic() + 10
        while not any(server.store.spool_dir.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert any(server.store.spool_dir.iterdir())  # it did go to a file
    deadline = time.monotonic() + 10
    while any(server.store.spool_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert list(server.store.spool_dir.iterdir()) == []
    assert server.store.count() == 0


def test_a_slow_message_does_not_hold_up_other_clients(make_server: MakeServer):
    # Parsing happens after the raw bytes are committed and acknowledged, in
    # a thread of its own: while a message that is slow to parse is parsed,
    # another client's messages are acknowledged. Before, they waited for it.
    server = make_server()
    events: list[tuple[float, Event]] = []
    subscription = server.store.hub.subscribe()

    def collect() -> None:
        while (event := subscription.get(timeout=30)) is not None:
            events.append((time.monotonic(), event))

    collector = threading.Thread(target=collect)
    collector.start()
    slow = (
        b"From: slow@example.com\r\nTo: b@example.com\r\nSubject: slow to parse\r\n"
        b"Content-Type: text/html\r\n\r\n" + b"<b>x</b><i>y</i>\r\n" * 800_000
    )
    try:
        with smtplib.SMTP(*smtp_address(server), timeout=60) as client:
            client.sendmail("slow@example.com", ["b@example.com"], slow)
        with smtplib.SMTP(*smtp_address(server), timeout=60) as client:
            for _ in range(5):
                client.sendmail("a@example.com", ["b@example.com"], SIMPLE)
            acknowledged = time.monotonic()
        server.store.settle(timeout=30)
        deadline = time.monotonic() + 30
        while len(events) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        subscription.close()
        collector.join(10)
    (slow_announced,) = [t for t, e in events if e.data["Subject"] == "slow to parse"]
    assert acknowledged < slow_announced  # all five were in before the slow one was parsed
    assert server.store.page(parse("subject:slow")).total == 1


def _stopped_writer(store: Store) -> int:
    assert store._process is not None
    pid = store._process.pid
    os.kill(pid, signal.SIGSTOP)
    return pid


def _wait_for_receipt(message: IncomingMessage) -> str:
    deadline = time.monotonic() + 10
    while not message.receipt and time.monotonic() < deadline:
        time.sleep(0.005)
    assert message.receipt
    return message.receipt


def test_a_commit_whose_answer_was_lost_is_answered_from_the_database(tmp_path: Path):
    # The writer commits, then dies before it answers: the message is stored,
    # so the client must get its 250, and a retry must not store it twice.
    # Played here by committing the row ourselves while the writer is stopped.
    with Store(tmp_path / "mail.db") as store:
        pid = _stopped_writer(store)
        message = IncomingMessage(SIMPLE, "a@example.com", ["b@example.com"])
        future: Future[str] = store.add(message)
        receipt = _wait_for_receipt(message)
        with sqlite3.connect(store.path) as conn:
            conn.execute(
                "INSERT INTO messages (id, created, size, receipt, parsed, rcpt_tos)"
                " VALUES ('committed1', ?, ?, ?, 0, '[\"b@example.com\"]')",
                [time.time(), len(SIMPLE), receipt],
            )
            seq = conn.execute("SELECT seq FROM messages WHERE id = 'committed1'").fetchone()[0]
            conn.execute("INSERT INTO raw (seq, data) VALUES (?, ?)", [seq, SIMPLE])
        os.kill(pid, signal.SIGKILL)

        assert future.result(timeout=20) == "committed1"
        assert store.ids() == ["committed1"]
        # The new writer parsed what the dead one never summarized.
        assert store.get("committed1")["subject"] == "small"


def test_a_write_in_flight_when_the_writer_dies_is_sent_again(tmp_path: Path):
    with Store(tmp_path / "mail.db") as store:
        pid = _stopped_writer(store)
        message = IncomingMessage(SIMPLE, "a@example.com", ["b@example.com"])
        future = store.add(message)
        _wait_for_receipt(message)
        os.kill(pid, signal.SIGKILL)

        message_id = future.result(timeout=20)  # before: StorageError, so the client got 451
        assert store.ids() == [message_id]
        assert store.raw(message_id) == SIMPLE


def test_an_smtp_client_gets_its_250_although_the_writer_died_under_it(
    make_server: MakeServer,
):
    server = make_server()
    pid = _stopped_writer(server.store)
    replies: list[tuple[int, bytes]] = []

    def send() -> None:
        with smtplib.SMTP(*smtp_address(server), timeout=30) as client:
            client.ehlo()
            client.mail("a@example.com")
            client.rcpt("b@example.com")
            replies.append(client.data(SIMPLE))

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 10
    while not server.store._in_flight and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    sender.join(30)
    ((code, _),) = replies
    assert code == 250
    assert server.store.count() == 1


def test_messages_left_unparsed_by_a_crash_are_parsed_at_the_next_start(tmp_path: Path):
    database = tmp_path / "mail.db"
    with Store(database) as store:
        message_id = store.add(IncomingMessage(SIMPLE, "a@example.com", ["b@example.com"])).result()
    # As a SIGKILL between the two stages leaves it.
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE messages SET parsed = 0, subject = '' WHERE id = ?", [message_id])
    with Store(database) as store:
        store.settle()
        deadline = time.monotonic() + 10
        while store.get(message_id)["parsed"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.get(message_id)["subject"] == "small"


def test_a_message_deleted_before_it_was_parsed_holds_up_no_read(make_server: MakeServer):
    # The parser is busy with a slow message while a second one is deleted
    # unparsed; reads wait for acknowledged messages' summaries, so that one
    # must count as done, not be waited for forever.
    server = make_server()
    slow = (
        b"From: slow@example.com\r\nTo: b@example.com\r\nSubject: slow to parse\r\n"
        b"Content-Type: text/html\r\n\r\n" + b"<b>x</b><i>y</i>\r\n" * 800_000
    )
    doomed = b"Subject: doomed\r\n\r\n" + (b"z" * 998 + b"\r\n") * 2000  # spooled: over 1 MiB
    with smtplib.SMTP(*smtp_address(server), timeout=60) as client:
        client.sendmail("slow@example.com", ["b@example.com"], slow)
        client.sendmail("a@example.com", ["b@example.com"], doomed)
    doomed_id = server.store.ids()[-1]
    assert server.store.delete([doomed_id]).result(timeout=10) == [doomed_id]
    deadline = time.monotonic() + 20
    while server.store._unparsed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not server.store._unparsed
    assert [row["subject"] for row in server.store.page(parse("")).rows] == ["slow to parse"]


def test_a_file_name_that_decodes_to_a_lone_surrogate_keeps_the_summary(make_server: MakeServer):
    # RFC 2231 lets a message name its charset; unicode-escape yields text
    # SQLite cannot store. The summary and the part index must survive it.
    server = make_server()
    raw = (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: odd name\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--B\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename*=unicode-escape''%5Cud800.bin\r\n\r\n"
        b"data\r\n--B--\r\n"
    )
    with smtplib.SMTP(*smtp_address(server), timeout=30) as client:
        client.sendmail("a@example.com", ["b@example.com"], raw)
    (message_id,) = server.store.ids()
    row = server.store.get(message_id)
    assert (row["subject"], row["parsed"], row["attachments"]) == ("odd name", 1, 1)
    names = server.store.reader.execute(
        "SELECT filename FROM parts JOIN messages USING (seq) WHERE id = ? ORDER BY position",
        [message_id],
    )
    assert [name for (name,) in names] == ["", "\ufffd.bin"]
