"""Where mail for a domain goes: RFC 5321 section 5.1, with null MX (RFC 7505).

:func:`route` is a plain function of a ``lookup`` callable, so tests can give
it answers without a DNS server; :func:`dns_lookup` is the real lookup through
dnspython. MX records are tried by preference, equal preferences in random
order; the domain's own A/AAAA records (the implicit MX) only when it has no
MX at all; each host's addresses in turn. NXDOMAIN and null MX fail at once;
SERVFAIL and timeouts are temporary. Addresses that are not globally routable
(loopback, private, link-local, CGNAT...) are refused unless allowed.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.exception
import dns.rdatatype
import dns.resolver

from mailtrap.ip_targets import refusal

ANSWER = "answer"
NO_DATA = "nodata"  # the name exists but has no record of that type
NO_DOMAIN = "nxdomain"
TEMPORARY = "temporary"  # SERVFAIL, timeout, no server answered
MAX_MX_HOSTS = 10  # more is a misconfiguration or an attack on our time


@dataclass(frozen=True)
class Answer:
    status: str
    records: tuple[str, ...] = ()  # MX: "PREFERENCE HOST"; A/AAAA: the address
    detail: str = ""


Lookup = Callable[[str, str], Answer]  # (name, "MX" | "A" | "AAAA") -> Answer


@dataclass(frozen=True)
class Host:
    """One host to try, with the addresses to connect to, in order."""

    name: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    """The hosts to try for a domain, or why there are none (``permanent``: do not retry)."""

    hosts: tuple[Host, ...] = ()
    error: str = ""
    permanent: bool = False


def order_mx(records: Sequence[str], rng: random.Random) -> list[str]:
    """Exchange names by preference, lowest first; equal preferences shuffled (RFC 5321 5.1)."""
    by_preference: dict[int, list[str]] = {}
    for record in records:
        preference, _, exchange = record.partition(" ")
        by_preference.setdefault(int(preference), []).append(exchange.strip().rstrip(".").lower())
    ordered: list[str] = []
    for preference in sorted(by_preference):
        names = sorted(set(by_preference[preference]))
        rng.shuffle(names)
        ordered += [name for name in names if name not in ordered]
    return ordered


def is_null_mx(records: Sequence[str]) -> bool:
    """RFC 7505: an MX of "." says the domain accepts no mail."""
    return any(record.partition(" ")[2].strip() in (".", "") for record in records)


def refused_address(address: str, allow_private: bool) -> bool:
    """Whether mail must not go to ``address``: not globally routable, unless allowed."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True
    return refusal(ip, allow_private) is not None


def route(
    domain: str, lookup: Lookup, *, allow_private: bool = False, rng: random.Random | None = None
) -> Route:
    """The hosts that take mail for ``domain`` (an IDNA name), in the order to try them."""
    rng = rng or random.Random()
    mx = lookup(domain, "MX")
    if mx.status == TEMPORARY:
        return Route(error=f"DNS lookup of MX {domain} failed: {mx.detail}")
    if mx.status == NO_DOMAIN:
        return Route(error=f"the domain {domain} does not exist (NXDOMAIN)", permanent=True)
    if mx.status == ANSWER and mx.records:
        if is_null_mx(mx.records):
            return Route(error=f"{domain} accepts no mail (null MX, RFC 7505)", permanent=True)
        names = order_mx(mx.records, rng)[:MAX_MX_HOSTS]
    else:
        names = [domain]  # no MX at all: the implicit MX, the domain itself
    hosts: list[Host] = []
    temporary: list[str] = []
    refused: list[str] = []
    for name in names:
        addresses: list[str] = []
        for rdtype in ("A", "AAAA"):
            answer = lookup(name, rdtype)
            if answer.status == TEMPORARY:
                temporary.append(f"{rdtype} {name}: {answer.detail}")
            addresses += answer.records if answer.status == ANSWER else ()
        allowed = tuple(a for a in addresses if not refused_address(a, allow_private))
        refused += [f"{name} ({a})" for a in addresses if a not in allowed]
        if allowed:
            hosts.append(Host(name, allowed))
    if hosts:
        return Route(hosts=tuple(hosts))
    if temporary:
        return Route(error="DNS lookup failed: " + "; ".join(temporary))
    if refused:
        return Route(
            error="refused: the mail hosts of "
            f"{domain} have only loopback or private addresses: {', '.join(refused)} "
            "(mx.allow_private_targets is off)",
            permanent=True,
        )
    return Route(error=f"no mail host of {domain} has an address", permanent=True)


def dns_lookup(resolver: dns.resolver.Resolver) -> Lookup:
    """A :data:`Lookup` asking ``resolver``."""

    def lookup(name: str, rdtype: str) -> Answer:
        try:
            answer = resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            return Answer(NO_DOMAIN)
        except dns.resolver.NoAnswer:
            return Answer(NO_DATA)
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as error:
            return Answer(TEMPORARY, detail=_first_line(error))
        except dns.exception.DNSException as error:
            return Answer(TEMPORARY, detail=_first_line(error))
        if answer.rdtype == dns.rdatatype.MX:
            records = tuple(f"{r.preference} {r.exchange.to_text()}" for r in answer)
        else:
            records = tuple(r.to_text() for r in answer)
        return Answer(ANSWER, records)

    return lookup


def _first_line(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200]
