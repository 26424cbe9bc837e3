"""The database schema, as numbered sqlite-utils migrations, and connections to it."""

from __future__ import annotations

import json
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from mailtrap.checks import cache as check_cache
from mailtrap.mime import header_fields
from mailtrap.part_index import create_tables, insert_part_index
from mailtrap.relay import queue as relay_queue
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


@migrations()
def m002_reading(db: Database) -> None:
    """What the inbox and the API read: header fields to search, indexes for counts and tags."""
    db.execute("ALTER TABLE messages ADD COLUMN headers TEXT")
    # Unread counts (and the total, through the smallest index) without a table scan.
    db.execute("CREATE INDEX messages_read ON messages(read)")
    # The tag list reads only tagged messages, which are few in a typical inbox.
    db.execute("CREATE INDEX messages_tagged ON messages(seq) WHERE tags != '[]'")
    # sqlite-utils' trigger re-indexed a message on every UPDATE, so marking
    # 100,000 messages read re-indexed 100,000 bodies; now only a change of an
    # indexed column does.
    db.execute('DROP TRIGGER "messages_au"')
    db.execute(
        """CREATE TRIGGER "messages_au"
        AFTER UPDATE OF subject, addresses, body, attachment_names ON messages BEGIN
          INSERT INTO messages_fts (messages_fts, rowid, subject, addresses, body, attachment_names)
          VALUES ('delete', old.rowid, old.subject, old.addresses, old.body, old.attachment_names);
          INSERT INTO messages_fts (rowid, subject, addresses, body, attachment_names)
          VALUES (new.rowid, new.subject, new.addresses, new.body, new.attachment_names);
        END"""
    )
    # Messages stored before this migration get theirs from the raw bytes, one at a time.
    for (seq,) in db.execute("SELECT seq FROM messages").fetchall():
        (data,) = db.execute("SELECT data FROM raw WHERE seq = ?", [seq]).fetchone() or (b"",)
        headers = json.dumps(header_fields(bytes(data), decoded=True), ensure_ascii=False)
        db.execute("UPDATE messages SET headers = ? WHERE seq = ?", [headers, seq])


@migrations()
def m003_ingest_stages(db: Database) -> None:
    """Raw bytes are committed before the summary: rows say which stage they are in."""
    # 1: summary and index filled in; 0: only the envelope and raw bytes so far
    # (the writer fills in the rest, also after a crash).
    db.execute("ALTER TABLE messages ADD COLUMN parsed INTEGER NOT NULL DEFAULT 1")
    db.execute("CREATE INDEX messages_unparsed ON messages(seq) WHERE parsed = 0")
    # The store's token for an add, so a commit whose answer was lost is recognised.
    db.execute("ALTER TABLE messages ADD COLUMN receipt TEXT")


@migrations()
def m004_parts(db: Database) -> None:
    """The part index: reading a message reads the byte ranges it needs, not the whole."""
    create_tables(db.conn)
    for (seq,) in db.execute("SELECT seq FROM messages").fetchall():
        (data,) = db.execute("SELECT data FROM raw WHERE seq = ?", [seq]).fetchone() or (b"",)
        insert_part_index(db.conn, seq, bytes(data))


@migrations()
def m005_relay(db: Database) -> None:
    """The relay queue: a row per recipient of each message to deliver."""
    relay_queue.create_tables(db.conn)


@migrations()
def m008_check_results(db: Database) -> None:
    """Message checks (HTML, links, spam, authentication) cached per message."""
    check_cache.create_table(db.conn)


def prepare_database(path: Path) -> None:
    """Create or migrate the database file, in WAL mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        migrations.apply(Database(conn))
    finally:
        conn.close()
