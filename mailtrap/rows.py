"""A message as received, and the ``messages`` row it becomes, in two stages.

The envelope row is written with the raw bytes before the client gets its
``250``; the summary (parsed headers, body text for the index) is filled in
afterwards, so what a message contains never holds up an acknowledgement.
"""

from __future__ import annotations

import json
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

from mailtrap.mime import Summary


@dataclass
class IncomingMessage:
    """A message as received, with its envelope and session facts.

    The raw bytes are in ``raw``, or, for a large message, in the file at
    ``spool`` (``raw`` is then empty and ``size`` tells its length).
    """

    raw: bytes
    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str] = field(default_factory=list)
    peer: str = ""
    helo: str = ""
    tls: bool = False
    auth_user: str | None = None
    received: float = field(default_factory=time.time)
    spool: str | None = None
    size: int = 0
    # Set by the store: finds the message again if the writer dies before answering.
    receipt: str = ""

    @property
    def length(self) -> int:
        return self.size if self.spool is not None else len(self.raw)


_ID_ALPHABET = string.ascii_letters + string.digits


def _base62(number: int) -> str:
    digits = ""
    while True:
        number, rest = divmod(number, 62)
        digits = _ID_ALPHABET[rest] + digits
        if not number:
            return digits


def make_id(seq: int) -> str:
    """A short ID: 8 random characters (unguessable) then the sequence number.

    The fixed-width random part makes the suffix unambiguous, and sequence
    numbers are never reused, so neither is an ID.
    """
    return _base62(secrets.randbits(47)).rjust(8, "0") + _base62(seq)  # 2**47 < 62**8


def envelope_row(seq: int, message: IncomingMessage) -> dict[str, Any]:
    """What is known of a message before its content is parsed: the first stage."""
    return {
        "seq": seq,
        "id": make_id(seq),
        "created": message.received,
        "size": message.length,
        "mail_from": message.mail_from,
        "rcpt_tos": json.dumps(list(message.rcpt_tos)),
        "mail_options": json.dumps(list(message.mail_options)),
        "peer": message.peer,
        "helo": message.helo,
        "tls": int(message.tls),
        "auth_user": message.auth_user,
        "receipt": message.receipt or None,
        # Until the summary is in: the envelope recipients, so even an
        # unparsed message is found by `to:`.
        "bcc_json": json.dumps([{"Name": "", "Address": rcpt} for rcpt in message.rcpt_tos]),
    }


def summary_values(summary: Summary) -> dict[str, Any]:
    """The columns the summary fills in: the second stage."""
    everyone = [
        *([summary.from_] if summary.from_ else []),
        *summary.to,
        *summary.cc,
        *summary.bcc,
        *summary.reply_to,
    ]
    # Mailpit's plain search reads the Return-Path too.
    return_path = next((v for n, v in summary.headers if n.lower() == "return-path"), "")
    return {
        "message_id": summary.message_id,
        "subject": summary.subject,
        "from_name": summary.from_["Name"] if summary.from_ else "",
        "from_address": summary.from_["Address"] if summary.from_ else "",
        "to_json": json.dumps(summary.to),
        "cc_json": json.dumps(summary.cc),
        "bcc_json": json.dumps(summary.bcc),
        "reply_to_json": json.dumps(summary.reply_to),
        "date": summary.date,
        "attachments": summary.attachments,
        "inline": summary.inline,
        "snippet": summary.snippet,
        "tags": json.dumps(summary.tags),
        "parse_error": summary.parse_error,
        "addresses": " ".join(
            [*(f"{p['Name']} {p['Address']}" for p in everyone), return_path]
        ).strip(),
        "attachment_names": " ".join(summary.attachment_names),
        "body": summary.text,
        # [[name, value], ...] for `header:` searches; UTF-8 kept so LIKE can prefilter.
        "headers": json.dumps(summary.headers, ensure_ascii=False),
    }


def storable(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD: SQLite cannot bind them.

    Decoders such as unicode-escape, which a message may name as its charset,
    let them through.
    """
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _insert(table: str, columns: list[str]) -> str:
    marks = ", ".join(":" + column for column in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


# sqlite-utils' insert() inspects the table and converts every value on each
# call, costing as much as parsing the message; the hot path uses prepared
# statements instead (the schema itself stays with sqlite-utils).
_ENVELOPE_COLUMNS = list(envelope_row(1, IncomingMessage(b"", "", [])))
INSERT_ENVELOPE = _insert("messages", [*_ENVELOPE_COLUMNS, "parsed"]).replace(":parsed", "0")
_SUMMARY_COLUMNS = list(summary_values(Summary()))
UPDATE_SUMMARY = (
    "UPDATE messages SET "
    + ", ".join(f"{column} = :{column}" for column in _SUMMARY_COLUMNS)
    + ", parsed = 1 WHERE seq = :seq"
)
