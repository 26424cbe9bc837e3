"""Check results cached per message (migration m008), so a check runs once until asked again.

A result is stored with a fingerprint of what it depends on besides the
message (settings, data version); a result with another fingerprint is not used.
Rows go with their message.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from typing import Any

SAVE = (
    "INSERT OR REPLACE INTO check_results (seq, name, fingerprint, result, created) "
    "SELECT seq, ?, ?, ?, ? FROM messages WHERE id = ? RETURNING seq"
)
LOAD = (
    "SELECT c.fingerprint, c.result, c.created FROM check_results AS c JOIN messages USING (seq) "
    "WHERE id = ? AND name = ?"
)


def create_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE check_results (
            seq INTEGER NOT NULL, name TEXT NOT NULL, fingerprint TEXT NOT NULL,
            result TEXT NOT NULL, created REAL NOT NULL,
            PRIMARY KEY (seq, name)
        ) WITHOUT ROWID"""
    )
    conn.execute(
        "CREATE TRIGGER messages_delete_check_results AFTER DELETE ON messages BEGIN "
        "DELETE FROM check_results WHERE seq = old.seq; END"
    )


def fingerprint(*parts: object) -> str:
    """A short digest of what a result depends on besides the message."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save(conn: sqlite3.Connection, message_id: str, name: str, key: str, result: str) -> bool:
    """Store a result (in the writer); False if the message is gone."""
    return conn.execute(SAVE, [name, key, result, time.time(), message_id]).fetchone() is not None


def load(
    conn: sqlite3.Connection, message_id: str, name: str, key: str, max_age: float | None = None
) -> Any | None:
    """The cached result, if there is one with this fingerprint (and not older than max_age)."""
    row = conn.execute(LOAD, [message_id, name]).fetchone()
    if row is None or row[0] != key:
        return None
    if max_age is not None and time.time() - row[2] > max_age:
        return None
    return json.loads(row[1])
