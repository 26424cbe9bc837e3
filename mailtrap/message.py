"""Stored messages as Mailpit's API shows them: MessageSummary, Message, headers and parts.

The summary comes from the ``messages`` row alone. Everything else is read
from the byte ranges the part index (:mod:`mailtrap.part_index`) points at:
the header block, a body, one part, each streamed in chunks, so reading a
message costs memory bounded by MAX_BODY_BYTES and the chunk size, not by the
size of the message. Malformed mail never raises here: what cannot be parsed
is left empty.
"""

from __future__ import annotations

import codecs
import datetime
import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mailtrap.mime import PartInfo, header_fields, html_to_text
from mailtrap.part_index import BytesSource, MessageSource, header_block
from mailtrap.transfer_encoding import decoded
from mailtrap.unsubscribe import check as check_unsubscribe


def rfc3339(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _addresses(value: str | None) -> list[dict[str, str]]:
    return json.loads(value or "[]")


def summary(row: sqlite3.Row) -> dict[str, Any]:
    """Mailpit's MessageSummary of a ``messages`` row."""
    return {
        "ID": row["id"],
        "MessageID": row["message_id"] or "",
        "Read": bool(row["read"]),
        "From": {"Name": row["from_name"] or "", "Address": row["from_address"] or ""},
        "To": _addresses(row["to_json"]),
        "Cc": _addresses(row["cc_json"]),
        "Bcc": _addresses(row["bcc_json"]),
        "ReplyTo": _addresses(row["reply_to_json"]),
        "Subject": row["subject"] or "",
        "Created": rfc3339(row["created"]),
        "Username": row["auth_user"] or "",
        "Tags": json.loads(row["tags"] or "[]"),
        "Size": row["size"],
        "Attachments": row["attachments"] or 0,
        "Snippet": row["snippet"] or "",
    }


MAX_BODY_BYTES = 2 * 1024 * 1024  # decoded bytes of the text and of the HTML body shown


def _source(message: MessageSource | bytes) -> MessageSource:
    return BytesSource(message) if isinstance(message, bytes) else message


@dataclass
class Part:
    """One leaf of a message: what the attachment routes serve."""

    info: PartInfo
    source: MessageSource

    @property
    def part_id(self) -> str:
        return self.info.part_id

    @property
    def content_type(self) -> str:
        return self.info.content_type

    @property
    def content_id(self) -> str:
        return self.info.content_id

    @property
    def filename(self) -> str:
        return self.info.filename

    @property
    def is_attachment(self) -> bool:
        return self.info.attachment

    def chunks(self) -> Iterator[bytes]:
        """The decoded content (base64 and quoted-printable undone), a chunk at a time.

        An attached message (message/rfc822) is its bytes as they were sent.
        """
        return decoded(self.source.chunks(self.info.body), self.info.encoding)

    @property
    def content(self) -> bytes:
        """The whole decoded content (for small parts; streaming readers use :meth:`chunks`)."""
        return b"".join(self.chunks())

    def text(self, limit: int = MAX_BODY_BYTES) -> str:
        """The content as text, in its declared charset (UTF-8 if unknown), of at most
        ``limit`` decoded bytes; a character cut in two at the limit is left out."""
        try:
            return self._text(self.info.charset or "utf-8", limit)
        except (LookupError, UnicodeError):  # an unknown charset, or a codec such as idna
            return self._text("utf-8", limit)

    def _text(self, charset: str, limit: int) -> str:
        decoder = codecs.getincrementaldecoder(charset)("replace")
        pieces: list[str] = []
        for chunk in self.chunks():
            pieces.append(decoder.decode(chunk[:limit]))
            limit -= len(chunk)
            if limit <= 0:
                return "".join(pieces)
        pieces.append(decoder.decode(b"", final=True))
        return "".join(pieces)

    def describe(self) -> dict[str, Any]:
        """Mailpit's Attachment object (sizes and checksums of the decoded content, streamed)."""
        size = 0
        md5 = hashlib.md5(usedforsecurity=False)
        sha1 = hashlib.sha1(usedforsecurity=False)
        sha256 = hashlib.sha256()
        for chunk in self.chunks():
            size += len(chunk)
            md5.update(chunk)
            sha1.update(chunk)
            sha256.update(chunk)
        return {
            "PartID": self.part_id,
            "FileName": self.filename or self.content_id,
            "ContentType": self.content_type,
            "ContentID": self.content_id,
            "Size": size,
            "Checksums": {
                "MD5": md5.hexdigest(),
                "SHA1": sha1.hexdigest(),
                "SHA256": sha256.hexdigest(),
            },
        }


def parts(message: MessageSource | bytes) -> list[Part]:
    """The leaf parts of a message (from its index), within the MIME limits."""
    source = _source(message)
    return [Part(info, source) for info in source.parts]


def find_part(message: MessageSource | bytes, part_id: str) -> Part | None:
    return next((part for part in parts(message) if part.part_id == part_id), None)


@dataclass
class Bodies:
    """A message's text and HTML bodies and its other parts, sorted as Mailpit sorts them."""

    text: str = ""
    html: str = ""
    inline: list[Part] = field(default_factory=list)
    attachments: list[Part] = field(default_factory=list)


def bodies(message: MessageSource | bytes) -> Bodies:
    """The first text/plain and text/html bodies; inline parts; attachments.

    As in Mailpit, a message without a text body gets one made from its HTML,
    and an inline part is listed only if it has a Content-ID or a file name.
    Each body is cut at MAX_BODY_BYTES decoded bytes.
    """
    result = Bodies()
    text = html = None
    for part in parts(message):
        if part.is_attachment:
            result.attachments.append(part)
        elif part.content_type == "text/plain" and text is None and not part.filename:
            text = part.text()
        elif part.content_type == "text/html" and html is None and not part.filename:
            html = part.text()
        elif part.content_id or part.filename:
            result.inline.append(part)
    result.html = html or ""
    result.text = text if text is not None else _plain_from_html(result.html)
    return result


def _plain_from_html(html: str) -> str:
    """The words of an HTML body, a line per line of markup, without runs of blank lines."""
    lines = [" ".join(line.split()) for line in html_to_text(html).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def message_detail(row: sqlite3.Row, message: MessageSource | bytes) -> dict[str, Any]:
    """Mailpit's Message: the summary's fields, plus what needs the stored bytes."""
    fields = summary(row)
    source = _source(message)
    found = bodies(source)
    headers = _first_values(header_block(source))
    unsubscribe = headers.get("list-unsubscribe", "")
    post = headers.get("list-unsubscribe-post", "")
    checked = check_unsubscribe(unsubscribe, post)
    return {
        "ID": fields["ID"],
        "MessageID": fields["MessageID"],
        "From": fields["From"],
        "To": fields["To"],
        "Cc": fields["Cc"],
        "Bcc": fields["Bcc"],
        "ReplyTo": fields["ReplyTo"],
        "ReturnPath": _return_path(headers, row),
        "Subject": fields["Subject"],
        "ListUnsubscribe": {
            "Header": unsubscribe,
            "Links": checked.links,
            "Errors": ", ".join(checked.errors),
            "HeaderPost": post,
        },
        # The Date header if it parses, else when the message arrived (as Mailpit).
        "Date": row["date"] or fields["Created"],
        "Tags": fields["Tags"],
        "Username": fields["Username"],
        "Text": found.text,
        "HTML": found.html,
        "Size": fields["Size"],
        "Inline": [part.describe() for part in found.inline],
        "Attachments": [part.describe() for part in found.attachments],
    }


def _first_values(raw: bytes) -> dict[str, str]:
    """The first value of each top-level header field, by lower-case name."""
    values: dict[str, str] = {}
    for name, value in header_fields(raw):
        values.setdefault(name.lower(), value)
    return values


def _return_path(headers: dict[str, str], row: sqlite3.Row) -> str:
    """Return-Path header, else the envelope sender, else the From address."""
    header = headers.get("return-path", "").strip().strip("<>")
    return header or row["mail_from"] or row["from_address"] or ""


def headers_map(message: MessageSource | bytes) -> dict[str, list[str]]:
    """Mailpit's headers response: canonical names, sorted, each with its values in order.

    Names are canonicalized as Go's ``textproto`` does ("Message-Id"),
    because that is what clients of Mailpit look up.
    """
    raw = message if isinstance(message, bytes) else header_block(message)
    grouped: dict[str, list[str]] = {}
    for name, value in header_fields(raw):
        grouped.setdefault(canonical_header_name(name), []).append(value)
    return dict(sorted(grouped.items()))


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def canonical_header_name(name: str) -> str:
    """``message-ID`` -> ``Message-Id``; names that are not tokens stay as they are."""
    if not _TOKEN.fullmatch(name):
        return name
    return "-".join(word[:1].upper() + word[1:].lower() for word in name.split("-"))
