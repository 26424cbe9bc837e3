"""htpasswd files for the tests, in the hash formats users actually have."""

from __future__ import annotations

from pathlib import Path

from passlib.apache import HtpasswdFile
from passlib.hash import apr_md5_crypt, bcrypt

# bcrypt at its lowest cost: the format is what matters here, and tests stay fast.
HASHES = {"bcrypt": bcrypt.using(rounds=4).hash, "apr1": apr_md5_crypt.hash}


def write_htpasswd(path: Path, users: dict[str, tuple[str, str]]) -> Path:
    """Write ``{user: (scheme, password)}`` (scheme "bcrypt" or "apr1") to ``path``."""
    file = HtpasswdFile(str(path), new=True)
    for user, (scheme, password) in users.items():
        file.set_hash(user, HASHES[scheme](password))
    file.save()
    return path
