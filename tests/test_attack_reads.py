"""Attack suite, bounded reads: opening a hostile message costs bounded work and memory.

Reading goes through the real HTTP API of an in-process server, so the
test process's own allocations are the server's: ``tracemalloc`` measures
what one request holds at its peak.
"""

from __future__ import annotations

import base64
import email
import email.feedparser
import hashlib
import http.client
import itertools
import json
import os
import quopri
import sqlite3
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_client import Api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from mailtrap import Server
from mailtrap.config import Address
from mailtrap.mime import MAX_MIME_PARTS
from mailtrap.schema import migrations
from mailtrap.store import IncomingMessage

MiB = 1024 * 1024
EPHEMERAL = Address("127.0.0.1", 0)


def store(server: Server, raw: bytes) -> str:
    """Store through the writer (the path SMTP takes after DATA), quicker than 45 MB of DATA."""
    return server.store.add(IncomingMessage(raw, "a@example.com", ["b@example.com"])).result(60)


def base64_lines(data: bytes, width: int = 76, newline: bytes = b"\r\n") -> bytes:
    encoded = base64.b64encode(data)
    return b"".join(encoded[i : i + width] + newline for i in range(0, len(encoded), width))


def get(server: Server, path: str) -> tuple[int, dict[str, str], Iterator[bytes]]:
    """GET with http.client, the body read a chunk at a time (never held whole here)."""
    address = server.http_address
    connection = http.client.HTTPConnection(address.host, address.port, timeout=60)
    connection.request("GET", path)
    response = connection.getresponse()

    def body() -> Iterator[bytes]:
        try:
            while chunk := response.read(64 * 1024):
                yield chunk
        finally:
            connection.close()

    return response.status, dict(response.getheaders()), body()


def sha256_of(chunks: Iterator[bytes]) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        size += len(chunk)
        digest.update(chunk)
    return size, digest.hexdigest()


# -- many parts ---------------------------------------------------------------


def many_parts(count: int) -> bytes:
    part = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    return (
        b"From: a@example.com\r\nSubject: many\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        + part * count
        + b"--b--\r\n"
    )


def test_opening_a_message_of_100000_parts_parses_no_more_than_the_part_limit(
    server: Server, api: Api, monkeypatch: pytest.MonkeyPatch
):
    """What the email parser is fed while the message is opened is bounded by the
    part limit, not by the message (today the whole 4 MB goes through it)."""
    raw = many_parts(100_000)
    message_id = store(server, raw)
    fed = [0]
    feed = email.feedparser.FeedParser.feed

    def counting(self: email.feedparser.FeedParser, data: str) -> None:
        fed[0] += len(data)
        feed(self, data)

    monkeypatch.setattr(email.feedparser.FeedParser, "feed", counting)
    detail = api.get(f"/api/v1/message/{message_id}").json()
    assert api.get(f"/api/v1/message/{message_id}/headers").json()["Subject"] == ["many"]
    view = api.get(f"/view/{message_id}.txt")
    # As Mailpit: every text part of a multipart/mixed, joined by "--" lines.
    assert view.status == 200 and set(view.text.split("\n--\n")) == {"x"}
    assert view.text == detail["Text"]
    # Nothing but header blocks is parsed, and no more than the limit's worth of them.
    assert fed[0] < 2 * MAX_MIME_PARTS * len(b"Content-Type: text/plain\r\n") + 1000
    assert fed[0] < len(raw) // 50


# -- a large message ----------------------------------------------------------


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, bytes]]:
    """A server holding one 45 MB message: text, HTML and a 33 MB base64 attachment."""
    folder = tmp_path_factory.mktemp("large")
    server = Server(db=folder / "mail.db", smtp=EPHEMERAL, http=EPHEMERAL, pop3=EPHEMERAL).start()
    attachment = os.urandom(33 * MiB)
    raw = b"".join(
        [
            b"From: a@example.com\r\nTo: b@example.com\r\nSubject: large\r\n",
            b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n",
            b"--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n",
            b"--outer\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hello</p>\r\n",
            b"--outer\r\nContent-Type: application/octet-stream\r\n",
            b'Content-Disposition: attachment; filename="big.bin"\r\n',
            b"Content-Transfer-Encoding: base64\r\n\r\n",
            base64_lines(attachment),
            b"--outer--\r\n",
        ]
    )
    assert len(raw) > 45_000_000
    message_id = store(server, raw)
    del raw
    yield server, message_id, attachment
    server.stop()


