"""DKIM and ARC verification with dkimpy; keys from DNS, or from ``--dkim-key``.

dkimpy reads the whole message and is not linear on every input, so two
bounds come first: a message over MAX_AUTH_BYTES, or with a header field
folded over more than MAX_FOLDED_LINES lines, is not verified (dkimpy joins
folded lines one by one, which costs the square of their number). Its body
canonicalization removes trailing white space with a regular expression that
is quadratic on a long run of spaces; :func:`_strip_trailing_whitespace`
replaces it with a linear one that gives the same bytes.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dkim
import dkim.canonicalization
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailtrap.checks.dns_records import Records, TempError
from mailtrap.errors import ConfigError

MAX_AUTH_BYTES = 16 * 1024 * 1024
MAX_FOLDED_LINES = 1000
MAX_SIGNATURES = 10  # DKIM-Signature fields verified per message
DNS_TIMEOUT = 5


def _strip_trailing_whitespace(content: bytes) -> bytes:
    """What ``re.sub(b"[\\t ]+\\r\\n", b"\\r\\n", content)`` gives, in linear time."""
    lines = content.split(b"\r\n")
    return b"\r\n".join([line.rstrip(b"\t ") for line in lines[:-1]] + lines[-1:])


dkim.canonicalization.strip_trailing_whitespace = _strip_trailing_whitespace


@dataclass
class DkimResult:
    result: str  # pass, fail, neutral, temperror, permerror
    domain: str = ""
    selector: str = ""
    algorithm: str = ""
    reason: str = ""
    key_source: str = ""  # "dns", or "--dkim-key" for a key the server was given

    def as_json(self) -> dict[str, str]:
        return {
            "Result": self.result,
            "Domain": self.domain,
            "Selector": self.selector,
            "Algorithm": self.algorithm,
            "Reason": self.reason,
            "KeySource": self.key_source,
        }


@dataclass
class ArcResult:
    result: str  # pass, fail, none
    reason: str = ""


# -- keys ------------------------------------------------------------------------


def parse_dkim_key(text: str) -> tuple[str, str]:
    """``DOMAIN:SELECTOR=FILE`` -> (``SELECTOR._domainkey.DOMAIN``, the key record).

    FILE holds the signer's private key or its public key (PEM, RSA or
    Ed25519), or the DNS record itself (``v=DKIM1; k=rsa; p=...``).
    """
    name, equals, path = text.partition("=")
    domain, colon, selector = name.partition(":")
    domain, selector = domain.strip().lower().rstrip("."), selector.strip().lower()
    if not (equals and colon and domain and selector and path.strip()):
        raise ConfigError(f"--dkim-key must be DOMAIN:SELECTOR=FILE, not {text!r}")
    try:
        content = Path(path.strip()).read_bytes()
    except OSError as error:
        raise ConfigError(f"--dkim-key: cannot read {path.strip()}: {error.strerror}") from None
    return f"{selector}._domainkey.{domain}", key_record(content, path.strip())


def key_record(content: bytes, label: str) -> str:
    """The DKIM key record (RFC 6376 3.6.1) of a PEM key, or the record itself."""
    text = content.decode("ascii", "replace").strip()
    if "p=" in text and "-----BEGIN" not in text:
        return " ".join(text.split())
    try:
        if "PRIVATE KEY" in text:
            key: Any = serialization.load_pem_private_key(content, password=None).public_key()
        else:
            key = serialization.load_pem_public_key(content)
    except (ValueError, TypeError) as error:
        raise ConfigError(
            f"--dkim-key: {label} is not a PEM key or a DKIM record: {error}"
        ) from None
    if isinstance(key, rsa.RSAPublicKey):
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    raise ConfigError(f"--dkim-key: {label} is neither an RSA nor an Ed25519 key")


class _KeyLookup:
    """dkimpy's ``dnsfunc``: a configured key, else the TXT record; remembers what it found."""

    def __init__(self, records: Records, keys: dict[str, str]):
        self.records = records
        self.keys = keys
        self.sources: dict[str, str] = {}  # name -> "dns", "--dkim-key", "missing", "temperror"

    def __call__(self, name: bytes, timeout: float = DNS_TIMEOUT) -> bytes | None:
        key = name.decode("ascii", "replace").rstrip(".").lower()
        if key in self.keys:
            self.sources[key] = "--dkim-key"
            return self.keys[key].encode()
        try:
            found = self.records.txt(key)
        except TempError as error:
            self.sources[key] = "temperror"
            raise dkim.DnsTimeoutError(str(error)) from None
        self.sources[key] = "dns" if found else "missing"
        return found[0].encode() if found else None


