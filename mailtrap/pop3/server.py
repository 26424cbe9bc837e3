"""The POP3 listener: asyncio connections around :class:`mailtrap.pop3.session.Pop3Session`.

A connection reads command lines (bounded in length), hands them to the
session, and carries out the actions it returns: replies, messages streamed
from SQLite in chunks with flow control, logins checked off the event loop,
STLS, and deletions through the store at QUIT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import ssl
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from mailtrap import __version__
from mailtrap.auth import Credentials, LoginGate, Outcome
from mailtrap.errors import MessageNotFound, StorageError
from mailtrap.pop3.maildrop import (
    Entry,
    SizeCache,
    open_blob,
    open_connection,
    read_chunks,
    snapshot,
)
from mailtrap.pop3.session import (
    LOCKED_OUT,
    MAX_LINE,
    Action,
    CheckLogin,
    Close,
    DeleteMessages,
    Pop3Session,
    Reply,
    SendMessage,
    StartTLS,
    error,
    makes_progress,
)
from mailtrap.pop3.wire import MessageEncoder
from mailtrap.store import Store
from mailtrap.throttle import ConnectionLimits, Refusal, peer_host

log = logging.getLogger(__name__)

MAX_BUFFERED = 64 * 1024  # pipelined input held before reading pauses
WRITE_BUFFER = 256 * 1024  # output queued before a streaming RETR waits for the client
TLS_HANDSHAKE_TIMEOUT = 30.0
READ_MARK_DELAY = 0.05  # seconds that RETR's read marks gather before one store write
REFUSALS = {
    Refusal.LOCKED_OUT: error(LOCKED_OUT).data,
    Refusal.FULL: b"-ERR [SYS/TEMP] too many connections, try again later\r\n",
    Refusal.CLIENT_FULL: b"-ERR [SYS/TEMP] too many connections from your address\r\n",
}
REPLY_IDLE = b"-ERR disconnected for inactivity\r\n"
LINGER = 2.0  # seconds a closing session drops what the client still sends
REPLY_SHUTDOWN = b"-ERR [SYS/TEMP] server shutting down\r\n"
REPLY_INTERNAL = b"-ERR [SYS/TEMP] internal error, try again later\r\n"

_T = TypeVar("_T")


class _LineTooLong:
    """What :meth:`Pop3Connection._readline` returns for a line over the limit."""


LINE_TOO_LONG = _LineTooLong()


class ReadMarks:
    """Marks retrieved messages read, a batch at a time.

    Marks gather for :data:`READ_MARK_DELAY` and go to the store in one write,
    one write at a time: a client fetching a thousand messages costs a few
    commits, not a thousand, and the web inbox still shows them read at once.
    Used on the event loop only.
    """

    def __init__(self, store: Store):
        self._store = store
        self._pending: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._writing = False

    def add(self, message_id: str) -> None:
        self._pending.add(message_id)
        self._schedule()

    def flush(self) -> None:
        """Send what is pending now and stop (the store writes it before it closes)."""
        if self._timer is not None:
            self._timer.cancel()
        if self._pending:
            self._store.set_read(self._pending, True)
        self._pending = set()

    def _schedule(self) -> None:
        if self._timer is None and not self._writing and self._pending:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(READ_MARK_DELAY, self._write)

    def _write(self) -> None:
        self._timer = None
        ids, self._pending = self._pending, set()
        self._writing = True
        loop = asyncio.get_running_loop()
        future = self._store.set_read(ids, True)
        future.add_done_callback(lambda done: _call_soon(loop, self._written, done))

    def _written(self, future: Future[Any]) -> None:
        self._writing = False
        if future.exception() is not None:
            log.warning("could not mark messages read: %s", future.exception())
        self._schedule()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """Run ``callback`` on ``loop`` from another thread, unless the loop is gone (shutdown)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


