"""Authentication check: DKIM, ARC, SPF and DMARC against keys and policies a real DNS server
(dnslib, on loopback) publishes, for mail sent to a real server over SMTP."""

from __future__ import annotations

import base64
import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest
from api_client import Api
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dns_server import ZoneResolver, dns_server

from mailtrap import Server
from mailtrap.checks.authentication import client_address
from mailtrap.checks.dmarc import check_dmarc
from mailtrap.checks.dns_records import Records
from mailtrap.checks.signatures import parse_dkim_key
from mailtrap.checks.spf import check_spf
from mailtrap.config import Address
from mailtrap.errors import ConfigError
from mailtrap.resolver import make_resolver

LOOPBACK = client_address("127.0.0.1")
assert LOOPBACK is not None


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def key_record(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


@pytest.fixture
def dns() -> Iterator[tuple[ZoneResolver, Address]]:
    with dns_server() as running:
        yield running


@pytest.fixture
def records(dns: tuple[ZoneResolver, Address]) -> Records:
    return Records(make_resolver(dns[1], timeout=2.0))


def message(sender: str = "news@example.test", body: str = "Hello from the shop.") -> bytes:
    return (
        f"From: Shop <{sender}>\r\nTo: bob@elsewhere.test\r\nSubject: Your order\r\n"
        f"Message-ID: <1@example.test>\r\n\r\n{body}\r\n"
    ).encode()


def signed(raw: bytes, key: rsa.RSAPrivateKey, domain: str = "example.test") -> bytes:
    headers = [b"from", b"to", b"subject", b"message-id"]
    signature = dkim.sign(raw, b"s1", domain.encode(), private_pem(key), include_headers=headers)
    return signature + raw


def publish(zone: ZoneResolver, key: rsa.RSAPrivateKey, spf: str, dmarc: str) -> None:
    zone.add_txt("s1._domainkey.example.test", key_record(key))
    zone.add_txt("example.test", spf)
    zone.add_txt("_dmarc.example.test", dmarc)


def send_and_check(server: Server, raw: bytes, mail_from: str) -> dict[str, Any]:
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        client.ehlo("app.example.test")
        client.sendmail(mail_from, ["bob@elsewhere.test"], raw)
    reply = Api(server).get("/api/v1/message/latest/auth-check")
    assert reply.status == 200, reply.body
    return reply.json()


def test_signed_mail_from_an_allowed_address_passes_dkim_spf_and_dmarc(
    make_server: Callable[..., Server], dns: tuple[ZoneResolver, Address], key: Any
) -> None:
    zone, address = dns
    publish(zone, key, "v=spf1 ip4:127.0.0.0/8 -all", "v=DMARC1; p=reject")
    server = make_server(dns=address)

    result = send_and_check(server, signed(message(), key), "bounce@example.test")

    assert result["DKIM"]["Result"] == "pass", result["DKIM"]
    assert result["DKIMSignatures"][0]["Domain"] == "example.test"
    assert result["DKIMSignatures"][0]["KeySource"] == "dns"
    # What the store kept of the SMTP session is what SPF is checked with.
    assert result["SPF"] == {
        "Result": "pass",
        "Domain": "example.test",
        "ClientIP": "127.0.0.1",
        "MailFrom": "bounce@example.test",
        "Helo": "app.example.test",
        "Reason": result["SPF"]["Reason"],
    }
    assert result["DMARC"]["Result"] == "pass"
    assert result["DMARC"]["DKIMAligned"] and result["DMARC"]["SPFAligned"]
    assert result["DMARC"]["Policy"] == "reject"
    assert result["AuthenticationResults"] == (
        "mailtrap; dkim=pass header.d=example.test header.s=s1; "
        "spf=pass smtp.mailfrom=bounce@example.test; dmarc=pass header.from=example.test; "
        "arc=none"
    )


def test_a_changed_body_fails_dkim_and_an_unlisted_address_fails_spf_so_dmarc_fails(
    make_server: Callable[..., Server], dns: tuple[ZoneResolver, Address], key: Any
) -> None:
    zone, address = dns
    publish(zone, key, "v=spf1 ip4:192.0.2.10 -all", "v=DMARC1; p=quarantine")
    server = make_server(dns=address)
    tampered = signed(message(), key).replace(b"Hello from the shop.", b"Pay us now.")

    result = send_and_check(server, tampered, "bounce@example.test")

    assert result["DKIM"]["Result"] == "fail"
    assert "body hash mismatch" in result["DKIM"]["Reason"]
    assert result["SPF"]["Result"] == "fail"
    assert "-all" in result["SPF"]["Reason"]
    assert result["DMARC"]["Result"] == "fail"
    assert "treat it as spam (p=quarantine)" in result["DMARC"]["Reason"]


def test_a_signature_whose_key_is_not_published_is_a_permerror_naming_where_it_looked(
    make_server: Callable[..., Server], dns: tuple[ZoneResolver, Address], key: Any
) -> None:
    zone, address = dns
    zone.add_txt("example.test", "v=spf1 -all")
    server = make_server(dns=address)

    result = send_and_check(server, signed(message(), key), "bounce@example.test")

    assert result["DKIM"]["Result"] == "permerror"
    assert "s1._domainkey.example.test" in result["DKIM"]["Reason"]
    assert result["DMARC"]["Result"] == "none"  # no policy published


def test_dkim_key_lets_the_app_check_its_own_signing_without_publishing_dns(
    make_server: Callable[..., Server],
    dns: tuple[ZoneResolver, Address],
    key: Any,
    tmp_path: Path,
) -> None:
    _, address = dns  # nothing published at all
    key_file = tmp_path / "app-dkim.pem"
    key_file.write_bytes(private_pem(key))  # the very file the app signs with
    server = make_server(dns=address, dkim_key=(f"example.test:s1={key_file}",))

    result = send_and_check(server, signed(message(), key), "bounce@example.test")
    assert result["DKIMSignatures"][0]["Result"] == "pass"
    assert result["DKIMSignatures"][0]["KeySource"] == "--dkim-key"

    other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    result = send_and_check(server, signed(message(), other), "bounce@example.test")
    assert result["DKIM"]["Result"] == "fail"  # signed with a key that is not the app's


def test_a_dkim_key_setting_must_name_domain_selector_and_a_readable_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DOMAIN:SELECTOR=FILE"):
        parse_dkim_key("example.test=key.pem")
    with pytest.raises(ConfigError, match="cannot read"):
        parse_dkim_key(f"example.test:s1={tmp_path / 'missing.pem'}")
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="not a PEM key"):
        parse_dkim_key(f"example.test:s1={tmp_path / 'junk.pem'}")
    (tmp_path / "record.txt").write_text("v=DKIM1; k=rsa;\n p=MIGf")
    assert parse_dkim_key(f"Example.Test:S1={tmp_path / 'record.txt'}") == (
        "s1._domainkey.example.test",
        "v=DKIM1; k=rsa; p=MIGf",
    )


