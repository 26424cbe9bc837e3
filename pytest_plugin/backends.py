"""Where captured mail comes from: one interface, two implementations.

:class:`LocalBackend` reads the store of an in-process :class:`mailtrap.Server`
and waits on its event hub; :class:`mailtrap.pytest_plugin.remote.HttpBackend`
talks to an external server's HTTP API and waits with its long-poll search.
The test-facing view (:mod:`mailtrap.pytest_plugin.capture`) only knows this
interface.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mailtrap.errors import MessageNotFound
from mailtrap.pytest_plugin.checks import LocalChecks
from mailtrap.pytest_plugin.message import Envelope, Mail

if TYPE_CHECKING:
    from mailtrap.events import Subscription
    from mailtrap.server import Server


class Backend(Protocol):
    """What the test's view needs from a server, in-process or external."""

    @property
    def smtp_host(self) -> str: ...

    @property
    def smtp_port(self) -> int: ...

    @property
    def http_url(self) -> str | None: ...

    def mark(self) -> Any:
        """An opaque position meaning "now": later messages come after it."""
        ...

    def messages_after(self, mark: Any, known: dict[str, Mail]) -> list[Mail]:
        """Every message received after ``mark``, oldest first.

        ``known`` (ID -> message) is the caller's cache: messages in it are not
        read again, and new ones are added to it.
        """
        ...

    def watch(self, mark: Any) -> Watch:
        """Start listening for mail after ``mark``; call before looking, so nothing slips
        between the look and the wait."""
        ...


class Watch(Protocol):
    """A listener for new mail, as a context manager."""

    def wait(self, timeout: float, seen: list[Mail]) -> None:
        """Return when mail newer than ``seen`` (the last look) may have arrived, or after
        ``timeout`` seconds."""
        ...

    def __enter__(self) -> Watch: ...

    def __exit__(self, *exc_info: object) -> None: ...


_SELECT_AFTER = """
    SELECT id, created, mail_from, rcpt_tos, tls, auth_user
    FROM messages WHERE seq > ? ORDER BY seq
"""


class LocalBackend:
    """The store and event hub of a :class:`mailtrap.Server` running in this process."""

    def __init__(self, server: Server):
        self.server = server

    @property
    def smtp_host(self) -> str:
        return self.server.smtp_address.host

    @property
    def smtp_port(self) -> int:
        return self.server.smtp_address.port

    @property
    def http_url(self) -> str | None:
        return self.server.http_url if self.server.config.http is not None else None

    def mark(self) -> int:
        # Sequence numbers only grow and are never reused, and a message gets
        # its 250 only once committed: everything acknowledged so far is <= this.
        row = self.server.store.reader.execute("SELECT max(seq) FROM messages").fetchone()
        return int(row[0] or 0)

    def messages_after(self, mark: int, known: dict[str, Mail]) -> list[Mail]:
        store = self.server.store
        store_checks = self.server.checks
        found = []
        for row in store.reader.execute(_SELECT_AFTER, [mark]).fetchall():
            mail = known.get(row["id"])
            if mail is None:
                try:
                    raw = store.raw(row["id"])  # only new messages pay for their bytes
                except MessageNotFound:  # deleted since the listing
                    continue
                envelope = Envelope(
                    mail_from=row["mail_from"],
                    rcpt_tos=tuple(json.loads(row["rcpt_tos"] or "[]")),
                    tls=bool(row["tls"]),
                    auth_user=row["auth_user"],
                )
                received = datetime.datetime.fromtimestamp(row["created"], datetime.UTC)
                checks = LocalChecks(store_checks) if store_checks is not None else None
                mail = Mail(row["id"], raw, envelope, received, checks, relay_source=self)
                known[row["id"]] = mail
            found.append(mail)
        return found

    def watch(self, mark: int) -> HubWatch:
        return HubWatch(self.server.store.hub.subscribe)

    # -- relay state (a RelaySource) ---------------------------------------------

    def relay_state(self, message_id: str) -> tuple[list[dict[str, Any]], str]:
        from mailtrap.relay.watch import relay_state

        return relay_state(self.server.store, message_id)

    def wait_relay(
        self, message_id: str, version: str, timeout: float
    ) -> tuple[list[dict[str, Any]], str]:
        from mailtrap.relay.watch import wait_for_change

        return wait_for_change(self.server.store, message_id, version, timeout)


class HubWatch:
    """Waits on the server's event hub: woken by the store's own events, no polling."""

    def __init__(self, subscribe: Callable[[], Subscription]):
        self._subscribe = subscribe
        self._subscription = subscribe()

    def wait(self, timeout: float, seen: list[Mail]) -> None:
        if self._subscription.overflowed:  # it missed events: listen afresh, the caller rechecks
            self._subscription.close()
            self._subscription = self._subscribe()
            return
        if self._subscription.get(timeout) is None:
            return
        # A burst wakes the caller once, not once per message.
        while self._subscription.get(0) is not None:
            pass

    def __enter__(self) -> HubWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._subscription.close()


def write_htpasswd(folder: Path, users: dict[str, str]) -> Path:
    """An htpasswd file for ``users`` (name -> password), bcrypt at low cost:
    these are test credentials, and the server checks them on its event loop."""
    import bcrypt

    path = folder / "smtp-users.htpasswd"
    lines = [
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}"
        for user, password in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def server_settings(
    folder: Path,
    *,
    host: str = "127.0.0.1",
    tls: bool | tuple[Path, Path] = False,
    auth: dict[str, str] | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword settings of :class:`mailtrap.Server` for a test server in ``folder``:
    a fresh database, every listener on an ephemeral port, then the caller's choices."""
    from mailtrap.config import Address, Config

    chosen: dict[str, Any] = {"db": folder / "mail.db"}
    # Every listener that is on by default (SMTP, HTTP, POP3...): fixed ports would
    # collide between sessions and xdist workers.
    for setting in dataclasses.fields(Config):
        if isinstance(setting.default, Address):
            chosen[setting.name] = Address(host, 0)
    if tls is True:
        chosen["smtp_tls_self_signed"] = True
    elif isinstance(tls, tuple):
        chosen["smtp_tls_cert"], chosen["smtp_tls_key"] = (Path(p) for p in tls)
    if auth:
        chosen["smtp_auth_file"] = write_htpasswd(folder, auth)
    chosen.update(settings or {})
    return chosen


@contextmanager
def running_server(settings: dict[str, Any]) -> Iterator[Server]:
    """A started :class:`mailtrap.Server`, stopped on exit."""
    # Imported here: loading the plugin must stay cheap for test runs that never use it.
    from mailtrap.server import Server

    werkzeug_log = logging.getLogger("werkzeug")
    if werkzeug_log.level == logging.NOTSET:
        # Werkzeug prints every request to stderr unless told otherwise: noise in test reports.
        werkzeug_log.setLevel(logging.WARNING)
    server = Server(**settings).start()
    try:
        yield server
    finally:
        server.stop()
