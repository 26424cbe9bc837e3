"""Relay recipients: one plain mailbox each, checked and sent in the very same form.

The allowlist check and the RCPT command must read an address alike. A quoted
local part, a comment, a second ``@``, a source route (``@a:b@c``) or the
``%`` and ``!`` hacks each let some parser on the way (Python's
``email.utils``, smtplib's ``quoteaddr``, a smarthost's) see another mailbox
than the one that was checked, so relay takes none of them: a local part is a
dot-atom of RFC 5322 ``atext`` without ``%`` and ``!`` (non-ASCII letters
allowed, for SMTPUTF8), a domain is host name labels, Unicode ones in
IDNA 2008 form (UTS 46, non-transitional: ``ß`` stays ``ß``, so ``straße.de``
never becomes the other domain ``strasse.de``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import idna

MAX_LOCAL_PART = 64  # octets, RFC 5321 4.5.3.1.1
MAX_DOMAIN = 253  # octets of the ASCII form, without a trailing dot
MAX_LABEL = 63
_ATEXT = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789#$&'*+-/=?^_`{|}~"
)
_HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class Mailbox:
    """``local@domain``: the local part as given, the domain in lower-case ASCII (IDNA)."""

    local: str
    domain: str

    def __str__(self) -> str:
        """The address to send in RCPT TO."""
        return f"{self.local}@{self.domain}"

    @property
    def key(self) -> str:
        """The address as the allowlist compares it: the local part in lower case too."""
        return f"{self.local.lower()}@{self.domain}"


def parse_mailbox(address: str) -> Mailbox:
    """The mailbox ``address`` names; ValueError saying why if it is not one plain mailbox."""
    local, at, domain = address.partition("@")
    if not at or not local or not domain:
        raise ValueError(f"not an e-mail address: {address!r}")
    _check_local_part(local, address)
    return Mailbox(local, normalize_domain(domain))


def _check_local_part(local: str, address: str) -> None:
    if len(local.encode("utf-8")) > MAX_LOCAL_PART:
        raise ValueError(f"the local part is over {MAX_LOCAL_PART} octets: {address!r}")
    for atom in local.split("."):
        if not atom or not all(c in _ATEXT or _is_letter_beyond_ascii(c) for c in atom):
            raise ValueError(
                f"not a plain address (quoted parts, comments, routes, % and ! are "
                f"refused): {address!r}"
            )


def _is_letter_beyond_ascii(character: str) -> bool:
    """RFC 6531's UTF8-non-ascii, less controls, formats, separators and unassigned code points."""
    return not character.isascii() and unicodedata.category(character)[0] not in "CZ"


def normalize_domain(domain: str) -> str:
    """A domain in lower-case IDNA 2008 form, without a trailing dot; ValueError if it is not one.

    An address literal (``[192.0.2.1]``) and a name that looks like an IPv4
    address (an all-numeric top-level label) are not domains here.
    """
    name = domain[:-1] if domain.endswith(".") else domain
    if name.isascii():
        ascii_name = name.lower()
    else:
        try:
            ascii_name = idna.encode(name, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError) as error:
            raise ValueError(f"not a domain name: {domain!r} ({error})") from None
    labels = ascii_name.split(".")
    if (
        len(ascii_name) > MAX_DOMAIN
        or any(not label or len(label) > MAX_LABEL for label in labels)
        or not all(c in _HOST_CHARACTERS for c in ascii_name.replace(".", ""))
        or any(label.startswith("-") or label.endswith("-") for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValueError(f"not a domain name: {domain!r}")
    return ascii_name


def is_plain_mailbox(address: str) -> bool:
    """Whether ``address`` is exactly the form :func:`parse_mailbox` gives for sending."""
    try:
        return str(parse_mailbox(address)) == address
    except ValueError:
        return False


def is_sendable_sender(address: str) -> bool:
    """Whether an envelope sender can go into ``MAIL FROM:<...>`` as it is.

    A captured sender may be any address the capturing server took (quoted
    local parts too): it routes nothing, so only what could end the command
    or the path early is refused. ``""`` is the null sender ``<>``.
    """
    return all(c not in "<>" and unicodedata.category(c)[0] != "C" for c in address) and (
        address == "" or "@" in address
    )
