"""The store: IDs, pruning, the search index, concurrency and group commit."""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import sqlite3
import string
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from multiprocessing import Pipe
from pathlib import Path
from typing import Any

import pytest

from mailtrap import Server
from mailtrap import summarizer as summarizer_module
from mailtrap import writer as writer_module
from mailtrap.errors import StorageError
from mailtrap.schema import prepare_database
from mailtrap.store import IncomingMessage, Store
from mailtrap.writer import Writer, send_batch

FUTURE_TIMEOUT = 30.0


def incoming(subject: str = "Hello", body: str = "Some text.", **headers: str) -> IncomingMessage:
    extra = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    raw = (
        f"From: sender@example.com\r\nTo: rcpt@example.com\r\nSubject: {subject}\r\n{extra}"
        f"\r\n{body}\r\n"
    ).encode()
    return IncomingMessage(raw=raw, mail_from="sender@example.com", rcpt_tos=["rcpt@example.com"])


def add(store: Store, message: IncomingMessage | None = None) -> str:
    return store.add(message or incoming()).result(FUTURE_TIMEOUT)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "mail.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    with Store(db) as opened:
        yield opened


def seq_of(store: Store, message_id: str) -> int:
    return int(store.get(message_id)["seq"])


def set_created(db: Path, message_ids: list[str], created: float) -> None:
    with sqlite3.connect(db) as conn:
        marks = ",".join("?" * len(message_ids))
        conn.execute(
            f"UPDATE messages SET created = ? WHERE id IN ({marks})", [created, *message_ids]
        )
    conn.close()


# -- IDs --------------------------------------------------------------------------------


def test_ids_are_short_unique_letters_and_digits(store: Store) -> None:
    ids = [future.result(FUTURE_TIMEOUT) for future in [store.add(incoming()) for _ in range(300)]]

    assert len(set(ids)) == len(ids)
    allowed = set(string.ascii_letters + string.digits)
    for message_id in ids:
        assert set(message_id) <= allowed, message_id
        assert 9 <= len(message_id) <= 12, message_id
    assert store.ids() == ids  # oldest first, as added


def test_an_id_is_never_reused_after_deletion_even_across_a_restart(db: Path) -> None:
    with Store(db) as store:
        ids = [add(store) for _ in range(3)]
        newest = ids[-1]
        newest_seq = seq_of(store, newest)
        assert store.delete([newest]).result(FUTURE_TIMEOUT) == [newest]

    with Store(db) as store:
        added = add(store)
        assert added not in ids
        assert seq_of(store, added) > newest_seq
        assert store.ids() == [*ids[:2], added]

        added_seq = seq_of(store, added)
        assert store.delete_all().result(FUTURE_TIMEOUT) == 3
        after_delete_all = add(store)
        assert seq_of(store, after_delete_all) > added_seq


# -- pruning ----------------------------------------------------------------------------


def test_max_messages_keeps_only_the_newest(make_server: Callable[..., Server]) -> None:
    server = make_server(max_messages=5)
    ids = []
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        client.ehlo()
        for number in range(8):
            client.mail("sender@example.com")
            client.rcpt("rcpt@example.com")
            code, reply = client.data(f"Subject: {number}\r\n\r\nBody {number}\r\n".encode())
            assert code == 250, reply
            ids.append(reply.decode().rsplit(" ", 1)[1])

    # Pruning happens in the transaction that adds the message, before its 250.

    assert server.store.ids() == ids[3:]


def test_max_messages_prunes_an_existing_database_on_open(db: Path) -> None:
    with Store(db) as store:
        ids = [add(store) for _ in range(6)]

    with Store(db, max_messages=2) as store:
        assert store.ids() == ids[4:]


def test_max_age_deletes_old_messages_when_the_store_opens(db: Path) -> None:
    # While running, the writer sweeps by age every MAINTENANCE_INTERVAL (60 s) in its
    # own process, out of a test's reach; the sweep at open runs the same code at once.
    with Store(db) as store:
        ids = [add(store) for _ in range(4)]
    set_created(db, ids[:2], time.time() - 7200)
    set_created(db, ids[2:3], time.time() - 1800)

    with Store(db, max_age=3600) as store:
        assert store.ids() == ids[2:]
        assert store.reader.execute("SELECT count(*) FROM raw").fetchone()[0] == 2


