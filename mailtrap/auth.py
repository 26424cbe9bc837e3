"""Credentials from an htpasswd file (bcrypt, apr1-md5, sha1, crypt)."""

from __future__ import annotations

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
        if not self._file.users():
            raise ConfigError(f"htpasswd file {path} has no users")

    def check(self, user: str, password: str) -> bool:
        try:
            return bool(self._file.check_password(user, password))
        except ValueError:  # a hash format passlib cannot verify
            return False