class _Reasons:
    """A stand-in for dkimpy's logger that keeps what went wrong, instead of logging it."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, message: str, *args: object) -> None:
        self.errors.append(message % args if args else message)

    def debug(self, *args: object) -> None:
        pass

    info = warning = debug

    def isEnabledFor(self, level: int) -> bool:
        return level >= logging.ERROR


# -- verification ----------------------------------------------------------------


def too_large(size: int, header: bytes) -> str | None:
    """Why a message of ``size`` bytes with this header block is not given to dkimpy, or None."""
    if size > MAX_AUTH_BYTES:
        return f"the message is larger than {MAX_AUTH_BYTES // (1024 * 1024)} MiB"
    folded = 0
    for line in header.split(b"\n"):
        folded = folded + 1 if line[:1] in (b" ", b"\t") else 0
        if folded > MAX_FOLDED_LINES:
            return f"a header field is folded over more than {MAX_FOLDED_LINES} lines"
    return None


def verify_dkim(
    raw: bytes, signature_count: int, records: Records, keys: dict[str, str]
) -> list[DkimResult]:
    """One result per DKIM-Signature field (at most MAX_SIGNATURES), topmost first."""
    results = []
    for index in range(min(signature_count, MAX_SIGNATURES)):
        results.append(_verify_one(raw, index, records, keys))
    return results


def _verify_one(raw: bytes, index: int, records: Records, keys: dict[str, str]) -> DkimResult:
    lookup = _KeyLookup(records, keys)
    reasons = _Reasons()
    verifier: Any = None
    try:
        verifier = dkim.DKIM(raw, logger=reasons, timeout=DNS_TIMEOUT)  # type: ignore[arg-type]
        verified = verifier.verify(idx=index, dnsfunc=lookup)
    except dkim.DnsTimeoutError as error:
        return _described(verifier, "temperror", f"DNS did not answer: {error}", lookup)
    except dkim.ValidationError as error:
        return _described(verifier, "fail", str(error), lookup)
    except dkim.DKIMException as error:
        return _described(verifier, "permerror", str(error), lookup)
    if verified:
        return _described(verifier, "pass", "the signature verified", lookup)
    source = next(iter(lookup.sources.values()), "")
    if source == "missing":
        name = next(iter(lookup.sources))
        return _described(verifier, "permerror", f"no DKIM key is published at {name}", lookup)
    if source == "temperror":
        return _described(verifier, "temperror", "DNS did not answer for the key", lookup)
    reason = reasons.errors[-1] if reasons.errors else "the signature does not match the message"
    result = "permerror" if reasons.errors else "fail"
    return _described(verifier, result, reason, lookup)


def _described(verifier: Any, result: str, reason: str, lookup: _KeyLookup) -> DkimResult:
    fields = getattr(verifier, "signature_fields", None) or {}

    def tag(name: bytes) -> str:
        value = fields.get(name, b"")
        return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)

    source = next((s for s in lookup.sources.values() if s in ("dns", "--dkim-key")), "")
    return DkimResult(result, tag(b"d").lower(), tag(b"s"), tag(b"a"), reason, source)


def verify_arc(raw: bytes, records: Records, keys: dict[str, str]) -> ArcResult:
    lookup = _KeyLookup(records, keys)
    reasons = _Reasons()
    try:
        verdict, _, comment = dkim.ARC(raw, logger=reasons, timeout=DNS_TIMEOUT).verify(  # type: ignore[arg-type]
            dnsfunc=lookup
        )
    except dkim.DKIMException as error:
        return ArcResult("fail", str(error))
    names = {dkim.CV_Pass: "pass", dkim.CV_Fail: "fail", dkim.CV_None: "none"}
    return ArcResult(names.get(verdict, "fail"), str(comment))
