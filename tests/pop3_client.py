"""A raw-socket POP3 client for tests that must see or send every byte.

poplib strips line ends, undoes dot-stuffing and refuses lines over 2048
octets; these tests check exactly what is on the wire, and send what a broken
or hostile client would.
"""

from __future__ import annotations

import poplib
from collections.abc import Iterator
from contextlib import contextmanager

from line_socket import LineSocket

from mailtrap.config import Address


class Pop3Wire(LineSocket):
    """A socket that sends raw bytes and reads POP3 replies; reads the greeting on connect."""

    def __init__(
        self,
        address: Address,
        *,
        timeout: float = 10.0,
        read_greeting: bool = True,
        source: str | None = None,
    ):
        super().__init__(address, timeout=timeout, source=source)
        self.greeting = self.line() if read_greeting else b""

    def __enter__(self) -> Pop3Wire:
        return self

    def command(self, line: str | bytes) -> bytes:
        """Send one command line with CRLF and read a one-line reply (without CRLF)."""
        self.send_line(line)
        return self.line()

    def multiline(self, line: str | bytes) -> bytes:
        """Send a command and read its multi-line reply: every byte up to and with the
        terminating ``.CRLF``, dot-stuffing included."""
        self.send_line(line)
        return self.read_multiline()

    def read_multiline(self) -> bytes:
        first = self.line() + b"\r\n"
        if not first.startswith(b"+OK"):
            return first
        # The end is a line holding only a dot; the message may be empty.
        while (end := (b"\r\n" + self._buffer).find(b"\r\n.\r\n")) < 0:
            self._receive()
        body, self._buffer = self._buffer[:end], self._buffer[end + 3 :]
        return first + body + b".\r\n"

    def login(self, user: str = "user", password: str = "secret") -> bytes:
        assert self.command(f"USER {user}").startswith(b"+OK")
        return self.command(f"PASS {password}")

    def line(self) -> bytes:
        return self.read_line()


def unstuff(multiline: bytes) -> bytes:
    """The message inside a multi-line reply: status line, dot-stuffing and end removed."""
    body = multiline.split(b"\r\n", 1)[1].removesuffix(b".\r\n")
    return (b"\r\n" + body).replace(b"\r\n..", b"\r\n.")[2:]


@contextmanager
def pop3_login(
    address: Address, user: str = "user", password: str = "secret"
) -> Iterator[poplib.POP3]:
    """A logged-in poplib client, closed at the end (without QUIT unless the caller sent it)."""
    client = poplib.POP3(address.host, address.port, timeout=10)
    try:
        client.user(user)
        client.pass_(password)
        yield client
    finally:
        client.close()


def retrieved(client: poplib.POP3, number: int) -> bytes:
    """RETR with poplib, lines joined back with CRLF: the message as it was stored."""
    _, lines, _ = client.retr(number)
    return b"".join(line + b"\r\n" for line in lines)
