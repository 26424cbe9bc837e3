"""Bad input, limits and smuggling, with raw sockets: the right code, and nothing stored."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smtp_wire import WireClient, queued_id, send_message

from mailtrap import Server
from mailtrap.config import MiB
from mailtrap.smtp import DataTooLarge, read_data
from mailtrap.spool import Spool

SIMPLE = b"Subject: hi\r\n\r\nbody\r\n.\r\n"


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    """This module's tests need no special settings: they share one server, emptied."""
    return emptied_module_server


def connect(server: Server, *, timeout: float = 5.0, read_greeting: bool = True) -> WireClient:
    return WireClient(server.smtp_address, timeout=timeout, read_greeting=read_greeting)


# -- CR and LF inside commands -------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        b"MAIL FROM:<a\nb@example.com>",
        b"MAIL FROM:<a\rb@example.com>",
        b"MAIL FROM:<a@example.com>\rRCPT TO:<x@example.com>",
        b"MAIL FROM:<a@example.com> \nSIZE=10",
    ],
)
def test_cr_or_lf_inside_mail_is_refused_with_501(server: Server, command: bytes):
    with connect(server) as client:
        client.ehlo()
        assert client.command(command).code == 501
        # No sender was set: RCPT needs a MAIL first.
        assert client.command("RCPT TO:<b@example.com>").code == 503
        # And the session still works.
        queued_id(send_message(client, SIMPLE))
    assert server.store.count() == 1
    assert server.store.get(server.store.ids()[0])["mail_from"] == "sender@example.com"


@pytest.mark.parametrize(
    "command",
    [
        b"RCPT TO:<victim\n@example.com>",
        b"RCPT TO:<victim@example.com\r>",
        b"RCPT TO:<victim@example.com>\nDATA",
    ],
)
def test_cr_or_lf_inside_rcpt_is_refused_with_501_and_no_recipient_is_added(
    server: Server, command: bytes
):
    with connect(server) as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@example.com>").code == 250
        assert client.command(command).code == 501
        assert client.command("DATA").code == 503  # still no recipient
        assert client.command("RCPT TO:<good@example.com>").code == 250
        assert client.command("DATA").code == 354
        message_id = queued_id(client.command(b"body\r\n."))
    assert json.loads(server.store.get(message_id)["rcpt_tos"]) == ["good@example.com"]
    assert server.store.count() == 1


@pytest.mark.parametrize("verb", [b"EHLO", b"HELO"])
def test_cr_or_lf_inside_the_helo_name_is_refused_so_it_never_reaches_a_stored_field(
    server: Server, verb: bytes
):
    with connect(server) as client:
        assert client.command(verb + b" host\rBcc: injected@example.com").code == 501
        assert client.command(verb + b" host\nX-Injected: yes").code == 501
        # No HELO name was accepted.
        assert client.command("MAIL FROM:<a@example.com>").code == 503
        client.ehlo("clean.example.com")
        message_id = queued_id(send_message(client, SIMPLE))
    assert server.store.get(message_id)["helo"] == "clean.example.com"


# -- limits ------------------------------------------------------------------------


def test_the_101st_recipient_gets_452_and_the_first_100_are_stored(server: Server):
    recipients = [f"r{n}@example{n % 7}.com" for n in range(101)]
    with connect(server) as client:
        client.ehlo()
        assert client.command("MAIL FROM:<bulk@example.com>").code == 250
        codes = [client.command(f"RCPT TO:<{rcpt}>").code for rcpt in recipients]
        assert codes == [250] * 100 + [452]
        assert client.command("RCPT TO:<one.more@example.com>").code == 452
        assert client.command("DATA").code == 354
        message_id = queued_id(client.command(b"Subject: many\r\n\r\nx\r\n."))
    assert json.loads(server.store.get(message_id)["rcpt_tos"]) == recipients[:100]
    assert server.store.count() == 1


def test_the_recipient_limit_is_per_transaction(make_server: Callable[..., Server]):
    server = make_server(smtp_max_recipients=2)
    with connect(server) as client:
        client.ehlo()
        for _ in range(2):
            assert client.command("MAIL FROM:<a@example.com>").code == 250
            codes = [client.command(f"RCPT TO:<r{n}@example.com>").code for n in range(3)]
            assert codes == [250, 250, 452]
            assert client.command("DATA").code == 354
            queued_id(client.command(b"x\r\n."))
    assert server.store.count() == 2


def test_a_declared_size_over_the_limit_is_refused_at_mail_with_552(
    make_server: Callable[..., Server],
):
    server = make_server(max_message_size=1000)
    with connect(server) as client:
        assert "SIZE 1000" in client.ehlo().lines
        assert client.command("MAIL FROM:<a@example.com> SIZE=1001").code == 552
        assert client.command("RCPT TO:<b@example.com>").code == 503  # no MAIL took effect
        assert client.command("MAIL FROM:<a@example.com> SIZE=1000").code == 250
    assert server.store.count() == 0


