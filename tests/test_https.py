"""HTTPS for the web inbox and API (--ui-tls-cert, --ui-tls-key), with real clients.

curl, http.client, urllib, a websocket client and Chromium each trust the
test certificate (or are told to ignore it, for Mailpit's made-up ``sans:``
certificate) and use the inbox and API the way they do over plain HTTP.
"""

from __future__ import annotations

import http.client
import json
import shutil
import smtplib
import ssl
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from https_helpers import trusting, write_certificate
from serve_process import ServeProcess, run_mailtrap
from test_cli import assert_no_traceback
from web_clients import EventsClient, next_change, next_frame

from mailtrap import Server
from mailtrap.config import GeneratedCertificate

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return write_certificate(tmp_path)


@pytest.fixture
def https_server(make_server: Callable[..., Server], certificate: tuple[Path, Path]) -> Server:
    cert, key = certificate
    return make_server(ui_tls_cert=cert, ui_tls_key=key)


def send_mail(server: Server, subject: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = (
        "app@example.com",
        "ann@example.com",
        subject,
    )
    message.set_content("Sent while the inbox is open over HTTPS.")
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        client.send_message(message)


def test_curl_verifies_the_certificate_and_reuses_the_connection(
    https_server: Server, certificate: tuple[Path, Path]
) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed: apt-get install curl")
    url = https_server.http_url
    report = "%{http_code} %{num_connects} %{ssl_verify_result} %{scheme}\n"
    curl = ["curl", "--silent", "--show-error", "--cacert", str(certificate[0]), "--max-time", "10"]
    each = ["--output", "/dev/null", "--write-out", report]
    result = subprocess.run(
        [*curl, *each, f"{url}api/v1/messages", *each, f"{url}livez"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.split("\n")[:2]
    assert first.split() == ["200", "1", "0", "HTTPS"]  # verified against the test CA
    assert second.split() == ["200", "0", "0", "HTTPS"]  # no new connection: kept alive over TLS


def test_http_client_sends_requests_one_after_another_on_one_tls_connection(
    https_server: Server, certificate: tuple[Path, Path]
) -> None:
    address = https_server.http_address
    connection = http.client.HTTPSConnection(
        address.host, address.port, timeout=10, context=trusting(certificate[0])
    )
    try:
        connection.request("GET", "/livez")
        assert connection.getresponse().read() == b'{"status":"ok"}\n'
        sock = connection.sock
        assert isinstance(sock, ssl.SSLSocket) and sock.version() in ("TLSv1.2", "TLSv1.3")
        for _ in range(3):  # each one waits in the selector between requests
            connection.request("GET", "/api/v1/messages")
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read())["total"] == 0
        assert connection.sock is sock, "a request needed a new connection"
    finally:
        connection.close()


def test_urllib_loads_the_inbox_page_which_allows_its_wss_websocket(
    https_server: Server, certificate: tuple[Path, Path]
) -> None:
    url = https_server.http_url
    assert url.startswith("https://")
    with urllib.request.urlopen(url, timeout=10, context=trusting(certificate[0])) as response:
        assert response.status == 200
        assert response.headers.get_content_type() == "text/html"
        policy = response.headers["Content-Security-Policy"]
        assert b"<html" in response.read()
    address = https_server.http_address
    assert f"wss://{address.host}:{address.port}" in policy


def test_a_websocket_client_over_wss_sees_new_mail(
    https_server: Server, certificate: tuple[Path, Path]
) -> None:
    address = https_server.http_address
    url = f"wss://{address.host}:{address.port}/api/events"
    client = EventsClient.connect(url, ssl_context=trusting(certificate[0]))
    try:
        assert next_frame(client)["Type"] == "stats"
        send_mail(https_server, "Live over TLS")
        change = next_change(client)
        assert change["Type"] == "new"
        assert change["Data"]["Subject"] == "Live over TLS"
    finally:
        client.close()


def test_sans_makes_a_certificate_for_the_names_given(make_server: Callable[..., Server]) -> None:
    made = GeneratedCertificate(("localhost", "127.0.0.1"))
    server = make_server(ui_tls_cert=made, ui_tls_key=made)
    address = server.http_address
    pem = ssl.get_server_certificate((address.host, address.port))
    names = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert names.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    # The certificate it made is the one it serves: a client trusting just it gets in.
    context = ssl.create_default_context(cadata=pem)
    connection = http.client.HTTPSConnection(
        address.host, address.port, timeout=10, context=context
    )
    try:
        connection.request("GET", "/livez")
        assert connection.getresponse().status == 200
    finally:
        connection.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_chromium_shows_new_mail_live_in_the_inbox_over_https(https_server: Server) -> None:
    playwright_sync = pytest.importorskip("playwright.sync_api")
    expect = playwright_sync.expect
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context(ignore_https_errors=True)  # our test CA is not its own
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.set_default_timeout(10_000)
            page.goto(https_server.http_url)
            assert page.url.startswith("https://")
            expect(page.locator("#status")).to_have_attribute("data-status", "live")
            send_mail(https_server, "Arrived over wss")
            subject = page.locator("#list .row .subject-text", has_text="Arrived over wss")
            expect(subject).to_be_visible()
            assert errors == []
        finally:
            browser.close()


# -- the command line -----------------------------------------------------------------


@pytest.fixture
def serve_with_sans(start_serve: Callable[..., ServeProcess]) -> Iterator[ServeProcess]:
    """``mailtrap serve`` with HTTPS from the environment, as a container would set it."""
    names = "sans:localhost,127.0.0.1"
    env = {"MAILTRAP_UI_TLS_CERT": names, "MAILTRAP_UI_TLS_KEY": names}
    process = start_serve("--db", "mail.db", "--pop3", "off", env=env)
    yield process
    process.stop()


def test_the_environment_turns_https_on_and_the_healthcheck_follows(
    serve_with_sans: ServeProcess,
) -> None:
    banner = serve_with_sans.stdout
    line = next(line for line in banner.splitlines() if line.startswith("HTTP listening on "))
    http = line.split()[3]
    assert f"(web inbox: https://{http}/)" in line
    smtp = str(serve_with_sans.smtp_address)
    env = {"MAILTRAP_SMTP": smtp, "MAILTRAP_HTTP": http}

    healthy = run_mailtrap("healthcheck", env={**env, "MAILTRAP_UI_TLS_CERT": "sans:localhost"})
    assert (healthy.returncode, healthy.stdout.strip()) == (0, "healthy"), healthy.stderr
    # Asked over plain HTTP, the HTTPS port answers 400: unhealthy, and saying why.
    plain = run_mailtrap("healthcheck", env=env)
    assert plain.returncode == 1
    assert "400" in plain.stderr and "https://" in plain.stderr


def write_encrypted_key(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    encryption = serialization.BestAvailableEncryption(b"secret")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    path.write_bytes(pem)
    return path


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        ("cert is not PEM", "holds no PEM certificate"),
        ("key of another certificate", "the key does not belong to the certificate"),
        ("key with a passphrase", "encrypted with a passphrase"),
        ("no key", "--ui-tls-cert and --ui-tls-key must be given together"),
        ("missing file", "file not found"),
        ("sans: with a key file", "both must be the same sans: list"),
    ],
)
def test_bad_certificate_settings_stop_the_start_with_a_clear_message(
    tmp_path: Path, certificate: tuple[Path, Path], which: str, expected: str
) -> None:
    cert, key = certificate
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    (tmp_path / "other").mkdir()
    other_key = write_certificate(tmp_path / "other")[1]
    arguments = {
        "cert is not PEM": ["--ui-tls-cert", junk, "--ui-tls-key", key],
        "key of another certificate": ["--ui-tls-cert", cert, "--ui-tls-key", other_key],
        "key with a passphrase": [
            "--ui-tls-cert", cert, "--ui-tls-key", write_encrypted_key(tmp_path / "locked.pem"),
        ],
        "no key": ["--ui-tls-cert", cert],
        "missing file": ["--ui-tls-cert", tmp_path / "absent.pem", "--ui-tls-key", key],
        "sans: with a key file": ["--ui-tls-cert", "sans:localhost", "--ui-tls-key", key],
    }[which]  # fmt: skip
    result = run_mailtrap("serve", "--db", tmp_path / "mail.db", *arguments, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Error:" in result.stderr and expected in result.stderr
    assert_no_traceback(result.stderr)
    assert "SMTP listening" not in result.stdout
