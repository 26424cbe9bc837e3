"""Slow and greedy HTTP clients cannot hold the server's threads or lock others out.

Attackers connect from their own loopback addresses (Linux routes all of
127/8 to ``lo``), so the per-address caps see distinct clients.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import logging
import resource
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from web_clients import events, next_frame, wait_until

from mailtrap import Server
from mailtrap.config import Address
from mailtrap.errors import ListenError

LEGITIMATE = "127.0.0.1"
ATTACKERS = [f"127.0.0.{n}" for n in range(2, 7)]


@pytest.fixture(autouse=True)
def enough_file_descriptors() -> None:
    """Hundreds of connections, each end in this process: raise the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))


@pytest.fixture
def sockets() -> Iterator[Callable[..., socket.socket]]:
    """Opens raw client sockets from a chosen source address; all closed after the test."""
    with contextlib.ExitStack() as stack:

        def connect(server: Server, source: str = LEGITIMATE) -> socket.socket:
            address = server.http_address
            sock = socket.create_connection(
                (address.host, address.port), timeout=10, source_address=(source, 0)
            )
            return stack.enter_context(sock)

        yield connect


def head(server: Server, method: str, path: str, *lines: str) -> bytes:
    """A request header block for ``server`` (its Host, so the host check lets it by)."""
    address = server.http_address
    fields = [f"{method} {path} HTTP/1.1", f"Host: {address.host}:{address.port}", *lines]
    return ("\r\n".join(fields) + "\r\n\r\n").encode()


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes; fails the test if it never does."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open; received {received[:200]!r}")
    return received


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def drip_until_closed(sock: socket.socket, data: bytes, interval: float, most: float) -> bytes:
    """Send ``data`` a byte per ``interval`` until the server answers and closes."""
    deadline = time.monotonic() + most
    for byte in data:
        if time.monotonic() > deadline:
            break
        try:
            sock.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        readable, _, _ = select.select([sock], [], [], interval)
        if readable:
            break
    return read_until_closed(sock, timeout=max(0.1, deadline - time.monotonic()))


