"""The database schema, as numbered sqlite-utils migrations, and connections to it."""

from __future__ import annotations

from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from mailtrap.writer import connect

migrations = Migrations("mailtrap")


@migrations()
def m001_messages(db: Database) -> None:
    # AUTOINCREMENT keeps sqlite_sequence, so a deleted message's seq (and so
    # its ID) is never handed out again, even after a restart.
    db.execute(
        """CREATE TABLE messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            created REAL NOT NULL,
            size INTEGER NOT NULL,
            read INTEGER NOT NULL DEFAULT 0,
            message_id TEXT, subject TEXT, from_name TEXT, from_address TEXT,
            to_json TEXT, cc_json TEXT, bcc_json TEXT, reply_to_json TEXT,
            date TEXT, attachments INTEGER, snippet TEXT, tags TEXT,
            mail_from TEXT, rcpt_tos TEXT, mail_options TEXT,
            peer TEXT, helo TEXT, tls INTEGER, auth_user TEXT, parse_error TEXT,
            addresses TEXT, attachment_names TEXT, body TEXT
        )"""
    )
    db.execute("CREATE INDEX messages_created ON messages(created)")
    # Raw bytes live apart so that listing never drags blobs through the cache.
    db.execute("CREATE TABLE raw (seq INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    db.execute(
        "CREATE TRIGGER messages_delete_raw AFTER DELETE ON messages "
        "BEGIN DELETE FROM raw WHERE seq = old.seq; END"
    )
    db["messages"].enable_fts(
        ["subject", "addresses", "body", "attachment_names"],
        create_triggers=True,
        tokenize="unicode61 remove_diacritics 2",
    )


def prepare_database(path: Path) -> None:
    """Create or migrate the database file, in WAL mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        migrations.apply(Database(conn))
    finally:
        conn.close()
