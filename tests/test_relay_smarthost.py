"""Relay through a smarthost: a real aiosmtpd server with STARTTLS or implicit TLS and AUTH.

The smarthost's certificate is a self-signed one for 127.0.0.1, given to
relay as ``ca_file``, so the TLS tests verify the certificate for real.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_client import Api, plain, send
from relay_helpers import settled, wait_relay, write_config
from smtp_receiver import Receiver

from mailtrap.tls import self_signed_pem

USERS = {"relay-user": "s3cret pass"}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    folder = tmp_path_factory.mktemp("tls")
    cert_pem, key_pem = self_signed_pem("smarthost.test")
    cert, key = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


def smarthost_config(port: int, cert: Path, tls: str, auth: str, password: str) -> str:
    return f"""
mode = "smarthost"
allow_any_recipient = true
blocked_recipients = ["blocked.test"]
timeout = "5s"

[smarthost]
host = "127.0.0.1"
port = {port}
tls = "{tls}"
ca_file = "{cert}"
auth = "{auth}"
username = "relay-user"
{password}

[retry]
first_delay = "0.2s"
max_delay = "0.2s"
lifetime = "30s"
"""


@pytest.fixture
def smarthost(certificate) -> Iterator[Receiver]:
    receiver = Receiver(tls_context=certificate[1], users=USERS).start()
    yield receiver
    receiver.stop()


def test_starttls_and_auth_plain_with_the_password_from_the_environment(
    make_server, tmp_path, certificate, smarthost, monkeypatch
):
    monkeypatch.setenv("TEST_SMARTHOST_PASSWORD", USERS["relay-user"])
    config = smarthost_config(
        smarthost.port,
        certificate[0],
        "starttls",
        "plain",
        'password_env = "TEST_SMARTHOST_PASSWORD"',
    )
    server = make_server(relay_config=write_config(tmp_path, config))
    message_id = send(server, plain("via smarthost"))

    Api(server).ok(
        "POST", f"/api/v1/message/{message_id}/release", {"To": ["a@one.test", "b@two.test"]}
    )
    deliveries = wait_relay(server, message_id, settled)

    assert {d["State"] for d in deliveries} == {"sent"}
    assert deliveries[0]["RemoteHost"] == "127.0.0.1 [127.0.0.1]"
    # Through a smarthost, every domain goes in one transaction, over TLS, logged in.
    [received] = smarthost.received
    assert received.rcpt_tos == ["a@one.test", "b@two.test"]
    assert received.tls and received.login == "relay-user"
    relay = Api(server).ok("GET", "/api/v1/webui")["MessageRelay"]
    assert (relay["SMTPServer"], relay["AllowedRecipients"]) == (f"127.0.0.1:{smarthost.port}", "*")
    blocked = Api(server).request(
        "POST", f"/api/v1/message/{message_id}/release", {"To": ["x@blocked.test"]}
    )
    assert blocked.status == 400 and "x@blocked.test (on the blocklist)" in blocked.error


def test_implicit_tls_and_auth_login(make_server, tmp_path, certificate):
    receiver = Receiver(tls_context=certificate[1], implicit_tls=True, users=USERS).start()
    try:
        config = smarthost_config(
            receiver.port, certificate[0], "tls", "login", f'password = "{USERS["relay-user"]}"'
        )
        server = make_server(relay_config=write_config(tmp_path, config))
        message_id = send(server, plain("implicit tls"))
        Api(server).ok("POST", f"/api/v1/message/{message_id}/release", {"To": ["a@one.test"]})
        deliveries = wait_relay(server, message_id, settled)
        assert deliveries[0]["State"] == "sent", deliveries[0]["Reply"]
        [received] = receiver.received
        assert received.tls and received.login == "relay-user"
    finally:
        receiver.stop()


def test_a_wrong_password_fails_and_an_unverifiable_certificate_retries(
    make_server, tmp_path, certificate, smarthost
):
    config = smarthost_config(
        smarthost.port, certificate[0], "starttls", "plain", 'password = "wrong"'
    )
    server = make_server(relay_config=write_config(tmp_path, config))
    message_id = send(server, plain("refused login"))
    Api(server).ok("POST", f"/api/v1/message/{message_id}/release", {"To": ["a@one.test"]})
    [delivery] = wait_relay(server, message_id, settled)
    assert delivery["State"] == "failed" and delivery["Reply"].startswith("AUTH: 535")
    server.stop()

    # Without the CA file the self-signed certificate cannot be verified: nothing is sent.
    other_ca = tmp_path / "other.pem"
    other_ca.write_bytes(self_signed_pem("someone.else")[0])
    config = smarthost_config(
        smarthost.port, other_ca, "starttls", "plain", f'password = "{USERS["relay-user"]}"'
    )
    server = make_server(relay_config=write_config(tmp_path, config, "other.toml"))
    message_id = send(server, plain("unverified"))
    Api(server).ok("POST", f"/api/v1/message/{message_id}/release", {"To": ["a@one.test"]})
    [delivery] = wait_relay(server, message_id, lambda ds: ds[0]["Attempts"] >= 1)
    assert delivery["State"] == "retrying" and "CERTIFICATE_VERIFY_FAILED" in delivery["Reply"]
    assert smarthost.received == []
