"""The SMTP listener: aiosmtpd with bulk DATA reading, limits, and capture into the store."""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from mailtrap.auth import Credentials, LoginGate, Outcome
from mailtrap.errors import StorageError
from mailtrap.hooks.chaos import Chaos
from mailtrap.hooks.chaos import reply as chaos_reply
from mailtrap.ops.stats import ServerStats
from mailtrap.spool import Spool, Unstuffer
from mailtrap.store import IncomingMessage, Store
from mailtrap.throttle import AuthThrottle, ConnectionLimits, Refusal, peer_host

log = logging.getLogger(__name__)

# aiosmtpd itself sets the deprecated Session.login_data on every AUTH and
# logs a warning about it each time; that warning is not ours to act on.
logging.getLogger("mail.log").addFilter(
    lambda record: "login_data is deprecated" not in record.getMessage()
)

END_OF_DATA = b"\r\n.\r\n"
READ_BUFFER = 64 * 1024  # StreamReader limit: how much DATA one read may return

REPLY_STORAGE_FAILED = "451 4.3.0 Temporary storage failure, try again later"
REPLY_TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
REPLY_BARE_CR_LF = "501 5.5.2 CR and LF are not allowed in a command"
REPLY_LOCKED_OUT = "454 4.7.0 Too many failed logins from your address, try again later"
REFUSALS = {
    Refusal.LOCKED_OUT: b"421 4.7.0 Too many failed logins from your address\r\n",
    Refusal.FULL: b"421 4.7.0 Too many connections, try again later\r\n",
    Refusal.CLIENT_FULL: b"421 4.7.0 Too many connections from your address\r\n",
}
REPLY_JUNK = "421 4.7.0 Too many commands without progress, closing connection"
REPLY_AUTH_LINE_TOO_LONG = "500 5.5.6 Authentication exchange line is too long"

AUTH_LINE_LIMIT = 12288  # octets in one line of the AUTH exchange (RFC 4954 4)
# Commands that change nothing: they do not hold a connection open (Postfix's junk commands).
JUNK_COMMANDS = frozenset({"NOOP", "RSET", "HELP", "VRFY", "EXPN"})
# Steps towards a message, which count as progress only once it is sent.
TRANSACTION_STEPS = frozenset({"MAIL", "RCPT"})


class DataTooLarge(Exception):
    """The DATA section went over the size limit; it was read to its end and dropped."""


class SpoolFailed(Exception):
    """DATA could not be spooled (a full disk, say); it was read to its end and dropped."""


async def read_data(
    reader: asyncio.StreamReader, spool: Spool, limit: int, on_progress: Callable[[], object]
) -> None:
    """Read a DATA section up to the lone-dot line into ``spool``, dot-stuffing undone.

    Reads in bulk rather than a line at a time. Only ``CRLF . CRLF`` ends
    the section: ``LF . CRLF`` and ``CR . CRLF`` (SMTP smuggling) are plain
    content. Past ``limit`` bytes on the wire the rest is read and dropped, so
    memory stays bounded, and :class:`DataTooLarge` is raised at the end.
    A spool that cannot be written is dropped likewise (:class:`SpoolFailed`):
    the rest of the section must not be read as commands (SMTP smuggling).
    """
    unstuffer = Unstuffer()
    size = 0
    failure: OSError | None = None
    tail = b"\r\n"  # DATA starts at the beginning of a line
    while True:
        try:
            # Every end-of-data marker ends with ".\r\n", so each read stops
            # at a candidate and the two bytes before it decide.
            chunk = await reader.readuntil(b".\r\n")
            finished = (tail + chunk)[-5:] == END_OF_DATA
        except asyncio.LimitOverrunError as overrun:
            chunk = await reader.readexactly(overrun.consumed)
            finished = False
        except asyncio.IncompleteReadError as error:
            raise ConnectionResetError("connection closed during DATA") from error
        on_progress()
        tail = (tail + chunk)[-2:]
        if finished:
            chunk = chunk[:-3]  # the CRLF before the dot belongs to the message
        size += len(chunk)
        if (limit and size > limit) or failure is not None:
            spool.discard()
        else:
            try:
                spool.write(unstuffer.feed(chunk))
            except OSError as error:
                failure = error
                spool.discard()
        if finished:
            break
    if limit and size > limit:
        raise DataTooLarge(size)
    if failure is not None:
        raise SpoolFailed() from failure


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ANGLE_ADDRESS = re.compile(
    rf"\s*<(?P<address>{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>\s*(?P<rest>[^(]*)\Z",
)