def test_data_over_the_limit_gets_552_nothing_is_stored_and_the_session_goes_on(
    make_server: Callable[..., Server],
):
    server = make_server(max_message_size=1000)
    with connect(server) as client:
        client.ehlo()
        reply = send_message(client, b"Subject: big\r\n\r\n" + b"x" * 998 + b"\r\n" * 2 + b".\r\n")
        assert reply.code == 552
        assert server.store.count() == 0
        # The transaction was reset, the connection is in step and still usable.
        assert client.command("RCPT TO:<b@example.com>").code == 503
        small = b"Subject: small\r\n\r\n" + b"y" * 900 + b"\r\n"
        message_id = queued_id(send_message(client, small + b".\r\n"))
    assert server.store.ids() == [message_id]
    assert server.store.raw(message_id) == small


def test_data_exactly_at_the_limit_is_stored(make_server: Callable[..., Server]):
    server = make_server(max_message_size=1000)
    raw = b"x" * 998 + b"\r\n"
    with connect(server) as client:
        client.ehlo()
        message_id = queued_id(send_message(client, raw + b".\r\n"))
    assert server.store.raw(message_id) == raw


def _rss_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None, field
    return int(match[1])


@contextmanager
def peak_rss_growth() -> Iterator[list[int]]:
    """Measure how far this process's resident set rises above its level at entry (bytes).

    Linux resets the peak (VmHWM) on writing 5 to clear_refs, which catches
    short spikes that sampling VmRSS could miss; a sampling thread is the
    fallback where that file is not writable.
    """
    result: list[int] = []
    start = _rss_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        peak = [start]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.002):
                peak[0] = max(peak[0], _rss_kib("VmRSS"))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield result
        finally:
            done.set()
            sampler.join()
        result.append((max(peak[0], _rss_kib("VmRSS")) - start) * 1024)
        return
    yield result
    result.append((_rss_kib("VmHWM") - start) * 1024)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_memory_stays_bounded_while_an_oversize_data_is_read_and_dropped(
    make_server: Callable[..., Server],
):
    # The server runs in this process, so its buffers show in our RSS. Keeping
    # 30 MB (or joining it) would add 30-60 MB; bounded reading adds about the
    # limit (1 MiB) plus a few read buffers. The client reuses one 64 KB chunk.
    server = make_server(max_message_size=1 * MiB)
    chunk = (b"A" * 998 + b"\r\n") * 64
    total = 30 * 1000 * 1000
    with connect(server) as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@example.com>").code == 250
        assert client.command("RCPT TO:<b@example.com>").code == 250
        assert client.command("DATA").code == 354
        with peak_rss_growth() as growth:
            for _ in range(total // len(chunk)):
                client.send(chunk)
            client.send(b".\r\n")
            reply = client.reply()
        assert reply.code == 552
        assert client.command("NOOP").code == 250
    assert server.store.count() == 0
    assert growth[0] < 10 * MiB, f"RSS grew by {growth[0] / MiB:.1f} MiB"


def test_connections_over_the_limit_get_421_and_are_closed(make_server: Callable[..., Server]):
    server = make_server(smtp_max_connections=2)
    first, second = connect(server), connect(server)
    try:
        assert first.greeting is not None and first.greeting.code == 220
        assert second.greeting is not None and second.greeting.code == 220
        with connect(server, read_greeting=False) as extra:
            received = extra.read_until_closed(timeout=3)
        assert received.startswith(b"421 ") and received.endswith(b"\r\n")
        assert received.count(b"\r\n") == 1
        # The admitted connections are unaffected.
        assert first.command("NOOP").code == 250
        assert second.command("NOOP").code == 250
    finally:
        first.close()
    # A freed slot is given to the next connection (once the server saw the close).
    deadline = time.monotonic() + 3
    while True:
        with connect(server, read_greeting=False) as retry:
            greeting = retry.reply()
            if greeting.code == 220:
                retry.ehlo()
                queued_id(send_message(retry, SIMPLE))
                break
        assert greeting.code == 421
        assert time.monotonic() < deadline, "the closed connection's slot was never freed"
        time.sleep(0.05)
    second.close()
    assert server.store.count() == 1


def test_an_idle_connection_gets_421_then_is_closed(make_server: Callable[..., Server]):
    server = make_server(smtp_idle_timeout=0.5)
    started = time.monotonic()
    with connect(server) as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@example.com>").code == 250
        received = client.read_until_closed(timeout=5)
    elapsed = time.monotonic() - started
    assert received.startswith(b"421 ") and received.count(b"\r\n") == 1
    assert 0.4 < elapsed < 4
    assert server.store.count() == 0


def test_a_stalled_data_gets_421_and_nothing_is_stored(make_server: Callable[..., Server]):
    server = make_server(smtp_idle_timeout=0.5)
    with connect(server) as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@example.com>").code == 250
        assert client.command("RCPT TO:<b@example.com>").code == 250
        assert client.command("DATA").code == 354
        client.send(b"Subject: half a message\r\n\r\nand then noth")
        assert client.read_until_closed(timeout=5).startswith(b"421 ")
    assert server.store.count() == 0


def test_a_data_that_keeps_flowing_outlives_the_idle_timeout(make_server: Callable[..., Server]):
    server = make_server(smtp_idle_timeout=0.5)
    pieces = [b"Subject: slow\r\n\r\n"] + [b"line %d\r\n" % n for n in range(8)]
    with connect(server) as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@example.com>").code == 250
        assert client.command("RCPT TO:<b@example.com>").code == 250
        assert client.command("DATA").code == 354
        for piece in pieces:  # 0.9 s in all, never 0.5 s without a byte
            client.send(piece)
            time.sleep(0.1)
        message_id = queued_id(client.command(b"."))
    assert server.store.raw(message_id) == b"".join(pieces)


def test_command_lines_over_the_length_limit_get_500_and_the_session_goes_on(server: Server):
    with connect(server) as client:
        client.ehlo()
        assert client.command(b"MAIL FROM:<" + b"a" * 600 + b"@example.com>").code == 500
        assert client.command(b"NOOP " + b"x" * 100_000).code == 500
        client.send(b"garbage without a line end " * 100_000)
        assert client.command(b"").code == 500
        queued_id(send_message(client, SIMPLE))
    assert server.store.count() == 1


def test_a_connection_dropped_during_data_stores_nothing_and_blocks_no_shutdown(
    make_server: Callable[..., Server],
):
    server = make_server()
    with connect(server) as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@example.com>").code == 250
        assert client.command("RCPT TO:<b@example.com>").code == 250
        assert client.command("DATA").code == 354
        client.send(b"Subject: cut off\r\n\r\npartial body\r\n")
    with connect(server) as client:  # the server still serves
        client.ehlo()
        queued_id(send_message(client, SIMPLE))
    assert server.store.count() == 1
    # The dropped transaction is over: stopping does not wait out the grace period.
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3


# -- storage and parse failures --------------------------------------------------


def test_a_storage_failure_answers_451_without_internals_and_the_next_message_is_stored(
    make_server: Callable[..., Server],
):
    server = make_server()  # its own database: the trigger must not outlive the test
    db = sqlite3.connect(server.config.db_path, isolation_level=None)
    db.execute(
        "CREATE TRIGGER fail BEFORE INSERT ON raw "
        "BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END"
    )
    try:
        with connect(server) as client:
            client.ehlo()
            reply = send_message(client, SIMPLE)
            assert reply.code == 451
            assert str(reply).startswith("451 4.3.0 ")
            for leak in ("sqlite", "error", "traceback", "simulated", "trigger", "raw", "abort"):
                assert leak not in reply.text.lower()
            assert server.store.count() == 0
            db.execute("DROP TRIGGER fail")
            message_id = queued_id(send_message(client, SIMPLE))
    finally:
        db.close()
    assert server.store.ids() == [message_id]
    assert server.store.raw(message_id) == b"Subject: hi\r\n\r\nbody\r\n"


def test_mime_the_parser_cannot_handle_is_stored_raw_with_parse_error(server: Server):
    # 3000 nested multiparts: far beyond the MIME depth limit.
    raw = (
        b"From: a@example.com\r\nSubject: deep\r\n"
        + b"".join(
            b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (n, n)
            for n in range(3000)
        )
        + b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    )
    with connect(server) as client:
        client.ehlo()
        message_id = queued_id(send_message(client, raw + b".\r\n"))
    assert server.store.raw(message_id) == raw
    row = server.store.get(message_id)
    assert row["parse_error"] is not None and "nested deeper than" in row["parse_error"]
    # Over the limit, the header fields are still there (and searchable); the body is not read.
    assert (row["subject"], row["from_address"], row["snippet"]) == ("deep", "a@example.com", "")
    assert row["size"] == len(raw)
    assert json.loads(row["rcpt_tos"]) == ["rcpt@example.com"]


def test_8bit_nul_and_invalid_utf8_on_the_wire_are_stored_byte_exact(server: Server):
    raw = (
        b"Subject: \xff\xfe\x00 \xc3\x28\r\nX-Raw: \x80\x81\x82\r\n\r\n"
        b"\x00\x01\x02 \xff\r\nbare\nlf and bare\rcr \x1b[31m\r\n"
    )
    with connect(server) as client:
        client.ehlo()
        message_id = queued_id(send_message(client, raw + b".\r\n"))
    assert server.store.raw(message_id) == raw


# -- SMTP smuggling ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "fake_end",
    [b"\n.\r\n", b"\r.\r\n", b"\r\n.\n", b"\n.\n", b"\r\n.\r", b"\r\n. \r\n"],
    ids=["LF.CRLF", "CR.CRLF", "CRLF.LF", "LF.LF", "CRLF.CR", "CRLF.SPCRLF"],
)
def test_a_fake_end_of_data_does_not_end_data_and_smuggles_no_message(
    server: Server, fake_end: bytes
):
    smuggled = (
        b"MAIL FROM:<evil@attacker.example>\r\n"
        b"RCPT TO:<victim@example.com>\r\n"
        b"DATA\r\n"
        b"Subject: smuggled\r\n\r\nevil\r\n"
    )
    content = b"Subject: innocent\r\n\r\na" + fake_end + smuggled
    with connect(server) as client:
        client.ehlo()
        # Dot-stuffed as a relaying MTA would: only a dot after CRLF is doubled.
        reply = send_message(client, _stuff(content) + b".\r\n")
        message_id = queued_id(reply)
        # Had the fake end counted, the smuggled commands would have queued
        # replies (250, 250, 354) ahead of this NOOP's.
        noop = client.command("NOOP")
        assert (noop.code, noop.text) == (250, "OK")
    assert server.store.ids() == [message_id]
    assert server.store.raw(message_id) == content
    row = server.store.get(message_id)
    assert row["subject"] == "innocent"
    assert row["mail_from"] == "sender@example.com"


