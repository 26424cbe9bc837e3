"""MIME-to-summary conversion: the fields the inbox lists and searches.

Pure functions over bytes. Only header blocks go through the standard
``email`` parser (with the cheap ``compat32`` policy); multipart bodies are cut
at their boundaries with ``bytes.find``, so an attachment's content is never
fed through the parser line by line, nor decoded: attachments are counted and
named, and only the text bodies are decoded.

Everything here runs in time linear in the message, whatever it holds: where
the standard library is superlinear (header decoding, address lists, MIME
parameters) its input is capped, and reading the body stops when the
message's CPU budget is spent. The header fields are read first and always.
"""

from __future__ import annotations

import datetime
import mmap
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import Compat32
from email.utils import getaddresses, parsedate_to_datetime

from mailtrap.html_text import SNIPPET_BREAKS, html_to_text

MAX_MIME_DEPTH = 20
MAX_MIME_PARTS = 1000
MAX_SEARCH_TEXT = 1024 * 1024  # characters of body text kept for the full-text index
SNIPPET_BYTES = 200  # Mailpit's snippets: at most 200 bytes of UTF-8, then "..."
# Characters of HTML text read for a snippet: the snippet never needs more.
_SNIPPET_SOURCE = 16 * SNIPPET_BYTES
MAX_HEADER_TEXT = 64 * 1024  # characters of header fields kept for `header:` searches
# Bytes of a header block parsed (Postfix's header_size_limit is 100 KB): bounds the
# steps the CPU budget cannot interrupt, above all the top-level header fields.
MAX_HEADER_BLOCK = 128 * 1024
# Characters of one header value that go through RFC 2047 decoding (the rest is kept as
# it is), in pieces of _DECODED_PIECE: decode_header() is quadratic in the length of a
# line full of "=?" (its pattern looks for each one's "?=" to the end of the line).
MAX_DECODED_HEADER = 16 * 1024
_DECODED_PIECE = 1024
# Characters of one address field (From, To, ...; all its values) read for addresses:
# getaddresses() costs some 20 us per address.
MAX_ADDRESS_TEXT = 16 * 1024
# Characters of Content-Type and Content-Disposition that MIME parameters are read
# from: the standard parser's parameter splitting is quadratic in their number.
MAX_PARAMETER_HEADER = 8 * 1024
# Bytes of one text part decoded for the index, which keeps MAX_SEARCH_TEXT characters:
# this bounds the memory and time of decoding a body of any size.
MAX_TEXT_BODY = 4 * MAX_SEARCH_TEXT
# CPU seconds (this thread's) that reading one message's body may take. An ordinary
# message takes a few milliseconds; the costliest honest one, a multi-megabyte HTML
# body, 0.25-0.5 s on a loaded 2-core machine (up to MAX_SEARCH_TEXT characters of
# text are read), so twice that. A hostile message costs at most about this, then
# keeps its header fields and what was read so far.
DEFAULT_CPU_BUDGET = 1.0

Raw = bytes | mmap.mmap  # a message in memory, or spooled to a file and mapped


class _UTF8HeadersPolicy(Compat32):
    """compat32, but raw 8-bit header bytes read as UTF-8 (RFC 6532).

    Plain compat32 hands such a value back as a ``Header`` whose text shows
    every non-ASCII byte as U+FFFD.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        if len(value) > MAX_PARAMETER_HEADER and name.lower() in _PARAMETER_HEADERS:
            value = value[:MAX_PARAMETER_HEADER]  # what get_param() and friends read
        return _utf8(value)


_PARAMETER_HEADERS = ("content-type", "content-disposition")


def _utf8(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # the parser kept 8-bit bytes as surrogate escapes
        return value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    return value


_header_parser = BytesHeaderParser(policy=_UTF8HeadersPolicy())


class MimeLimitError(ValueError):
    """The MIME structure is nested too deep or has too many parts to be summarized."""


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
    inline: int = 0  # parts with Content-Disposition: inline (Mailpit's has:inline)
    attachment_names: list[str] = field(default_factory=list)
    text: str = ""
    snippet: str = ""
    tags: list[str] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)  # top-level fields, decoded
    parse_error: str | None = None


class _BudgetSpent(Exception):
    """The message's CPU budget ran out."""


