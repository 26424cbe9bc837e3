"""Stored messages as Mailpit's API shows them: MessageSummary and Message."""

from __future__ import annotations

import datetime
import json
import sqlite3
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any

_full_parser = BytesParser(policy=policy.default)


def rfc3339(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summary(row: sqlite3.Row) -> dict[str, Any]:
    """Mailpit's MessageSummary of a ``messages`` row."""
    return {
        "ID": row["id"],
        "MessageID": row["message_id"] or "",
        "Read": bool(row["read"]),
        "From": {"Name": row["from_name"] or "", "Address": row["from_address"] or ""},
        "To": json.loads(row["to_json"] or "[]"),
        "Cc": json.loads(row["cc_json"] or "[]"),
        "Bcc": json.loads(row["bcc_json"] or "[]"),
        "ReplyTo": json.loads(row["reply_to_json"] or "[]"),
        "Subject": row["subject"] or "",
        "Created": rfc3339(row["created"]),
        "Username": row["auth_user"] or "",
        "Tags": json.loads(row["tags"] or "[]"),
        "Size": row["size"],
        "Attachments": row["attachments"] or 0,
        "Snippet": row["snippet"] or "",
    }


def parse(raw: bytes) -> EmailMessage:
    """The whole message, parsed with the modern policy (for reading, not at ingest)."""
    message = _full_parser.parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def walk_parts(message: Message) -> list[tuple[str, Message]]:
    """Every leaf part with Mailpit's PartID ("1", "1.2", ...)."""
    parts: list[tuple[str, Message]] = []

    def visit(part: Message, part_id: str) -> None:
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            for number, child in enumerate(part.get_payload(), 1):  # type: ignore[arg-type]
                visit(child, f"{part_id}.{number}" if part_id else str(number))
        else:
            parts.append((part_id or "1", part))

    visit(message, "")
    return parts