def _stuff(content: bytes) -> bytes:
    """Dot-stuff as RFC 5321 4.5.2 says: a dot at the start of a CRLF line is doubled."""
    stuffed = content.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


async def _read_in_pieces(
    wire: bytes, cuts: list[int], buffer_limit: int, size_limit: int, spool: Spool
) -> tuple[bytes | None, bytes]:
    """Feed ``wire`` to read_data in pieces; returns (content or None if too large, the rest)."""
    reader = asyncio.StreamReader(limit=buffer_limit)
    reading = asyncio.ensure_future(read_data(reader, spool, size_limit, lambda: None))
    start = 0
    for cut in [*sorted(cuts), len(wire)]:
        reader.feed_data(wire[start:cut])
        start = max(start, cut)
        await asyncio.sleep(0)
    reader.feed_eof()
    try:
        await reading
    except DataTooLarge:
        assert spool.path is None  # dropped, file and all
        return None, await reader.read()
    content = spool.finish()
    if content is None:  # it went to a file
        assert spool.path is not None
        content = spool.path.read_bytes()
    return content, await reader.read()


@settings(max_examples=300, deadline=None)
@given(
    content=st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"\r\n."])).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
    buffer_limit=st.integers(min_value=3, max_value=16),
    size_limit=st.integers(min_value=0, max_value=120),
    memory_limit=st.integers(min_value=0, max_value=80),
)
def test_read_data_ends_only_at_crlf_dot_crlf_whatever_the_read_boundaries(
    content: bytes, cuts: list[int], buffer_limit: int, size_limit: int, memory_limit: int
):
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"  # as a client ends the last line before the dot
    stuffed = _stuff(content)
    wire = stuffed + b".\r\n" + b"NEXT\r\n"
    with tempfile.TemporaryDirectory() as folder:
        # A small memory limit sends the content to a file part of the way through.
        spool = Spool(Path(folder), memory_limit=memory_limit)
        result, rest = asyncio.run(_read_in_pieces(wire, cuts, buffer_limit, size_limit, spool))
    assert rest == b"NEXT\r\n"  # stopped right after the end marker
    if size_limit and len(stuffed) > size_limit:
        assert result is None
    else:
        assert result == content


def test_a_client_hanging_up_right_after_the_end_of_data_does_not_break_the_server(
    make_server: Callable[..., Server],
):
    # The hang-up cancels the session while its message is being committed.
    # That must neither lose the store's ability to write nor leave later
    # clients without a reply. A large message makes the commit slow enough
    # for the hang-up to arrive during it.
    server = make_server()
    body = b"Subject: fire and forget\r\n\r\n" + (b"z" * 998 + b"\r\n") * 500
    for _ in range(3):
        client = connect(server)
        client.ehlo()
        client.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        assert [reply.code for reply in client.replies(3)] == [250, 250, 354]
        client.send(body + b".\r\nQUIT\r\n")
        client.close()
    with connect(server, timeout=5) as client:
        client.ehlo()
        message_id = queued_id(send_message(client, SIMPLE))
    assert server.store.raw(message_id) == b"Subject: hi\r\n\r\nbody\r\n"
    assert 1 <= server.store.count() <= 4
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3
