"""Shared fixtures: real servers on ephemeral ports with a real SQLite file."""

from __future__ import annotations

import os
import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from api_client import Api
from dns_server import ZoneResolver, dns_server
from serve_process import ServeProcess

from mailtrap import Server
from mailtrap.config import Address

EPHEMERAL = Address("127.0.0.1", 0)

# In CI (`.ci/run` sets up every tool a test needs) a skipped test means a
# missing install step, which a green run must not hide: the run fails.
_skipped_in_ci: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        _skipped_in_ci.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_in_ci and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _skipped_in_ci:
        terminalreporter.write_line(
            f"CI=true: {len(_skipped_in_ci)} test(s) skipped, so the run fails "
            "(install what they need in .ci/run): " + ", ".join(_skipped_in_ci[:10]),
            red=True,
        )


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start a Server with a fresh database on a free port; stopped after the test."""
    started: list[Server] = []

    def make(**settings: Any) -> Server:
        settings.setdefault("db", tmp_path / f"mail{len(started)}.db")
        settings.setdefault("smtp", EPHEMERAL)
        settings.setdefault("http", EPHEMERAL)
        settings.setdefault("pop3", EPHEMERAL)
        server = Server(**settings).start()
        started.append(server)
        return server

    yield make
    for server in reversed(started):
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    """A running server with the default settings."""
    return make_server()


@pytest.fixture
def smtp(server: Server) -> Iterator[smtplib.SMTP]:
    """An smtplib client connected to ``server``."""
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        yield client


@pytest.fixture
def start_serve(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Start ``python -m mailtrap serve ARGS`` in ``tmp_path``; killed after the test if still up.

    Keyword arguments go to :class:`ServeProcess` (``env``, ``drop_env``);
    ``ready=False`` returns before the banner has been read.
    """
    started: list[ServeProcess] = []

    def start(*args: str | Path, ready: bool = True, **options: Any) -> ServeProcess:
        options.setdefault("cwd", tmp_path)
        process = ServeProcess(args, **options)
        started.append(process)
        return process.wait_ready() if ready else process

    yield start
    for process in started:
        process.kill()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with the default settings for a whole test module.

    Starting a server costs a writer process (~0.15 s); modules with many
    tests that need no special settings share this one through
    ``emptied_module_server``.
    """
    folder = tmp_path_factory.mktemp("module-server")
    server = Server(db=folder / "mail.db", smtp=EPHEMERAL, http=EPHEMERAL, pop3=EPHEMERAL).start()
    yield server
    server.stop()


@pytest.fixture
def emptied_module_server(module_server: Server) -> Server:
    """``module_server`` with every message deleted: a cheap stand-in for ``server``.

    A module opts in by overriding ``server`` (which ``smtp`` uses too)::

        @pytest.fixture
        def server(emptied_module_server: Server) -> Server:
            return emptied_module_server
    """
    module_server.store.delete_all().result(timeout=10)
    assert module_server.store.count() == 0
    return module_server


@pytest.fixture
def api(server: Server) -> Api:
    """An HTTP client of ``server``'s Mailpit-compatible API."""
    return Api(server)


# Two domains, each with one MX host on its own loopback address.
RELAY_ZONE = """
example.test. 60 IN MX 10 mx.example.test.
mx.example.test. 60 IN A 127.0.0.2
other.test. 60 IN MX 10 mx.other.test.
mx.other.test. 60 IN A 127.0.0.3
"""


@pytest.fixture
def dns_zone() -> Iterator[tuple[ZoneResolver, Address]]:
    """A loopback DNS server serving :data:`RELAY_ZONE` (tests may add more), for relay tests."""
    with dns_server() as (zone, address):
        zone.add(RELAY_ZONE)
        yield zone, address
