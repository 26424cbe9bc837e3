"""DMARC (RFC 7489): does an SPF or DKIM pass align with the From domain, and what is the policy?

The record is looked up at ``_dmarc.`` the From domain, else at its
organizational domain (the Public Suffix List's registrable domain, from the
``publicsuffixlist`` package's own copy: nothing is fetched).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from publicsuffixlist import PublicSuffixList

from mailtrap.checks.dns_records import Records, TempError

POLICIES = ("none", "quarantine", "reject")
POLICY_WORDS = {
    "none": "the domain only monitors (p=none), so receivers deliver it anyway",
    "quarantine": "the domain asks receivers to treat it as spam (p=quarantine)",
    "reject": "the domain asks receivers to reject it (p=reject)",
}


@dataclass
class DmarcResult:
    result: str  # pass, fail, none, temperror, permerror
    domain: str  # the From domain
    policy: str = ""  # what the domain asks receivers to do with failing mail
    record: str = ""
    spf_aligned: bool = False
    dkim_aligned: bool = False
    reason: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """``mail.example.co.uk`` -> ``example.co.uk``; a name the list does not know stays."""
    return _suffixes().privatesuffix(domain.lower()) or domain.lower()


def aligned(one: str, other: str, mode: str) -> bool:
    """Strict: the same name. Relaxed: the same organizational domain."""
    one, other = one.lower().rstrip("."), other.lower().rstrip(".")
    if mode == "s":
        return one == other
    return organizational_domain(one) == organizational_domain(other)


def check_dmarc(
    from_domain: str,
    spf_result: str,
    spf_domain: str,
    dkim_passes: list[str],
    records: Records,
) -> DmarcResult:
    """The DMARC result for a message whose From domain is ``from_domain``.

    ``spf_domain`` is the domain SPF checked; ``dkim_passes`` the ``d=`` of
    each DKIM signature that verified.
    """
    from_domain = from_domain.lower().rstrip(".")
    if not from_domain:
        return DmarcResult("none", "", reason="the message has no From domain")
    try:
        found = _policy_record(from_domain, records)
    except TempError as error:
        return DmarcResult("temperror", from_domain, reason=str(error))
    if found is None:
        return DmarcResult("none", from_domain, reason=f"{from_domain} publishes no DMARC policy")
    record, record_domain = found
    tags = parse_tags(record)
    policy = tags.get("p", "").lower()
    if policy not in POLICIES:
        return DmarcResult(
            "permerror", from_domain, record=record, tags=tags, reason="no valid p= policy"
        )
    if record_domain != from_domain and tags.get("sp", "").lower() in POLICIES:
        policy = tags["sp"].lower()  # a subdomain of the domain with the record
    spf_ok = spf_result == "pass" and aligned(spf_domain, from_domain, tags.get("aspf", "r"))
    dkim_ok = any(aligned(d, from_domain, tags.get("adkim", "r")) for d in dkim_passes)
    result = DmarcResult(
        "pass" if spf_ok or dkim_ok else "fail",
        from_domain,
        policy=policy,
        record=record,
        spf_aligned=spf_ok,
        dkim_aligned=dkim_ok,
        tags=tags,
    )
    result.reason = _explain(result, spf_result, spf_domain, dkim_passes)
    return result


def _policy_record(domain: str, records: Records) -> tuple[str, str] | None:
    """The DMARC record that applies, and the domain it was found at."""
    for candidate in dict.fromkeys((domain, organizational_domain(domain))):
        found = [
            text.strip()
            for text in records.txt(f"_dmarc.{candidate}")
            if text.strip().lower().startswith("v=dmarc1")
        ]
        if len(found) == 1:  # more than one is as good as none (RFC 7489 6.6.3)
            return found[0], candidate
    return None


def parse_tags(record: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in record.split(";"):
        name, equals, value = item.partition("=")
        if equals:
            tags.setdefault(name.strip().lower(), value.strip())
    return tags


def _explain(result: DmarcResult, spf: str, spf_domain: str, dkim_passes: list[str]) -> str:
    if result.dkim_aligned:
        return f"a DKIM signature of {result.domain}'s organization verified"
    if result.spf_aligned:
        return f"SPF passed for {spf_domain}, aligned with {result.domain}"
    reasons = []
    if spf == "pass":
        reasons.append(f"SPF passed for {spf_domain}, which does not align with {result.domain}")
    else:
        reasons.append(f"SPF did not pass ({spf})")
    if dkim_passes:
        reasons.append(f"DKIM passed only for {', '.join(dkim_passes)}, not aligned")
    else:
        reasons.append("no DKIM signature verified")
    return "; ".join(reasons) + f": {POLICY_WORDS[result.policy]}"