class _Budget:
    """A deadline in this thread's CPU time, checked between bounded steps of work."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._deadline = time.thread_time() + seconds

    def check(self) -> None:
        if time.thread_time() > self._deadline:
            raise _BudgetSpent


def summarize(
    raw: Raw, rcpt_tos: Sequence[str] = (), *, cpu_budget: float = DEFAULT_CPU_BUDGET
) -> Summary:
    """Summarize a raw message; what cannot be parsed is left empty, with the reason.

    The header fields come first and are always there when the header block
    parses. Reading the body stops past the MIME part or depth limit, or when
    ``cpu_budget`` seconds of this thread's CPU time are spent; what was read
    before is kept and ``parse_error`` says why the rest is not. Envelope
    recipients missing from To and Cc are recorded as Bcc, which is how a
    blind copy shows up in captured mail.
    """
    budget = _Budget(cpu_budget)
    try:
        message, body, complete = _top_level(raw)
        summary = _header_summary(message)
    except Exception as error:  # any parser or decoder failure: the raw bytes are still kept
        summary = Summary(parse_error=f"{type(error).__name__}: {error}")
    else:
        if complete:
            summary.parse_error = _read_body(summary, raw, message, body, budget)
        else:
            summary.parse_error = (
                f"header block longer than {MAX_HEADER_BLOCK // 1024} KiB; "
                "the fields after that and the body are not indexed"
            )
    visible = {a["Address"].lower() for a in summary.to + summary.cc + summary.bcc}
    summary.bcc += [
        {"Name": "", "Address": rcpt} for rcpt in rcpt_tos if rcpt.lower() not in visible
    ]
    return summary


def _top_level(raw: Raw) -> tuple[Message, Span, bool]:
    """The top-level header fields, the body's span, and whether the header block was whole.

    At most MAX_HEADER_BLOCK bytes of header block are parsed.
    """
    length = len(raw)
    message, body = _parse_part(raw, (0, length))
    return message, body, not (body[0] == length > MAX_HEADER_BLOCK)


_SUMMARY_FIELDS = ("message-id", "subject", "from", "to", "cc", "bcc", "reply-to", "date", "x-tags")


def _header_summary(message: Message) -> Summary:
    # One pass over the fields: Message.get() walks all of them for each name asked.
    values: dict[str, list[str]] = {name: [] for name in _SUMMARY_FIELDS}
    for name, value in message.raw_items():
        found = values.get(name.lower())
        if found is not None:
            found.append(_utf8(value))

    def first(name: str) -> str | None:
        return values[name][0] if values[name] else None

    from_ = _addresses(values["from"])
    return Summary(
        message_id=_decoded(first("message-id")).strip().strip("<>"),
        subject=_decoded(first("subject")),
        from_=from_[0] if from_ else None,
        to=_addresses(values["to"]),
        cc=_addresses(values["cc"]),
        bcc=_addresses(values["bcc"]),
        reply_to=_addresses(values["reply-to"]),
        date=_rfc3339(first("date")),
        tags=_tags(first("x-tags")),
        headers=_searchable_headers(message),
    )


def is_mailpit_attachment(content_type: str, disposition: str) -> bool:
    """An attachment as Mailpit (enmime) lists it: a download, or bytes of no known type."""
    return disposition == "attachment" or content_type == "application/octet-stream"


def is_other_part(content_type: str, disposition: str) -> bool:
    """A part without a disposition that is no body: Mailpit lists it with the inline parts."""
    return disposition == "" and content_type not in (
        "application/octet-stream",
        "text/plain",
        "text/html",
    )


def content_disposition(part: Message) -> str:
    return (part.get("Content-Disposition") or "").split(";")[0].strip().lower()


def _read_body(
    summary: Summary, raw: Raw, message: Message, body: Span, budget: _Budget
) -> str | None:
    """Count the attachments and inline parts and index the body text into ``summary``.

    The text is Mailpit's: the first plain-text part of a multipart/alternative,
    else every plain-text part that is not an attachment, joined by ``--``
    lines. Returns why it stopped short, if it did.
    """
    texts: list[str] = []
    markup = None
    html_snippet = False
    alternative = message.get_content_type() == "multipart/alternative"
    single = message.get_content_maintype() != "multipart"
    stopped: str | None = None
    try:
        try:
            for part, (start, end) in _leaf_parts(raw, message, body):
                budget.check()
                content_type = part.get_content_type()
                disposition = content_disposition(part)
                if single and part.get_content_maintype() != "text":
                    # A message that is only a file: an attachment, inline if it says so.
                    disposition = disposition or "attachment"
                if is_mailpit_attachment(content_type, disposition):
                    summary.attachments += 1
                    name = _filename(part)
                    if name:
                        summary.attachment_names.append(_decoded(name))
                if disposition == "inline":
                    summary.inline += 1
                if disposition == "attachment":
                    continue
                if content_type == "text/plain" and not (alternative and texts):
                    if sum(map(len, texts)) < MAX_SEARCH_TEXT:
                        texts.append(_decoded_body(part, raw, start, end))
                elif content_type == "text/html" and markup is None:
                    markup = _decoded_body(part, raw, start, end)
        except MimeLimitError as error:  # the parts before the limit still count
            stopped = f"MimeLimitError: {error}; the parts after the limit are not indexed"
        budget.check()
        if markup and markup.strip():  # Mailpit's snippet is the HTML's, even when empty
            html_snippet = True
            summary.snippet = snippet(
                html_to_text(markup, budget.check, limit=_SNIPPET_SOURCE, breaks=SNIPPET_BREAKS)
            )
        if not texts and markup:
            texts.append(html_to_text(markup, budget.check, limit=MAX_SEARCH_TEXT))
    except _BudgetSpent:
        return f"CPU budget of {budget.seconds:g} s exceeded while reading the body; " + (
            "body text not indexed" if not texts else "the parts after that are not indexed"
        )
    except Exception as error:  # a decoder failure costs the body, not the header fields
        return f"{type(error).__name__}: {error}"
    finally:
        text = "\n--\n".join(texts)
        summary.text = text[:MAX_SEARCH_TEXT]
        if not html_snippet:
            summary.snippet = snippet(text[: SNIPPET_BYTES * 16])
    return stopped


def snippet(text: str) -> str:
    """Mailpit's snippet of a text: white space made single, at most 200 bytes, then "..."."""
    text = " ".join(text.replace("\ufeff", " ").split())
    data = text.encode("utf-8")
    if len(data) <= SNIPPET_BYTES:
        return text
    # As Mailpit cuts: back to the start of the character at the limit, and one before
    # if that one began a multi-byte character (so one that ends at the limit goes too).
    cut = SNIPPET_BYTES
    while cut > 0 and data[cut - 1] & 0xC0 == 0x80:
        cut -= 1
    if cut > 0 and data[cut - 1] & 0xC0 == 0xC0:
        cut -= 1
    return data[:cut].decode("utf-8") + "..."


