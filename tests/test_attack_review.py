"""A second look at the two-stage ingest and the selector HTTP server, as an attacker.

Each test here failed on the code at e3a1735.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import shutil
import signal
import smtplib
import socket
import threading
import time
from collections.abc import Callable

import pytest
from test_attack_http_connections import get_json
from web_clients import events, next_frame, wait_until

from mailtrap import Server
from mailtrap.rows import IncomingMessage
from mailtrap.search import parse

MakeServer = Callable[..., Server]

SIMPLE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: small\r\n\r\nhello\r\n"


def _smtp_connect(server: Server) -> socket.socket:
    address = server.smtp_address
    sock = socket.create_connection((address.host, address.port), timeout=10)
    sock.recv(1024)  # the banner
    return sock


def _read_replies(sock: socket.socket) -> bytes:
    """Everything the server says until it closes the connection."""
    replies = b""
    while chunk := sock.recv(65536):
        replies += chunk
    return replies


def test_a_spool_failure_does_not_turn_the_rest_of_data_into_commands(
    make_server: MakeServer,
) -> None:
    """When the spool file cannot be written, the rest of the DATA is content, not commands.

    Otherwise a message past the memory limit carries its own envelope and
    DATA, stored as a second message nobody sent (SMTP smuggling).
    """
    server = make_server()
    assert server.store.spool_dir is not None
    shutil.rmtree(server.store.spool_dir)  # a storage failure: the spool file cannot be made
    # Every line ends with ".\r\n", so the server reads the DATA a line at a time
    # and the failure comes right after the line that crosses the memory limit.
    filler = (b"x" * 997 + b".\r\n") * 1100
    smuggled = (
        b"RSET\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
        b"Subject: smuggled\r\n\r\nnobody sent this\r\n.\r\nQUIT\r\n"
    )
    with _smtp_connect(server) as sock:
        sock.sendall(b"EHLO attacker\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n")
        sock.sendall(b"DATA\r\nSubject: big\r\n\r\n" + filler + smuggled)
        replies = _read_replies(sock)
    assert b"\r\n451 " in replies, replies
    assert b"354 End data" in replies and replies.count(b"354 ") == 1, replies
    assert server.store.count() == 0


def test_a_response_that_times_out_closes_the_connection(make_server: MakeServer) -> None:
    """A client that stops reading loses its connection when a response write times out.

    Otherwise the handler served the next pipelined request after the cut-off
    response, on a stream the client can no longer parse, and a client that
    pipelines many requests held a worker for one write timeout per request.
    """
    server = make_server(http_body_timeout=0.3)
    raw = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 8000
    incoming = IncomingMessage(raw=raw, mail_from="a@example.com", rcpt_tos=["b@example.com"])
    message_id = server.store.add(incoming).result(timeout=30)
    address = server.http_address
    request = (
        f"GET /api/v1/message/{message_id}/raw HTTP/1.1\r\n"
        f"Host: {address.host}:{address.port}\r\n\r\n"
    ).encode()
    sock = socket.socket()
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # stops reading soon
        sock.connect((address.host, address.port))
        sock.sendall(request * 20)
        time.sleep(1.5)  # the first response's write times out meanwhile
        sock.settimeout(5)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    assert received.startswith(b"HTTP/1.1 200")
    assert received.count(b"HTTP/1.1 ") == 1


def test_pipelined_requests_take_turns_with_other_clients(make_server: MakeServer) -> None:
    """A connection full of pipelined requests lets a waiting client in between them.

    The handler served every request already buffered before it let go of its
    worker: one client's 64 KiB of requests went before everybody else's one.
    """
    server = make_server(http_workers=1)
    address = server.http_address
    request = f"GET /api/v1/messages HTTP/1.1\r\nHost: {address.host}:{address.port}\r\n\r\n"
    pipelined = request.encode() * 400
    answered = 0
    first = threading.Event()

    def read_answers(sock: socket.socket) -> None:
        nonlocal answered
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answered += chunk.count(b"HTTP/1.1 200")
                first.set()

    with socket.create_connection((address.host, address.port), timeout=30) as greedy:
        reader = threading.Thread(target=read_answers, args=(greedy,))
        reader.start()
        greedy.sendall(pipelined)
        assert first.wait(10)
        status, _ = get_json(server, "/api/v1/messages")
        answered_before_us = answered
        greedy.shutdown(socket.SHUT_RDWR)  # the rest is not wanted
        reader.join(30)
    assert status == 200
    assert answered_before_us < 100, f"{answered_before_us} of 400 went first"


def test_a_summary_with_a_lone_surrogate_does_not_kill_the_writer(make_server: MakeServer) -> None:
    """A header decoded to a lone surrogate (charset unicode-escape) is stored, not fatal.

    SQLite cannot bind such a string; the error escaped the summary writer and
    ended the writer process, and every new writer parsed the message again.
    """
    server = make_server()
    address = server.smtp_address
    poison = b"Subject: =?unicode-escape?q?=5Cudc80?= poison\r\nFrom: a@example.com\r\n\r\nx\r\n"
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        client.sendmail("a@example.com", ["b@example.com"], poison)
        writer = server.store._process
        client.sendmail("a@example.com", ["b@example.com"], SIMPLE)
    ids = server.store.ids()
    rows = [server.store.get(message_id) for message_id in ids]
    assert [row["parsed"] for row in rows] == [1, 1]
    assert "poison" in rows[0]["subject"]
    assert rows[1]["subject"] == "small"
    assert server.store._process is writer and writer is not None and writer.poll() is None


def test_a_malformed_chunked_body_is_a_400_not_a_500(make_server: MakeServer) -> None:
    server = make_server()
    address = server.http_address
    request = (
        f"POST /api/v1/send HTTP/1.1\r\nHost: {address.host}:{address.port}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    ).encode()
    with socket.create_connection((address.host, address.port), timeout=10) as sock:
        sock.sendall(request)
        response = _read_replies(sock)
    assert response.startswith(b"HTTP/1.1 400 "), response[:200]
    assert b"chunk" in response.split(b"\r\n\r\n", 1)[1]


def test_a_read_after_the_writer_died_mid_parse_gets_the_summary(make_server: MakeServer) -> None:
    """A writer that dies while idle is replaced when a read waits for its summaries.

    Only a write restarted it: until then the message stayed unparsed, and
    the first read waited out the whole settle timeout before showing it so.
    """
    server = make_server()
    address = server.smtp_address
    slow = (
        b"From: slow@example.com\r\nTo: b@example.com\r\nSubject: slow to parse\r\n"
        b"Content-Type: text/html\r\n\r\n" + b"<b>x</b><i>y</i>\r\n" * 800_000
    )
    with smtplib.SMTP(address.host, address.port, timeout=60) as client:
        client.sendmail("slow@example.com", ["b@example.com"], slow)
    writer = server.store._process
    assert writer is not None
    os.kill(writer.pid, signal.SIGKILL)  # while it parses
    writer.wait(10)
    (row,) = server.store.page(parse("")).rows
    assert row["subject"] == "slow to parse"


def test_a_websocket_that_ends_logs_no_error(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A websocket closed by its client ends quietly.

    simple-websocket closes the socket when its session ends, and Werkzeug
    then writes the route's empty response to it: every websocket that ended
    logged "Error on request" with a traceback (Bad file descriptor).
    """
    server = make_server()
    with caplog.at_level(logging.INFO), events(server) as client:
        assert next_frame(client)["Type"] == "stats"
    wait_until(lambda: not server.store.hub.has_subscribers)
    server.stop()
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert not errors


@pytest.mark.parametrize("key", [None, "", "not base64!", "c2hvcnQ="])
def test_a_websocket_handshake_without_a_valid_key_is_a_400_not_a_500(
    server: Server, key: str | None
):
    headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}
    if key is not None:
        headers["Sec-WebSocket-Key"] = key
    connection = http.client.HTTPConnection(server.http_address.host, server.http_address.port)
    connection.request("GET", "/api/events", headers=headers)
    response = connection.getresponse()
    assert response.status == 400
    assert "Sec-WebSocket-Key" in json.loads(response.read())["Error"]
    connection.close()
