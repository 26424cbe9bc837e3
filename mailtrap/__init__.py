"""Mailtrap: a test-mail capture server.

Applications send mail to it over SMTP; it stores every message durably in
SQLite. :class:`Server` starts and stops everything; the CLI and the tests
build one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailtrap.config import Config
from mailtrap.errors import ConfigError, MailtrapError, StorageError

__version__ = "0.1.0"

__all__ = ["Config", "ConfigError", "MailtrapError", "Server", "StorageError", "__version__"]

if TYPE_CHECKING:
    from mailtrap.server import Server


def __getattr__(name: str) -> Any:
    # Imported on first use: the writer process imports this package and
    # should not pay for aiosmtpd, TLS and htpasswd support it never uses.
    if name == "Server":
        from mailtrap.server import Server

        return Server
    raise AttributeError(f"module 'mailtrap' has no attribute {name!r}")
