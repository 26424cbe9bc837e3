"""SPF (RFC 7208): may this client address send mail for the envelope sender's domain?

:func:`check_spf` is ``check_host()`` of RFC 7208 section 4, as a receiving
MX would run it: every mechanism and modifier, macros, the limits of 10
DNS-querying terms and 2 void lookups. DNS goes through the lookups given
(:class:`mailtrap.checks.dns_records.Records`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TypeVar

from mailtrap.checks.dns_records import Records, TempError
from mailtrap.ip_targets import IPAddress

MAX_LOOKUPS = 10  # DNS-querying terms per check (RFC 7208 4.6.4)
MAX_VOID_LOOKUPS = 2
MAX_NAMES = 10  # MX or PTR names looked at per term
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
T = TypeVar("T")
_MODIFIER = re.compile(r"([a-zA-Z][a-zA-Z0-9_.-]*)=(.*)")
# name[:domain-spec][/ip4-cidr][//ip6-cidr]
_TERM = re.compile(r"([a-zA-Z0-9]+)(?::([^/]*))?((?:/[0-9]+)?(?://[0-9]+)?)")
_MACRO = re.compile(r"%(?:\{([slodiphcrtv])([0-9]*)(r?)([.\-+,/_=]*)\}|(.))", re.IGNORECASE)


@dataclass
class SpfResult:
    result: str  # pass, fail, softfail, neutral, none, temperror, permerror
    domain: str  # the domain checked (the envelope sender's, or the HELO name's)
    reason: str


class PermError(Exception):
    pass


def check_spf(client: IPAddress, mail_from: str, helo: str, records: Records) -> SpfResult:
    """The SPF result for mail from ``client`` with envelope sender ``mail_from``.

    The null sender (bounces) is checked as ``postmaster@`` the HELO name (RFC 7208 2.4).
    """
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    sender = mail_from or f"postmaster@{helo}"
    local, _, domain = sender.rpartition("@")
    domain = domain.strip().rstrip(".").lower()
    if not _is_domain(domain):
        return SpfResult("none", domain, "no valid domain to check")
    check = _Check(client, local or "postmaster", domain, helo, records)
    try:
        result, reason = check.check_host(domain)
    except TempError as error:
        return SpfResult("temperror", domain, str(error))
    except PermError as error:
        return SpfResult("permerror", domain, str(error))
    return SpfResult(result, domain, reason)


def _is_domain(name: str) -> bool:
    labels = name.split(".")
    return len(labels) >= 2 and all(0 < len(label) < 64 for label in labels) and len(name) < 254


class _Check:
    def __init__(self, client: IPAddress, local: str, domain: str, helo: str, records: Records):
        self.client = client
        self.local = local
        self.sender_domain = domain
        self.helo = helo
        self.records = records
        self.lookups = 0
        self.voids = 0

    def check_host(self, domain: str) -> tuple[str, str]:
        record = self._record(domain)
        if record is None:
            return "none", f"{domain} has no SPF record"
        redirect = None
        for term in record.split()[1:]:
            modifier = _MODIFIER.fullmatch(term)
            if modifier:
                name = modifier[1].lower()
                if name == "redirect":
                    if redirect is not None:
                        raise PermError("two redirect= modifiers")
                    redirect = modifier[2]
                continue  # exp= and unknown modifiers do not change the result
            qualifier = QUALIFIERS.get(term[0])
            mechanism = term[1:] if qualifier else term
            if self._matches(mechanism, domain):
                result = qualifier or "pass"
                return result, f"{domain}: {term} matched {self.client}"
        if redirect is not None:
            self._count_lookup()
            target = self._expand(redirect, domain)
            result, reason = self.check_host(target)
            if result == "none":
                raise PermError(f"redirect={target} has no SPF record")
            return result, reason
        return "neutral", f"{domain}: no mechanism matched {self.client}"

    def _record(self, domain: str) -> str | None:
        if not _is_domain(domain):
            raise PermError(f"{domain!r} is not a domain name")
        found = [
            text
            for text in self.records.txt(domain)
            if text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")
        ]
        if len(found) > 1:
            raise PermError(f"{domain} has {len(found)} SPF records")
        return found[0] if found else None

    def _matches(self, mechanism: str, domain: str) -> bool:
        name, _, argument = mechanism.partition(":")
        cidr = ""
        if name.lower() not in ("ip4", "ip6"):
            parts = _TERM.fullmatch(mechanism)
            if parts is None:
                raise PermError(f"cannot read the mechanism {mechanism!r}")
            name, argument, cidr = parts[1], parts[2] or "", parts[3]
        name = name.lower()
        if name not in MECHANISMS:
            raise PermError(f"unknown mechanism {mechanism!r}")
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            return self._in_network(argument, name)
        if name == "include":
            return self._include(argument, domain)
        self._count_lookup()
        target = self._expand(argument, domain) if argument else domain
        if name == "a":
            return self._any_address_matches([target], cidr)
        if name == "mx":
            exchanges = self._void_checked(self.records.mx(target))
            if len(exchanges) > MAX_NAMES:
                raise PermError(f"{target} has more than {MAX_NAMES} MX records")
            return self._any_address_matches(exchanges, cidr)
        if name == "ptr":
            return self._ptr(target)
        # exists: any A record at all
        return bool(self._void_checked(self.records.addresses(target, "A")))

    def _include(self, argument: str, domain: str) -> bool:
        if not argument:
            raise PermError("include without a domain")
        self._count_lookup()
        result, _ = self.check_host(self._expand(argument, domain))
        if result == "pass":
            return True
        if result in ("fail", "softfail", "neutral"):
            return False
        if result == "temperror":
            raise TempError(f"include:{argument} could not be checked")
        raise PermError(f"include:{argument} has no usable SPF record")

    def _in_network(self, text: str, kind: str) -> bool:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise PermError(f"{kind}:{text} is not an address or network") from None
        if (network.version == 4) != (kind == "ip4"):
            raise PermError(f"{kind}:{text} is of the other IP version")
        return network.version == self.client.version and self.client in network

    def _any_address_matches(self, names: list[str], cidr: str) -> bool:
        v4, _, v6 = cidr.partition("//")
        v4 = v4.lstrip("/")
        length = v4 if self.client.version == 4 else v6
        bits = 32 if self.client.version == 4 else 128
        try:
            prefix = int(length) if length else bits
        except ValueError:
            raise PermError(f"bad prefix length {cidr!r}") from None
        if not 0 <= prefix <= bits:
            raise PermError(f"bad prefix length {cidr!r}")
        kind = "A" if self.client.version == 4 else "AAAA"
        for name in names:
            addresses = self.records.addresses(name, kind)
            if len(names) == 1:
                self._void_checked(addresses)
            for address in addresses:
                network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
                if self.client in network:
                    return True
        return False

    def _ptr(self, target: str) -> bool:
        for name in self.records.ptr(self.client)[:MAX_NAMES]:
            kind = "A" if self.client.version == 4 else "AAAA"
            validated = self.client in self.records.addresses(name, kind)
            if validated and (name.lower() == target or name.lower().endswith("." + target)):
                return True
        return False

    def _void_checked(self, answer: list[T]) -> list[T]:
        if not answer:
            self.voids += 1
            if self.voids > MAX_VOID_LOOKUPS:
                raise PermError(f"more than {MAX_VOID_LOOKUPS} lookups found nothing")
        return answer

    def _count_lookup(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise PermError(f"more than {MAX_LOOKUPS} DNS lookups")

    def _expand(self, spec: str, domain: str) -> str:
        """Macro expansion (RFC 7208 7) of a domain-spec."""

        def replace(match: re.Match[str]) -> str:
            if match[5] is not None:
                literal = {"%": "%", "_": " ", "-": "%20"}.get(match[5])
                if literal is None:
                    raise PermError(f"bad macro %{match[5]} in {spec!r}")
                return literal
            letter = match[1].lower()
            value = self._macro_value(letter, domain)
            parts = re.split("[" + re.escape(match[4] or ".") + "]", value)
            if match[3]:
                parts.reverse()
            if match[2]:
                parts = parts[-int(match[2]) :] if int(match[2]) else parts
            expanded = ".".join(parts)
            return expanded.upper() if match[1].isupper() else expanded

        expanded = _MACRO.sub(replace, spec)
        return expanded.rstrip(".").lower()

    def _macro_value(self, letter: str, domain: str) -> str:
        if letter == "s":
            return f"{self.local}@{self.sender_domain}"
        if letter == "l":
            return self.local
        if letter == "o":
            return self.sender_domain
        if letter == "d":
            return domain
        if letter in ("i", "c"):
            if self.client.version == 6 and letter == "i":
                return ".".join(f"{int(self.client):032x}")
            return str(self.client)
        if letter == "v":
            return "in-addr" if self.client.version == 4 else "ip6"
        if letter == "h":
            return self.helo
        if letter == "p":
            return "unknown"  # RFC 7208 discourages it; validating costs lookups
        return ""  # r, t: only in exp=, which is not used
