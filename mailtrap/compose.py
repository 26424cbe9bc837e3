"""A message composed from Mailpit's send request (``POST /api/v1/send``).

Pure: the decoded JSON body in, the raw message and its envelope out. Every
field is checked; anything wrong raises :class:`ComposeError` with a message
for the client. Header values go through the ``email`` package, which refuses
line breaks, so nothing in the request can add a header of its own.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from mailtrap.errors import MailtrapError

MAX_RECIPIENTS = 1000
MAX_ATTACHMENTS = 100
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
    message = EmailMessage(policy=policy.SMTP)  # CRLF line ends, as over SMTP
    sender = _person(body.get("From"), "From")
    message["From"] = sender
    recipients: list[str] = []
    for field, header in (("To", "To"), ("Cc", "Cc"), ("ReplyTo", "Reply-To")):
        people = [_person(item, field) for item in _list(body.get(field), field)]
        if people:
            message[header] = people
        if field != "ReplyTo":
            recipients += [person.addr_spec for person in people]
    # Bcc: the envelope only, as a mail client sends it.
    recipients += [_address(item, "", "Bcc").addr_spec for item in _list(body.get("Bcc"), "Bcc")]
    if len(recipients) > MAX_RECIPIENTS:
        raise ComposeError(f"more than {MAX_RECIPIENTS} recipients")
    _set(message, "Subject", _string(body.get("Subject"), "Subject"))
    message["Date"] = formatdate(localtime=True)
    tags = [_string(tag, "Tags") for tag in _list(body.get("Tags"), "Tags")]
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


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ComposeError(f"{what} must be an array")
    return value


def _string(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ComposeError(f"{what} must be a string")
    return value


def _person(value: Any, what: str) -> Address:
    """``{"Email": ..., "Name": ...}`` as an address."""
    person = _object(value, what)
    email = _string(person.get("Email"), f"{what}.Email")
    if not email:
        raise ComposeError(f"{what} needs an Email")
    return _address(email, _string(person.get("Name"), f"{what}.Name"), what)


def _address(email: Any, name: str, what: str) -> Address:
    email = _string(email, what)
    try:
        return Address(display_name=name, addr_spec=email)
    except Exception as error:  # the header parser raises a handful of types
        raise ComposeError(f"invalid {what} address {email!r}: {error}") from None


def _set(message: EmailMessage, name: str, value: str) -> None:
    if not value:
        return
    try:
        message[name] = value
    except ValueError as error:  # a line break in the value
        raise ComposeError(f"invalid {name}: {error}") from None


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _add_headers(message: EmailMessage, value: Any, *, restricted_tags: bool) -> None:
    headers = _object(value, "Headers") if value is not None else {}
    for name, header_value in headers.items():
        restricted = name.lower() in RESTRICTED_HEADERS or (
            restricted_tags and name.lower() == "x-tags"
        )
        if restricted:
            raise ComposeError(f"cannot overwrite header {name!r}")
        if not _HEADER_NAME.fullmatch(name):
            raise ComposeError(f"invalid header name {name!r}")
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
    attachments = _list(body.get("Attachments"), "Attachments")
    if len(attachments) > MAX_ATTACHMENTS:
        raise ComposeError(f"more than {MAX_ATTACHMENTS} attachments")
    items = [_object(item, f"Attachments[{number}]") for number, item in enumerate(attachments, 1)]
    # Inline parts first: they go next to the HTML, before the message becomes multipart/mixed.
    items.sort(key=lambda item: not (html and item.get("ContentID")))
    for item in items:
        _attach(message, item, html=bool(html))


def _attach(message: EmailMessage, attachment: dict[str, Any], *, html: bool) -> None:
    filename = _string(attachment.get("Filename"), "Attachments.Filename")
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
    if not (_HEADER_NAME.fullmatch(maintype) and _HEADER_NAME.fullmatch(subtype)):
        raise ComposeError(f"invalid ContentType {content_type!r}")
    content_id = _string(attachment.get("ContentID"), "Attachments.ContentID").strip("<>")
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