Span = tuple[int, int]  # start and end offsets into the raw message


def _leaf_parts(raw: bytes, message: Message, body: Span) -> Iterator[tuple[Message, Span]]:
    """Yield (headers, body span) of the non-multipart parts, depth-first.

    Parts are located by offsets into ``raw``, never copied, so a large
    attachment costs no memory. An attached message (message/rfc822) is one
    leaf: its insides belong to it. Past the depth or part-count limit,
    :class:`MimeLimitError`.
    """
    # Children are parsed when popped, so the part limit also bounds the parsing.
    stack: list[tuple[Message | Span, Span, int]] = [(message, body, 0)]
    seen = 0
    while stack:
        part_or_span, part_body, depth = stack.pop()
        seen += 1
        if seen > MAX_MIME_PARTS:
            raise MimeLimitError(f"more than {MAX_MIME_PARTS} MIME parts")
        if isinstance(part_or_span, Message):
            part = part_or_span
        else:
            part, part_body = _parse_part(raw, part_or_span)
        boundary = part.get_boundary() if part.get_content_maintype() == "multipart" else None
        if boundary is None:
            yield part, part_body
            continue
        if depth >= MAX_MIME_DEPTH:
            raise MimeLimitError(f"MIME parts nested deeper than {MAX_MIME_DEPTH} levels")
        spans = multipart_spans(raw, boundary, part_body, limit=MAX_MIME_PARTS - seen + 1)
        stack.extend((span, span, depth + 1) for span in reversed(spans))


@dataclass(frozen=True)
class PartInfo:
    """Where one leaf part lies in the raw message, and what reading it needs to know."""

    part_id: str  # Mailpit's PartID: "1", "2.1", ...; "0" for a message of one part
    header: Span
    body: Span
    content_type: str
    charset: str  # "" when none is declared
    encoding: str  # Content-Transfer-Encoding, lower case; "" when none
    disposition: str  # "attachment", "inline" or ""
    filename: str  # decoded; "" when none
    content_id: str  # without its angle brackets
    attachment: bool  # the rule of the summary's attachment count