def test_an_arc_sealed_message_is_verified(
    make_server: Callable[..., Server], dns: tuple[ZoneResolver, Address], key: Any
) -> None:
    zone, address = dns
    zone.add_txt("s1._domainkey.example.test", key_record(key))
    server = make_server(dns=address)
    raw = b"Authentication-Results: relay.example.test; spf=pass\r\n" + message()
    seal = dkim.arc_sign(raw, b"s1", b"example.test", private_pem(key), b"relay.example.test")

    result = send_and_check(server, b"".join(seal) + raw, "bounce@example.test")

    assert result["ARC"]["Result"] == "pass", result["ARC"]
    assert result["AuthenticationResults"].endswith("arc=pass")


# -- SPF, against records the DNS server publishes ---------------------------------


def test_spf_follows_include_redirect_a_mx_and_exists(
    dns: tuple[ZoneResolver, Address], records: Records
) -> None:
    zone, _ = dns
    zone.add_txt("example.test", "v=spf1 include:_spf.example.test -all")
    zone.add_txt("_spf.example.test", "v=spf1 redirect=relays.example.test")
    zone.add_txt("relays.example.test", "v=spf1 a:out.example.test mx ~all")
    zone.add("out.example.test. 60 IN A 192.0.2.7")
    zone.add_txt("macro.test", "v=spf1 exists:%{ir}.%{l}.allow.macro.test -all")

    assert check_spf(LOOPBACK, "a@example.test", "h", records).result == "fail"
    zone.add("relays.example.test. 60 IN MX 10 mail.example.test.")  # mx: the redirect's domain
    zone.add("mail.example.test. 60 IN A 127.0.0.1")
    assert check_spf(LOOPBACK, "a@example.test", "h", records).result == "pass"
    # exists: with macros, the client address reversed and the sender's local part
    assert check_spf(LOOPBACK, "bounce@macro.test", "h", records).result == "fail"
    zone.add("1.0.0.127.bounce.allow.macro.test. 60 IN A 127.0.0.2")
    assert check_spf(LOOPBACK, "bounce@macro.test", "h", records).result == "pass"


