"""The exception hierarchy: one base, one subclass per layer."""

from __future__ import annotations


class MailtrapError(Exception):
    """Base class of every error Mailtrap raises on purpose."""


class ConfigError(MailtrapError):
    """A setting is invalid (bad address, size, duration or file)."""


class ListenError(MailtrapError):
    """A listener could not bind its address (in use, not permitted, no such host)."""


class StorageError(MailtrapError):
    """The store could not write or read a message."""


class MessageNotFound(StorageError):
    """No stored message has that ID."""


class CheckError(MailtrapError):
    """A message check cannot run: not configured, or not possible for this message."""
