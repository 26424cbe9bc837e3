"""Attacks on the store's writes: the writer dying under them, close() in traffic, raw sizes."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from mailtrap.errors import StorageError
from mailtrap.store import IncomingMessage, Store

FUTURE_TIMEOUT = 30.0


def incoming(subject: str, body: bytes = b"Some text.") -> IncomingMessage:
    raw = (
        b"From: sender@example.com\r\nTo: rcpt@example.com\r\nSubject: "
        + subject.encode()
        + b"\r\n\r\n"
        + body
        + b"\r\n"
    )
    return IncomingMessage(raw=raw, mail_from="sender@example.com", rcpt_tos=["rcpt@example.com"])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "mail.db") as opened:
        yield opened


def writer_pid(store: Store) -> int:
    """The pid of the running writer (while one is being started after a kill: of the next)."""
    wait_until(lambda: store._process is not None, "a writer process")
    assert store._process is not None
    return store._process.pid


def wait_until(condition: object, what: str) -> None:
    deadline = time.monotonic() + FUTURE_TIMEOUT
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def test_writes_of_one_thread_keep_their_order_when_the_writer_dies_with_the_first(
    store: Store,
) -> None:
    # The writer is stopped, so the first write is still unanswered when the
    # second one queues behind it.
    pid = writer_pid(store)
    os.kill(pid, signal.SIGSTOP)
    try:
        first = store.add(incoming("first"))
        second = store.add(incoming("second"))
    finally:
        os.kill(pid, signal.SIGKILL)

    ids = [first.result(FUTURE_TIMEOUT), second.result(FUTURE_TIMEOUT)]
    assert store.ids() == ids


def test_close_answers_a_write_in_flight_whose_writer_dies_meanwhile(tmp_path: Path) -> None:
    store = Store(tmp_path / "mail.db").open()
    pid = writer_pid(store)
    os.kill(pid, signal.SIGSTOP)
    written = store.add(incoming("in flight at close"))
    closer = threading.Thread(target=store.close)
    try:
        closer.start()
        # The write is in flight: the stop waits behind it.
        wait_until(lambda: store._in_flight is not None, "the write never went out")
    finally:
        os.kill(pid, signal.SIGKILL)
    closer.join(FUTURE_TIMEOUT)
    assert not closer.is_alive()

    message_id = written.result(FUTURE_TIMEOUT)
    with Store(tmp_path / "mail.db") as reopened:
        assert reopened.ids() == [message_id]


def test_many_threads_lose_duplicate_and_reorder_nothing_while_the_writer_is_killed(
    store: Store,
) -> None:
    threads, bursts, burst = 6, 15, 4
    results: dict[int, list[Future[str]]] = {number: [] for number in range(threads)}
    start = threading.Barrier(threads + 1)

    def client(number: int) -> None:
        start.wait()
        for round_number in range(bursts):
            # A few at once without waiting: one in flight, the rest queued behind it.
            futures = [
                store.add(incoming(f"client {number} message {round_number * burst + n}"))
                for n in range(burst)
            ]
            results[number] += futures
            for future in futures:
                # Failed twice in a row is allowed, as long as it is answered.
                with contextlib.suppress(StorageError):
                    future.result(FUTURE_TIMEOUT)

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    for _ in range(4):
        time.sleep(0.05)
        os.kill(writer_pid(store), signal.SIGKILL)
    for worker in workers:
        worker.join(FUTURE_TIMEOUT * 2)
        assert not worker.is_alive(), "a write was never answered"

    stored = store.ids()
    assert len(stored) == len(set(stored))
    position = {message_id: index for index, message_id in enumerate(stored)}
    for futures in results.values():
        acknowledged = [f.result() for f in futures if f.exception() is None]
        assert all(message_id in position for message_id in acknowledged)
        assert acknowledged == sorted(acknowledged, key=position.__getitem__)
    subjects = [store.get(message_id)["subject"] for message_id in stored]
    assert len(subjects) == len(set(subjects))  # no message written twice


@pytest.mark.parametrize(
    "size", [64 * 1024 - 200, 64 * 1024, 64 * 1024 + 1, 200 * 1024, 1024 * 1024]
)
def test_messages_around_the_inline_limit_are_stored_byte_exact(store: Store, size: int) -> None:
    header = incoming("sized", b"").raw
    body = (b"0123456789abcdef" * (size // 16 + 1))[: size - len(header)]
    message = incoming("sized", body)
    small = incoming("small neighbour")
    # One batch with both kinds: the large one's bytes follow the batch's message.
    pid = writer_pid(store)
    os.kill(pid, signal.SIGSTOP)
    try:
        blocker = store.add(incoming("blocker"))
        futures = [store.add(message), store.add(small), store.add(incoming("small", body[:10]))]
    finally:
        os.kill(pid, signal.SIGCONT)
    ids = [blocker.result(FUTURE_TIMEOUT)] + [f.result(FUTURE_TIMEOUT) for f in futures]
    assert store.raw(ids[1]) == message.raw
    assert store.raw(ids[2]) == small.raw
    assert store.ids() == ids