# What the log line of a MAIL FROM refused for its SIZE= names.
_MAIL_SENDER = re.compile(r"FROM:\s*<([^<>]{0,320})>", re.IGNORECASE)
_MAIL_SIZE = re.compile(r"\bSIZE=(\d{1,20})\b", re.IGNORECASE)


class AuthLineTooLong(Exception):
    """A line of the AUTH exchange went over :data:`AUTH_LINE_LIMIT`; it was read and dropped."""


class _CRLFLineReader(asyncio.StreamReader):
    """A StreamReader whose lines end at CRLF only (RFC 5321 2.3.8).

    aiosmtpd splits commands at a bare LF; ending them only at CRLF keeps a
    CR or LF inside an address in its command, where it is refused (501).
    """

    async def readuntil(self, separator: bytes = b"\r\n") -> bytes:
        return await super().readuntil(separator)

    async def readline(self) -> bytes:
        """A client line of the AUTH exchange: aiosmtpd reads those, and only those, here.

        An over-long one is read to its end and dropped, and raises
        :class:`AuthLineTooLong` (``CaptureHandler.handle_exception`` answers it).
        """
        try:
            line = await self.readuntil()
        except asyncio.IncompleteReadError as error:
            raise ConnectionResetError("connection closed during AUTH") from error
        except asyncio.LimitOverrunError as overrun:
            await self.readexactly(overrun.consumed)
            await self._skip_line()
            raise AuthLineTooLong() from None
        if len(line) > AUTH_LINE_LIMIT:
            raise AuthLineTooLong()
        return line

    async def _skip_line(self) -> None:
        while True:
            try:
                await self.readuntil()
                return
            except asyncio.LimitOverrunError as overrun:
                await self.readexactly(overrun.consumed)
            except asyncio.IncompleteReadError as error:
                raise ConnectionResetError("connection closed during AUTH") from error


_Command = Callable[[Any, Any], Awaitable[None]]


def _refusing_cr_lf(command: _Command) -> _Command:
    """Wrap an ``smtp_*`` method to refuse a CR or LF inside its argument (RFC 5321 2.3.8).

    Lines end only at CRLF, so a bare CR or LF arrives inside the argument.
    ``functools.wraps`` keeps aiosmtpd's ``@syntax`` data, which HELP lists.
    """

    @functools.wraps(command)
    async def checked(self: SMTP, arg: str | None) -> None:
        if arg and ("\r" in arg or "\n" in arg):
            await self.push(REPLY_BARE_CR_LF)
            return
        await command(self, arg)

    return checked


class SessionTracker:
    """The live SMTP sessions: the connection caps, and open transactions for a clean stop."""

    def __init__(
        self,
        max_connections: int,
        *,
        max_per_client: int | None = None,
        throttle: AuthThrottle | None = None,
    ):
        self.sessions: set[MailtrapSMTP] = set()
        self._limits = ConnectionLimits(
            "SMTP", total=max_connections, per_client=max_per_client, throttle=throttle
        )
        self._transactions = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def admit(self, session: MailtrapSMTP, host: str) -> Refusal | None:
        """Count a new session from ``host``, or say why it is refused."""
        refusal = self._limits.admit(host)
        if refusal is None:
            self.sessions.add(session)
        return refusal

    def leave(self, session: MailtrapSMTP, host: str) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
            self._limits.leave(host)

    def begin_transaction(self) -> None:
        self._transactions += 1
        self._idle.clear()

    def end_transaction(self) -> None:
        self._transactions -= 1
        if not self._transactions:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no session is inside DATA; False if ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close_all(self, reply: bytes) -> None:
        for session in list(self.sessions):
            session.close_with(reply)


@dataclass(frozen=True)
class _Unchecked:
    """Credentials aiosmtpd has decoded, for :meth:`MailtrapSMTP._verify` to check."""

    login_password: LoginPassword


