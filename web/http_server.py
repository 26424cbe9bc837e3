"""The WSGI server: Werkzeug's request handling, without a thread per idle or slow client.

Werkzeug's threaded server spends a thread on every connection from accept to
close, with no deadline, so clients that send half a request hold threads
forever. Here one selector thread accepts connections and buffers each one until
it holds a whole request header (and a body up to ``prebuffer_body`` bytes), under
a total deadline; only then does a worker thread run the request through
Werkzeug's :class:`~werkzeug.serving.WSGIRequestHandler`. A kept-alive connection
goes back to the selector between requests. Workers are bounded: ``workers`` for
ordinary requests, and ``max_streams`` more for websockets and long polls, which
leave the ordinary count when they start so they cannot starve it. Connections
are capped in total and per client address; over a cap, a client gets ``503``.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus
from typing import Any

from werkzeug.serving import BaseWSGIServer, select_address_family

from mailtrap.web.http_connection import RECEIVE_SIZE, ClientCounts, Connection, error_response
from mailtrap.web.http_handler import RequestHandler

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 1024
ACCEPT_BATCH = 64  # connections accepted per wake-up, so reads are not starved by a flood
ACCEPT_PAUSE = 0.1  # seconds without accepting after running out of file descriptors
LINGER = 2.0  # seconds an answered connection may take to close, so the answer is read
MAX_LINGERING = 256  # beyond this many, refused connections are closed at once
IDLE_THREAD_LIFETIME = 10.0  # seconds an idle worker thread waits for work before it ends


@dataclass(frozen=True)
class HttpLimits:
    """Deadlines and bounds of the HTTP server (the ``--http-*`` flags)."""

    header_timeout: float = 10.0  # total, from the first byte of a request to its last header
    body_timeout: float = 30.0  # total for a request body; also bounds each response write
    keepalive_timeout: float = 15.0  # an idle kept-alive connection is closed after this
    max_connections: int = 1000
    max_connections_per_ip: int = 100
    workers: int = 8  # threads for ordinary requests
    max_streams: int = 100  # websockets and long polls at once
    max_header_bytes: int = 64 * 1024
    prebuffer_body: int = 64 * 1024  # bodies up to this are read before a thread is spent
    drain_body: int = 1024 * 1024  # an unread body up to this is skipped to keep the connection


class WorkerPool:
    """Threads for connections with a whole request, started on demand and ended when idle."""

    def __init__(self, handle: Callable[[Connection], None], workers: int, max_streams: int):
        self._handle = handle
        self._workers = workers
        self._max_streams = max_streams
        self._ready = threading.Condition()
        self._queue: deque[Connection] = deque()
        self._ordinary = 0  # threads counted against `workers`, idle ones included
        self._idle = 0
        self._streams = 0
        self._streams_of: dict[str, int] = {}  # client address: streams it holds
        self._uploads_of: dict[str, int] = {}  # client address: large bodies being read
        self._threads: set[threading.Thread] = set()
        self._local = threading.local()
        self._closed = False

    def submit(self, connection: Connection) -> None:
        with self._ready:
            if not self._closed:
                self._queue.append(connection)
                self._ready.notify()
                self._grow()
                return
        connection.close()

    @property
    def others_waiting(self) -> bool:
        """Whether connections wait for a thread (a worker then lets go of its own)."""
        return bool(self._queue)

    def enter_stream(self, address: str) -> bool:
        """Move the calling worker from the ordinary count to the streams; False when full.

        One client address may hold at most half of them, so another always finds room.
        """
        with self._ready:
            mine = self._streams_of.get(address, 0)
            if self._streams >= self._max_streams or mine >= max(1, self._max_streams // 2):
                return False
            self._streams += 1
            self._streams_of[address] = mine + 1
            self._ordinary -= 1
            self._local.stream = address
            self._grow()
        return True

    def enter_upload(self, address: str) -> bool:
        """Claim a slot for reading a large body in this worker; False when none is free.

        A worker reading a body the client sends slowly is held until the body
        deadline; at most half the workers do that at once, and a quarter for
        one client address, so ordinary requests always find a thread.
        """
        with self._ready:
            mine = self._uploads_of.get(address, 0)
            total = sum(self._uploads_of.values())
            if total >= max(1, self._workers // 2) or mine >= max(1, self._workers // 4):
                return False
            self._uploads_of[address] = mine + 1
        return True

    def leave_upload(self, address: str) -> None:
        with self._ready:
            self._uploads_of[address] -= 1
            if not self._uploads_of[address]:
                del self._uploads_of[address]

    def close(self, timeout: float) -> bool:
        """Close queued connections and wait for running requests; True when all ended."""
        with self._ready:
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
            threads = list(self._threads)
            self._ready.notify_all()
        for connection in queued:
            connection.close()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    def _grow(self) -> None:
        """Start a thread if work waits and none is idle (the lock is held)."""
        if len(self._queue) > self._idle and self._ordinary < self._workers:
            self._ordinary += 1
            thread = threading.Thread(target=self._work, name="mailtrap-http-worker", daemon=True)
            self._threads.add(thread)
            thread.start()

    def _work(self) -> None:
        self._local.stream = None  # the client address, once this thread serves a stream
        while True:
            with self._ready:
                self._idle += 1
                self._ready.wait_for(lambda: self._queue or self._closed, IDLE_THREAD_LIFETIME)
                self._idle -= 1
                if not self._queue:  # closed, or idle for too long
                    self._ordinary -= 1
                    self._threads.discard(threading.current_thread())
                    return
                connection = self._queue.popleft()
            try:
                self._handle(connection)
            except Exception:
                log.exception("error serving an HTTP connection")
                connection.close()
            address = self._local.stream
            if address is not None:
                # A stream's thread was replaced in the ordinary count when it started.
                with self._ready:
                    self._streams -= 1
                    self._streams_of[address] -= 1
                    if not self._streams_of[address]:
                        del self._streams_of[address]
                    self._threads.discard(threading.current_thread())
                return


class _Listener:
    """Selector key data of the listening socket."""


class _Wake:
    """Selector key data of the socketpair that wakes the selector."""


class SelectorWSGIServer(BaseWSGIServer):
    """Serves ``app`` on ``host:port`` (0: a free port, read back as ``port``).

    ``is_long_lived(target, headers)`` says which requests (websockets, long
    polls) count against ``max_streams`` instead of ``workers``. Run
    :meth:`serve_forever` in a thread; :meth:`shutdown` stops it, then
    :meth:`close` waits for requests in flight and releases the sockets.
    """

    multithread = True

    def __init__(
        self,
        host: str,
        port: int,
        app: Any,
        limits: HttpLimits,
        is_long_lived: Callable[[str, Message], bool],
    ):
        # Bound here rather than by Werkzeug, which exits the process on a bind error.
        family = select_address_family(host, port)
        listener = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
        try:
            super().__init__(host, port, app, handler=RequestHandler, fd=listener.fileno())
        finally:
            listener.close()
        self.socket.setblocking(False)
        self.limits = limits
        self.is_long_lived = is_long_lived
        self.pool = WorkerPool(self._serve_connection, limits.workers, limits.max_streams)
        self.counts = ClientCounts()
        self._selector = selectors.DefaultSelector()
        self._waiting: set[Connection] = set()
        self._deadlines: list[tuple[float, int, Connection]] = []
        self._sequence = itertools.count()
        self._lingering = 0
        self._accept_resumes: float | None = None
        self._returned: deque[Connection] = deque()
        self._wake_receiver, self._wake_sender = socket.socketpair()
        self._wake_receiver.setblocking(False)
        self._wake_sender.setblocking(False)
        self._stop = threading.Event()
        self._stopped = threading.Event()

    # The selector thread ------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Accept and buffer connections until :meth:`shutdown` (no polling: it wakes us)."""
        selector = self._selector
        selector.register(self.socket, selectors.EVENT_READ, _Listener)
        selector.register(self._wake_receiver, selectors.EVENT_READ, _Wake)
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(self._next_timeout()):
                    self._handle_event(key.data)
                self._expire()
        finally:
            for connection in list(self._waiting):
                self._drop(connection)
            selector.close()
            self._stopped.set()

    def _handle_event(self, target: object) -> None:
        # This one thread serves every connection: nothing one of them does may end it.
        try:
            if target is _Listener:
                self._accept()
            elif target is _Wake:
                self._take_returned()
            else:
                assert isinstance(target, Connection)
                self._receive(target)
        except Exception:
            log.exception("HTTP: error handling a connection event")
            if isinstance(target, Connection):
                self._drop(target)

    def _accept(self) -> None:
        now = time.monotonic()
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as error:
                if error.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # accept(2): errors of the network or of the new connection
                    # (EPROTO, ENETDOWN, EHOSTUNREACH...) are to be retried.
                    log.info("HTTP: accept failed (%s); retrying", error.strerror)
                    return
                log.warning("HTTP: cannot accept connections (%s); pausing", error.strerror)
                self._selector.unregister(self.socket)
                self._accept_resumes = now + ACCEPT_PAUSE
                return
            sock.setblocking(False)
            # Werkzeug writes a response's header and body apart: with Nagle's
            # algorithm the body waited for the client's delayed ACK (40 ms).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            limits = self.limits
            refusal = self.counts.try_add(
                address[0], limits.max_connections_per_ip, limits.max_connections
            )
            connection = Connection(sock, address, None if refusal else self.counts)
            self._register(connection, now + limits.header_timeout)
            if refusal:
                log.warning("HTTP connection from %s refused: %s", address[0], refusal)
                self._answer(connection, HTTPStatus.SERVICE_UNAVAILABLE, refusal)

    def _receive(self, connection: Connection) -> None:
        try:
            data = connection.sock.recv(RECEIVE_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(connection)
            return
        if connection.lingering:
            return  # an answered client's leftovers
        if connection.phase == "idle":  # the next request on a kept-alive connection begins
            connection.phase = "header"
            self._set_deadline(connection, time.monotonic() + self.limits.header_timeout)
        connection.buffer += data
        self._examine(connection)

    def _examine(self, connection: Connection) -> None:
        """Hand the connection to a worker once its request is whole; 431 when too large."""
        limits = self.limits
        try:
            ready = connection.request_ready(limits.max_header_bytes, limits.prebuffer_body)
        except ValueError:
            message = f"request header over {limits.max_header_bytes} bytes"
            log.info("HTTP client %s: %s", connection.ip, message)
            self._answer(connection, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, message)
            return
        if ready:
            self._selector.unregister(connection.sock)
            self._waiting.discard(connection)
            connection.sock.setblocking(True)
            self.pool.submit(connection)
        elif connection.phase == "header" and connection.header_end(limits.max_header_bytes):
            # The header is whole and a small body is on its way: a new deadline for it.
            connection.phase = "body"
            self._set_deadline(connection, time.monotonic() + limits.body_timeout)

    def _expire(self) -> None:
        now = time.monotonic()
        if self._accept_resumes is not None and now >= self._accept_resumes:
            self._accept_resumes = None
            self._selector.register(self.socket, selectors.EVENT_READ, _Listener)
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, _, connection = heapq.heappop(self._deadlines)
            if connection not in self._waiting or connection.deadline != deadline:
                continue  # a stale entry: the connection moved on
            if connection.lingering or not connection.buffer:
                self._drop(connection)  # idle, or answered: close quietly
            else:
                what = "request body" if connection.phase == "body" else "request header"
                log.info("HTTP client %s: %s not received in time", connection.ip, what)
                self._answer(connection, HTTPStatus.REQUEST_TIMEOUT, f"{what} not received in time")

    def _next_timeout(self) -> float | None:
        while self._deadlines:
            deadline, _, connection = self._deadlines[0]
            if connection in self._waiting and connection.deadline == deadline:
                break
            heapq.heappop(self._deadlines)
        candidates = [d for d in (self._accept_resumes,) if d is not None]
        if self._deadlines:
            candidates.append(self._deadlines[0][0])
        if not candidates:
            return None
        return max(0.0, min(candidates) - time.monotonic())

    def _register(self, connection: Connection, deadline: float) -> None:
        self._selector.register(connection.sock, selectors.EVENT_READ, connection)
        self._waiting.add(connection)
        self._set_deadline(connection, deadline)

    def _set_deadline(self, connection: Connection, deadline: float) -> None:
        connection.deadline = deadline
        heapq.heappush(self._deadlines, (deadline, next(self._sequence), connection))

    def _answer(self, connection: Connection, status: HTTPStatus, message: str) -> None:
        """Send a short error, then close once the client has had time to read it."""
        try:
            connection.sock.send(error_response(status, message))  # fits an empty send buffer
        except OSError:
            self._drop(connection)
            return
        self._linger(connection, LINGER)

    def _linger(self, connection: Connection, seconds: float) -> None:
        """Half-close and drop what the client still sends, so it reads our answer, not a reset."""
        try:
            connection.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._drop(connection)
            return
        if self._lingering >= MAX_LINGERING:
            self._drop(connection)
            return
        self._lingering += 1
        connection.lingering = True
        connection.buffer.clear()
        self._set_deadline(connection, time.monotonic() + seconds)

    def _drop(self, connection: Connection) -> None:
        if connection in self._waiting:
            self._selector.unregister(connection.sock)
            self._waiting.discard(connection)
            if connection.lingering:
                self._lingering -= 1
        connection.close()

    def _take_returned(self) -> None:
        try:
            while self._wake_receiver.recv(4096):
                pass
        except BlockingIOError:
            pass
        now = time.monotonic()
        while self._returned:
            connection = self._returned.popleft()
            connection.sock.setblocking(False)
            if connection.unread_body:
                # Answered before its body was read (413, say): let the client finish sending.
                self._register(connection, now + LINGER)
                self._linger(connection, self.limits.body_timeout)
            elif connection.buffer:
                connection.phase = "header"
                self._register(connection, now + self.limits.header_timeout)
                self._examine(connection)
            else:
                connection.phase = "idle"
                self._register(connection, now + self.limits.keepalive_timeout)

    # Worker threads -----------------------------------------------------------

    def _serve_connection(self, connection: Connection) -> None:
        handler = RequestHandler(connection, connection.address, self)
        if (handler.keep_alive or connection.unread_body) and not self._stop.is_set():
            self._returned.append(connection)
            self._wake()
        else:
            connection.close()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a wake-up is pending already
            self._wake_sender.send(b"\0")

    # Stopping ----------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop accepting and close the connections waiting for a request."""
        self._stop.set()
        self._wake()
        self._stopped.wait()

    def close(self, grace: float) -> bool:
        """After :meth:`shutdown`: wait up to ``grace`` for requests in flight, release sockets."""
        finished = self.pool.close(grace)
        while self._returned:
            self._returned.popleft().close()
        self.server_close()
        self._wake_receiver.close()
        self._wake_sender.close()
        return finished