class Pop3Service:
    """POP3 for one server: settings shared by its connections, and the live ones."""

    def __init__(
        self,
        store: Store,
        *,
        credentials: Credentials | None,
        gate: LoginGate,
        tls_context: ssl.SSLContext | None,
        idle_timeout: float,
        max_connections: int,
        max_connections_per_client: int | None = None,
        on_session: Callable[[], None] | None = None,
    ):
        self.store = store
        self._on_session = on_session  # counts admitted sessions (mailtrap.ops.stats)
        self.credentials = credentials
        self.gate = gate
        self.tls_context = tls_context
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.connections: set[Pop3Connection] = set()
        self._limits = ConnectionLimits(
            "POP3",
            total=max_connections,
            per_client=max_connections_per_client,
            throttle=gate.throttle,
        )
        self._sizes = SizeCache()
        self.read_marks = ReadMarks(store)
        # Snapshots run here: the first one of a big maildrop reads every message once.
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mailtrap-pop3")

    def factory(self, *, implicit_tls: bool) -> Callable[[], Pop3Connection]:
        """A protocol factory for ``loop.create_server`` (``implicit_tls``: POP3S)."""
        return lambda: Pop3Connection(self, implicit_tls=implicit_tls)

    def admit(self, connection: Pop3Connection, host: str) -> Refusal | None:
        """Count a new connection from ``host``, or say why it is refused."""
        refusal = self._limits.admit(host)
        if refusal is None:
            self.connections.add(connection)
            if self._on_session is not None:
                self._on_session()
        return refusal

    def leave(self, connection: Pop3Connection, host: str) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            self._limits.leave(host)

    async def in_thread(self, function: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def snapshot(self, recipient: str | None) -> list[Entry]:
        """The maildrop of ``recipient``; runs in a worker thread with its own connection."""
        with contextlib.closing(open_connection(self.store.path)) as conn:
            return snapshot(conn, recipient, self._sizes)

    async def close(self) -> None:
        """Close every connection (nothing is deleted) and wait for them to end."""
        connections = list(self.connections)
        for connection in connections:
            connection.shut_down()
        await asyncio.gather(*(c.finished for c in connections), return_exceptions=True)
        self.read_marks.flush()
        self._executor.shutdown(wait=False, cancel_futures=True)


class Pop3Connection(asyncio.Protocol):
    """One POP3 client: line input, flow-controlled output, and the session's actions."""

    def __init__(self, service: Pop3Service, *, implicit_tls: bool):
        self._service = service
        self.session = Pop3Session(
            tls_available=service.tls_context is not None,
            tls_active=implicit_tls,
            implementation=f"Mailtrap {__version__}",
        )
        self._transport: asyncio.Transport | None = None
        self._client_host = ""
        self._buffer = bytearray()
        self._skipping = False  # dropping the rest of an over-long line
        self._reading_paused = False
        self._closed = False
        self._input = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._task: asyncio.Task[None] | None = None
        self._db: sqlite3.Connection | None = None

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._client_host = peer_host(transport.get_extra_info("peername"))
        refusal = self._service.admit(self, self._client_host)
        if refusal is not None:
            self._closed = True
            transport.write(REFUSALS[refusal])
            transport.close()
            return
        transport.set_write_buffer_limits(high=WRITE_BUFFER)
        self._task = asyncio.get_running_loop().create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        if self._skipping:
            newline = data.find(b"\n")
            if newline < 0:
                return
            self._skipping = False
            data = data[newline + 1 :]
        self._buffer += data
        if len(self._buffer) > MAX_BUFFERED and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True
        self._input.set()

    def eof_received(self) -> bool:
        return False  # close: a client that hangs up has dropped the session

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._service.leave(self, self._client_host)
        self._input.set()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- used by the service --------------------------------------------------------

    @property
    def finished(self) -> asyncio.Future[None]:
        """Done when the session has ended."""
        if self._task is None:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return self._task

    def shut_down(self) -> None:
        if self._transport is not None and not self._closed:
            self._transport.write(REPLY_SHUTDOWN)
            self._transport.close()
        if self._task is not None:
            self._task.cancel()

    # -- the session --------------------------------------------------------------

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._write(self.session.greeting().data)
            # Idle time runs from the last command that made progress: a NOOP
            # loop or a stream of bad commands does not hold a slot.
            deadline = loop.time() + self._service.idle_timeout
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        line = await self._readline()
                except TimeoutError:
                    self._write(REPLY_IDLE)
                    await self._linger()
                    break
                if line is None:
                    break
                if isinstance(line, _LineTooLong):
                    actions = self.session.line_too_long()
                else:
                    actions = self.session.receive(line)
                if not await self._perform(actions):
                    break
                if not isinstance(line, _LineTooLong) and makes_progress(line, actions):
                    deadline = loop.time() + self._service.idle_timeout
        except OSError:
            pass  # the client went away, stopped reading or failed TLS: nothing more to say
        except Exception:
            log.exception("POP3 session error")
            with contextlib.suppress(ConnectionError):
                self._write(REPLY_INTERNAL)
        finally:
            self._service.leave(self, self._client_host)
            if self._db is not None:
                self._db.close()
            if self._transport is not None:
                self._transport.close()

    async def _perform(self, actions: list[Action]) -> bool:
        """Carry out ``actions`` in order; False once the connection is to close."""
        for action in actions:
            match action:
                case Reply(data):
                    self._write(data)
                    await self._drain()
                case SendMessage():
                    await self._send_message(action)
                case CheckLogin():
                    if not await self._perform(await self._check_login(action)):
                        return False
                case StartTLS():
                    await self._start_tls()
                case DeleteMessages(ids):
                    if not await self._perform(self.session.deletion_done(await self._delete(ids))):
                        return False
                case Close():
                    return False
        return True

    async def _check_login(self, login: CheckLogin) -> list[Action]:
        service = self._service
        if service.credentials is not None:
            outcome = await service.gate.check(
                service.credentials, self._client_host, login.user, login.password
            )
            if outcome is Outcome.LOCKED_OUT:
                return self.session.login_locked_out()
            if outcome is Outcome.REFUSED:
                return self.session.login_refused()
        try:
            messages = await service.in_thread(service.snapshot, login.recipient)
        except (sqlite3.Error, StorageError):
            log.exception("could not read the maildrop of %r", login.user)
            return self.session.login_unavailable()
        return self.session.login_accepted(messages)

    async def _send_message(self, action: SendMessage) -> None:
        if self._db is None:
            self._db = open_connection(self._service.store.path)
        try:
            blob = open_blob(self._db, action.entry.seq)
        except MessageNotFound:
            self._write(action.gone)
            return
        # The open blob holds a read transaction: the bytes stay readable to the
        # end even if the message is deleted meanwhile.
        with blob:
            self._write(action.header)
            # A message whose wire size is its stored size has CRLF line ends only.
            crlf_only = len(blob) == action.entry.size
            encoder = MessageEncoder(action.body_lines, crlf_only=crlf_only)
            for chunk in read_chunks(blob):
                self._write(encoder.feed(chunk))
                await self._drain()
                if encoder.done:
                    break
            self._write(encoder.finish())
        if action.mark_read:
            self._service.read_marks.add(action.entry.id)

    async def _start_tls(self) -> None:
        assert self._transport is not None and self._service.tls_context is not None
        # Whatever came after STLS was sent in plaintext: it must not be taken
        # as commands of the encrypted session (RFC 2595 4, CVE-2011-0411).
        # No await between dropping it and handing the socket to TLS.
        self._buffer.clear()
        self._skipping = False
        if self._reading_paused:
            self._reading_paused = False
            self._transport.resume_reading()
        transport = await asyncio.get_running_loop().start_tls(
            self._transport,
            self,
            self._service.tls_context,
            server_side=True,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
        )
        if transport is None:
            raise ConnectionResetError("closed during the TLS handshake")
        transport.set_write_buffer_limits(high=WRITE_BUFFER)
        self._transport = transport
        self._writable.set()
        self.session.tls_started()

    async def _delete(self, ids: tuple[str, ...]) -> bool:
        future = self._service.store.delete(ids)
        try:
            # Shielded: a client that hangs up now must not cancel a delete in progress.
            await asyncio.shield(asyncio.wrap_future(future))
        except StorageError:
            log.exception("could not delete %d messages at QUIT", len(ids))
            return False
        return True

    # -- input and output ----------------------------------------------------------

    async def _readline(self) -> bytes | _LineTooLong | None:
        """The next command line without its line end; None when the client is gone."""
        while not self._closed:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                self._resume_reading()
                if newline + 1 > MAX_LINE:
                    return LINE_TOO_LONG
                return line.removesuffix(b"\r")
            if len(self._buffer) >= MAX_LINE:
                self._buffer.clear()
                self._skipping = True  # data_received drops the rest up to its LF
                self._resume_reading()
                return LINE_TOO_LONG
            self._input.clear()
            await self._input.wait()
        return None

    async def _linger(self) -> None:
        """Half-close, and drop what the client still sends for a moment.

        Closing with a command of the client's unread makes the kernel answer
        with a reset, which can destroy the reply just sent before the client
        reads it (a client sending NOOP as its session times out).
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if transport.can_write_eof():  # not over TLS: the alert ends it there
            transport.write_eof()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LINGER):
                while not self._closed:  # the client's FIN ends the connection
                    self._buffer.clear()
                    self._resume_reading()
                    self._input.clear()
                    await self._input.wait()

    def _resume_reading(self) -> None:
        if self._reading_paused and len(self._buffer) < MAX_BUFFERED // 4:
            self._reading_paused = False
            assert self._transport is not None
            self._transport.resume_reading()

    def _write(self, data: bytes) -> None:
        if self._closed or self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("the client has gone")
        if data:
            self._transport.write(data)

    async def _drain(self) -> None:
        """Wait while the client is behind; a client that reads nothing for the idle
        timeout is treated as gone."""
        if not self._writable.is_set():
            async with asyncio.timeout(self._service.idle_timeout):
                await self._writable.wait()
        if self._closed:
            raise ConnectionResetError("the client has gone")
