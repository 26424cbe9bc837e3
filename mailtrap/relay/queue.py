"""The relay queue: its tables, the writes the writer process makes, and the reads.

A row is one recipient of one message. Its state moves
``queued`` -> (``sending``) -> ``sent`` | ``retrying`` | ``failed``, where
``sending`` is written just before the final "." of DATA: a row found in
that state after a crash may have arrived, so it becomes ``failed`` and is
never sent again. Deleting a message deletes its rows (a trigger), which
cancels what was still pending. This module imports nothing heavy: the
writer process loads it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from mailtrap.relay.plan import FAIL, IN_DOUBT, RETRY, SENT, Delivery

QUEUED, SENDING, RETRYING, DELIVERED, FAILED = "queued", "sending", "retrying", "sent", "failed"
PENDING_STATES = (QUEUED, RETRYING)
INTERRUPTED = (
    "interrupted after the message was sent, before the server's reply: it may have arrived, "
    "so it is not sent again"
)


def create_tables(conn: sqlite3.Connection) -> None:
    """The queue's tables (migration m005_relay)."""
    conn.execute(
        """CREATE TABLE relay_deliveries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            message_seq INTEGER NOT NULL,
            message_id TEXT NOT NULL,
            recipient TEXT NOT NULL,
            domain TEXT NOT NULL,
            mail_from TEXT NOT NULL,
            reason TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            created REAL NOT NULL,
            next_attempt REAL,
            updated REAL NOT NULL,
            remote_host TEXT NOT NULL DEFAULT '',
            reply TEXT NOT NULL DEFAULT ''
        )"""
    )
    # The worker's one frequent question: what is due next.
    conn.execute(
        "CREATE INDEX relay_due ON relay_deliveries(next_attempt) "
        "WHERE state IN ('queued', 'retrying')"
    )
    conn.execute("CREATE INDEX relay_message ON relay_deliveries(message_seq)")
    conn.execute(
        "CREATE TRIGGER relay_cancel AFTER DELETE ON messages "
        "BEGIN DELETE FROM relay_deliveries WHERE message_seq = old.seq; END"
    )
    # The last message auto-relay and forwarding have looked at; ``rules`` 0
    # when the run that wrote it had none (so the next one starts afresh).
    conn.execute(
        "CREATE TABLE relay_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "seq INTEGER NOT NULL, rules INTEGER NOT NULL)"
    )


# -- writes (run in the writer process, inside its transaction) ----------------------


def enqueue(
    conn: sqlite3.Connection,
    entries: list[tuple[str, list[str], str]],
    sender: str | None,
    now: float,
) -> list[int]:
    """Queue (message ID, recipients, reason) entries; returns the new rows' IDs.

    A message that no longer exists is skipped. ``sender`` None: each
    message's own envelope sender.
    """
    ids: list[int] = []
    for message_id, recipients, reason in entries:
        row = conn.execute(
            "SELECT seq, mail_from FROM messages WHERE id = ?", [message_id]
        ).fetchone()
        if row is None:
            continue
        mail_from = (row[1] or "") if sender is None else sender
        for recipient in recipients:
            cursor = conn.execute(
                "INSERT INTO relay_deliveries (message_seq, message_id, recipient, domain, "
                "mail_from, reason, state, created, next_attempt, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    row[0], message_id, recipient, recipient.rpartition("@")[2], mail_from,
                    reason, QUEUED, now, now, now,
                ],
            )  # fmt: skip
            ids.append(int(cursor.lastrowid or 0))
    return ids


def release(
    conn: sqlite3.Connection,
    message_ids: list[str],
    recipients: list[str],
    sender: str | None,
    now: float,
) -> list[str]:
    """Queue each of ``message_ids`` for ``recipients``, in one transaction; returns the
    IDs queued (a message deleted meanwhile is not among them)."""
    return [
        message_id
        for message_id in message_ids
        if enqueue(conn, [(message_id, recipients, "release")], sender, now)
    ]


def scanned(
    conn: sqlite3.Connection,
    from_seq: int,
    to_seq: int,
    entries: list[tuple[str, list[str], str]],
    sender: str | None,
    now: float,
) -> bool:
    """Queue what auto-relay and forwarding chose among messages after ``from_seq`` up to
    ``to_seq``, and move the cursor; nothing if the cursor has moved meanwhile."""
    if cursor(conn) != from_seq:
        return False
    enqueue(conn, entries, sender, now)
    conn.execute("INSERT OR REPLACE INTO relay_cursor (id, seq, rules) VALUES (1, ?, 1)", [to_seq])
    return True


def start_rules(conn: sqlite3.Connection, rules: bool) -> None:
    """At start: with rules, go on from the cursor of a run that had them too (a restart
    after a crash resumes), else begin at the newest message, so mail that came while
    no rule ran is never auto-relayed later. Without rules, say so for the next run."""
    row = conn.execute("SELECT rules FROM relay_cursor WHERE id = 1").fetchone()
    if rules and row is not None and row[0]:
        return
    (seq,) = conn.execute("SELECT coalesce(max(seq), 0) FROM messages").fetchone()
    conn.execute(
        "INSERT OR REPLACE INTO relay_cursor (id, seq, rules) VALUES (1, ?, ?)", [seq, int(rules)]
    )


def start_sending(conn: sqlite3.Connection, ids: list[int], now: float) -> list[int]:
    """Mark rows as being sent (the point of no return); returns those still pending."""
    started: list[int] = []
    for delivery_id in ids:
        cursor = conn.execute(
            "UPDATE relay_deliveries SET state = ?, updated = ? "
            "WHERE id = ? AND state IN ('queued', 'retrying') RETURNING id",
            [SENDING, now, delivery_id],
        )
        started += [row[0] for row in cursor]
    return started


