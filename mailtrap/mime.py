"""MIME-to-summary conversion: the fields the inbox lists and searches.

Pure functions over bytes. Parsing uses the ``compat32`` policy, an order of
magnitude cheaper than ``policy.default``, and decodes only the text bodies:
attachments are counted and named, never decoded, at ingest.
"""

from __future__ import annotations

import datetime
import html
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import getaddresses, parsedate_to_datetime

MAX_MIME_DEPTH = 20
MAX_MIME_PARTS = 1000
MAX_SEARCH_TEXT = 1024 * 1024  # characters of body text kept for the full-text index
SNIPPET_LENGTH = 250


class _UTF8HeadersPolicy(Compat32):
    """compat32, but raw 8-bit header bytes read as UTF-8 (RFC 6532).

    Plain compat32 hands such a value back as a ``Header`` whose text shows
    every non-ASCII byte as U+FFFD.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # the parser kept 8-bit bytes as surrogate escapes
            return value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
        return value


_parser = BytesParser(policy=_UTF8HeadersPolicy())


@dataclass
class Summary:
    """What the list view and the search index need of one message."""

    message_id: str = ""
    subject: str = ""
    from_: dict[str, str] | None = None
    to: list[dict[str, str]] = field(default_factory=list)
    cc: list[dict[str, str]] = field(default_factory=list)
    bcc: list[dict[str, str]] = field(default_factory=list)
    reply_to: list[dict[str, str]] = field(default_factory=list)
    date: str | None = None
    attachments: int = 0
    attachment_names: list[str] = field(default_factory=list)
    text: str = ""
    snippet: str = ""
    tags: list[str] = field(default_factory=list)
    parse_error: str | None = None


def summarize(raw: bytes, rcpt_tos: Sequence[str] = ()) -> Summary:
    """Summarize a raw message; a message that cannot be parsed gets empty fields.

    Envelope recipients missing from To and Cc are recorded as Bcc, which is
    how a blind copy shows up in captured mail.
    """
    try:
        summary = _summarize(_parser.parsebytes(raw))
    except Exception as error:  # any parser or decoder failure: the raw bytes are still kept
        summary = Summary(parse_error=f"{type(error).__name__}: {error}")
    visible = {a["Address"].lower() for a in summary.to + summary.cc + summary.bcc}
    summary.bcc += [
        {"Name": "", "Address": rcpt} for rcpt in rcpt_tos if rcpt.lower() not in visible
    ]
    return summary


def _summarize(message: Message) -> Summary:
    from_ = _addresses(message, "From")
    summary = Summary(
        message_id=_decoded(message.get("Message-ID")).strip().strip("<>"),
        subject=_decoded(message.get("Subject")),
        from_=from_[0] if from_ else None,
        to=_addresses(message, "To"),
        cc=_addresses(message, "Cc"),
        bcc=_addresses(message, "Bcc"),
        reply_to=_addresses(message, "Reply-To"),
        date=_rfc3339(message.get("Date")),
        tags=_tags(message.get("X-Tags")),
    )
    text = html_body = None
    for part in _leaf_parts(message):
        if _is_attachment(part):
            summary.attachments += 1
            name = _filename(part)
            if name:
                summary.attachment_names.append(_decoded(name))
        elif part.get_content_type() == "text/plain" and text is None:
            text = _decoded_body(part)
        elif part.get_content_type() == "text/html" and html_body is None:
            html_body = _decoded_body(part)
    body = text if text is not None else html_to_text(html_body or "")
    summary.text = body[:MAX_SEARCH_TEXT]
    summary.snippet = " ".join(body[: SNIPPET_LENGTH * 8].split())[:SNIPPET_LENGTH]
    return summary


def _leaf_parts(message: Message) -> Iterator[Message]:
    """Yield the non-multipart parts, depth-first, within the depth and count limits.

    An attached message (message/rfc822) is one leaf: its insides belong to it.
    """
    stack: list[tuple[Message, int]] = [(message, 0)]
    seen = 0
    while stack:
        part, depth = stack.pop()
        seen += 1
        if seen > MAX_MIME_PARTS:
            return
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            if depth < MAX_MIME_DEPTH:
                children = part.get_payload()
                stack.extend((child, depth + 1) for child in reversed(children))
        else:
            yield part


def _is_attachment(part: Message) -> bool:
    disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    if disposition == "attachment":
        return True
    if disposition == "inline" or part.get_content_maintype() == "text":
        return False
    # A non-text part with a name and no inline Content-ID is meant to be saved.
    return _filename(part) is not None and part.get("Content-ID") is None


def _filename(part: Message) -> str | None:
    try:
        return part.get_filename()
    except UnicodeError:  # an RFC 2231 name in a codec that refuses errors="replace"
        return ""


def _decoded_body(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except (LookupError, UnicodeError):  # an unknown charset, or a codec such as idna
        return payload.decode("utf-8", errors="replace")


_FOLDING = re.compile(r"\r?\n[ \t]")


def _decoded(value: object) -> str:
    """Decode an RFC 2047 header value; undecodable words are kept as they are."""
    if value is None:
        return ""
    text = _FOLDING.sub(" ", str(value))
    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError, MessageError):
        # MessageError: HeaderParseError (bad base64) and CharsetError (bad charset name)
        return text


def _addresses(message: Message, name: str) -> list[dict[str, str]]:
    values = [str(v) for v in message.get_all(name, [])]
    if not values:
        return []
    return [
        {"Name": _decoded(display), "Address": address}
        for display, address in getaddresses([_FOLDING.sub(" ", v) for v in values])
        if address
    ]


def _rfc3339(value: object) -> str | None:
    if value is None:
        return None
    try:
        moment = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # "-0000": UTC, local offset unknown (RFC 5322 3.3)
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.isoformat()


def _tags(value: object) -> list[str]:
    if value is None:
        return []
    return sorted({tag.strip() for tag in _decoded(value).split(",") if tag.strip()})


_INVISIBLE = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def html_to_text(markup: str) -> str:
    """The visible words of an HTML body, for snippets and the search index."""
    return html.unescape(_TAG.sub(" ", _INVISIBLE.sub(" ", markup)))
