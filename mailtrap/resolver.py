"""The DNS resolver relay and message checks share: the system's, or the one ``--dns`` names."""

from __future__ import annotations

import ipaddress

import dns.resolver

from mailtrap.config import Address
from mailtrap.errors import ConfigError

DNS_TIMEOUT = 5.0  # seconds for one whole lookup, retries included


def make_resolver(server: Address | None, timeout: float = DNS_TIMEOUT) -> dns.resolver.Resolver:
    """A resolver asking ``server`` only, or, when it is None, the system's name servers."""
    if server is None:
        resolver = dns.resolver.Resolver()
    else:
        try:
            ipaddress.ip_address(server.host)
        except ValueError:
            raise ConfigError(f"--dns needs an IP address, not {server.host!r}") from None
        # configure=False: nothing from /etc/resolv.conf, so a test's server is the only one asked.
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [server.host]
        resolver.port = server.port
    resolver.lifetime = timeout
    resolver.timeout = timeout
    return resolver
