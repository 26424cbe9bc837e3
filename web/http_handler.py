"""Werkzeug's WSGI request handler, run on a buffered connection with keep-alive and deadlines.

:class:`werkzeug.serving.WSGIRequestHandler` parses the request and runs the
app as usual; this subclass only changes where it reads and writes
(:mod:`mailtrap.web.http_connection`), bounds the body by its
``Content-Length`` and a deadline, keeps the connection open after a
response whose end the client can tell (Werkzeug closes every one), and moves
long-lived requests to the stream count of the worker pool.
"""

from __future__ import annotations

import io
import logging
import socket
import ssl
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import BadRequest
from werkzeug.serving import DechunkedInput, WSGIRequestHandler

from mailtrap.web.http_connection import (
    Connection,
    ConnectionReader,
    RequestBody,
    SocketWriter,
    error_response,
)
from mailtrap.web.http_tls import SharedTlsSocket

if TYPE_CHECKING:
    from mailtrap.web.http_server import SelectorWSGIServer

log = logging.getLogger(__name__)


class _Dechunked(DechunkedInput):
    """Werkzeug's chunked body reader, with bad framing answered 400 rather than 500."""

    def readinto(self, buf: bytearray) -> int:  # type: ignore[override]
        try:
            return super().readinto(buf)
        except OSError as error:  # how Werkzeug reports a bad chunk header, or a hang-up
            raise BadRequest(f"invalid chunked request body: {error}") from None