def index_parts(raw: bytes) -> tuple[Span, list[PartInfo]]:
    """The span of the top-level header block, and every leaf part, depth-first.

    Numbered as Mailpit (enmime) numbers parts. Within the part and depth
    limits; past them the rest is left out (no error), so reading never costs
    more than the limits allow. Each part's headers are parsed only when the
    walk reaches it.
    """
    root, root_body = _parse_part(raw, (0, len(raw)))
    header = (0, root_body[0])
    if _children(raw, root, root_body, limit=1) is None:
        return header, [_part_info("0", root, header, root_body)]
    found: list[PartInfo] = []
    # (PartID, span, depth, default type): children are parsed when popped, not when found.
    stack: list[tuple[str, Span, int, str]] = [("", (0, len(raw)), 0, "text/plain")]
    seen = 0
    while stack:
        part_id, span, depth, default_type = stack.pop()
        seen += 1
        if seen > MAX_MIME_PARTS:
            break
        part, body = (root, root_body) if not part_id else _parse_part(raw, span)
        part.set_default_type(default_type)
        children = _children(raw, part, body, limit=MAX_MIME_PARTS - seen + 1)
        if children is None:
            found.append(_part_info(part_id, part, (span[0], body[0]), body))
            continue
        if depth >= MAX_MIME_DEPTH:
            continue
        # As the standard parser does: a digest's parts are messages unless they say otherwise.
        digest = part.get_content_type() == "multipart/digest"
        child_type = "message/rfc822" if digest else "text/plain"
        prefix = f"{part_id}." if part_id else ""
        stack.extend(
            (f"{prefix}{number}", child, depth + 1, child_type)
            for number, child in reversed(list(enumerate(children, 1)))
        )
    return header, found


def _children(raw: bytes, part: Message, body: Span, limit: int) -> list[Span] | None:
    """The spans of a multipart's parts; None for a leaf.

    A multipart whose body has no delimiter of its boundary is a leaf, as the
    standard parser has it (one part of text).
    """
    if part.get_content_maintype() != "multipart":
        return None
    boundary = part.get_boundary()
    if boundary is None:
        return None
    return multipart_spans(raw, boundary, body, limit=limit) or None


def _part_info(part_id: str, part: Message, header: Span, body: Span) -> PartInfo:
    disposition = content_disposition(part)
    encoding = "".join(str(part.get("Content-Transfer-Encoding", "")).splitlines())
    return PartInfo(
        part_id=part_id,
        header=header,
        body=body,
        content_type=part.get_content_type(),
        charset=part.get_content_charset() or "",
        encoding=encoding.strip().lower(),
        disposition=disposition if disposition in ("attachment", "inline") else "",
        filename=_decoded(_filename(part) or ""),
        content_id=_decoded(part.get("Content-ID")).strip().strip("<>"),
        attachment=is_mailpit_attachment(part.get_content_type(), disposition),
    )


_HEADER_END = re.compile(rb"\r?\n\r?\n")


def _parse_part(raw: bytes, span: Span) -> tuple[Message, Span]:
    """Parse the header block of the part at ``span``; return it with its body's span."""
    start, end = span
    if raw[start : min(start + 2, end)].startswith((b"\r\n", b"\n")):  # no header fields at all
        return Message(policy=_header_parser.parser.policy), (raw.find(b"\n", start) + 1, end)
    limit = min(end, start + MAX_HEADER_BLOCK)  # a longer header block: its first bytes only
    header_end = _HEADER_END.search(raw, start, limit)
    if header_end is None:
        return _header_parser.parsebytes(raw[start:limit]), (end, end)
    return _header_parser.parsebytes(raw[start : header_end.start()]), (header_end.end(), end)


def split_multipart(body: bytes, boundary: str) -> list[bytes]:
    """The parts of a multipart body, as bytes (see :func:`multipart_spans`)."""
    return [body[start:end] for start, end in multipart_spans(body, boundary, (0, len(body)))]


def multipart_spans(
    raw: bytes, boundary: str, body: Span, *, limit: int | None = None
) -> list[Span]:
    """The parts of the multipart body at ``body`` (RFC 2046 5.1.1), as spans.

    ``limit``: no more than that many (the first ones).

    Preamble and epilogue are left out. A delimiter is ``--boundary`` at the
    start of a line, followed only by white space (or ``--`` for the last
    one); the line break before it belongs to the delimiter. A body missing
    its closing delimiter ends at the end of the data, as the standard parser
    does too.
    """
    delimiter = b"--" + boundary.encode("utf-8", "surrogateescape")
    body_start, body_end = body
    spans: list[Span] = []
    part_start: int | None = None
    position = body_start
    while (found := raw.find(delimiter, position, body_end)) != -1:
        position = found + 1
        if found > body_start and raw[found - 1] != 0x0A:  # not at the start of a line
            continue
        line_end = raw.find(b"\n", found, body_end)
        line_end = body_end if line_end == -1 else line_end + 1
        rest = raw[found + len(delimiter) : line_end]
        closing = rest.startswith(b"--")
        if not closing and rest.strip():
            continue  # a longer boundary that merely starts with ours
        if part_start is not None:
            crlf = found - 2 >= part_start and raw[found - 2 : found] == b"\r\n"
            spans.append((part_start, max(found - (2 if crlf else 1), part_start)))
        if closing or len(spans) == limit:
            return spans
        part_start = position = line_end
    if part_start is not None:
        spans.append((part_start, body_end))
    return spans