class MailtrapSMTP(SMTP):
    """aiosmtpd's SMTP session with bulk DATA, connection caps, credential checks off
    the event loop, and an idle 421 that only commands making progress put off."""

    line_length_limit = READ_BUFFER

    def __init__(
        self,
        handler: CaptureHandler,
        *,
        tracker: SessionTracker,
        junk_command_limit: int,
        **kwargs: Any,
    ):
        super().__init__(handler, **kwargs)
        self._tracker = tracker
        self._client_host = ""
        self._refused = False
        self._in_data = False
        self._junk_limit = junk_command_limit
        self._junk = 0  # commands in a row that made no progress
        self._progress_at = self.loop.time()
        self._idle_deadline = 0.0  # loop time at which the session is idle too long
        self._idle_timer_armed = False
        self._last_code = ""
        # aiosmtpd keeps these limits in one dict shared by every session, and
        # grows MAIL's at each EHLO; AUTH lines are bounded by AUTH_LINE_LIMIT.
        self.command_size_limits = collections.defaultdict(
            lambda: self.command_size_limit, {"AUTH": READ_BUFFER}
        )
        self._smtp_methods = {
            name: self._watched(name, method) for name, method in self._smtp_methods.items()
        }

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # self.transport is set on the STARTTLS switch, which is no new connection.
        if self.transport is None:
            self._client_host = peer_host(transport.get_extra_info("peername"))
            refusal = self._tracker.admit(self, self._client_host)
            if refusal is not None:
                self._refused = True
                transport.write(REFUSALS[refusal])  # type: ignore[attr-defined]
                transport.close()
                return
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._tracker.leave(self, self._client_host)
        if not self._refused:
            super().connection_lost(error)

    def close_with(self, reply: bytes) -> None:
        """Send a last reply and close, as on shutdown."""
        if self.transport is not None:
            self.transport.write(reply)  # type: ignore[attr-defined]
            self.transport.close()

    def eof_received(self) -> bool | None:
        return False if self._refused else super().eof_received()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_data:
            # The DATA timeout runs between blocks of data, not over the whole
            # message (RFC 5321 4.5.3.2.6): a slow but steady sender is not idle.
            self._progress_at = self.loop.time()
            self._reset_timeout()
        super().data_received(data)

    async def push(self, status: str | bytes) -> None:
        self._last_code = status[:3] if isinstance(status, str) else status[:3].decode("latin-1")
        await super().push(status)

    def _watched(self, command: str, method: Callable[[Any], Awaitable[Any]]) -> Any:
        """Wrap an ``smtp_*`` method so that only progress puts off the idle timeout.

        aiosmtpd restarts the idle timer before every known command; a NOOP
        loop would hold a connection forever. Junk (NOOP, RSET, HELP, VRFY,
        EXPN), refused commands and repeated greetings keep the time of the
        last progress, and ``junk_command_limit`` of them without a message
        sent in between (or a greeting, AUTH or STARTTLS) end the session.
        """

        @functools.wraps(method)
        async def watched(arg: str | None) -> Any:
            self._restart_idle_timer()
            greeted = self.session is not None and self.session.host_name is not None
            result = await method(arg)
            if self._made_progress(command, greeted):
                self._progress_at = self.loop.time()
                # MAIL and RCPT put off the idle timeout, but only a message
                # (or a greeting, AUTH, STARTTLS) clears the junk count: a
                # MAIL/RSET loop would otherwise hold a slot forever.
                if command not in TRANSACTION_STEPS:
                    self._junk = 0
            else:
                self._junk += 1
                if self._junk >= self._junk_limit and self.transport is not None:
                    log.warning(
                        "closing the SMTP session of %s after %d commands without progress",
                        self._client_host,
                        self._junk,
                    )
                    await self.push(REPLY_JUNK)
                    self.transport.close()
                    return result
            if self.transport is not None:
                self._restart_idle_timer()
            return result

        return watched

    def _made_progress(self, command: str, greeted: bool) -> bool:
        if command in JUNK_COMMANDS or self._last_code[:1] not in ("2", "3"):
            return False
        return not (command in ("HELO", "EHLO") and greeted)

    def _restart_idle_timer(self) -> None:
        """The idle timer, running from the last command that made progress."""
        left = self._progress_at + self._timeout_duration - self.loop.time()
        self._reset_timeout(max(left, 0.001))  # aiosmtpd takes 0 for "the full timeout"

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        # aiosmtpd's auth_PLAIN and auth_LOGIN call this synchronously with what
        # they decoded; the check itself is awaited in _verify, off the event loop.
        return AuthResult(success=False, handled=False, auth_data=_Unchecked(auth_data))

    async def _verify(self, result: AuthResult) -> AuthResult:
        if not isinstance(result.auth_data, _Unchecked):
            return result  # refused while decoding: the reply is sent
        handler: CaptureHandler = self.event_handler
        return await handler.authenticate(self._client_host, result.auth_data.login_password)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) > 1 and len(args[1]) > AUTH_LINE_LIMIT:
            raise AuthLineTooLong()
        return await self._verify(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) > 1 and len(args[1]) > AUTH_LINE_LIMIT:
            raise AuthLineTooLong()
        return await self._verify(await super().auth_LOGIN(_, args))

    def _cb_client_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        reader.__class__ = _CRLFLineReader
        super()._cb_client_connected(reader, writer)

    def _reset_timeout(self, duration: float | None = None) -> None:
        # aiosmtpd re-arms its idle timer before every command and after every
        # block of DATA, making and cancelling a timer handle each time. One
        # timer that fires no later than the deadline and re-arms itself for
        # whatever is left does the same for a fraction of the work.
        deadline = self.loop.time() + (duration or self._timeout_duration)
        self._idle_deadline = deadline
        handle = self._timeout_handle
        if self._idle_timer_armed and handle is not None and handle.when() <= deadline:
            return
        if handle is not None:
            handle.cancel()
        self._timeout_handle = self.loop.call_at(deadline, self._idle_timer_fired)
        self._idle_timer_armed = True

    def _idle_timer_fired(self) -> None:
        self._idle_timer_armed = False
        if self.loop.time() < self._idle_deadline:
            self._timeout_handle = self.loop.call_at(self._idle_deadline, self._idle_timer_fired)
            self._idle_timer_armed = True
            return
        self._timeout_cb()

    def _timeout_cb(self) -> None:
        if self.transport is not None:
            self.transport.write(b"421 4.4.2 Idle timeout, closing connection\r\n")  # type: ignore[attr-defined]
        super()._timeout_cb()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd's general RFC 5322 address parser is a third of its CPU time
        # per message; a plain <local@domain> (what nearly every client sends)
        # yields the same result from one regular expression.
        plain = _PLAIN_ANGLE_ADDRESS.match(arg)
        if plain is not None:
            return plain["address"], plain["rest"]
        return super()._getaddr(arg)

    # Their arguments end up in stored fields (the HELO name, addresses).
    smtp_HELO = _refusing_cr_lf(SMTP.smtp_HELO)
    smtp_EHLO = _refusing_cr_lf(SMTP.smtp_EHLO)
    _checked_MAIL = _refusing_cr_lf(SMTP.smtp_MAIL)

    @functools.wraps(SMTP.smtp_MAIL)
    async def smtp_MAIL(self, arg: str | None) -> None:
        await self._checked_MAIL(arg)
        if self._last_code == "552" and arg:  # aiosmtpd refused a SIZE= over the limit itself
            sender, size = _MAIL_SENDER.search(arg), _MAIL_SIZE.search(arg)
            self.event_handler.stats.rejected(
                "message-too-big",
                sender[1] if sender else None,
                [],
                int(size[1]) if size else None,
            )

    smtp_RCPT = _refusing_cr_lf(SMTP.smtp_RCPT)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        self._tracker.begin_transaction()
        envelope = self.envelope
        # Kept in memory while small, in a file beside the database when not;
        # handle_DATA hands it to the store, which then owns it.
        envelope.spool = spool = Spool(self.event_handler.store.spool_dir)
        try:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            self._in_data = True
            try:
                await read_data(self._reader, spool, self.data_size_limit or 0, self._reset_timeout)
            except DataTooLarge as too_large:
                self.event_handler.stats.rejected(
                    "message-too-big", envelope.mail_from, envelope.rcpt_tos, too_large.args[0]
                )
                self._set_post_data_state()
                await self.push(REPLY_TOO_BIG)
                return
            except SpoolFailed:
                log.exception("could not spool a message from %s", self.session.peer)
                self.event_handler.stats.rejected(
                    "storage-failure", envelope.mail_from, envelope.rcpt_tos
                )
                self._set_post_data_state()
                await self.push(REPLY_STORAGE_FAILED)
                return
            finally:
                self._in_data = False
            envelope.content = envelope.original_content = spool.finish()
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push(status)
        finally:
            if envelope.spool is not None:  # never handed over: a hang-up, an error
                envelope.spool.discard()
            self._tracker.end_transaction()


