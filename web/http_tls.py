"""HTTPS on the selector server: handshakes that never block, and TLS sockets shared by threads.

The selector thread of :mod:`mailtrap.web.http_server` looks at a new
connection's first byte (a TLS record starts with 22, a plain HTTP request with
a letter), wraps it in TLS without a handshake, and then drives the handshake
one step per readiness event, under the header deadline, as it buffers a
header. A websocket needs the TLS layer from two threads at once (its reader
and the route that sends), which one OpenSSL object does not allow:
:class:`SharedTlsSocket` takes turns.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
import time

TLS_HANDSHAKE_RECORD = 0x16  # the content type of a ClientHello's record (RFC 8446 5.1)

HANDSHAKE_DONE = 0  # what handshake_step returns once TLS is up; else the events to wait for


def wrap(sock: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket:
    """``sock`` (non-blocking) as the server side of a TLS connection, not yet handshaken."""
    return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)


def handshake_step(sock: ssl.SSLSocket) -> int:
    """Advance the handshake as far as it goes without blocking.

    Returns :data:`HANDSHAKE_DONE`, or the selector events to wait for before
    the next step; raises :class:`ssl.SSLError` or :class:`OSError` when the
    client is not speaking TLS we accept.
    """
    try:
        sock.do_handshake()
    except ssl.SSLWantReadError:
        return selectors.EVENT_READ
    except ssl.SSLWantWriteError:
        return selectors.EVENT_WRITE
    return HANDSHAKE_DONE


def pending(sock: socket.socket) -> int:
    """Bytes decrypted already and held by OpenSSL, where select() cannot see them."""
    return sock.pending() if isinstance(sock, ssl.SSLSocket) else 0


def send_close_notify(sock: socket.socket) -> None:
    """Say goodbye at the TLS layer before the TCP one, without waiting for the answer."""
    if not isinstance(sock, ssl.SSLSocket):
        return
    with contextlib.suppress(OSError, ValueError):  # ssl.SSLError is an OSError
        sock.setblocking(False)
        sock.unwrap()  # sends close_notify; raises SSLWantReadError for the peer's


class SharedTlsSocket:
    """An :class:`ssl.SSLSocket` that a websocket's reader and writer threads can share.

    It stands in for the ``dup()`` a plain socket would get (an SSLSocket
    cannot be duplicated: a copy of the file descriptor has no TLS state).
    Every TLS operation runs under one lock and never blocks inside it: the
    socket is non-blocking, and waiting for readiness happens outside the lock.
    ``close()`` only ends this view; the server closes the connection itself.
    """

    def __init__(self, sock: ssl.SSLSocket, timeout: float | None):
        self._sock = sock
        self._timeout = timeout  # per read or write, as the socket's own timeout was
        self._lock = threading.Lock()
        self._closed = False
        sock.setblocking(False)

    def fileno(self) -> int:
        return -1 if self._closed else self._sock.fileno()

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes, and whatever else OpenSSL had decrypted already.

        The reader selects on the socket between reads: data left inside
        OpenSSL would wait there, unseen, until the client sent more.
        """
        deadline = self._deadline()
        while True:
            with self._lock:
                self._check_open()
                try:
                    data = self._sock.recv(size)
                    while left := self._sock.pending():
                        data += self._sock.recv(left)
                    return data
                except ssl.SSLWantReadError:
                    events = selectors.EVENT_READ
                except ssl.SSLWantWriteError:
                    events = selectors.EVENT_WRITE
            self._wait(events, deadline)

    def send(self, data: bytes) -> int:
        """Send all of ``data`` (simple-websocket treats send as sendall)."""
        view = memoryview(data)
        deadline = self._deadline()
        while view:
            with self._lock:
                self._check_open()
                try:
                    view = view[self._sock.send(view) :]
                    continue
                except ssl.SSLWantWriteError:
                    events = selectors.EVENT_WRITE
                except ssl.SSLWantReadError:
                    events = selectors.EVENT_READ
            self._wait(events, deadline)
        return len(data)

    sendall = send

    def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise OSError("the websocket's view of the connection is closed")

    def _deadline(self) -> float | None:
        return None if self._timeout is None else time.monotonic() + self._timeout

    def _wait(self, events: int, deadline: float | None) -> None:
        timeout = None if deadline is None else deadline - time.monotonic()
        if timeout is not None and timeout <= 0:
            raise TimeoutError("the websocket peer did not keep up")
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, events)
            if not selector.select(timeout):
                raise TimeoutError("the websocket peer did not keep up")
