"""Stored messages as Mailpit's API shows them: MessageSummary, Message, headers and parts.

The summary comes from the ``messages`` row alone. Everything else is read
from the raw bytes when asked for, parsed with the standard ``email`` package
(``policy.default``); ingest never pays for it. Malformed mail never raises
here: what cannot be parsed is left empty.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any

from mailtrap.mime import MAX_MIME_DEPTH, MAX_MIME_PARTS, header_fields, html_to_text, is_attachment

log = logging.getLogger(__name__)

_full_parser = BytesParser(policy=policy.default)


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


def parse(raw: bytes) -> EmailMessage:
    """The whole message, parsed with the modern policy (for reading, not at ingest)."""
    message = _full_parser.parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def walk_parts(message: Message) -> Iterator[tuple[str, Message]]:
    """Every leaf part with Mailpit's PartID: "1", "2", "2.1" ...; "0" for a single part.

    The numbering is enmime's (Mailpit's MIME parser). An attached message
    (message/rfc822) is one leaf. Parts beyond the limits of :mod:`mailtrap.mime`
    are left out.
    """
    if not _is_container(message):
        yield "0", message
        return
    stack: list[tuple[str, Message, int]] = [("", message, 0)]
    seen = 0
    while stack:
        part_id, part, depth = stack.pop()
        seen += 1
        if seen > MAX_MIME_PARTS:
            return
        if not _is_container(part):
            yield part_id, part
            continue
        if depth >= MAX_MIME_DEPTH:
            continue
        children = part.get_payload()
        assert isinstance(children, list)
        prefix = f"{part_id}." if part_id else ""
        stack.extend(
            (f"{prefix}{number}", child, depth + 1)
            for number, child in reversed(list(enumerate(children, 1)))
        )


def _is_container(part: Message) -> bool:
    return part.get_content_maintype() == "multipart" and part.is_multipart()


@dataclass
class Part:
    """One leaf of a message: what the attachment routes serve."""

    part_id: str
    message: Message

    @property
    def content(self) -> bytes:
        """The decoded content (base64 and quoted-printable undone)."""
        try:
            if self.message.is_multipart():  # message/rfc822: the attached message itself
                inner = self.message.get_payload(0)
                assert isinstance(inner, Message)
                return inner.as_bytes()
            payload = self.message.get_payload(decode=True)
        except Exception:  # a part the package cannot serialize or decode
            log.debug("cannot decode part %s", self.part_id, exc_info=True)
            return b""
        return payload if isinstance(payload, bytes) else b""

    @property
    def content_type(self) -> str:
        return self.message.get_content_type()

    @property
    def content_id(self) -> str:
        return _header_text(self.message, "Content-ID").strip().strip("<>")

    @property
    def filename(self) -> str:
        try:
            return self.message.get_filename() or ""
        except Exception:  # an RFC 2231 name the package cannot decode
            return ""

    @property
    def is_attachment(self) -> bool:
        # The rule the summary's attachment count uses, so the two agree.
        try:
            return is_attachment(self.message)
        except Exception:
            return False

    def text(self) -> str:
        """The content as text, in its declared charset (UTF-8 if unknown)."""
        charset = self.message.get_content_charset() or "utf-8"
        try:
            return self.content.decode(charset, errors="replace")
        except (LookupError, UnicodeError):  # an unknown charset, or one such as idna
            return self.content.decode("utf-8", errors="replace")

    def describe(self) -> dict[str, Any]:
        """Mailpit's Attachment object (sizes and checksums of the decoded content)."""
        content = self.content
        return {
            "PartID": self.part_id,
            "FileName": self.filename or self.content_id,
            "ContentType": self.content_type,
            "ContentID": self.content_id,
            "Size": len(content),
            "Checksums": {
                "MD5": hashlib.md5(content, usedforsecurity=False).hexdigest(),
                "SHA1": hashlib.sha1(content, usedforsecurity=False).hexdigest(),
                "SHA256": hashlib.sha256(content).hexdigest(),
            },
        }


def parts(raw: bytes) -> list[Part]:
    """The leaf parts of a raw message; none if it cannot be parsed at all."""
    try:
        return [Part(part_id, part) for part_id, part in walk_parts(parse(raw))]
    except Exception:
        log.debug("cannot parse a message for its parts", exc_info=True)
        return []


def find_part(raw: bytes, part_id: str) -> Part | None:
    return next((part for part in parts(raw) if part.part_id == part_id), None)


@dataclass
class Bodies:
    """A message's text and HTML bodies and its other parts, sorted as Mailpit sorts them."""

    text: str = ""
    html: str = ""
    inline: list[Part] = field(default_factory=list)
    attachments: list[Part] = field(default_factory=list)


def bodies(raw: bytes) -> Bodies:
    """The first text/plain and text/html bodies; inline parts; attachments.

    As in Mailpit, a message without a text body gets one made from its HTML,
    and an inline part is listed only if it has a Content-ID or a file name.
    """
    result = Bodies()
    text = html = None
    for part in parts(raw):
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


def message_detail(row: sqlite3.Row, raw: bytes) -> dict[str, Any]:
    """Mailpit's Message: the summary's fields, plus what needs the raw bytes."""
    fields = summary(row)
    found = bodies(raw)
    headers = _first_values(raw)
    unsubscribe = headers.get("list-unsubscribe", "")
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
            "Links": _unsubscribe_links(unsubscribe),
            "Errors": "",
            "HeaderPost": headers.get("list-unsubscribe-post", ""),
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


_UNSUBSCRIBE_LINK = re.compile(r"<\s*((?:mailto:|https?://)[^>\s]+)\s*>", re.IGNORECASE)


def _unsubscribe_links(header: str) -> list[str]:
    """The mailto: and http(s) links of a List-Unsubscribe header (RFC 2369), one of each."""
    links: list[str] = []
    for link in _UNSUBSCRIBE_LINK.findall(header):
        kind = link.split(":", 1)[0].lower().rstrip("s")
        if all(other.split(":", 1)[0].lower().rstrip("s") != kind for other in links):
            links.append(link)
    return links


def headers_map(raw: bytes) -> dict[str, list[str]]:
    """Mailpit's headers response: canonical names, sorted, each with its values in order.

    Names are canonicalized as Go's ``textproto`` does ("Message-Id"),
    because that is what clients of Mailpit look up.
    """
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


def _header_text(message: Message, name: str) -> str:
    try:
        return str(message.get(name) or "")
    except Exception:  # a value the modern policy cannot parse
        return ""