def test_spf_limits_and_broken_records_are_permerrors_and_a_dead_server_a_temperror(
    dns: tuple[ZoneResolver, Address], records: Records
) -> None:
    zone, _ = dns
    zone.add_txt("loop.test", "v=spf1 include:loop.test -all")
    zone.add_txt("twice.test", "v=spf1 -all")
    zone.add_txt("twice.test", "v=spf1 +all")
    zone.add_txt("void.test", "v=spf1 a:n1.void.test a:n2.void.test a:n3.void.test -all")
    zone.fail("broken.test")

    assert check_spf(LOOPBACK, "a@loop.test", "h", records).result == "permerror"
    assert "more than 10 DNS lookups" in check_spf(LOOPBACK, "a@loop.test", "h", records).reason
    assert check_spf(LOOPBACK, "a@twice.test", "h", records).result == "permerror"
    assert check_spf(LOOPBACK, "a@void.test", "h", records).result == "permerror"
    assert check_spf(LOOPBACK, "a@broken.test", "h", records).result == "temperror"
    assert check_spf(LOOPBACK, "a@nothing.test", "h", records).result == "none"


def test_the_null_sender_is_checked_as_postmaster_at_the_helo_name(
    dns: tuple[ZoneResolver, Address], records: Records
) -> None:
    zone, _ = dns
    zone.add_txt("app.example.test", "v=spf1 ip4:127.0.0.1 -all")

    result = check_spf(LOOPBACK, "", "app.example.test", records)

    assert (result.result, result.domain) == ("pass", "app.example.test")


# -- DMARC ------------------------------------------------------------------------


def test_dmarc_of_a_subdomain_uses_the_organizational_record_and_its_subdomain_policy(
    dns: tuple[ZoneResolver, Address], records: Records
) -> None:
    zone, _ = dns
    zone.add_txt("_dmarc.example.test", "v=DMARC1; p=reject; sp=quarantine; aspf=s")

    relaxed_dkim = check_dmarc("news.example.test", "fail", "", ["example.test"], records)
    assert (relaxed_dkim.result, relaxed_dkim.policy) == ("pass", "quarantine")
    strict_spf = check_dmarc("news.example.test", "pass", "example.test", [], records)
    assert (strict_spf.result, strict_spf.spf_aligned) == ("fail", False)
    other_domain = check_dmarc("example.test", "pass", "mailer.test", ["mailer.test"], records)
    assert other_domain.result == "fail" and other_domain.policy == "reject"
    assert "not aligned" in other_domain.reason


def test_a_from_field_with_two_domains_is_a_dmarc_permerror(
    make_server: Callable[..., Server], dns: tuple[ZoneResolver, Address]
) -> None:
    zone, address = dns
    zone.add_txt("_dmarc.example.test", "v=DMARC1; p=none")
    server = make_server(dns=address)
    raw = b"From: a@example.test, b@other.test\r\nSubject: two\r\n\r\nbody\r\n"

    result = send_and_check(server, raw, "a@example.test")

    assert result["DMARC"]["Result"] == "permerror"
    assert "several domains" in result["DMARC"]["Reason"]


def test_client_addresses_are_read_from_what_the_store_keeps() -> None:
    assert str(client_address("192.0.2.1:2525")) == "192.0.2.1"
    assert str(client_address("[2001:db8::1]:2525")) == "2001:db8::1"
    assert str(client_address("2001:db8::1")) == "2001:db8::1"
    assert client_address("") is None
    assert client_address("unix-socket") is None
