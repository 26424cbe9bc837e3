"""Credentials from an htpasswd file (bcrypt, apr1-md5, sha1, crypt)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from passlib.apache import HtpasswdFile

from mailtrap.errors import ConfigError


class Credentials:
    """The users of one htpasswd file; ``check`` verifies a user name and password."""

    def __init__(self, path: Path):
        try:
            self._file = HtpasswdFile(str(path))
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot read htpasswd file {path}: {error}") from error
        self._verified: dict[tuple[str, bytes], bool] = {}
        if not self._file.users():
            raise ConfigError(f"htpasswd file {path} has no users")

    def check(self, user: str, password: str) -> bool:
        # bcrypt takes a quarter of a second by design, and SMTP checks
        # credentials on the event loop: each pair is verified once.
        key = (user, hashlib.sha256(password.encode()).digest())
        if key not in self._verified:
            if len(self._verified) >= 1024:  # bounded, whatever a client tries
                self._verified.clear()
            try:
                self._verified[key] = bool(self._file.check_password(user, password))
            except ValueError:  # a hash format passlib cannot verify
                self._verified[key] = False
        return self._verified[key]