def get_json(server: Server, path: str) -> tuple[int, object]:
    address = server.http_address
    connection = http.client.HTTPConnection(address.host, address.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_client_is_served_while_500_slow_connections_are_held(
    make_server: Callable[..., Server], sockets: Callable[..., socket.socket]
) -> None:
    server = make_server()
    assert get_json(server, "/api/v1/messages")[0] == 200  # the workers it needs exist
    threads_before = threading.active_count()
    half_sent = [
        head(server, "GET", "/api/v1/messages")[:30],  # a header cut short
        head(server, "POST", "/api/v1/send", "Content-Type: application/json")[:-2],
        head(server, "POST", "/api/v1/send", "Content-Length: 500") + b"{",  # a body cut short
        b"",  # connected, nothing sent
    ]
    for n in range(500):
        sock = sockets(server, ATTACKERS[n % len(ATTACKERS)])
        sock.sendall(half_sent[n % len(half_sent)])

    status, body = get_json(server, "/api/v1/messages")
    assert status == 200
    assert isinstance(body, dict) and body["total"] == 0
    with events(server) as client:
        assert next_frame(client)["Type"] == "stats"
    # Each held connection would have cost a thread; a handful more is the websocket's.
    assert threading.active_count() - threads_before < 10


def test_a_header_dripped_past_the_timeout_is_closed_with_408(
    make_server: Callable[..., Server], sockets: Callable[..., socket.socket]
) -> None:
    server = make_server(http_header_timeout=1.0)
    sock = sockets(server)
    never_ending = head(server, "GET", "/livez")[:-2] + b"X-Slow: " + b"a" * 1000
    response = drip_until_closed(sock, never_ending, interval=0.1, most=8.0)
    assert status_of(response) == 408
    assert b'"Error"' in response


@pytest.mark.parametrize(
    ("announced", "sent"),
    [(500, 10), (200_000, 100_000)],
    ids=["small body, buffered before a thread is spent", "large body, read by a worker"],
)
def test_a_stalled_body_is_closed_with_408(
    make_server: Callable[..., Server],
    sockets: Callable[..., socket.socket],
    announced: int,
    sent: int,
) -> None:
    server = make_server(http_body_timeout=1.0)
    sock = sockets(server)
    fields = ["Content-Type: application/json", f"Content-Length: {announced}"]
    sock.sendall(head(server, "POST", "/api/v1/send", *fields) + b" " * sent)
    response = read_until_closed(sock)
    assert status_of(response) == 408
    assert b"not received in time" in response


def test_a_header_block_over_the_cap_is_431(
    make_server: Callable[..., Server], sockets: Callable[..., socket.socket]
) -> None:
    server = make_server()
    sock = sockets(server)
    padding = [f"X-Pad-{n}: {'a' * 1000}" for n in range(70)]  # 70 KB, each line allowed
    sock.sendall(head(server, "GET", "/livez", *padding))
    assert status_of(read_until_closed(sock)) == 431


def test_one_address_over_its_cap_is_refused_while_another_is_served(
    make_server: Callable[..., Server],
    sockets: Callable[..., socket.socket],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = make_server(http_max_connections_per_ip=5)
    for _ in range(5):
        sockets(server, ATTACKERS[0])
    greedy = sockets(server, ATTACKERS[0])
    with caplog.at_level(logging.WARNING):
        greedy.sendall(head(server, "GET", "/livez"))
        response = read_until_closed(greedy)
    assert status_of(response) == 503
    error = json.loads(response.split(b"\r\n\r\n", 1)[1])["Error"]
    assert ATTACKERS[0] in error and "--http-max-connections-per-ip" in error
    assert any(ATTACKERS[0] in record.getMessage() for record in caplog.records)

    other = sockets(server, ATTACKERS[1])
    other.sendall(head(server, "GET", "/livez", "Connection: close"))
    assert status_of(read_until_closed(other)) == 200


def test_long_polls_cannot_take_the_threads_of_ordinary_requests(
    make_server: Callable[..., Server], sockets: Callable[..., socket.socket]
) -> None:
    server = make_server(http_workers=2, http_max_streams=3)
    waiting = "/api/v1/search?query=subject:never&wait=30"
    polls = [sockets(server, ATTACKERS[n]) for n in range(3)]
    for sock in polls:
        sock.sendall(head(server, "GET", waiting))
    # Each waiting search holds one subscription to the event hub.
    assert wait_until(lambda: len(server.store.hub._subscribers) == 3, timeout=10)
    for sock in polls:
        assert not select.select([sock], [], [], 0)[0], "a long poll was answered early"
    extra = sockets(server, ATTACKERS[3])
    extra.sendall(head(server, "GET", waiting))
    response = read_until_closed(extra)
    assert status_of(response) == 503
    assert b"--http-max-streams" in response
    # Both workers are free for everybody else.
    for _ in range(3):
        assert get_json(server, "/api/v1/messages")[0] == 200


def test_slow_large_bodies_cannot_take_the_threads_of_ordinary_requests(
    make_server: Callable[..., Server], sockets: Callable[..., socket.socket]
) -> None:
    # A body over the selector's 64 KiB is read by a worker, held until the body
    # deadline: half the workers at most do that, a quarter for one address.
    server = make_server(http_workers=4)
    big = head(server, "POST", "/api/v1/send", "Content-Length: 200000")
    held = [sockets(server, ATTACKERS[n]) for n in range(2)]
    for sock in held:
        sock.sendall(big + b'{"From": ')  # and then nothing
    time.sleep(0.5)  # both are in workers, reading

    same_address = sockets(server, ATTACKERS[0])
    same_address.sendall(big + b"{")
    response = read_until_closed(same_address)
    assert status_of(response) == 503
    assert b"your address" in response
    another = sockets(server, ATTACKERS[2])
    another.sendall(big + b"{")
    assert status_of(read_until_closed(another)) == 503
    # The other two workers serve everybody else.
    for _ in range(3):
        assert get_json(server, "/api/v1/messages")[0] == 200
    for sock in held:
        assert not select.select([sock], [], [], 0)[0], "a held upload was answered early"


def test_one_address_cannot_take_every_stream(
    make_server: Callable[..., Server], sockets: Callable[..., socket.socket]
) -> None:
    # Half of --http-max-streams per client address: the rest stays for others.
    server = make_server(http_max_streams=4)
    waiting = "/api/v1/search?query=subject:never&wait=30"
    polls = [sockets(server, ATTACKERS[0]) for _ in range(2)]
    for sock in polls:
        sock.sendall(head(server, "GET", waiting))
    assert wait_until(lambda: len(server.store.hub._subscribers) == 2, timeout=10)
    extra = sockets(server, ATTACKERS[0])
    extra.sendall(head(server, "GET", waiting))
    response = read_until_closed(extra)
    assert status_of(response) == 503
    assert b"your address" in response
    # Another address still gets a stream: its websocket connects and is served.
    with events(server) as client:
        assert next_frame(client)["Type"] == "stats"


def test_keep_alive_serves_two_requests_on_one_connection(server: Server) -> None:
    address = server.http_address
    connection = http.client.HTTPConnection(address.host, address.port, timeout=10)
    try:
        connection.request("GET", "/livez")
        first = connection.getresponse()
        assert first.status == 200 and first.read()
        assert first.getheader("Connection") is None
        sock = connection.sock
        assert sock is not None
        connection.request("GET", "/api/v1/messages")
        second = connection.getresponse()
        assert second.status == 200 and json.loads(second.read())["total"] == 0
        assert connection.sock is sock, "the second request needed a new connection"
    finally:
        connection.close()


def test_pipelined_requests_on_one_connection_are_both_answered(
    server: Server, sockets: Callable[..., socket.socket]
) -> None:
    sock = sockets(server)
    sock.sendall(
        head(server, "GET", "/livez")
        + head(server, "POST", "/api/v1/messages", "Content-Length: 3")
        + b"abc"  # a body the app refuses unread: skipped, not taken for a request
        + head(server, "GET", "/api/v1/messages", "Connection: close")
    )
    answers = parse_responses(read_until_closed(sock))
    assert [status for status, _ in answers] == [200, 405, 200]
    assert json.loads(answers[0][1]) == {"status": "ok"}
    assert json.loads(answers[2][1])["messages"] == []


def parse_responses(data: bytes) -> list[tuple[int, bytes]]:
    """The (status, body) of each response in ``data``, read as http.client reads them."""

    class Unclosable(io.BytesIO):
        def close(self) -> None:  # http.client closes its file after each body
            pass

    stream = Unclosable(data)

    class Replayed:
        def makefile(self, mode: str) -> io.BytesIO:
            return stream

    answers = []
    while stream.tell() < len(data):
        response = http.client.HTTPResponse(Replayed())  # type: ignore[arg-type]
        response.begin()
        answers.append((response.status, response.read()))
    return answers


def test_an_http_port_in_use_is_a_listen_error_not_an_exit(
    make_server: Callable[..., Server],
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match=f"cannot listen for HTTP on 127.0.0.1:{port}"):
            make_server(http=Address("127.0.0.1", port))
