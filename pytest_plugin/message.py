"""A captured message as a test sees it: pure code over the raw bytes and the envelope.

Nothing here talks to a server, so the in-process and the external mode give
tests the very same object; only the relay state, which changes after the
message arrived, is asked of the backend that read it (a :class:`RelaySource`).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from functools import cached_property
from pathlib import Path

from mailtrap import html_text
from mailtrap.pytest_plugin.checks import AuthCheck, CheckSource, HtmlCheck, LinkCheck, SpamCheck
from mailtrap.pytest_plugin.relay import SETTLED, Delivery, RelaySource, RelayWaitError
from mailtrap.pytest_plugin.relay import deliveries as parse_deliveries
from mailtrap.pytest_plugin.relay import wait_for_relay as wait_for_deliveries

DEFAULT_CODE_PATTERN = r"\b\d{4,8}\b"

_parser = BytesParser(policy=policy.default)
# A URL in plain text ends at white space, quotes or angle brackets; closing
# punctuation that ends a sentence is stripped afterwards.
_TEXT_URL = re.compile(r"""https?://[^\s<>"'`]+""", re.IGNORECASE)
_TRAILING_PUNCTUATION = ".,;:!?)]}'\""


@dataclass(frozen=True)
class Envelope:
    """What the SMTP session said, as opposed to what the headers say.

    ``tls`` and ``mail_from`` are None when the backend cannot know them (the
    HTTP API of an external server does not expose them).
    """

    mail_from: str | None
    rcpt_tos: tuple[str, ...]
    tls: bool | None = None
    auth_user: str | None = None


@dataclass(frozen=True)
class Attachment:
    """One attached file: its name (may be empty), content type and decoded bytes."""

    name: str
    content_type: str
    content: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.content)


