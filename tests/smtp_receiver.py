"""Real receiving SMTP servers on loopback (aiosmtpd), playing the remote MX or a smarthost.

A :class:`Receiver` runs aiosmtpd on its own event loop and thread, on an
address of 127.0.0.0/8 and port 0 (or a port another receiver already has,
so several "MX hosts" share the port relay uses). Per recipient it can answer
a chosen reply or drop the connection; it can hold its reply to the end of
DATA (the message already counted as received) until the test lets it go.
Everything it accepted is in :attr:`Receiver.received`.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

DROP = "drop"  # a reply that closes the connection instead of answering
WAIT_TIMEOUT = 20.0


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: str | None


class _Handler:
    def __init__(self, receiver: Receiver):
        self.receiver = receiver

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.receiver.replies.get(address.lower(), "250 OK")
        self.receiver.rcpt_seen.append(address)
        if reply == DROP:
            assert server.transport is not None
            server.transport.close()
            return "421 closing"
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        receiver = self.receiver
        login = session.auth_data.login.decode() if session.auth_data else None
        with receiver.lock:
            receiver.received.append(
                Received(
                    envelope.mail_from or "",
                    list(envelope.rcpt_tos),
                    bytes(envelope.original_content or b""),
                    server.transport is not None
                    and server.transport.get_extra_info("ssl_object") is not None,
                    login,
                )
            )
            receiver.arrived.notify_all()
        # Like an MTA that has queued the message and is slow to say so (or whose
        # reply is lost): the message counts as received before the reply.
        receiver.data_started.set()
        if receiver.hold is not None:
            await asyncio.get_running_loop().run_in_executor(None, receiver.hold.wait, WAIT_TIMEOUT)
        return receiver.data_reply


class Receiver:
    """An SMTP server on ``host``; ``replies`` maps a recipient to its RCPT reply (or DROP)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        replies: dict[str, str] | None = None,
        data_reply: str = "250 2.0.0 queued as R1",
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        users: dict[str, str] | None = None,
        greeting: str | None = None,
    ):
        self.host, self.port = host, port
        self.replies = {key.lower(): value for key, value in (replies or {}).items()}
        self.data_reply = data_reply
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.users = users
        self.greeting = greeting  # a reply instead of 220, then the connection closes
        self.hold: threading.Event | None = None  # set: the end of DATA waits for it
        self.data_started = threading.Event()
        self.received: list[Received] = []
        self.rcpt_seen: list[str] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.connections = 0
        self._protocols: list[asyncio.Protocol] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> Receiver:
        self._thread.start()
        listen = self._loop.create_server(
            self._protocol,
            self.host,
            self.port,
            ssl=self.tls_context if self.implicit_tls else None,
        )
        self._server = asyncio.run_coroutine_threadsafe(listen, self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for protocol in self._protocols:
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                transport.close()
        await asyncio.sleep(0.05)  # let the closed transports run their connection_lost

    def _protocol(self) -> asyncio.Protocol:
        self.connections += 1
        protocol = self._make_protocol()
        self._protocols.append(protocol)
        return protocol

    def _make_protocol(self) -> asyncio.Protocol:
        if self.greeting is not None:
            return _Greeter(self.greeting)
        options: dict[str, Any] = {}
        if self.tls_context is not None and not self.implicit_tls:
            options["tls_context"] = self.tls_context
        if self.users is not None:
            # aiosmtpd does not see an implicit-TLS transport as TLS (Python 3.11's
            # transports), so there TLS is only checked in what was received.
            options.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=not self.implicit_tls,
            )
        with warnings.catch_warnings():
            # It warns of auth without required TLS, which implicit TLS is.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return SMTP(_Handler(self), hostname="receiver.test", **options)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self.users is not None
        ok = isinstance(data, LoginPassword) and self.users.get(data.login.decode()) == (
            data.password.decode()
        )
        return AuthResult(success=ok, handled=False, auth_data=data)

    def wait_for(self, count: int, timeout: float = WAIT_TIMEOUT) -> list[Received]:
        """Wait until ``count`` messages have arrived; returns them all."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{len(self.received)} of {count} messages arrived")
            return list(self.received)

    def recipients(self) -> list[str]:
        """Every recipient of every accepted message, in order."""
        with self.lock:
            return [rcpt for message in self.received for rcpt in message.rcpt_tos]


class _Greeter(asyncio.Protocol):
    """Answers the connection with one line (a 421 "busy"), then closes it."""

    def __init__(self, line: str):
        self.line = line

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.line.encode() + b"\r\n")
        transport.close()


@contextmanager
def receivers(*makers: Callable[[], Receiver]) -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    try:
        for make in makers:
            started.append(make().start())
        yield started
    finally:
        for receiver in started:
            receiver.stop()