def peak_while(action: Any) -> int:
    """Peak bytes allocated (above the start) while ``action`` runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        action()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


BOUND = 16 * MiB  # far below the 45 MB message (today: hundreds of MB)


def test_each_route_reads_a_45_mb_message_in_bounded_memory(large: tuple[Server, str, bytes]):
    server, message_id, attachment = large
    results: dict[str, Any] = {}

    def detail() -> None:
        status, _, body = get(server, f"/api/v1/message/{message_id}")
        results["detail"] = status, json.loads(b"".join(body))

    def headers() -> None:
        status, _, body = get(server, f"/api/v1/message/{message_id}/headers")
        results["headers"] = status, json.loads(b"".join(body))

    def part() -> None:
        status, _, body = get(server, f"/api/v1/message/{message_id}/part/3")
        results["part"] = status, sha256_of(body)

    def raw() -> None:
        status, _, body = get(server, f"/api/v1/message/{message_id}/raw")
        results["raw"] = status, sha256_of(body)

    for name, action in [("detail", detail), ("headers", headers), ("part", part), ("raw", raw)]:
        peak = peak_while(action)
        assert peak < BOUND, f"{name}: {peak / MiB:.1f} MiB"
    status, body = results["detail"]
    assert status == 200 and body["Text"] == "hello" and body["HTML"] == "<p>hello</p>"
    (described,) = body["Attachments"]
    assert described["Size"] == len(attachment)
    assert described["Checksums"]["SHA256"] == hashlib.sha256(attachment).hexdigest()
    assert results["headers"] == (200, results["headers"][1])
    assert results["headers"][1]["Subject"] == ["large"]
    assert results["part"] == (200, (len(attachment), hashlib.sha256(attachment).hexdigest()))
    assert results["raw"][0] == 200 and results["raw"][1][0] > 45_000_000


def test_four_concurrent_detail_requests_stay_within_four_bounds(large: tuple[Server, str, bytes]):
    server, message_id, attachment = large
    statuses: list[int] = []

    def detail() -> None:
        status, _, body = get(server, f"/api/v1/message/{message_id}")
        assert json.loads(b"".join(body))["Attachments"][0]["Size"] == len(attachment)
        statuses.append(status)

    def four() -> None:
        threads = [threading.Thread(target=detail) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    peak = peak_while(four)
    assert statuses == [200] * 4
    assert peak < 2 * BOUND, f"{peak / MiB:.1f} MiB"


# -- the concurrency bound ----------------------------------------------------


def test_heavy_reads_over_the_bound_get_503_with_retry_after(
    server: Server, api: Api, monkeypatch: pytest.MonkeyPatch
):
    from mailtrap.web import heavy_reads

    message_id = store(server, b"Subject: s\r\n\r\nbody\r\n")
    monkeypatch.setattr(heavy_reads, "HEAVY_READ_WAIT", 0.2)
    assert server.app is not None
    slots = heavy_reads.slots(server.app)
    taken = 0
    while slots.acquire(blocking=False):  # every slot held, as by slow heavy reads
        taken += 1
    try:
        for path in [f"/api/v1/message/{message_id}", f"/view/{message_id}.txt"]:
            reply = api.get(path)
            assert reply.status == 503, path
            assert reply.headers["Retry-After"].isdigit()
            assert "try again" in reply.error
        # Streamed routes hold one chunk each and are not bound.
        assert api.get(f"/api/v1/message/{message_id}/raw").status == 200
    finally:
        for _ in range(taken):
            slots.release()
    assert taken == heavy_reads.MAX_HEAVY_READS
    assert api.get(f"/api/v1/message/{message_id}").json()["Text"] == "body\r\n"


# -- streaming decode ---------------------------------------------------------


@pytest.fixture(scope="module")
def decode_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("decode")
    server = Server(db=folder / "mail.db", smtp=EPHEMERAL, http=EPHEMERAL, pop3=EPHEMERAL).start()
    yield server
    server.stop()


def with_part(encoding: bytes, body: bytes) -> bytes:
    return (
        b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename=data.bin\r\n"
        b"Content-Transfer-Encoding: " + encoding + b"\r\n\r\n" + body + b"--b--\r\n"
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.binary(max_size=3000),
    width=st.integers(1, 200).map(lambda n: n * 4 if n % 3 else n),  # lines of any length
    newline=st.sampled_from([b"\r\n", b"\n"]),
    chunk=st.integers(1, 700),
    quoted=st.booleans(),
)
def test_a_part_streams_decoded_byte_for_byte(
    decode_server: Server,
    monkeypatch: pytest.MonkeyPatch,
    data: bytes,
    width: int,
    newline: bytes,
    chunk: int,
    quoted: bool,
):
    """Chunks of any size split encoded lines anywhere; the download is the original bytes."""
    from mailtrap import part_index

    monkeypatch.setattr(part_index, "CHUNK", chunk)
    if quoted:
        encoded = quopri.encodestring(data).replace(b"\n", newline)
        raw = with_part(b"quoted-printable", encoded + newline)
        # What the standard library's parser (quopri) makes of the whole part.
        expected = email.message_from_bytes(raw).get_payload(1).get_payload(decode=True)
    else:
        encoded = base64_lines(data, width, newline)
        expected = data
        assert base64.b64decode(encoded) == data
        raw = with_part(b"base64", encoded)
    message_id = store(decode_server, raw)
    status, _, body = get(decode_server, f"/api/v1/message/{message_id}/part/2")
    assert status == 200
    assert b"".join(body) == expected
    detail = Api(decode_server).get(f"/api/v1/message/{message_id}").json()
    assert detail["Attachments"][0]["Size"] == len(expected)
    assert detail["Attachments"][0]["Checksums"]["MD5"] == hashlib.md5(expected).hexdigest()
    decode_server.store.delete([message_id]).result(10)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@given(
    text=st.binary().map(lambda b: b.translate(bytes.maketrans(b"\x00\x01\x02", b"=\r\n"))),
    cuts=st.lists(st.integers(0, 10_000), max_size=20),
)
def test_quoted_printable_decodes_the_same_however_it_is_split(text: bytes, cuts: list[int]):
    from mailtrap.transfer_encoding import decoded

    assert b"".join(decoded(split(text, cuts), "quoted-printable")) == quopri.decodestring(text)


@given(
    data=st.binary(max_size=2000),
    junk=st.lists(st.tuples(st.integers(0, 4000), st.sampled_from([b" ", b"\r\n", b"\t", b"*"]))),
    cuts=st.lists(st.integers(0, 10_000), max_size=20),
)
def test_base64_decodes_the_same_however_it_is_split(
    data: bytes, junk: list[tuple[int, bytes]], cuts: list[int]
):
    """Characters outside the alphabet anywhere (as the standard library, they are skipped)."""
    from mailtrap.transfer_encoding import decoded

    encoded = base64.b64encode(data)
    for position, character in junk:
        position %= len(encoded) + 1
        encoded = encoded[:position] + character + encoded[position:]
    assert b"".join(decoded(split(encoded, cuts), "base64")) == data


# -- the index in the database ------------------------------------------------


def test_messages_stored_before_the_part_index_are_indexed_by_its_migration(tmp_path: Path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    migrations.apply(Database(conn), stop_before="m003_ingest_stages")
    conn.execute("INSERT INTO messages (seq, id, created, size, read) VALUES (1, 'old1', 0, 9, 1)")
    raw = with_part(b"base64", base64_lines(b"attached"))
    conn.execute("INSERT INTO raw (seq, data) VALUES (1, ?)", [raw])
    conn.commit()
    conn.close()
    server = Server(db=path, smtp=EPHEMERAL, http=EPHEMERAL, pop3=None).start()
    try:
        api = Api(server)
        assert api.get("/api/v1/message/old1/part/2").body == b"attached"
        assert api.get("/api/v1/message/old1").json()["Text"] == "see attached"
        assert api.get("/api/v1/message/old1/headers").json()["Subject"] == ["s"]
        sql = "SELECT part_id FROM parts WHERE seq = 1 ORDER BY position"
        assert [row[0] for row in server.store.reader.execute(sql)] == ["1", "2"]
    finally:
        server.stop()


def test_deleting_a_message_deletes_its_index(server: Server, api: Api):
    message_id = store(server, with_part(b"base64", base64_lines(b"x")))
    keep = store(server, b"Subject: keep\r\n\r\nbody\r\n")
    server.store.settle()  # the index is written after the raw bytes, as the summary is
    conn = server.store.reader
    assert conn.execute("SELECT count(*) FROM parts").fetchone()[0] == 3
    api.ok("DELETE", "/api/v1/messages", {"IDs": [message_id]})
    assert conn.execute("SELECT count(*) FROM parts").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM message_index").fetchone()[0] == 1
    assert api.get(f"/api/v1/message/{keep}").json()["Text"] == "body\r\n"
