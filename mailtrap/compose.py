"""A message composed from Mailpit's send request (``POST /api/v1/send``).

Pure: the decoded JSON body in, the raw message and its envelope out. Every
field is checked (type, length, no control characters or unpaired surrogates
in anything that becomes a header); anything wrong raises :class:`ComposeError`
with a message for the client, so nothing in the request can add a header of
its own.

Non-ASCII header text is encoded here (RFC 2047, by the stdlib's
``email.header.Header``) and stored pre-folded: the ``email`` package's own
folder costs seconds for a few kilobytes of non-ASCII display names.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from dataclasses import dataclass
from email import policy
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Any

from mailtrap.errors import MailtrapError

MAX_RECIPIENTS = 1000
MAX_ATTACHMENTS = 100
MAX_HEADERS = 50  # extra fields in "Headers"
MAX_TAGS = 100
MAX_ADDRESS = 254  # RFC 5321's path limit, less the angle brackets
MAX_NAME = 256  # display names, file names, content types and IDs
MAX_HEADER_VALUE = 4096
# Every line of the header is ours and already folded: the generator must keep it as is.
_POLICY = policy.SMTP.clone(refold_source="none")  # CRLF line ends, as over SMTP
# C0 controls (tab aside), DEL, and unpaired surrogates: nothing a header may carry.
_NOT_HEADER_TEXT = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Set by the message itself; a request may not override them through "Headers".
RESTRICTED_HEADERS = frozenset(
    ["to", "from", "cc", "bcc", "reply-to", "date", "subject", "content-type", "mime-version"]
)


class ComposeError(MailtrapError, ValueError):
    """A send request that is not valid: a missing sender, a bad address, bad base64..."""


@dataclass
class Composed:
    """The raw message and its envelope."""

    raw: bytes
    mail_from: str
    rcpt_tos: list[str]


def compose(request: Any) -> Composed:
    """Build the message a send request describes (see Mailpit's SendRequest)."""
    body = _object(request, "the request body")
    message = EmailMessage(policy=_POLICY)
    sender = _person(body.get("From"), "From")
    message.set_raw("From", _address_text(sender))
    recipients: list[str] = []
    for field, header in (("To", "To"), ("Cc", "Cc"), ("ReplyTo", "Reply-To")):
        people = [_person(item, field) for item in _list(body.get(field), field, MAX_RECIPIENTS)]
        if people:
            message.set_raw(header, ",\r\n ".join(map(_address_text, people)))
        if field != "ReplyTo":
            recipients += [person.addr_spec for person in people]
    # Bcc: the envelope only, as a mail client sends it.
    bcc = _list(body.get("Bcc"), "Bcc", MAX_RECIPIENTS)
    recipients += [_address(item, "", "Bcc").addr_spec for item in bcc]
    if len(recipients) > MAX_RECIPIENTS:
        raise ComposeError(f"more than {MAX_RECIPIENTS} recipients")
    _set(message, "Subject", _string(body.get("Subject"), "Subject"))
    message["Date"] = formatdate(localtime=True)
    tags = [
        _header_text(tag, "Tags", MAX_NAME) for tag in _list(body.get("Tags"), "Tags", MAX_TAGS)
    ]
    if tags:
        _set(message, "X-Tags", ", ".join(tags))
    _add_headers(message, body.get("Headers"), restricted_tags=bool(tags))
    if "Message-ID" not in message:
        message["Message-ID"] = make_msgid(domain="mailtrap")
    _add_bodies(message, body)
    return Composed(message.as_bytes(), sender.addr_spec, recipients)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ComposeError(f"{what} must be a JSON object")
    return value


def _list(value: Any, what: str, maximum: int) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ComposeError(f"{what} must be an array")
    if len(value) > maximum:
        raise ComposeError(f"{what} may hold at most {maximum} items")
    return value


def _string(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ComposeError(f"{what} must be a string")
    if _SURROGATE.search(value):  # valid JSON ("\ud800"), but no encoding can carry it
        raise ComposeError(f"{what} holds an unpaired surrogate")
    return value


def _header_text(value: Any, what: str, maximum: int) -> str:
    """A string that may go into a header: no line breaks or other controls, not too long."""
    text = _string(value, what)
    if len(text) > maximum:
        raise ComposeError(f"{what} may have at most {maximum} characters")
    bad = _NOT_HEADER_TEXT.search(text)
    if bad:
        raise ComposeError(f"invalid {what}: it holds a control character ({bad[0]!r})")
    return text


def _person(value: Any, what: str) -> Address:
    """``{"Email": ..., "Name": ...}`` as an address."""
    person = _object(value, what)
    email = _header_text(person.get("Email"), f"{what}.Email", MAX_ADDRESS)
    if not email:
        raise ComposeError(f"{what} needs an Email")
    return _address(email, _header_text(person.get("Name"), f"{what}.Name", MAX_NAME), what)


def _address(email: Any, name: str, what: str) -> Address:
    email = _header_text(email, what, MAX_ADDRESS)
    try:
        address = Address(display_name=name, addr_spec=email)
    except Exception as error:  # the header parser raises a handful of types
        raise ComposeError(f"invalid {what} address {email!r}: {error}") from None
    if not address.addr_spec.isascii():
        raise ComposeError(f"invalid {what} address {email!r}: only ASCII addresses are supported")
    return address


def _address_text(address: Address) -> str:
    """The address as header text, its display name encoded if it is not ASCII."""
    name, spec = address.display_name, address.addr_spec
    if name.isascii():
        return formataddr((name, spec))  # quoted as needed
    encoded = Header(name, "utf-8").encode(linesep="\r\n")
    short = "\r\n" not in encoded and len(encoded) + len(spec) < 70
    return f"{encoded}{' ' if short else chr(13) + chr(10) + ' '}<{spec}>"


def _set(message: EmailMessage, name: str, value: str) -> None:
    value = _header_text(value, name, MAX_HEADER_VALUE)
    if not value:
        return
    if value.isascii():
        message[name] = value  # the email package folds ASCII quickly
    else:
        message.set_raw(name, Header(value, "utf-8", header_name=name).encode(linesep="\r\n"))


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _add_headers(message: EmailMessage, value: Any, *, restricted_tags: bool) -> None:
    headers = _object(value, "Headers") if value is not None else {}
    if len(headers) > MAX_HEADERS:
        raise ComposeError(f"Headers may hold at most {MAX_HEADERS} fields")
    for name, header_value in headers.items():
        restricted = name.lower() in RESTRICTED_HEADERS or (
            restricted_tags and name.lower() == "x-tags"
        )
        if restricted:
            raise ComposeError(f"cannot overwrite header {name!r}")
        if not _HEADER_NAME.fullmatch(name) or len(name) > MAX_NAME:
            raise ComposeError(f"invalid header name {name[:MAX_NAME]!r}")
        if name in message:
            del message[name]
        _set(message, name, _string(header_value, f"Headers.{name}"))


def _add_bodies(message: EmailMessage, body: dict[str, Any]) -> None:
    text = _string(body.get("Text"), "Text")
    html = _string(body.get("HTML"), "HTML")
    # As Mailpit's builder: an HTML-only message has no empty text part.
    if html and not text:
        message.set_content(html, subtype="html")
    else:
        message.set_content(text)
        if html:
            message.add_alternative(html, subtype="html")
    for subtype, content in (("plain", text), ("html", html)):
        part = message.get_body(preferencelist=(subtype,))
        if content and isinstance(part, EmailMessage):
            _without_added_newline(part, content)
    attachments = _list(body.get("Attachments"), "Attachments", MAX_ATTACHMENTS)
    items = [_object(item, f"Attachments[{number}]") for number, item in enumerate(attachments, 1)]
    # Inline parts first: they go next to the HTML, before the message becomes multipart/mixed.
    items.sort(key=lambda item: not (html and item.get("ContentID")))
    for item in items:
        _attach(message, item, html=bool(html))


def _without_added_newline(part: EmailMessage, content: str) -> None:
    """The body exactly as sent: set_content() ends every text with a line break.

    Mailpit stores ``Text`` and ``HTML`` as given, and its clients compare them
    so; before a MIME boundary the last line break belongs to the boundary.
    """
    if content.endswith(("\n", "\r")):
        return
    encoding = str(part.get("Content-Transfer-Encoding", "")).lower()
    payload = part.get_payload()
    if encoding in ("base64", "8bit"):  # 8bit: its payload holds escaped bytes
        del part["Content-Transfer-Encoding"]
        part.set_payload(content, "utf-8")  # base64 of these bytes, nothing added
    elif isinstance(payload, str) and payload.endswith("\n"):
        part.set_payload(payload[:-1])


def _attach(message: EmailMessage, attachment: dict[str, Any], *, html: bool) -> None:
    filename = _header_text(attachment.get("Filename"), "Attachments.Filename", MAX_NAME)
    if not filename:
        raise ComposeError("every attachment needs a Filename")
    content = _string(attachment.get("Content"), "Attachments.Content")
    # A data: URL as FileReader.readAsDataURL() gives it is accepted too (as Mailpit does).
    encoded = content.rsplit(",", 1)[-1]
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ComposeError(f"the Content of {filename!r} is not valid base64") from None
    content_type = _string(attachment.get("ContentType"), "Attachments.ContentType")
    content_type = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    maintype, _, subtype = content_type.partition("/")
    valid = _HEADER_NAME.fullmatch(maintype) and _HEADER_NAME.fullmatch(subtype)
    if not valid or len(content_type) > MAX_NAME:
        raise ComposeError(f"invalid ContentType {content_type[:MAX_NAME]!r}")
    content_id = _header_text(attachment.get("ContentID"), "Attachments.ContentID", MAX_NAME)
    content_id = content_id.strip("<>")
    try:
        if content_id and html:
            # An inline image sits next to the HTML that shows it (multipart/related).
            related = message.get_body(preferencelist=("related", "html"))
            assert isinstance(related, EmailMessage)
            related.add_related(
                data,
                maintype,
                subtype,
                cid=f"<{content_id}>",
                filename=filename,
                disposition="inline",
            )
        else:
            message.add_attachment(data, maintype, subtype, filename=filename)
            if content_id:
                message.get_payload()[-1]["Content-ID"] = f"<{content_id}>"
    except ValueError as error:
        raise ComposeError(f"cannot attach {filename!r}: {error}") from None