class RequestHandler(WSGIRequestHandler):
    """Handles the requests of one connection until it closes or waits for the next one.

    Afterwards ``keep_alive`` says whether the connection should go back to the
    selector to wait for another request.
    """

    protocol_version = "HTTP/1.1"
    server: SelectorWSGIServer
    request: Connection

    def setup(self) -> None:
        self.keep_alive = False
        self.connection = self.request.sock  # flask-sock's websockets take it from the environ
        self.reader = ConnectionReader(self.request, send_timeout=self.server.limits.body_timeout)
        self.connection.settimeout(self.reader.send_timeout)
        self.rfile = self.reader  # type: ignore[assignment]
        self.wfile = SocketWriter(self.connection)  # type: ignore[assignment]

    def finish(self) -> None:
        pass  # nothing buffered; the server decides whether the socket closes

    def handle_one_request(self) -> None:
        self._long_lived = False
        self._in_app = False
        self._status = 0
        limits = self.server.limits
        # The header is buffered already; a deadline all the same, should parsing disagree.
        self.reader.deadline = time.monotonic() + limits.header_timeout
        super().handle_one_request()
        self.reader.deadline = None
        if self.close_connection:
            return
        try:
            ready = self.request.request_ready(limits.max_header_bytes, limits.prebuffer_body)
        except ValueError:
            ready = False  # the selector answers 431
        if self._long_lived or not ready or self.server.pool.others_waiting:
            # Wait for the next request in the selector, not in this thread; and
            # let waiting clients go before the rest of a pipelined batch.
            self.keep_alive = True
            self.close_connection = True

    def run_wsgi(self) -> None:
        limits = self.server.limits
        length = self._content_length()
        if length is None:
            return
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        websocket = self.headers.get("Upgrade", "").lower() == "websocket"
        self._long_lived = self.server.is_long_lived(self.path, self.headers)
        if self._long_lived and not self.server.pool.enter_stream(self.client_address[0]):
            message = (
                "too many websockets and long polls open, or half of them from your address"
                " (see --http-max-streams)"
            )
            log.warning("HTTP request from %s refused: %s", self.client_address[0], message)
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, message)
            return
        # A body the selector did not read first is read here, holding this thread.
        upload = not self._long_lived and (chunked or length > limits.prebuffer_body)
        address = self.client_address[0]
        if upload and not self.server.pool.enter_upload(address):
            message = (
                "too many large request bodies being received, or a quarter of the"
                " HTTP workers' worth from your address (see --http-workers); retry later"
            )
            log.warning("HTTP request from %s refused: %s", address, message)
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, message)
            self.request.unread_body = True  # so the client reads the 503, not a reset
            return
        try:
            self._run_app(length, chunked, websocket)
        finally:
            if upload:
                self.server.pool.leave_upload(address)

    def _run_app(self, length: int, chunked: bool, websocket: bool) -> None:
        limits = self.server.limits
        self._body = RequestBody(self.reader, None if chunked else length)
        self.reader.deadline = time.monotonic() + limits.body_timeout
        # Decided before the response goes out: can this connection carry another request?
        self._reusable = not (websocket or chunked or length > limits.drain_body)
        self._framed = False
        self.rfile = self._body  # type: ignore[assignment]  # make_environ's wsgi.input
        self._in_app = True
        self._websocket_socket: socket.socket | SharedTlsSocket | None = None
        try:
            super().run_wsgi()
        finally:
            self._in_app = False
            self.rfile = self.reader  # type: ignore[assignment]
            if self._websocket_socket is not None:  # closed already, unless refused
                self._websocket_socket.close()
        # A body the app left unread is skipped, if small, so the next request can follow.
        reusable = self._reusable and self._body.discard(limits.drain_body)
        self.close_connection = self.close_connection or not reusable
        self.request.unread_body = self.close_connection and self._body.remaining != 0

    def make_environ(self) -> Any:
        environ = super().make_environ()
        # After the response Werkzeug reads rfile until the socket is quiet, which
        # would swallow a pipelined request; run_wsgi skips the unread body instead.
        self.rfile = io.BytesIO()  # type: ignore[assignment]
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            # simple-websocket closes the socket it is given when the session
            # ends, and Werkzeug then writes the route's empty response: to a
            # duplicate of ours, as it was to Werkzeug's own server's file object.
            environ["werkzeug.socket"] = self._websocket_socket = self._websocket_view()
        if isinstance(environ["wsgi.input"], DechunkedInput):
            environ["wsgi.input"] = _Dechunked(self._body)
        return environ

    def _websocket_view(self) -> socket.socket | SharedTlsSocket:
        """The socket a websocket session reads and writes, and may close."""
        sock = self.connection
        if isinstance(sock, ssl.SSLSocket):
            # A dup() of the descriptor would skip the TLS layer; share that instead.
            self.request.shared_tls = True
            return SharedTlsSocket(sock, self.reader.send_timeout)
        return sock.dup()

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def send_header(self, keyword: str, value: str) -> None:
        name = keyword.lower()
        if self._in_app:
            if name in ("content-length", "transfer-encoding"):
                self._framed = True
            elif name == "connection" and value.lower() == "close" and self._can_keep_alive():
                return  # Werkzeug closes after every response; this server need not
        super().send_header(keyword, value)

    def _can_keep_alive(self) -> bool:
        bodiless = self.command == "HEAD" or self._status in (204, 304) or self._status < 200
        return self._reusable and not self.close_connection and (self._framed or bodiless)

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        # A response cut off by a write timeout or a reset: whatever follows on
        # this connection would be read as the rest of it, so nothing may follow.
        self.close_connection = True

    def handle_expect_100(self) -> bool:
        return True  # Werkzeug's run_wsgi sends the 100 Continue

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors http.server finds (bad request line, too many headers) as JSON too."""
        status = HTTPStatus(code)
        self.log_error("code %d, message %s", code, message)
        self._refuse(status, message or status.phrase)

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        self.close_connection = True
        self.wfile.write(error_response(status, message))

    def _content_length(self) -> int | None:
        """The announced body length (0 without one); None after answering 400."""
        values = set(self.headers.get_all("Content-Length") or ["0"])
        text = values.pop().strip() if len(values) == 1 else ""
        if not (text.isascii() and text.isdigit()):
            self._refuse(HTTPStatus.BAD_REQUEST, "invalid Content-Length")
            return None
        return int(text)