_STATES = {SENT: DELIVERED, FAIL: FAILED, IN_DOUBT: FAILED, RETRY: RETRYING}


def record(
    conn: sqlite3.Connection,
    outcomes: list[tuple[int, str, str, str, float | None]],
    now: float,
    unsent_only: bool = False,
) -> list[str]:
    """Write attempts' outcomes: (row ID, plan state, reply, host, next attempt or None).

    A retry without a next attempt has run out of lifetime and fails. A row
    already sent or failed is never changed back; with ``unsent_only`` (an
    attempt that broke off, who knows where) neither is one being sent.
    Returns the message IDs touched.
    """
    states = "('queued', 'retrying')" if unsent_only else "('queued', 'retrying', 'sending')"
    touched: list[str] = []
    for delivery_id, state, reply, host, when in outcomes:
        final = _STATES[state]
        if final == RETRYING and when is None:
            final, reply = FAILED, f"gave up after the retry lifetime; last: {reply}"
        cursor = conn.execute(
            "UPDATE relay_deliveries SET state = ?, reply = ?, remote_host = ?, "
            "next_attempt = ?, attempts = attempts + 1, updated = ? "
            f"WHERE id = ? AND state IN {states} RETURNING message_id",
            [final, reply, host, when if final == RETRYING else None, now, delivery_id],
        )
        touched += [row[0] for row in cursor]
    return sorted(set(touched))


def recover(conn: sqlite3.Connection, now: float) -> list[str]:
    """After a crash: rows caught between the final "." and its reply fail (never twice)."""
    cursor = conn.execute(
        "UPDATE relay_deliveries SET state = ?, reply = ?, attempts = attempts + 1, "
        "next_attempt = NULL, updated = ? WHERE state = ? RETURNING message_id",
        [FAILED, INTERRUPTED, now, SENDING],
    )
    return sorted({row[0] for row in cursor})


WRITES: dict[str, Any] = {
    "enqueue": enqueue,
    "release": release,
    "scanned": scanned,
    "start_rules": start_rules,
    "start_sending": start_sending,
    "record": record,
    "recover": recover,
}


# -- reads ----------------------------------------------------------------------------


def cursor(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT seq FROM relay_cursor WHERE id = 1").fetchone()
    return None if row is None else int(row[0])


def due(
    conn: sqlite3.Connection,
    now: float,
    limit: int,
    busy: Iterable[int],
    full_domains: Iterable[str] = (),
) -> list[Delivery]:
    """Pending deliveries whose time has come, oldest first, except those in ``busy`` and
    those to ``full_domains`` (domains with as many transactions open as they may have)."""
    skip = set(busy)
    domains, not_full = _not_in_domains(full_domains)
    rows = conn.execute(
        "SELECT id, message_seq, message_id, recipient, domain, mail_from, attempts, created "
        f"FROM relay_deliveries WHERE state IN ('queued', 'retrying') AND next_attempt <= ? "
        f"{not_full} ORDER BY next_attempt, id LIMIT ?",
        [now, *domains, limit + len(skip)],
    ).fetchall()
    return [Delivery(*row) for row in rows if row[0] not in skip][:limit]


def next_due(
    conn: sqlite3.Connection, busy: Iterable[int], full_domains: Iterable[str] = ()
) -> float | None:
    """When the next pending delivery not in ``busy`` nor to ``full_domains`` is due
    (None: nothing pending that could start now)."""
    skip = set(busy)
    domains, not_full = _not_in_domains(full_domains)
    rows = conn.execute(
        "SELECT id, next_attempt FROM relay_deliveries WHERE state IN ('queued', 'retrying') "
        f"{not_full} ORDER BY next_attempt LIMIT ?",
        [*domains, len(skip) + 1],
    )
    for delivery_id, when in rows:
        if delivery_id not in skip:
            return float(when)
    return None


def _not_in_domains(full_domains: Iterable[str]) -> tuple[list[str], str]:
    domains = sorted(set(full_domains))
    if not domains:
        return [], ""
    return domains, f"AND domain NOT IN ({', '.join('?' * len(domains))})"


def of_message(conn: sqlite3.Connection, message_id: str) -> list[dict[str, Any]]:
    """A message's deliveries, oldest first, as the message JSON shows them (``Relay``)."""
    from mailtrap.message import rfc3339  # here: the writer process never needs it

    rows = conn.execute(
        "SELECT recipient, reason, state, attempts, next_attempt, updated, remote_host, reply "
        # By seq, which relay_message indexes: a bulk release reads this once a message.
        "FROM relay_deliveries WHERE message_seq = (SELECT seq FROM messages WHERE id = ?) "
        "ORDER BY id",
        [message_id],
    ).fetchall()
    return [
        {
            "Recipient": recipient,
            "Reason": reason,
            "State": state,
            "Attempts": attempts,
            "NextAttempt": rfc3339(next_attempt) if next_attempt is not None else "",
            "Updated": rfc3339(updated),
            "RemoteHost": remote_host,
            "Reply": reply,
        }
        for recipient, reason, state, attempts, next_attempt, updated, remote_host, reply in rows
    ]


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """How many deliveries are pending (never tried), deferred, delivered, failed and sending."""
    numbers = dict.fromkeys(("pending", "deferred", "delivered", "failed", "sending"), 0)
    names = {QUEUED: "pending", RETRYING: "deferred", DELIVERED: "delivered"}
    names |= {FAILED: "failed", SENDING: "sending"}
    for state, count in conn.execute("SELECT state, count(*) FROM relay_deliveries GROUP BY state"):
        numbers[names[state]] = count
    return numbers
