"""The composition object: starts and stops every service and knows their addresses."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import threading
from typing import TYPE_CHECKING, Any

from mailtrap.auth import Credentials, LoginGate
from mailtrap.config import Address, Config, GeneratedCertificate
from mailtrap.errors import ListenError
from mailtrap.hooks.chaos import Chaos
from mailtrap.hooks.webhook import Webhook
from mailtrap.live_ingest import IngestListener
from mailtrap.ops.metrics import MetricSource
from mailtrap.ops.stats import ServerStats
from mailtrap.pop3.server import Pop3Service
from mailtrap.relay import config as relay_config
from mailtrap.relay import queue as relay_queue
from mailtrap.relay.worker import RelayService
from mailtrap.resolver import make_resolver
from mailtrap.smtp import CaptureHandler, SessionTracker, smtp_factory
from mailtrap.store import Store
from mailtrap.throttle import AuthThrottle
from mailtrap.tls import self_signed_context, server_context

if TYPE_CHECKING:
    from flask import Flask

    from mailtrap.checks.service import Checks
    from mailtrap.web.http_server import SelectorWSGIServer

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 10.0  # seconds that transactions in flight get to finish on stop
HTTP_STREAMS_GRACE = 3.0  # seconds for websocket streams and long polls to end on stop


class Server:
    """A Mailtrap server: the store, and the SMTP and POP3 listeners on their own event loop.

    ``Server(config)`` or ``Server(db=path, smtp=Address("127.0.0.1", 0))``;
    use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, config: Config | None = None, **settings: Any):
        self.config = dataclasses.replace(config or Config(), **settings)
        self.store = Store(
            self.config.db_path,
            max_messages=self.config.max_messages,
            max_age=self.config.max_age,
            sync=self.config.sync,
            archive=self.config.archive,
            archive_format=self.config.archive_format,
        )
        # Operations (mailtrap.ops) and hooks for other tools (mailtrap.hooks).
        self.stats = ServerStats()
        self.chaos = Chaos(enabled=self.config.enable_chaos)
        self.webhook: Webhook | None = None
        # More /metrics families: relay's queue adds its own here.
        self.metric_sources: list[MetricSource] = []
        self._ingest_listener = IngestListener(self.store)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._smtp: asyncio.AbstractServer | None = None
        # One per server: a client locked out of one listener is locked out of all.
        self.auth_throttle = AuthThrottle(
            failure_limit=self.config.auth_failure_limit,
            lockout=self.config.auth_lockout,
            failure_delay=self.config.auth_failure_delay,
        )
        self.login_gate: LoginGate | None = None
        self._tracker = SessionTracker(
            self.config.smtp_max_connections,
            max_per_client=self.config.smtp_max_connections_per_ip,
            throttle=self.auth_throttle,
        )
        self._pop3: asyncio.Server | None = None
        self._pop3s: asyncio.Server | None = None
        self._pop3_service: Pop3Service | None = None
        self._http: SelectorWSGIServer | None = None
        self._http_thread: threading.Thread | None = None
        self.app: Flask | None = None
        self.relay: RelayService | None = None  # None: relay is not configured
        self.checks: Checks | None = None

    def start(self) -> Server:
        """Open the store and start listening; returns once every port is bound."""
        config = self.config
        config.validate()
        credentials = Credentials(config.smtp_auth_file) if config.smtp_auth_file else None
        tls_context = self._tls_context()
        ui_tls_context = self._ui_tls_context()
        settings = relay_config.load(config.relay_config) if config.relay_config else None
        # Imported here, as Flask is: importing mailtrap stays light (lxml, dkimpy...).
        from mailtrap.checks.service import Checks

        self.checks = Checks(self.store, config)  # reads --dkim-key files: fails before opening
        self.login_gate = LoginGate(self.auth_throttle)
        self.store.tagging = config.tagging()  # reads --tags-config: a bad file stops us here
        self.store.open()
        try:
            self._start_relay(settings)
        except BaseException:
            self.stop()
            raise
        # The store's loop: a message handed over there needs no thread hop to the writer.
        self._loop = self.store.loop
        handler = CaptureHandler(
            self.store,
            max_recipients=config.smtp_max_recipients,
            credentials=credentials,
            gate=self.login_gate,
            stats=self.stats,
            chaos=self.chaos,
        )
        factory = smtp_factory(
            handler,
            tracker=self._tracker,
            hostname=config.hostname,
            max_message_size=config.max_message_size,
            idle_timeout=config.smtp_idle_timeout,
            junk_command_limit=config.smtp_junk_command_limit,
            tls_context=tls_context,
            require_tls=config.smtp_require_tls,
        )
        listen = self._loop.create_server(factory, config.smtp.host, config.smtp.port)
        try:
            try:
                self._smtp = asyncio.run_coroutine_threadsafe(listen, self._loop).result()
            except OSError as error:
                message = f"cannot listen for SMTP on {config.smtp}: {error.strerror}"
                raise ListenError(message) from None
            self._start_pop3(tls_context)
            self._loop.call_soon_threadsafe(self._ingest_listener.start, self._loop)
            if config.webhook_url is not None:
                self.webhook = Webhook(
                    config.webhook_url,
                    self.store.hub,
                    limit=config.webhook_limit,
                    timeout=config.webhook_timeout,
                ).start()
            if config.http is not None:
                try:
                    self._start_http(config.http, ui_tls_context)
                except OSError as error:
                    raise ListenError(
                        f"cannot listen for HTTP on {config.http}: {error.strerror}"
                    ) from None
        except BaseException:
            self.stop()
            raise
        return self

    def _start_relay(self, settings: relay_config.RelaySettings | None) -> None:
        if settings is None:
            # Mail that comes while relay is off must never be auto-relayed later.
            self.store.relay_write("start_rules", False).result()
            return
        resolver = make_resolver(self.config.dns, settings.dns_timeout)
        self.relay = RelayService(self.store, settings, resolver, self.config.hostname).start()

    def relay_counts(self) -> dict[str, int]:
        """The relay queue's numbers, for metrics: pending, deferred, delivered, failed, sending."""
        return relay_queue.counts(self.store.reader)

    def _start_pop3(self, tls_context: ssl.SSLContext | None) -> None:
        """POP3 and POP3S on the SMTP loop, sharing one TLS context with SMTP."""
        config = self.config
        if config.pop3 is None and config.pop3s is None:
            return
        assert self._loop is not None and self.login_gate is not None
        self._pop3_service = service = Pop3Service(
            self.store,
            credentials=Credentials(config.pop3_auth_file) if config.pop3_auth_file else None,
            gate=self.login_gate,
            tls_context=tls_context,
            idle_timeout=config.pop3_idle_timeout,
            max_connections=config.pop3_max_connections,
            max_connections_per_client=config.pop3_max_connections_per_ip,
            on_session=self.stats.pop3_session_started,
        )
        for name, address, implicit_tls in (
            ("POP3", config.pop3, False),
            ("POP3S", config.pop3s, True),
        ):
            if address is None:
                continue
            listen = self._loop.create_server(
                service.factory(implicit_tls=implicit_tls),
                address.host,
                address.port,
                ssl=tls_context if implicit_tls else None,
            )
            try:
                listener = asyncio.run_coroutine_threadsafe(listen, self._loop).result()
            except OSError as error:
                raise ListenError(
                    f"cannot listen for {name} on {address}: {error.strerror}"
                ) from None
            if implicit_tls:
                self._pop3s = listener
            else:
                self._pop3 = listener

    def _start_http(self, address: Address, tls_context: ssl.SSLContext | None) -> None:
        # Imported here: a server without HTTP does not pay for Flask.
        from mailtrap.web.app import create_app, is_long_lived
        from mailtrap.web.http_server import HttpLimits, SelectorWSGIServer

        config = self.config
        self.app = create_app(self)
        limits = HttpLimits(
            header_timeout=config.http_header_timeout,
            body_timeout=config.http_body_timeout,
            max_connections=config.http_max_connections,
            max_connections_per_ip=config.http_max_connections_per_ip,
            workers=config.http_workers,
            max_streams=config.http_max_streams,
        )
        # Werkzeug's request handling behind a selector: no thread per idle or slow client.
        self._http = SelectorWSGIServer(
            address.host, address.port, self.app, limits, is_long_lived, tls=tls_context
        )
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, name="mailtrap-http", daemon=True
        )
        self._http_thread.start()

    def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, let transactions in flight finish, then close everything."""
        if self.webhook is not None:
            self.webhook.stop()
            self.webhook = None
        if self._http is not None and self._http_thread is not None:
            assert self.app is not None
            self.app.config["MAILTRAP_STOPPING"].set()
            self._http.shutdown()
            self._http_thread.join()
            if not self._http.close(HTTP_STREAMS_GRACE):
                log.warning("stopping with HTTP requests still running")
            self._http = self._http_thread = None
            # Websocket streams and long polls notice the stop within a fraction
            # of a second; let them end before the store they read is closed.
            if not self.store.hub.wait_until_unsubscribed(HTTP_STREAMS_GRACE):
                log.warning("stopping with event subscribers still attached")
        if self._loop is not None:  # the store's: it stops when the store closes
            asyncio.run_coroutine_threadsafe(self._shutdown(grace), self._loop).result()
            self._loop = self._smtp = None
            self._pop3 = self._pop3s = self._pop3_service = None
        if self.relay is not None:
            self.relay.stop(grace)
            self.relay = None
        if self.login_gate is not None:
            self.login_gate.close()
            self.login_gate = None
        self.store.close()

    async def _shutdown(self, grace: float) -> None:
        self._ingest_listener.close()
        if self._smtp is not None:
            self._smtp.close()
        for listener in (self._pop3, self._pop3s):
            if listener is not None:
                listener.close()
        if self._pop3_service is not None:
            # A POP3 session cut short deletes nothing, so it need not be waited for.
            await self._pop3_service.close()
        if not await self._tracker.wait_idle(grace):
            log.warning("stopping with SMTP transactions still open after %.0f s", grace)
        self._tracker.close_all(b"421 4.3.2 Server shutting down\r\n")
        # Let the transports flush the 421 and run their connection_lost.
        await asyncio.sleep(0)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def smtp_address(self) -> Address:
        """Where SMTP listens, with the real port when 0 was asked for."""
        if self._smtp is None:
            raise RuntimeError("the server is not running")
        host, port = self._smtp.sockets[0].getsockname()[:2]
        return Address(host, port)

    @property
    def pop3_address(self) -> Address:
        """Where POP3 listens, with the real port."""
        return _bound_address(self._pop3, "POP3")

    @property
    def pop3s_address(self) -> Address:
        """Where POP3 over implicit TLS listens, with the real port."""
        return _bound_address(self._pop3s, "POP3S")

    @property
    def http_address(self) -> Address:
        """Where the web inbox and API listen, with the real port."""
        if self._http is None:
            raise RuntimeError("HTTP is not running")
        return Address(self._http.host, self._http.port)

    @property
    def http_url(self) -> str:
        """The base URL of the web inbox, webroot included."""
        address = self.http_address
        host = f"[{address.host}]" if ":" in address.host else address.host
        scheme = "https" if self.config.ui_tls_enabled else "http"
        return f"{scheme}://{host}:{address.port}{self.config.webroot}"

    def _tls_context(self) -> ssl.SSLContext | None:
        config = self.config
        if config.smtp_tls_cert is not None and config.smtp_tls_key is not None:
            return server_context(config.smtp_tls_cert, config.smtp_tls_key)
        if config.smtp_tls_self_signed:
            return self_signed_context(config.hostname)
        return None

    def _ui_tls_context(self) -> ssl.SSLContext | None:
        """HTTPS for the web inbox and API: from files, or made now for Mailpit's ``sans:``."""
        cert, key = self.config.ui_tls_cert, self.config.ui_tls_key
        if isinstance(cert, GeneratedCertificate):
            context = self_signed_context(cert.names[0], cert.names[1:])
        elif cert is not None and key is not None:
            assert not isinstance(key, GeneratedCertificate)  # validate() pairs them
            context = server_context(cert, key)
        else:
            return None
        context.set_alpn_protocols(["http/1.1"])  # no HTTP/2 here: say so before curl asks
        return context


def _bound_address(listener: asyncio.Server | None, name: str) -> Address:
    if listener is None:
        raise RuntimeError(f"{name} is not running")
    host, port = listener.sockets[0].getsockname()[:2]
    return Address(host, port)
