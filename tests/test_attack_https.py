"""HTTPS clients that stall, mistake the protocol or pack their data cannot hold up the server.

The selector thread does every TLS handshake without blocking: a client that
never finishes one costs no thread and is closed at the header deadline, like
one that never finishes its header. Attackers connect from their own loopback
addresses, so the per-address caps see distinct clients.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from https_helpers import tls_connect, trusting, write_certificate
from test_attack_http_connections import (
    ATTACKERS,
    enough_file_descriptors,  # noqa: F401  (an autouse fixture, used here too)
    head,
    parse_responses,
    read_until_closed,
    status_of,
)
from wsproto import WSConnection
from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from mailtrap import Server
from mailtrap.web import http_server


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return write_certificate(tmp_path)


@pytest.fixture
def make_https_server(
    make_server: Callable[..., Server], certificate: tuple[Path, Path]
) -> Callable[..., Server]:
    def make(**settings: object) -> Server:
        return make_server(ui_tls_cert=certificate[0], ui_tls_key=certificate[1], **settings)

    return make


@pytest.fixture
def raw_sockets() -> Iterator[Callable[..., socket.socket]]:
    """Plain TCP connections to the HTTPS port from a chosen address; closed after the test."""
    with contextlib.ExitStack() as stack:

        def connect(server: Server, source: str) -> socket.socket:
            address = server.http_address
            sock = socket.create_connection(
                (address.host, address.port), timeout=10, source_address=(source, 0)
            )
            return stack.enter_context(sock)

        yield connect


def client_hello() -> bytes:
    """The first flight of a real TLS client, to send and then fall silent."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def get_status(server: Server, cert: Path, path: str = "/api/v1/messages") -> int:
    address = server.http_address
    connection = http.client.HTTPSConnection(
        address.host, address.port, timeout=10, context=trusting(cert)
    )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_unfinished_handshakes_hold_no_thread_and_are_closed_at_the_deadline(
    make_https_server: Callable[..., Server],
    certificate: tuple[Path, Path],
    raw_sockets: Callable[..., socket.socket],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = make_https_server(http_header_timeout=1.5)
    assert get_status(server, certificate[0]) == 200  # the workers it needs exist
    threads_before = threading.active_count()
    hello = client_hello()
    unfinished = [
        b"",  # connected, nothing sent
        hello[:20],  # a ClientHello cut short
        hello,  # a whole ClientHello, and no answer to the server's
    ]
    stalled = []
    with caplog.at_level(logging.INFO, logger="mailtrap.web.http_server"):
        for n in range(300):
            sock = raw_sockets(server, ATTACKERS[n % len(ATTACKERS)])
            sock.sendall(unfinished[n % len(unfinished)])
            stalled.append(sock)

        # Served while all of them are held; a handful more threads at most.
        assert get_status(server, certificate[0]) == 200
        assert threading.active_count() - threads_before < 5
        # At the header deadline each is closed: the server sends nothing more, then EOF.
        for sock in stalled:
            received = read_until_closed(sock)
            assert not received.startswith(b"HTTP/")  # nothing in plain text, no 408
    assert any("TLS handshake not completed in time" in r.getMessage() for r in caplog.records)
    assert get_status(server, certificate[0]) == 200


def test_handshaking_connections_count_against_the_per_address_cap(
    make_https_server: Callable[..., Server],
    certificate: tuple[Path, Path],
    raw_sockets: Callable[..., socket.socket],
) -> None:
    server = make_https_server(http_header_timeout=1.0, http_max_connections_per_ip=3)
    stalled = [raw_sockets(server, ATTACKERS[0]) for _ in range(3)]
    # Over its cap the address is closed before any handshake (a 503 would need one).
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_connect(server, certificate[0], ATTACKERS[0]).close()
    with tls_connect(server, certificate[0], ATTACKERS[1]) as other:
        other.sendall(head(server, "GET", "/livez", "Connection: close"))
        assert status_of(read_until_closed(other)) == 200
    # Once the stalled ones are closed at the deadline, the address is served again.
    for sock in stalled:
        read_until_closed(sock)
    with tls_connect(server, certificate[0], ATTACKERS[0]) as again:
        again.sendall(head(server, "GET", "/livez", "Connection: close"))
        assert status_of(read_until_closed(again)) == 200


def test_a_half_sent_header_over_tls_gets_408(
    make_https_server: Callable[..., Server], certificate: tuple[Path, Path]
) -> None:
    server = make_https_server(http_header_timeout=1.0)
    with tls_connect(server, certificate[0]) as sock:
        sock.sendall(head(server, "GET", "/api/v1/messages")[:30])
        response = read_until_closed(sock)
    assert status_of(response) == 408
    assert b"request header not received in time" in response


def test_plain_http_on_the_https_port_gets_a_400_not_a_hang(
    make_https_server: Callable[..., Server],
) -> None:
    server = make_https_server()
    address = server.http_address
    connection = http.client.HTTPConnection(address.host, address.port, timeout=10)
    try:
        connection.request("GET", "/api/v1/messages")
        response = connection.getresponse()
        assert response.status == 400
        assert "https://" in json.loads(response.read())["Error"]
    finally:
        connection.close()
    if shutil.which("curl") is not None:
        curl = subprocess.run(
            [
                "curl",
                "--silent",
                "--max-time",
                "10",
                "--write-out",
                "\n%{http_code}",
                server.http_url.replace("https:", "http:"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert curl.returncode == 0, curl.stderr
        assert curl.stdout.rsplit("\n", 1)[1] == "400"


def test_pipelined_requests_in_one_tls_record_are_all_answered(
    make_https_server: Callable[..., Server], certificate: tuple[Path, Path]
) -> None:
    server = make_https_server()
    with tls_connect(server, certificate[0]) as sock:
        # One sendall is one TLS record: the server decrypts all three requests at once.
        sock.sendall(
            head(server, "GET", "/livez")
            + head(server, "POST", "/api/v1/messages", "Content-Length: 40000")
            + b"a" * 40000  # over several records, refused unread: skipped, not a request
            + head(server, "GET", "/api/v1/messages", "Connection: close")
        )
        answers = parse_responses(read_until_closed(sock))
    assert [status for status, _ in answers] == [200, 405, 200]
    assert json.loads(answers[2][1])["messages"] == []


def test_what_a_short_read_leaves_inside_openssl_is_read_without_a_select_event(
    make_https_server: Callable[..., Server],
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Reads of 64 KiB take a whole TLS record (16 KiB at most); reads of 1 KiB
    # leave the rest of one decrypted inside OpenSSL, where select() cannot see it.
    monkeypatch.setattr(http_server, "RECEIVE_SIZE", 1024)
    server = make_https_server(http_header_timeout=2.0)
    padding = [f"X-Pad-{n}: {'p' * 500}" for n in range(6)]  # one 3 KB record
    with tls_connect(server, certificate[0]) as sock:
        sock.sendall(head(server, "GET", "/livez", *padding, "Connection: close"))
        response = read_until_closed(sock)
    assert status_of(response) == 200  # not a 408 at the deadline


def test_websocket_data_decrypted_beyond_one_read_is_not_left_waiting(
    make_https_server: Callable[..., Server], certificate: tuple[Path, Path]
) -> None:
    # The websocket reads 4 KiB at a time and selects on the socket in between.
    # A 4 KiB message and a close frame in one TLS record: what one read leaves
    # inside OpenSSL raises no select event, so the close would wait for the
    # next ping (25 s) unless the server reads it out at once.
    server = make_https_server()
    address = server.http_address
    ws = WSConnection(ConnectionType.CLIENT)
    with tls_connect(server, certificate[0], timeout=5) as sock:
        host = f"{address.host}:{address.port}"
        sock.sendall(ws.send(Request(host=host, target="/api/events")))
        while not any(isinstance(event, AcceptConnection) for event in receive(sock, ws)):
            pass
        packed = ws.send(TextMessage(data="x" * 4090)) + ws.send(CloseConnection(code=1000))
        assert len(packed) > 4096
        sock.sendall(packed)
        events: list[object] = []
        while not any(isinstance(event, CloseConnection) for event in events):
            events = receive(sock, ws)  # a TimeoutError after 5 s fails the test
    assert next(e for e in events if isinstance(e, CloseConnection)).code == 1000


def receive(sock: ssl.SSLSocket, ws: WSConnection) -> list[object]:
    data = sock.recv(65536)
    assert data, "the server closed the connection"
    ws.receive_data(data)
    return list(ws.events())