def test_the_age_sweep_runs_while_the_writer_waits_for_work(
    monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    # In-process, so that the 60 s interval can be shortened: a Writer serving a pipe
    # exactly as in its own process.
    prepare_database(db)
    monkeypatch.setattr(writer_module, "MAINTENANCE_INTERVAL", 0.05)
    writer = Writer(db, max_age=3600)
    ours, theirs = Pipe()
    serving = threading.Thread(target=writer.serve, args=(theirs,), daemon=True)
    serving.start()
    try:
        send_batch(ours, [("add", (incoming("old"),)), ("add", (incoming("new"),))])
        _, outcomes, _, _ = ours.recv()
        old_id, new_id = (value for _, value in outcomes)
        set_created(db, [old_id], time.time() - 7200)

        deadline = time.monotonic() + 10
        store = Store(db)
        while store.ids() != [new_id] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.ids() == [new_id]
    finally:
        ours.close()
        serving.join(10)
        writer.close()


# -- the search index -------------------------------------------------------------------


def search(store: Store, query: str) -> list[str]:
    store.settle()  # the index is written after the raw bytes; public reads wait like this
    rows = store.reader.execute(
        "SELECT messages.id FROM messages_fts JOIN messages ON messages.seq = messages_fts.rowid"
        " WHERE messages_fts MATCH ? ORDER BY messages.seq",
        [query],
    )
    return [row[0] for row in rows]


WITH_ATTACHMENT = (
    b"From: Alice Example <alice@example.com>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: Quarterly invoice\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n'
    b"\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Please find the pineapple figures attached.\r\n"
    b"--b\r\n"
    b'Content-Type: application/pdf; name="report-2024.pdf"\r\n'
    b'Content-Disposition: attachment; filename="report-2024.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--b--\r\n"
)


def test_the_search_index_finds_subject_address_body_and_attachment_name(store: Store) -> None:
    wanted = add(store, IncomingMessage(WITH_ATTACHMENT, "alice@example.com", ["bob@example.org"]))
    other = add(store, incoming("Weekly newsletter", "Nothing about fruit."))

    assert search(store, "quarterly") == [wanted]
    assert search(store, "subject:invoice") == [wanted]
    assert search(store, '"alice@example.com"') == [wanted]
    assert search(store, 'addresses:"bob@example.org"') == [wanted]
    assert search(store, "Alice") == [wanted]
    assert search(store, "body:pineapple") == [wanted]
    assert search(store, 'attachment_names:"report-2024.pdf"') == [wanted]
    assert search(store, "newsletter") == [other]
    assert search(store, "nonexistentword") == []

    store.delete([wanted]).result(FUTURE_TIMEOUT)
    assert search(store, "pineapple") == []


def test_the_search_index_follows_pruning(db: Path) -> None:
    with Store(db) as store:
        old = add(store, incoming("Old kumquat"))
        add(store, incoming("New kumquat"))
    set_created(db, [old], time.time() - 7200)

    with Store(db, max_age=3600) as store:
        assert len(search(store, "kumquat")) == 1
        assert search(store, "old") == []


# -- concurrency ------------------------------------------------------------------------


def test_a_reader_in_a_long_transaction_does_not_block_the_writer(store: Store, db: Path) -> None:
    add(store)
    reader = sqlite3.connect(db, isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM messages").fetchone()[0] == 1

        started = time.monotonic()
        for _ in range(20):
            add(store)  # each one committed while the reader holds its snapshot
        assert time.monotonic() - started < 5  # far below the 10 s busy timeout

        assert reader.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM messages").fetchone()[0] == 21
    finally:
        reader.close()


class BatchRecorder:
    """Wraps ``store._send`` to see the batches handed to the writer; can hold one back."""

    def __init__(self, store: Store, *, hold_first: bool = False):
        self.batches: list[list[Any]] = []
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self._send = store._send
        store._send = self._record  # type: ignore[method-assign]

    def _record(self, batch: list[Any]) -> None:
        self.batches.append(batch)
        if len(self.batches) == 1:
            self.first_arrived.set()
            self.release.wait(FUTURE_TIMEOUT)
        self._send(batch)


def test_writes_submitted_together_share_few_transactions(store: Store) -> None:
    recorder = BatchRecorder(store)
    commits_before = store.commits

    futures = [store.add(incoming(f"Burst {number}")) for number in range(200)]
    _, not_done = wait(futures, FUTURE_TIMEOUT)

    assert not not_done
    ids = [future.result() for future in futures]
    assert len(set(ids)) == 200
    assert store.ids() == ids
    transactions = store.commits - commits_before
    assert transactions == len(recorder.batches)  # one transaction per batch
    assert transactions <= 20, [len(batch) for batch in recorder.batches]


def test_what_is_queued_during_a_commit_goes_into_the_next_transaction(store: Store) -> None:
    recorder = BatchRecorder(store, hold_first=True)
    first = store.add(incoming("first"))
    assert recorder.first_arrived.wait(FUTURE_TIMEOUT)

    queued = [store.add(incoming(f"queued {number}")) for number in range(200)]
    recorder.release.set()
    for future in [first, *queued]:
        future.result(FUTURE_TIMEOUT)

    assert [len(batch) for batch in recorder.batches] == [1, 200]


def test_a_failing_write_does_not_fail_the_writes_batched_with_it(store: Store) -> None:
    recorder = BatchRecorder(store, hold_first=True)
    store.add(incoming("holds the dispatcher"))
    assert recorder.first_arrived.wait(FUTURE_TIMEOUT)

    before = store.add(incoming("before"))
    # A value SQLite cannot bind: this write fails inside the writer's transaction.
    broken: Future[list[str]] = store.delete([{"not": "an id"}])  # type: ignore[list-item]
    after = store.add(incoming("after"))
    recorder.release.set()

    with pytest.raises(StorageError, match="could not write"):
        broken.result(FUTURE_TIMEOUT)
    before_id, after_id = before.result(FUTURE_TIMEOUT), after.result(FUTURE_TIMEOUT)
    assert [len(batch) for batch in recorder.batches] == [1, 3], "not batched together"
    assert store.ids()[-2:] == [before_id, after_id]
    assert store.count() == 3


def test_the_writer_retries_each_write_alone_when_a_batch_fails(
    db: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_envelope_row = writer_module.envelope_row

    def envelope_row_unless_poisoned(seq: int, message: IncomingMessage) -> Any:
        if b"POISON" in message.raw:
            raise RuntimeError("the row could not be made")
        return real_envelope_row(seq, message)

    monkeypatch.setattr(writer_module, "envelope_row", envelope_row_unless_poisoned)
    prepare_database(db)
    writer = Writer(db)
    try:
        outcomes = writer.apply_batch(
            [
                ("add", (incoming("one"),)),
                ("add", (incoming("POISON"),)),
                ("add", (incoming("two"),)),
            ]
        )
    finally:
        writer.close()

    (ok_one, one_id), (ok_poison, reason), (ok_two, two_id) = outcomes
    assert (ok_one, ok_poison, ok_two) == (True, False, True)
    assert "the row could not be made" in reason
    assert Store(db).ids() == [one_id, two_id]
    assert writer.count == 2


def test_tags_set_as_soon_as_a_message_is_acknowledged_outlive_its_summary(
    store: Store,
) -> None:
    # The summary is written after the 250 and carries the message's own tags:
    # written after these, it would put those back.
    message_id = add(store, incoming("tagged early", X_Tags="from-header"))
    store.set_tags([message_id], ["chosen"]).result(FUTURE_TIMEOUT)
    store.settle()

    row = store.get(message_id)
    assert (row["subject"], row["tags"]) == ("tagged early", '["chosen"]')


def test_a_parser_that_falls_over_loses_no_message(
    db: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The summary is made after the raw bytes are committed: a crash there
    # leaves the message stored, with the reason, instead of failing its add.
    real_summarize = summarizer_module.summarize

    def summarize_unless_poisoned(raw: bytes, rcpt_tos: Any = ()) -> Any:
        if b"POISON" in raw:
            raise RuntimeError("the parser fell over")
        return real_summarize(raw, rcpt_tos)

    monkeypatch.setattr(summarizer_module, "summarize", summarize_unless_poisoned)
    prepare_database(db)
    writer = Writer(db)
    try:
        outcomes = writer.apply_batch([("add", (incoming("POISON"),)), ("add", (incoming("ok"),))])
        # What the parser process does with each job, done here where the patch reaches.
        parsed = [
            summarizer_module.parse(writer.conn, (seq, message_id, [], None))
            for seq, message_id, _ in writer._committed
        ]
        writer._committed = []
        writer.apply_parsed(parsed)
    finally:
        writer.close()

    assert [ok for ok, _ in outcomes] == [True, True]
    sql = "SELECT parsed, subject, parse_error FROM messages ORDER BY seq"
    rows = Store(db).reader.execute(sql)
    assert [tuple(row) for row in rows] == [
        (1, "", "RuntimeError: the parser fell over"),
        (1, "ok", None),
    ]


def _kill_parser(writer: Writer) -> None:
    process = writer.summarizer._process
    assert process is not None
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def test_a_killed_parser_process_is_replaced_and_parses_what_it_had(db: Path) -> None:
    prepare_database(db)
    writer = Writer(db)
    try:
        writer.apply_batch([("add", (incoming(f"number {n}"),)) for n in range(5)])
        writer.parse_committed()
        _kill_parser(writer)
        writer.apply_parsed(writer.summarizer.take_done())  # notices, and starts another
    finally:
        writer.close()

    sql = "SELECT parsed, subject, parse_error FROM messages ORDER BY seq"
    rows = [tuple(row) for row in Store(db).reader.execute(sql)]
    assert rows == [(1, f"number {n}", None) for n in range(5)]


def test_a_message_the_parser_dies_on_twice_is_kept_with_the_reason(db: Path) -> None:
    # About its whole CPU budget (1 s) to parse, so it is still being parsed when killed.
    slow = incoming("slow", "<b>many</b> <i>words</i>\n" * 100_000, Content_Type="text/html")
    prepare_database(db)
    writer = Writer(db)
    try:
        writer.apply_batch([("add", (slow,)), ("add", (incoming("after it"),))])
        writer.parse_committed()
        for _ in range(summarizer_module.ATTEMPTS):
            time.sleep(0.2)
            _kill_parser(writer)
            writer.apply_parsed(writer.summarizer.take_done())
    finally:
        writer.close()

    sql = "SELECT parsed, subject, parse_error FROM messages ORDER BY seq"
    rows = [tuple(row) for row in Store(db).reader.execute(sql)]
    assert rows == [
        (1, "", "the parser process ended (signal 9)"),
        (1, "after it", None),
    ]
    oldest = Store(db).ids()[0]
    assert Store(db).raw(oldest) == slow.raw  # byte-exact all the same


def test_a_dead_writer_process_is_replaced(store: Store) -> None:
    first = add(store)
    assert store._process is not None
    os.kill(store._process.pid, signal.SIGKILL)
    store._process.wait()

    # The store notices the dead writer before sending, so not even the first write fails.
    after = [add(store, incoming(f"after the crash {number}")) for number in range(3)]

    assert store.ids() == [first, *after]


def test_the_parser_process_runs_only_when_the_cpu_is_otherwise_idle(db: Path) -> None:
    # A niceness alone let it take the core a lone client's next command needed.
    prepare_database(db)
    writer = Writer(db)
    try:
        process = writer.summarizer._process
        assert process is not None
        writer.apply_batch([("add", (incoming("to parse"),))])
        writer.parse_committed()
        deadline = time.monotonic() + FUTURE_TIMEOUT
        while not writer.summarizer.take_done() and time.monotonic() < deadline:
            time.sleep(0.01)  # parsed once: the process has set its own priority by then
        assert os.sched_getscheduler(process.pid) == os.SCHED_IDLE
        assert os.sched_getscheduler(0) != os.SCHED_IDLE  # the rest of Mailtrap is not
    finally:
        writer.close()


def test_a_write_made_on_the_stores_loop_is_sent_and_answered_there(store: Store) -> None:
    """No other thread on the way to a 250: the loop sends the batch and reads its answer."""
    assert store.loop is not None
    seen: dict[str, Any] = {}

    async def add_on_the_loop() -> str:
        future = store.add(incoming("on the loop"))
        # Sent within the call itself: nothing is left queued for a later turn.
        seen["queued after add"] = len(store._queue)
        seen["in flight after add"] = store._in_flight is not None
        future.add_done_callback(
            lambda _: seen.setdefault("answered in", threading.current_thread())
        )
        return await asyncio.wrap_future(future)

    message_id = asyncio.run_coroutine_threadsafe(add_on_the_loop(), store.loop).result(
        FUTURE_TIMEOUT
    )
    assert seen["queued after add"] == 0 and seen["in flight after add"]
    assert seen["answered in"] is store._loop_thread
    assert store.get(message_id)["subject"] == "on the loop"


def test_the_smtp_listener_runs_on_the_stores_loop(make_server: Callable[..., Server]) -> None:
    server = make_server()
    answered_in: list[str] = []
    add = server.store.add

    def recording_add(message: IncomingMessage) -> Future[str]:
        future = add(message)
        future.add_done_callback(lambda _: answered_in.append(threading.current_thread().name))
        return future

    server.store.add = recording_add  # type: ignore[method-assign]
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        client.sendmail("a@example.com", ["b@example.com"], b"Subject: loop\r\n\r\nbody\r\n")
    assert answered_in == ["mailtrap-loop"]
