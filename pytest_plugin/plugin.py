"""The pytest plugin: command-line options, fixtures and the failure report.

Loaded automatically through the ``pytest11`` entry point. Loading it starts
nothing and imports no server code: the server starts the first time a test
asks for mail, and an external server is contacted only then too.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from mailtrap.errors import MailtrapError
from mailtrap.pytest_plugin.backends import Backend, LocalBackend, running_server, server_settings
from mailtrap.pytest_plugin.capture import Inbox
from mailtrap.pytest_plugin.report import (
    SECTION_TITLE,
    safe_name,
    save_messages,
    section_text,
    unused_folder,
)

if TYPE_CHECKING:
    from pluggy import Result

    from mailtrap.config import Address
    from mailtrap.server import Server

_INBOXES = pytest.StashKey[list[Inbox]]()
_EML_ROOT = pytest.StashKey[Path]()
_TRUE = {"1", "true", "yes", "on"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mailtrap", "Mailtrap: capture and assert on the mail tests send")
    group.addoption(
        "--mailtrap-url",
        metavar="URL",
        help="Use the Mailtrap server at URL through its HTTP API instead of starting one "
        "in-process (env MAILTRAP_URL). user:password@ in the URL is sent as basic auth.",
    )
    group.addoption(
        "--mailtrap-smtp",
        metavar="HOST:PORT",
        help="SMTP address of the --mailtrap-url server (env MAILTRAP_SMTP); default: the "
        "address it advertises, else the URL's host and port 1025.",
    )
    group.addoption(
        "--mailtrap-skip-unreachable",
        action="store_true",
        default=None,
        help="Skip the tests that need mail when the --mailtrap-url server does not answer, "
        "instead of failing them (env MAILTRAP_SKIP_UNREACHABLE=1).",
    )
    group.addoption(
        "--mailtrap-eml-dir",
        metavar="DIR",
        help="Where failed tests' mail is saved as .eml files (env MAILTRAP_EML_DIR); "
        "default: pytest's temporary directory.",
    )


@dataclass(frozen=True)
class PluginOptions:
    """The plugin's settings: command line first, then ``MAILTRAP_*`` environment variables."""

    url: str | None
    smtp: str | None
    skip_unreachable: bool
    eml_dir: Path | None

    @classmethod
    def from_config(cls, config: pytest.Config) -> PluginOptions:
        def pick(option: str, variable: str) -> Any:
            value = config.getoption(option, default=None)
            return value if value is not None else (os.environ.get(variable) or None)

        skip = pick("mailtrap_skip_unreachable", "MAILTRAP_SKIP_UNREACHABLE")
        eml_dir = pick("mailtrap_eml_dir", "MAILTRAP_EML_DIR")
        return cls(
            url=pick("mailtrap_url", "MAILTRAP_URL"),
            smtp=pick("mailtrap_smtp", "MAILTRAP_SMTP"),
            skip_unreachable=skip is True or str(skip).lower() in _TRUE,
            eml_dir=Path(eml_dir) if eml_dir else None,
        )

    def smtp_address(self) -> Address | None:
        from mailtrap.config import parse_address

        return parse_address(self.smtp, default_host="") if self.smtp else None


def pytest_report_header(config: pytest.Config) -> str | None:
    options = PluginOptions.from_config(config)
    return f"mailtrap: external server {options.url}" if options.url else None


# -- settings fixtures (override any of them in a conftest.py) ---------------------------


@pytest.fixture(scope="session")
def mailtrap_listen_host() -> str:
    """The address the in-process server's SMTP and HTTP listen on (ports are ephemeral)."""
    return "127.0.0.1"


@pytest.fixture(scope="session")
def mailtrap_tls() -> bool | tuple[Path, Path]:
    """STARTTLS for the in-process server: False, True (a self-signed certificate),
    or a (certificate, key) pair of PEM files."""
    return False


@pytest.fixture(scope="session")
def mailtrap_auth() -> dict[str, str] | None:
    """SMTP users (name -> password) the in-process server requires; None accepts any login."""
    return None


@pytest.fixture(scope="session")
def mailtrap_settings() -> dict[str, Any]:
    """More settings of :class:`mailtrap.Server` (the fields of :class:`mailtrap.Config`),
    such as ``max_message_size`` or ``smtp_require_tls``; they win over the fixtures above."""
    return {}


# -- servers and the test's view -------------------------------------------------------


