"""A raw socket with CRLF line reading: the base of the tests' protocol-level clients.

Library clients (smtplib, poplib) normalise line ends, undo dot-stuffing and
refuse bad input; the tests built on this need to send and see every byte.
"""

from __future__ import annotations

import socket
import ssl

from mailtrap.config import Address


class LineSocket:
    """Sends bytes as given and reads CRLF-terminated lines; a context manager.

    ``source``: the local address to connect from (any of 127/8 plays another client).
    """

    def __init__(self, address: Address, *, timeout: float, source: str | None = None):
        self.sock: socket.socket = socket.create_connection(
            (address.host, address.port),
            timeout=timeout,
            source_address=(source, 0) if source else None,
        )
        self._buffer = b""

    def __enter__(self) -> LineSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        """Send bytes exactly as given: no CRLF is added."""
        self.sock.sendall(data)

    def send_line(self, line: str | bytes) -> None:
        """Send one command line with CRLF."""
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")

    def read_line(self) -> bytes:
        """The next line, without its CRLF."""
        while b"\r\n" not in self._buffer:
            self._receive()
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line

    def start_tls(self, context: ssl.SSLContext, server_hostname: str = "127.0.0.1") -> None:
        """Switch to TLS (after the caller's STARTTLS/STLS got its positive reply)."""
        assert not self._buffer, f"unread plaintext before TLS: {self._buffer!r}"
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)

    def read_until_closed(self, timeout: float | None = None) -> bytes:
        """Everything the server sends until it closes the connection.

        With ``timeout``, ``TimeoutError`` if the connection is still open after it.
        """
        if timeout is not None:
            self.sock.settimeout(timeout)
        data, self._buffer = self._buffer, b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed; unread: {self._buffer!r}")
        self._buffer += chunk
