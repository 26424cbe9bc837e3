"""One HTTP client connection: its bytes buffered so far, and streams over its socket.

The selector thread of :mod:`mailtrap.web.http_server` fills a connection's
buffer until it holds a whole request header (and a small body); a worker
thread then reads the request from the same buffer through
:class:`ConnectionReader`, under a deadline, so a client that stops sending
never holds a thread for longer than the deadline allows.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
from collections import Counter
from http import HTTPStatus

from werkzeug.exceptions import RequestTimeout

from mailtrap.web.http_tls import send_close_notify

RECEIVE_SIZE = 65536


class BodyTimeout(RequestTimeout):
    """The client did not send its request body within ``--http-body-timeout``.

    An HTTP error rather than an OSError, so that Werkzeug's input stream does not
    turn it into a 400 and the app answers it as JSON like any other.
    """

    description = "request body not received in time"


def error_response(status: HTTPStatus, message: str) -> bytes:
    """A complete response with a JSON ``{"Error": message}`` body, closing the connection."""
    body = json.dumps({"Error": message}).encode()
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class ClientCounts:
    """Open connections per client address, shared by the selector and the workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def try_add(self, address: str, per_address: int, total: int) -> str | None:
        """Count one more connection from ``address``; the reason it is refused, if it is."""
        with self._lock:
            if self._counts.total() >= total:
                return f"too many connections ({total}, see --http-max-connections)"
            if self._counts[address] >= per_address:
                return (
                    f"too many connections from {address} "
                    f"({per_address}, see --http-max-connections-per-ip)"
                )
            self._counts[address] += 1
            return None

    def remove(self, address: str) -> None:
        with self._lock:
            self._counts[address] -= 1
            if self._counts[address] <= 0:
                del self._counts[address]


class Connection:
    """A client socket, the bytes received but not yet handled, and where they stop."""

    def __init__(self, sock: socket.socket, address: tuple[str, int], counts: ClientCounts | None):
        self.sock = sock  # an ssl.SSLSocket once an HTTPS handshake has begun
        self.address = address
        self.buffer = bytearray()
        self.deadline = 0.0  # monotonic; what it bounds depends on the selector's phase
        # The selector's: "hello" (HTTPS, nothing received yet), "handshake", "idle"
        # (kept alive), "header" or "body".
        self.phase = "header"
        self.lingering = False  # answered and half-closed: the rest of its input is dropped
        self.unread_body = False  # answered, closing, and the client may still be sending
        self.shared_tls = False  # a websocket's threads use the TLS layer: leave it to them
        self._counts = counts  # None: never counted (refused at accept)
        self._scanned = 0  # where the search for the end of the header block resumes
        self._header_end: int | None = None
        self._closed = False

    @property
    def ip(self) -> str:
        return self.address[0]

    def header_end(self, max_bytes: int) -> int | None:
        """The length of the header block in the buffer once it is whole, else None.

        Raises :class:`ValueError` when the block is (or would be) over ``max_bytes``.
        Resumes where the last call stopped, so a dripped header costs linear time.
        """
        if self._header_end is not None:
            return self._header_end
        start = max(0, self._scanned - 2)
        # An empty line ends the block; http.server accepts bare LF line ends too.
        found = [
            i + len(blank)
            for blank in (b"\n\r\n", b"\n\n")
            if (i := self.buffer.find(blank, start)) >= 0
        ]
        self._scanned = len(self.buffer)
        if found:
            end = min(found)
            if end > max_bytes:
                raise ValueError("header block too large")
            self._header_end = end
            return end
        if len(self.buffer) > max_bytes:
            raise ValueError("header block too large")
        return None

    def request_ready(self, max_header_bytes: int, prebuffer: int) -> bool:
        """Whether the buffer holds a whole header block and the small body it announces."""
        end = self.header_end(max_header_bytes)
        if end is None:
            return False
        return len(self.buffer) >= end + body_to_prebuffer(bytes(self.buffer[:end]), prebuffer)

    def take(self, size: int) -> bytes:
        """Remove and return up to ``size`` buffered bytes."""
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        self._scanned = 0
        self._header_end = None
        return data

    def half_close(self) -> None:
        """End what we send (TLS first, then TCP) and go on reading."""
        send_close_notify(self.sock)
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.shared_tls:
            send_close_notify(self.sock)
        with contextlib.suppress(OSError):  # the peer may have gone already
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        if self._counts is not None:
            self._counts.remove(self.ip)


