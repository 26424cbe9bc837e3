"""A raw-socket SMTP client for tests that must control every byte on the wire.

smtplib normalises line ends, dot-stuffs and refuses bad input; these tests
need to send exactly the bytes an attacker or a broken client would.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass

from line_socket import LineSocket

from mailtrap.config import Address


@dataclass(frozen=True)
class Reply:
    """One SMTP reply: its code and the text of each line (without code and separator)."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class WireClient(LineSocket):
    """A socket that sends raw bytes and parses replies; reads the greeting on connect."""

    def __init__(
        self,
        address: Address,
        *,
        timeout: float = 5.0,
        read_greeting: bool = True,
        source: str | None = None,
    ):
        super().__init__(address, timeout=timeout, source=source)
        self.greeting: Reply | None = self.reply() if read_greeting else None

    def __enter__(self) -> WireClient:
        return self

    def command(self, line: str | bytes) -> Reply:
        """Send one command line with CRLF and read its reply."""
        self.send_line(line)
        return self.reply()

    def reply(self) -> Reply:
        """Read one (possibly multi-line) reply."""
        lines: list[str] = []
        while True:
            line = self.read_line()
            code, separator, text = line[:3], line[3:4], line[4:]
            if not code.isdigit() or separator not in (b" ", b"-", b""):
                raise AssertionError(f"not an SMTP reply line: {line!r}")
            lines.append(text.decode("utf-8", "replace"))
            if separator != b"-":
                return Reply(int(code), tuple(lines))

    def replies(self, count: int) -> list[Reply]:
        return [self.reply() for _ in range(count)]

    def ehlo(self, name: str = "client.test") -> Reply:
        reply = self.command(f"EHLO {name}")
        assert reply.code == 250, reply
        return reply

    def read_until_closed(self, timeout: float | None = 5.0) -> bytes:
        return super().read_until_closed(timeout)


def send_message(
    client: WireClient,
    data: bytes,
    *,
    mail_from: str = "sender@example.com",
    rcpt_tos: tuple[str, ...] = ("rcpt@example.com",),
) -> Reply:
    """MAIL, RCPT, DATA, then ``data`` sent verbatim; returns the reply to the end of DATA.

    ``data`` must carry its own terminating ``CRLF . CRLF``.
    """
    assert client.command(f"MAIL FROM:<{mail_from}>").code == 250
    for rcpt in rcpt_tos:
        assert client.command(f"RCPT TO:<{rcpt}>").code == 250
    reply = client.command("DATA")
    assert reply.code == 354, reply
    client.send(data)
    return client.reply()


def queued_id(reply: Reply) -> str:
    """The message ID from ``250 2.0.0 Ok: queued as <ID>``."""
    assert reply.code == 250, reply
    prefix = "2.0.0 Ok: queued as "
    assert reply.text.startswith(prefix), reply
    return reply.text[len(prefix) :]


def deliver(
    client: smtplib.SMTP,
    raw: bytes,
    *,
    mail_from: str = "sender@example.com",
    rcpt_tos: tuple[str, ...] = ("rcpt@example.com",),
    mail_options: tuple[str, ...] = (),
) -> str:
    """Send one message with smtplib, checking each reply; returns the queued ID."""
    if client.helo_resp is None and client.ehlo_resp is None:
        client.ehlo()
    code, text = client.mail(mail_from, list(mail_options))
    assert code == 250, (code, text)
    for rcpt in rcpt_tos:
        code, text = client.rcpt(rcpt)
        assert code == 250, (code, text)
    code, text = client.data(raw)
    return queued_id(Reply(code, (text.decode(),)))