def header_fields(raw: Raw, *, decoded: bool = False) -> list[tuple[str, str]]:
    """The top-level header fields of a message, in order, each value on one line.

    ``decoded``: RFC 2047 words decoded, and at most MAX_HEADER_TEXT characters
    in all (what the ``header:`` search keeps); else the values as they are.
    Only the first MAX_HEADER_BLOCK bytes of the header block are read.
    """
    try:
        message, _, _ = _top_level(raw)
        if decoded:
            return _searchable_headers(message)
        return [(name, _unfolded(_utf8(value))) for name, value in message.raw_items()]
    except Exception:  # as in summarize(): mail that cannot be parsed has no fields
        return []


def _searchable_headers(message: Message) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    budget = MAX_HEADER_TEXT
    for name, raw_value in message.raw_items():  # raw: not cut as MIME parameters are
        value = _utf8(raw_value)
        # Decoding only what is encoded: most values are plain, and this runs at ingest.
        text = _decoded(value) if "=?" in value else _unfolded(value)
        budget -= len(name) + len(text)
        if budget < 0:
            break
        fields.append((name, text))
    return fields


def _unfolded(value: object) -> str:
    """A folded value on one line, each line break and its white space one space.

    String operations, not a pattern: ``[ \t]*\r?\n[ \t]+`` rescans every run of
    blanks from each of its characters (a 47 KB value of spaces took 16 s).
    """
    lines = str(value).split("\n")
    joined = [lines[0]]
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):  # a continuation line
            previous = joined[-1]
            joined[-1] = (previous[:-1] if previous.endswith("\r") else previous).rstrip(" \t")
            joined.append(" ")
            joined.append(line.lstrip(" \t"))
        else:
            joined.append("\n")
            joined.append(line)
    return "".join(joined).strip()


def _filename(part: Message) -> str | None:
    try:
        return part.get_filename()
    except UnicodeError:  # an RFC 2231 name in a codec that refuses errors="replace"
        return ""


def _decoded_body(part: Message, raw: Raw, start: int, end: int) -> str:
    # Decoded here, for text parts only (quoted-printable, base64), at most MAX_TEXT_BODY.
    body = raw[start : min(end, start + MAX_TEXT_BODY)]
    part.set_payload(body.decode("ascii", "surrogateescape"))
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
    """Decode an RFC 2047 header value; undecodable words are kept as they are.

    Only the first MAX_DECODED_HEADER characters are decoded, a piece of about
    _DECODED_PIECE at a time, cut at blanks (an encoded word is at most 75);
    the rest follows as it is.
    """
    if value is None:
        return ""
    text = _FOLDING.sub(" ", str(value))
    if len(text) <= _DECODED_PIECE:
        return _decoded_piece(text)
    pieces: list[str] = []
    start, limit = 0, min(len(text), MAX_DECODED_HEADER)
    while start < limit:
        end = start + _DECODED_PIECE
        if end < limit:
            cut = text.rfind(" ", start + 1, end)
            end = cut if cut > start else end
        piece = text[start:end]
        if start and piece[:1] == " ":  # the blank between two pieces, which decoding drops
            pieces.append(" ")
            piece = piece[1:]
        pieces.append(_decoded_piece(piece))
        start = end
    return "".join(pieces) + text[limit:]


def _decoded_piece(text: str) -> str:
    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError, MessageError):
        # MessageError: HeaderParseError (bad base64) and CharsetError (bad charset name)
        return text


def _addresses(values: list[str]) -> list[dict[str, str]]:
    """The addresses of all the values of one address field, in order."""
    if not values:
        return []
    text = ", ".join(_FOLDING.sub(" ", value) for value in values)
    if len(text) > MAX_ADDRESS_TEXT:  # cut after a whole address where there is one
        cut = text.rfind(",", 0, MAX_ADDRESS_TEXT)
        text = text[: cut if cut > 0 else MAX_ADDRESS_TEXT]
    return [
        {"Name": _decoded(display), "Address": address}
        for display, address in getaddresses([text])
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