def body_to_prebuffer(header_block: bytes, limit: int) -> int:
    """How many body bytes to wait for before a thread handles the request.

    A body announced by ``Content-Length`` up to ``limit`` is read by the
    selector along with the header, so a client dripping a small body holds no
    thread. Chunked bodies, ``Expect: 100-continue`` and larger bodies are read
    by the worker, under the body deadline.
    """
    length = 0
    for line in header_block.split(b"\n")[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        name = name.strip().lower()
        if name in (b"transfer-encoding", b"expect"):
            return 0
        if name == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return 0  # the request handler answers 400
    return length if 0 < length <= limit else 0


class ConnectionReader(io.RawIOBase):
    """Reads a connection: first its buffered bytes, then its socket, before a deadline.

    ``deadline`` (monotonic seconds, or None for none) bounds every socket read;
    past it, reads raise :class:`TimeoutError`. ``send_timeout`` is the socket
    timeout left in place between reads, so writes to a client that stops
    reading fail too.
    """

    def __init__(self, connection: Connection, send_timeout: float):
        self._connection = connection
        self.deadline: float | None = None
        self.send_timeout = send_timeout

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        buffer = self._connection.buffer
        if not buffer and not self._fill():
            return 0
        size = min(len(target), len(buffer))
        target[:size] = self._connection.take(size)
        return size

    def readline(self, limit: int | None = -1) -> bytes:
        buffer = self._connection.buffer
        limit = limit if limit is not None and limit >= 0 else None
        searched = 0
        while True:
            newline = buffer.find(b"\n", searched)
            if newline >= 0:
                size = newline + 1
                break
            if limit is not None and len(buffer) >= limit:
                size = limit
                break
            searched = len(buffer)
            if not self._fill():
                size = len(buffer)
                break
        if limit is not None:
            size = min(size, limit)
        return self._connection.take(size)

    def _fill(self) -> bool:
        """One socket read into the buffer; False at the end of the stream."""
        sock = self._connection.sock
        timeout = None
        if self.deadline is not None:
            timeout = self.deadline - time.monotonic()
            if timeout <= 0:
                raise TimeoutError("deadline passed")
        sock.settimeout(timeout)
        try:
            data = sock.recv(RECEIVE_SIZE)
        finally:
            sock.settimeout(self.send_timeout)
        self._connection.buffer += data
        return bool(data)


class RequestBody(io.RawIOBase):
    """The body of one request: at most ``length`` bytes of the connection (None: unbounded).

    Reads fill the buffer they are given, as a buffered file's do (the app takes a
    short read for the whole body), and raise :class:`BodyTimeout` past the deadline.
    """

    def __init__(self, reader: ConnectionReader, length: int | None):
        self._reader = reader
        self.remaining = length

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(target)
        if self.remaining is not None:
            view = view[: self.remaining]
        filled = 0
        while filled < len(view):
            try:
                size = self._reader.readinto(view[filled:])
            except TimeoutError:
                raise BodyTimeout() from None
            if size == 0:
                if self.remaining is not None:
                    raise ConnectionResetError("the client closed the connection mid-body")
                break
            filled += size
            if self.remaining is not None:
                self.remaining -= size
        return filled

    def readline(self, limit: int | None = -1) -> bytes:
        if self.remaining == 0:
            return b""
        if self.remaining is not None and (limit is None or limit < 0 or limit > self.remaining):
            limit = self.remaining
        try:
            line = self._reader.readline(limit)
        except TimeoutError:
            raise BodyTimeout() from None
        if self.remaining is not None:
            self.remaining -= len(line)
        return line

    def discard(self, most: int) -> bool:
        """Read and drop what is left of the body, if it is at most ``most`` bytes, in time."""
        if self.remaining is None or self.remaining > most:
            return False
        try:
            while self.remaining:
                self.readinto(bytearray(min(self.remaining, RECEIVE_SIZE)))
        except (BodyTimeout, OSError):
            return False
        return True


class SocketWriter(io.RawIOBase):
    """Unbuffered writes: every write goes out whole, within the socket's timeout."""

    def __init__(self, sock: socket.socket):
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._sock.sendall(data)
        return len(data)