class Headers(Mapping[str, str]):
    """The message's headers, case-insensitive; ``headers[name]`` is the first value."""

    def __init__(self, items: list[tuple[str, str]]):
        self._items = items

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name``, in message order."""
        wanted = name.lower()
        return [value for key, value in self._items if key.lower() == wanted]

    def items_in_order(self) -> list[tuple[str, str]]:
        """(name, value) pairs in message order, repeated names included."""
        return list(self._items)

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        return values[0]

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for key, _ in self._items:
            if key.lower() not in seen:
                seen.add(key.lower())
                yield key

    def __len__(self) -> int:
        return len({key.lower() for key, _ in self._items})

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Mail:
    """A message Mailtrap captured: parsed lazily from its raw bytes.

    Addresses (``from_``, ``to``, ``cc``, ``bcc``, ``reply_to``) are bare
    addresses such as ``"bob@example.com"``. ``bcc`` also holds the envelope
    recipients that the To and Cc headers do not name, as the server records them.
    """

    def __init__(
        self,
        id: str,
        raw: bytes,
        envelope: Envelope,
        received: datetime.datetime | None = None,
        checks: CheckSource | None = None,
        relay_source: RelaySource | None = None,
    ):
        self.id = id
        self.raw = raw
        self.envelope = envelope
        self.received = received
        self._checks = checks
        self.relay_source = relay_source

    # -- the envelope -----------------------------------------------------------

    @property
    def mail_from(self) -> str | None:
        """The envelope sender (SMTP ``MAIL FROM``); ``""`` for the null sender."""
        return self.envelope.mail_from

    @property
    def rcpt_tos(self) -> list[str]:
        """The envelope recipients (SMTP ``RCPT TO``): who the message was delivered to."""
        return list(self.envelope.rcpt_tos)

    @property
    def tls(self) -> bool | None:
        """Whether the message came over STARTTLS (None: the backend cannot tell)."""
        return self.envelope.tls

    @property
    def auth_user(self) -> str | None:
        """The user name the client logged in with (SMTP AUTH), or None."""
        return self.envelope.auth_user

    # -- the message ------------------------------------------------------------

    @cached_property
    def email(self) -> EmailMessage:
        """The whole message as a standard :class:`email.message.EmailMessage`."""
        message = _parser.parsebytes(self.raw)
        assert isinstance(message, EmailMessage)
        return message

    @cached_property
    def headers(self) -> Headers:
        return Headers([(name, str(value)) for name, value in self.email.items()])

    @property
    def subject(self) -> str:
        return self.headers.get("Subject", "")

    @property
    def from_(self) -> str:
        """The address in the From header ("" if there is none)."""
        addresses = self._addresses("From")
        return addresses[0] if addresses else ""

    @property
    def to(self) -> list[str]:
        return self._addresses("To")

    @property
    def cc(self) -> list[str]:
        return self._addresses("Cc")

    @cached_property
    def bcc(self) -> list[str]:
        named = {address.lower() for address in self.to + self.cc}
        addresses = self._addresses("Bcc")
        seen = {address.lower() for address in addresses}
        for recipient in self.envelope.rcpt_tos:
            if recipient.lower() not in named and recipient.lower() not in seen:
                seen.add(recipient.lower())
                addresses.append(recipient)
        return addresses

    @property
    def reply_to(self) -> list[str]:
        return self._addresses("Reply-To")

    @property
    def date(self) -> datetime.datetime | None:
        """The Date header as a datetime, or None when it is missing or unreadable."""
        header = self.email.get("Date")
        return getattr(header, "datetime", None)

    @cached_property
    def text(self) -> str:
        """The plain-text body ("" when the message has none)."""
        return _body(self.email, "plain")

    @cached_property
    def html(self) -> str:
        """The HTML body ("" when the message has none)."""
        return _body(self.email, "html")

    @cached_property
    def attachments(self) -> list[Attachment]:
        """Every part that is a file: named, or marked ``Content-Disposition: attachment``."""
        found = []
        for part in self.email.walk():
            if part.is_multipart():
                continue
            name = part.get_filename()
            if name is None and part.get_content_disposition() != "attachment":
                continue
            payload = part.get_payload(decode=True)
            content = payload if isinstance(payload, bytes) else b""
            found.append(Attachment(name or "", part.get_content_type(), content))
        return found

    def _addresses(self, header: str) -> list[str]:
        values = self.headers.get_all(header)
        return [address for _, address in getaddresses(values) if address]

    # -- relay ------------------------------------------------------------------

    @property
    def relay(self) -> list[Delivery]:
        """Its relay deliveries as the server has them now, oldest first (none: not relayed)."""
        items, _ = self._relay_source().relay_state(self.id)
        return parse_deliveries(items)

    def wait_for_relay(
        self, to: str | None = None, state: str = SETTLED, timeout: float = 10.0
    ) -> Delivery | list[Delivery]:
        """Wait until its delivery to ``to`` (None: every delivery) is in ``state``; return it.

        ``state`` is ``"settled"`` (sent or failed: the outcome, whichever it is),
        or one of ``queued``, ``sending``, ``sent``, ``retrying``, ``failed``.
        With ``to``, its :class:`Delivery` (the address compared ignoring case;
        the latest, if it was relayed there more than once); without, the list.
        Fails with :class:`MailAssertionError`, listing every delivery and reply,
        after ``timeout`` seconds, or at once when a delivery ends in another
        state than the one waited for.
        """
        __tracebackhide__ = True
        from mailtrap.pytest_plugin.capture import MailAssertionError  # capture imports us

        try:
            found = wait_for_deliveries(self._relay_source(), self.id, to, state, timeout)
        except RelayWaitError as error:
            raise MailAssertionError(str(error)) from None
        return found[-1] if to is not None else found

    def _relay_source(self) -> RelaySource:
        if self.relay_source is None:
            raise TypeError(f"message {self.id} was not read from a server: it has no relay state")
        return self.relay_source

    # -- helpers for confirmation mail ------------------------------------------

    def links(self, contains: str | re.Pattern[str] | None = None) -> list[str]:
        """The URLs in the HTML ``href``s and the text body, in order, without repeats.

        ``contains`` keeps only the links containing that string (or matching
        that compiled pattern).
        """
        found: dict[str, None] = {}  # ordered, and a repeat costs no search
        for url in [*html_text.links(self.html), *_text_urls(self.text)]:
            if url not in found and _contains(url, contains):
                found[url] = None
        return list(found)

    def link(self, contains: str | re.Pattern[str] | None = None) -> str:
        """The first of :meth:`links`; fails, listing the links there are, when there is none."""
        __tracebackhide__ = True
        links = self.links(contains)
        if not links:
            wanted = "" if contains is None else f" containing {_describe(contains)}"
            raise AssertionError(
                f"no link{wanted} in message {self.id} ({self.subject!r}); "
                f"its links: {self.links() or 'none'}"
            )
        return links[0]

    def code(self, pattern: str | re.Pattern[str] = DEFAULT_CODE_PATTERN) -> str:
        """The first match of ``pattern`` in the text body, else in the HTML's visible text.

        The default finds a one-time code of 4 to 8 digits. When the pattern
        has a group, the first group is returned instead of the whole match.
        """
        __tracebackhide__ = True
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
        # The HTML's visible text: colours (#123456) and widths do not pass for codes.
        for body in (self.text, html_text.html_to_text(self.html)):
            match = compiled.search(body)
            if match:
                return match.group(1) if compiled.groups else match.group(0)
        raise AssertionError(
            f"no match for {compiled.pattern!r} in message {self.id} ({self.subject!r}); "
            f"text body: {_excerpt(self.text or html_text.html_to_text(self.html))}"
        )

    # -- checks, run by the server that captured the message --------------------

    def html_check(self, refresh: bool = False) -> HtmlCheck:
        """HTML and CSS support across mail clients (caniemail.com's data)."""
        return HtmlCheck(self._check("html", refresh=refresh))

    def link_check(self, follow: bool = False, refresh: bool = False) -> LinkCheck:
        """The HTTP status of every link and image URL (``follow``: after redirects)."""
        return LinkCheck(self._check("links", follow=follow, refresh=refresh))

    def spam_check(self, refresh: bool = False) -> SpamCheck:
        """SpamAssassin's score and rules (the server needs ``--spamassassin``)."""
        return SpamCheck(self._check("spam", refresh=refresh))

    def auth_check(self, refresh: bool = False) -> AuthCheck:
        """DKIM, SPF, DMARC and ARC as a receiving MX would find them."""
        return AuthCheck(self._check("auth", refresh=refresh))

    def _check(self, name: str, **options: bool) -> object:
        if self._checks is None:
            raise RuntimeError(f"message {self.id} was not captured by a server that checks mail")
        return self._checks.check(self.id, name, **options)

    # -- presentation -----------------------------------------------------------

    def summary(self) -> str:
        """One line: sender, recipients and subject."""
        # Without headers, the envelope, in angle brackets to tell it apart.
        sender = self.from_ or (f"<{self.mail_from}>" if self.mail_from is not None else "nobody")
        recipients = ", ".join(self.to) or ", ".join(f"<{r}>" for r in self.rcpt_tos) or "nobody"
        return f"from {sender} to {recipients}: {self.subject!r}"

    def save(self, path: Path) -> Path:
        """Write the raw message to ``path`` (an ``.eml`` file any mail client opens)."""
        path.write_bytes(self.raw)
        return path

    def __repr__(self) -> str:
        return f"<Mail {self.id} {self.summary()}>"


def _body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown or lying charset: keep what decodes
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def _text_urls(text: str) -> list[str]:
    return [match.group(0).rstrip(_TRAILING_PUNCTUATION) for match in _TEXT_URL.finditer(text)]


def _contains(value: str, wanted: str | re.Pattern[str] | None) -> bool:
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return wanted in value
    return wanted.search(value) is not None


def _describe(wanted: str | re.Pattern[str]) -> str:
    return repr(wanted) if isinstance(wanted, str) else f"/{wanted.pattern}/"


def _excerpt(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")