@pytest.fixture(scope="session")
def mailtrap_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    mailtrap_listen_host: str,
    mailtrap_tls: bool | tuple[Path, Path],
    mailtrap_auth: dict[str, str] | None,
    mailtrap_settings: dict[str, Any],
) -> Iterator[Server]:
    """The in-process :class:`mailtrap.Server` of this session (of this xdist worker)."""
    options = PluginOptions.from_config(request.config)
    if options.url:
        pytest.skip(f"mailtrap_server is the in-process server; this run uses {options.url}")
    settings = server_settings(
        tmp_path_factory.mktemp("mailtrap"),
        host=mailtrap_listen_host,
        tls=mailtrap_tls,
        auth=mailtrap_auth,
        settings=mailtrap_settings,
    )
    with running_server(settings) as server:
        yield server


@pytest.fixture(scope="session")
def mailtrap_backend(request: pytest.FixtureRequest) -> Backend:
    """Where the ``mailtrap`` fixture reads mail: the in-process server, or the
    ``--mailtrap-url`` one."""
    from mailtrap.pytest_plugin.remote import HttpBackend, MailtrapUnreachable

    options = PluginOptions.from_config(request.config)
    if not options.url:
        return LocalBackend(request.getfixturevalue("mailtrap_server"))
    try:
        return HttpBackend(options.url, options.smtp_address())
    except MailtrapError as error:
        problem = error
    # Outside the except blocks: one plain line, with no chained traceback above it.
    if not isinstance(problem, MailtrapUnreachable):
        pytest.fail(f"Mailtrap server at {options.url}: {problem}", pytrace=False)
    message = (
        f"Mailtrap server unreachable: {problem}. It was named by --mailtrap-url or "
        "MAILTRAP_URL: start it, or unset both to use an in-process server"
    )
    if options.skip_unreachable:
        pytest.skip(message)
    pytest.fail(message + ", or pass --mailtrap-skip-unreachable.", pytrace=False)


@pytest.fixture
def mailtrap(
    request: pytest.FixtureRequest,
    mailtrap_backend: Backend,
    tmp_path_factory: pytest.TempPathFactory,
) -> Inbox:
    """The mail received since this test started: wait for it, assert on it."""
    inbox = Inbox(mailtrap_backend)
    _remember(request, inbox, tmp_path_factory)
    return inbox


class InboxFactory(Protocol):
    """``mailtrap_factory(tls=False, auth=None, host="127.0.0.1", **settings) -> Inbox``."""

    def __call__(
        self,
        *,
        tls: bool | tuple[Path, Path] = False,
        auth: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        **settings: Any,
    ) -> Inbox: ...


@pytest.fixture
def mailtrap_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InboxFactory]:
    """Start a one-off in-process server with other settings; stopped after the test."""
    with ExitStack() as servers:

        def make(
            *,
            tls: bool | tuple[Path, Path] = False,
            auth: dict[str, str] | None = None,
            host: str = "127.0.0.1",
            **settings: Any,
        ) -> Inbox:
            folder = tmp_path_factory.mktemp("mailtrap-factory")
            chosen = server_settings(folder, host=host, tls=tls, auth=auth, settings=settings)
            server = servers.enter_context(running_server(chosen))
            inbox = Inbox(LocalBackend(server))
            _remember(request, inbox, tmp_path_factory)
            return inbox

        yield make


def _remember(
    request: pytest.FixtureRequest, inbox: Inbox, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Keep the test's inboxes on its item, for the report of a failure."""
    request.node.stash.setdefault(_INBOXES, []).append(inbox)
    if _EML_ROOT not in request.node.stash:
        options = PluginOptions.from_config(request.config)
        root = options.eml_dir or tmp_path_factory.getbasetemp() / "mailtrap-failed"
        request.node.stash[_EML_ROOT] = root


# -- the failure report -----------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Result[pytest.TestReport], None]:
    outcome = yield
    report = outcome.get_result()
    inboxes = item.stash.get(_INBOXES, None)
    if report.when == "call" and report.failed and inboxes:
        report.sections.append((SECTION_TITLE, _mail_section(item, inboxes)))


def _mail_section(item: pytest.Item, inboxes: list[Inbox]) -> str:
    try:
        mails = [mail for inbox in inboxes for mail in inbox.messages]
    except (MailtrapError, OSError, sqlite3.Error) as error:  # say so; keep the real failure
        return f"Could not list the mail of this test: {error}\n"
    if not mails:
        return section_text([], [], None)
    folder = unused_folder(item.stash[_EML_ROOT], safe_name(item.nodeid))
    try:
        paths = save_messages(mails, folder)
    except OSError as error:
        return section_text(mails, [], None) + f"(could not save them: {error})\n"
    return section_text(mails, paths, folder)