class CaptureHandler:
    """aiosmtpd handler hooks: envelope checks, then hand the message to the store."""

    def __init__(
        self,
        store: Store,
        *,
        max_recipients: int,
        credentials: Credentials | None,
        gate: LoginGate | None = None,
        stats: ServerStats | None = None,
        chaos: Chaos | None = None,
    ):
        if credentials is not None and gate is None:
            raise ValueError("credentials need a LoginGate to be checked through")
        self.store = store
        self.max_recipients = max_recipients
        self.credentials = credentials
        self.gate = gate
        self.stats = stats if stats is not None else ServerStats()
        self.chaos = chaos if chaos is not None else Chaos()

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        # aiosmtpd reads commands from a buffer one line at a time, so pipelined
        # commands (RFC 2920) work; it just does not advertise them.
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.credentials is not None and not session.authenticated:
            self.stats.rejected("authentication-required", address, [])
            return "530 5.7.0 Authentication required"
        if (code := self.chaos.fires("Sender")) is not None:
            self.stats.rejected("chaos-sender", address, [])
            return chaos_reply(code, "Sender")
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= self.max_recipients:
            self.stats.rejected("too-many-recipients", envelope.mail_from, [address])
            return "452 4.5.3 Too many recipients"
        if (code := self.chaos.fires("Recipient")) is not None:
            self.stats.rejected("chaos-recipient", envelope.mail_from, [address])
            return chaos_reply(code, "Recipient")
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        peer = session.peer
        credentials = session.auth_data
        spool: Spool = envelope.spool
        message = IncomingMessage(
            raw=envelope.original_content or b"",
            spool=str(spool.path) if spool.path is not None else None,
            size=spool.size,
            mail_from="" if envelope.mail_from == "<>" else envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            mail_options=list(envelope.mail_options),
            peer=_format_peer(peer),
            helo=session.host_name or "",
            tls=session.ssl is not None,
            auth_user=(
                credentials.login.decode("utf-8", "replace")
                if isinstance(credentials, LoginPassword)
                else None
            ),
        )
        envelope.spool = None  # the store owns its file from here on
        try:
            # Shielded: a client hanging up now cancels this session, and that
            # must not cancel a write the store may already be committing.
            message_id = await asyncio.shield(asyncio.wrap_future(self.store.add(message)))
        except StorageError:
            log.exception("could not store a message from %s", message.peer)
            self.stats.rejected(
                "storage-failure", message.mail_from, message.rcpt_tos, message.length
            )
            return REPLY_STORAGE_FAILED
        self.stats.count_accepted(message.length)  # before the 250: whoever gets it sees it counted
        # Logged once the 250 is on its way: a lone client's next message need
        # not wait for the log line.
        asyncio.get_running_loop().call_soon(
            self.stats.log_accepted, message_id, message.mail_from, message.rcpt_tos, message.length
        )
        return f"250 2.0.0 Ok: queued as {message_id}"

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, AuthLineTooLong):
            return REPLY_AUTH_LINE_TOO_LONG  # the session goes on
        # Whatever went wrong, the client learns nothing of our internals.
        log.exception("SMTP session error")
        return "451 4.3.0 Internal error, try again later"

    async def authenticate(self, client_host: str, auth_data: LoginPassword) -> AuthResult:
        """Accept any credentials, unless an htpasswd file makes them real."""
        if (code := self.chaos.fires("Authentication")) is not None:
            return AuthResult(success=False, handled=False, message=chaos_reply(code, "Auth"))
        if self.credentials is None:
            return AuthResult(success=True, auth_data=auth_data)
        assert self.gate is not None
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        outcome = await self.gate.check(self.credentials, client_host, user, password)
        if outcome is Outcome.ACCEPTED:
            return AuthResult(success=True, auth_data=auth_data)
        if outcome is Outcome.LOCKED_OUT:
            return AuthResult(success=False, handled=False, message=REPLY_LOCKED_OUT)
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535


def smtp_factory(
    handler: CaptureHandler,
    *,
    tracker: SessionTracker,
    hostname: str,
    max_message_size: int,
    idle_timeout: float,
    junk_command_limit: int,
    tls_context: ssl.SSLContext | None,
    require_tls: bool,
) -> Any:
    """A protocol factory for ``loop.create_server``."""

    def make() -> MailtrapSMTP:
        return MailtrapSMTP(
            handler,
            tracker=tracker,
            junk_command_limit=junk_command_limit,
            hostname=hostname,
            ident="Mailtrap ESMTP",
            data_size_limit=max_message_size,
            enable_SMTPUTF8=True,
            tls_context=tls_context,
            require_starttls=require_tls,
            timeout=idle_timeout,
            auth_require_tls=False,
        )

    return make


def _format_peer(peer: Any) -> str:
    """``host:port``, with IPv6 hosts in brackets so the port stays unambiguous."""
    if not isinstance(peer, tuple):
        return str(peer or "")
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
