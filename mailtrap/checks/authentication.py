"""Authentication check: would this message pass DKIM, SPF and DMARC at the receiving MX?

A pure function of the raw message, the SMTP envelope Mailtrap recorded
(client address, HELO name, envelope sender) and the DNS lookups given,
answering for ``GET /api/v1/message/{ID}/auth-check`` with an
``Authentication-Results`` field (RFC 8601) as Mailtrap would add it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any

from mailtrap.checks.dmarc import check_dmarc
from mailtrap.checks.dns_records import Records
from mailtrap.checks.signatures import DkimResult, too_large, verify_arc, verify_dkim
from mailtrap.checks.spf import SpfResult, check_spf
from mailtrap.ip_targets import IPAddress
from mailtrap.mime import header_fields

AUTHSERV_ID = "mailtrap"


@dataclass(frozen=True)
class Envelope:
    """What the SMTP session said: the client's ``host:port``, its HELO, MAIL FROM."""

    peer: str
    helo: str
    mail_from: str


def client_address(peer: str) -> IPAddress | None:
    """The IP address of a stored peer (``1.2.3.4:5678``, ``[::1]:5678`` or a bare address)."""
    text = peer.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def auth_check(
    raw: bytes,
    header: bytes,
    envelope: Envelope,
    records: Records,
    keys: dict[str, str] | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    """The DKIM, ARC, SPF and DMARC results, and the Authentication-Results they make.

    ``header`` is the message's top-level header block (bounded by the reader);
    ``size`` the message's size, when ``raw`` was not read for being too large.
    """
    keys = keys or {}
    fields = header_fields(header)
    names = [name.lower() for name, _ in fields]
    refused = too_large(len(raw) if size is None else size, header)
    signatures = names.count("dkim-signature")
    if refused and signatures:
        dkim_results = [DkimResult("policy", reason=f"not verified: {refused}")]
    else:
        dkim_results = verify_dkim(raw, signatures, records, keys)
    if "arc-seal" not in names:
        arc = {"Result": "none", "Reason": "the message has no ARC-Seal"}
    elif refused:
        arc = {"Result": "policy", "Reason": f"not verified: {refused}"}
    else:
        verdict = verify_arc(raw, records, keys)
        arc = {"Result": verdict.result, "Reason": verdict.reason}
    spf = _spf(envelope, records)
    from_domain, from_problem = _from_domain(fields)
    passes = [result.domain for result in dkim_results if result.result == "pass"]
    dmarc = check_dmarc(from_domain, spf.result, spf.domain, passes, records)
    if from_problem:
        dmarc.result, dmarc.reason = "permerror", from_problem
    dkim_summary = _dkim_summary(dkim_results)
    return {
        "AuthenticationResults": authentication_results(
            dkim_results, spf, envelope, dmarc.result, from_domain, arc["Result"]
        ),
        "DKIM": dkim_summary,
        "DKIMSignatures": [result.as_json() for result in dkim_results],
        "SPF": {
            "Result": spf.result,
            "Domain": spf.domain,
            "ClientIP": str(client_address(envelope.peer) or ""),
            "MailFrom": envelope.mail_from,
            "Helo": envelope.helo,
            "Reason": spf.reason,
        },
        "DMARC": {
            "Result": dmarc.result,
            "Domain": dmarc.domain,
            "Policy": dmarc.policy,
            "Record": dmarc.record,
            "SPFAligned": dmarc.spf_aligned,
            "DKIMAligned": dmarc.dkim_aligned,
            "Reason": dmarc.reason,
        },
        "ARC": arc,
    }


def _spf(envelope: Envelope, records: Records) -> SpfResult:
    client = client_address(envelope.peer)
    if client is None:
        return SpfResult("none", "", f"no client IP address recorded ({envelope.peer or 'none'})")
    return check_spf(client, envelope.mail_from, envelope.helo, records)


def _from_domain(fields: list[tuple[str, str]]) -> tuple[str, str]:
    """The From header's domain, and what is wrong with it, if anything (RFC 7489 6.6.1)."""
    values = [value for name, value in fields if name.lower() == "from"]
    if not values:
        return "", ""
    addresses = [address for _, address in getaddresses(values) if "@" in address]
    domains = {address.rpartition("@")[2].lower().rstrip(".") for address in addresses}
    if len(values) > 1:
        return sorted(domains)[0] if domains else "", "the message has more than one From field"
    if len(domains) > 1:
        return sorted(domains)[0], "the From field names addresses of several domains"
    return (domains.pop() if domains else ""), ""


def _dkim_summary(results: list[DkimResult]) -> dict[str, str]:
    """The best result: a pass if any signature passes."""
    if not results:
        return {"Result": "none", "Domain": "", "Reason": "the message has no DKIM signature"}
    best = next((result for result in results if result.result == "pass"), results[0])
    return {"Result": best.result, "Domain": best.domain, "Reason": best.reason}


def authentication_results(
    dkim_results: list[DkimResult],
    spf: SpfResult,
    envelope: Envelope,
    dmarc: str,
    from_domain: str,
    arc: str,
) -> str:
    """The value of an Authentication-Results field (RFC 8601)."""
    parts = [AUTHSERV_ID]
    for result in dkim_results or [DkimResult("none")]:
        entry = f"dkim={result.result}"
        if result.domain:
            entry += f" header.d={result.domain}"
        if result.selector:
            entry += f" header.s={result.selector}"
        parts.append(entry)
    sender = envelope.mail_from or f"postmaster@{envelope.helo}"
    parts.append(f"spf={spf.result} smtp.mailfrom={sender}")
    parts.append(f"dmarc={dmarc}" + (f" header.from={from_domain}" if from_domain else ""))
    parts.append(f"arc={arc}")
    return "; ".join(parts)
