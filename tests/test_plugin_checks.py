"""The pytest plugin's checks: ``mail.html_check()`` and the others, in-process and over
the API of an external server, with assertions that name what failed."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import dkim
import pytest
from api_client import send
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dns_server import ZoneResolver, dns_server

from mailtrap import Server
from mailtrap.config import Address
from mailtrap.pytest_plugin.backends import LocalBackend
from mailtrap.pytest_plugin.checks import CheckFailed
from mailtrap.pytest_plugin.message import Mail
from mailtrap.pytest_plugin.remote import HttpBackend, HttpMark

pytest_plugins = ["pytester"]


@pytest.fixture
def dns() -> Iterator[tuple[ZoneResolver, Address]]:
    with dns_server() as running:
        yield running


def captured(server: Server, remote: bool) -> Mail:
    """The one message the server holds, as the plugin's in-process or external backend
    gives it to a test."""
    if remote:
        (mail,) = HttpBackend(server.http_url).messages_after(HttpMark(None, None), {})
    else:
        (mail,) = LocalBackend(server).messages_after(0, {})
    return mail


@pytest.mark.parametrize("remote", [False, True], ids=["in-process", "external"])
def test_auth_check_and_its_assertion_say_which_check_failed_and_why(
    make_server: Callable[..., Server], dns: tuple[ZoneResolver, Address], remote: bool
) -> None:
    zone, address = dns
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    zone.add_txt("s1._domainkey.example.test", f"v=DKIM1; p={base64.b64encode(der).decode()}")
    zone.add_txt("example.test", "v=spf1 ip4:192.0.2.1 -all")
    server = make_server(dns=address)
    raw = b"From: app@example.test\r\nTo: u@x.test\r\nSubject: Welcome\r\n\r\nHi\r\n"
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    send(server, dkim.sign(raw, b"s1", b"example.test", pem) + raw, mail_from="b@example.test")

    result = captured(server, remote).auth_check()

    assert result.dkim == "pass"
    assert result.spf == "fail"
    assert "dkim=pass header.d=example.test" in result.authentication_results
    result.assert_passes("dkim")
    with pytest.raises(CheckFailed, match=r"spf=fail \(example.test: -all matched 127.0.0.1\)"):
        result.assert_passes()


@pytest.mark.parametrize("remote", [False, True], ids=["in-process", "external"])
def test_html_and_link_checks_name_the_feature_and_the_link(
    make_server: Callable[..., Server], dns: tuple[ZoneResolver, Address], remote: bool
) -> None:
    server = make_server(dns=dns[1])
    html = '<p style="display:flex">x</p><script>x()</script><a href="http://127.0.0.1:9/">y</a>'
    send(server, f"Subject: h\r\nContent-Type: text/html\r\n\r\n{html}\r\n".encode())
    mail = captured(server, remote)

    checked = mail.html_check()
    assert "html-script" in checked.features
    with pytest.raises(CheckFailed, match="html-script"):
        checked.assert_supported(min_score=90)
    assert any(item.startswith("css-display-flex") for item in checked.unsupported_in("outlook"))
    links = mail.link_check()
    assert links.status("http://127.0.0.1:9/") == 451
    with pytest.raises(CheckFailed, match=r"http://127.0.0.1:9/ -> 451 Blocked"):
        links.assert_ok()


def test_spam_check_without_spamd_is_a_clear_error(make_server: Callable[..., Server]) -> None:
    server = make_server()
    send(server, b"Subject: s\r\n\r\nx\r\n")

    with pytest.raises(Exception, match="--spamassassin"):
        captured(server, remote=False).spam_check()


def test_a_test_suite_asserts_checks_through_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import smtplib

        def test_newsletter_renders(mailtrap):
            with smtplib.SMTP(mailtrap.smtp_host, mailtrap.smtp_port) as client:
                client.sendmail("a@example.test", ["b@example.test"],
                    "Subject: news\\r\\nContent-Type: text/html\\r\\n\\r\\n<p>Hello</p>\\r\\n")
            mail = mailtrap.wait_for(subject="news")
            mail.html_check().assert_supported(min_score=50)
            mail.html_check().assert_works_in("gmail")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:xdist")
    result.assert_outcomes(passed=1)
