"""DNS answers the authentication checks need, through the shared resolver (``--dns``)."""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.name
import dns.resolver
import dns.reversename

from mailtrap.ip_targets import IPAddress


class TempError(Exception):
    """The DNS did not answer (timeout, SERVFAIL): try again later, RFC 7208's temperror."""


class Records:
    """Typed lookups; a name that does not exist, or has no such record, is an empty list."""

    def __init__(self, resolver: dns.resolver.Resolver):
        self.resolver = resolver

    def _answer(self, name: str, kind: str) -> list[object]:
        try:
            return list(self.resolver.resolve(name, kind, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.name.NameTooLong:
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as error:
            raise TempError(f"no DNS answer for {name} {kind}: {type(error).__name__}") from None
        except dns.exception.DNSException as error:
            raise TempError(f"DNS error for {name} {kind}: {error}") from None

    def txt(self, name: str) -> list[str]:
        """Each TXT record of ``name``, its strings joined (RFC 7208 3.3)."""
        return [
            b"".join(record.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
            for record in self._answer(name, "TXT")
        ]

    def addresses(self, name: str, kind: str = "A") -> list[IPAddress]:
        return [
            ipaddress.ip_address(record.address)  # type: ignore[attr-defined]
            for record in self._answer(name, kind)
        ]

    def mx(self, name: str) -> list[str]:
        """Exchange names, most preferred first."""
        records = sorted(self._answer(name, "MX"), key=lambda r: r.preference)  # type: ignore[attr-defined]
        return [str(record.exchange).rstrip(".") for record in records]  # type: ignore[attr-defined]

    def ptr(self, address: IPAddress) -> list[str]:
        name = dns.reversename.from_address(str(address)).to_text()
        return [str(record.target).rstrip(".") for record in self._answer(name, "PTR")]  # type: ignore[attr-defined]
