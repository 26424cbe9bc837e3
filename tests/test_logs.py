"""The log line writer: the SMTP loop only queues a record, a thread writes them in batches."""

from __future__ import annotations

import logging
import threading

import pytest

from mailtrap.ops import logs


class Recorder(logging.Handler):
    """Keeps what it is given, and which thread wrote each batch."""

    def __init__(self, gate: threading.Event | None = None):
        super().__init__()
        self.gate = gate
        self.messages: list[str] = []
        self.threads: set[str] = set()

    def handle(self, record: logging.LogRecord) -> bool:
        if self.gate is not None:
            self.gate.wait(10)
        self.threads.add(threading.current_thread().name)
        self.messages.append(record.getMessage())
        return True


def record(text: str) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": text, "levelno": logging.INFO, "levelname": "INFO"})


def test_a_burst_of_lines_is_written_by_the_thread_in_one_wake_and_in_order() -> None:
    target = Recorder()
    writer = logs.LineWriter(target, delay=0.3)
    writer.emit(record("line 0"))
    while not writer.wakes:  # the thread is up, gathering what follows
        threading.Event().wait(0.001)
    for number in range(1, 500):
        writer.emit(record(f"line {number}"))
    while len(target.messages) < 500:
        threading.Event().wait(0.01)
    assert target.messages == [f"line {number}" for number in range(500)]
    assert target.threads == {"mailtrap-log"}
    assert writer.wakes == 1  # one for the whole burst, not one per line
    writer.close()


def test_close_writes_what_is_queued_without_waiting_out_the_delay() -> None:
    target = Recorder()
    writer = logs.LineWriter(target, delay=60)
    writer.emit(record("last words"))
    writer.close()
    assert target.messages == ["last words"]


def test_lines_stderr_does_not_take_are_counted_not_held_without_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logs, "MAX_QUEUED", 10)
    gate = threading.Event()
    target = Recorder(gate)
    writer = logs.LineWriter(target, delay=0)
    writer.emit(record("first"))  # the thread takes it and blocks in the target
    while writer.queued:
        threading.Event().wait(0.01)
    for number in range(25):
        writer.emit(record(f"line {number}"))
    assert writer.queued == 10
    gate.set()
    writer.close()
    assert target.messages[:11] == ["first", *[f"line {number}" for number in range(10)]]
    assert target.messages[11:] == ["15 log lines dropped: stderr did not take them"]
