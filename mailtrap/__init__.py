"""Mailtrap: a test-mail capture server.

Applications send mail to it over SMTP; it stores every message durably in
SQLite. :class:`Server` starts and stops everything; the CLI and the tests
build one.
"""

from __future__ import annotations

__version__ = "0.1.0"

from mailtrap.config import Config
from mailtrap.errors import ConfigError, MailtrapError, StorageError
from mailtrap.server import Server

__all__ = ["Config", "ConfigError", "MailtrapError", "Server", "StorageError", "__version__"]
