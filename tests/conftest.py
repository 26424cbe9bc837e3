"""Shared fixtures: real servers on ephemeral ports with a real SQLite file."""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailtrap import Server
from mailtrap.config import Address

EPHEMERAL = Address("127.0.0.1", 0)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start a Server with a fresh database on a free port; stopped after the test."""
    started: list[Server] = []

    def make(**settings: Any) -> Server:
        settings.setdefault("db", tmp_path / f"mail{len(started)}.db")
        settings.setdefault("smtp", EPHEMERAL)
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
