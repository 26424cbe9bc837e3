"""The shared resolver asks the server ``--dns`` names, and nothing else."""

from __future__ import annotations

import dns.resolver
import pytest
from dns_server import dns_server

from mailtrap.config import Address
from mailtrap.errors import ConfigError
from mailtrap.resolver import make_resolver


def test_a_resolver_for_a_named_server_asks_that_server() -> None:
    with dns_server() as (zone, address):
        zone.add("example.test. 60 IN MX 10 mx.example.test.")
        answer = make_resolver(address).resolve("example.test", "MX")

    assert [(r.preference, str(r.exchange)) for r in answer] == [(10, "mx.example.test.")]
    assert zone.queries == [("example.test", "MX")]


def test_an_unknown_name_is_nxdomain_and_a_failing_one_servfail() -> None:
    with dns_server() as (zone, address):
        zone.fail("broken.test")
        resolver = make_resolver(address, timeout=2.0)
        with pytest.raises(dns.resolver.NXDOMAIN):
            resolver.resolve("nowhere.test", "MX")
        with pytest.raises(dns.resolver.NoNameservers):  # SERVFAIL from the only server
            resolver.resolve("broken.test", "MX")


def test_a_host_name_is_refused_as_a_dns_server() -> None:
    with pytest.raises(ConfigError, match="IP address"):
        make_resolver(Address("dns.example", 53))
