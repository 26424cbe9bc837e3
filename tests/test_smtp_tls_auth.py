"""STARTTLS and AUTH, with smtplib and with raw sockets."""

from __future__ import annotations

import base64
import smtplib
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from htpasswd import write_htpasswd
from smtp_wire import WireClient, deliver, queued_id, send_message

from mailtrap import Server
from mailtrap.tls import self_signed_pem

SIMPLE = b"From: a@example.com\r\nSubject: secure\r\n\r\nBody\r\n"


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    """This module's tests need no special settings: they share one server, emptied."""
    return emptied_module_server


def unverified_context() -> ssl.SSLContext:
    """A client context that accepts the server's self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def client_for(server: Server) -> smtplib.SMTP:
    address = server.smtp_address
    return smtplib.SMTP(address.host, address.port, timeout=5)


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    cert_pem, key_pem = self_signed_pem("mailtrap.test")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    return cert, key


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    """Users alice (bcrypt) and bob (apr1-md5); bcrypt at its lowest cost, to stay fast."""
    users = {"alice": ("bcrypt", "alice-secret"), "bob": ("apr1", "bob-secret")}
    return write_htpasswd(tmp_path / "smtp.htpasswd", users)


# -- STARTTLS ----------------------------------------------------------------------


def test_starttls_with_a_self_signed_certificate_stores_tls(make_server: Callable[..., Server]):
    server = make_server(smtp_tls_self_signed=True)
    with client_for(server) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        code, _ = client.starttls(context=unverified_context())
        assert code == 220
        certificate = client.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
        assert certificate
        client.ehlo("after.tls.test")
        assert not client.has_extn("starttls")  # not offered twice
        assert client.has_extn("pipelining")
        message_id = deliver(client, SIMPLE)
    row = server.store.get(message_id)
    assert row["tls"] == 1
    assert row["helo"] == "after.tls.test"
    assert server.store.raw(message_id) == SIMPLE


def test_starttls_with_certificate_files_verifies_against_that_certificate(
    make_server: Callable[..., Server], tls_files: tuple[Path, Path]
):
    cert, key = tls_files
    server = make_server(smtp_tls_cert=cert, smtp_tls_key=key)
    context = ssl.create_default_context(cafile=str(cert))  # full verification, hostname too
    with client_for(server) as client:
        client.ehlo()
        assert client.starttls(context=context)[0] == 220
        subject = dict(item[0] for item in client.sock.getpeercert()["subject"])  # type: ignore[union-attr]
        assert subject["commonName"] == "mailtrap.test"
        message_id = deliver(client, SIMPLE)
    assert server.store.get(message_id)["tls"] == 1


def test_a_client_verifying_against_another_ca_refuses_the_certificate(
    make_server: Callable[..., Server], tls_files: tuple[Path, Path], tmp_path: Path
):
    cert, key = tls_files
    server = make_server(smtp_tls_cert=cert, smtp_tls_key=key)
    other = tmp_path / "other.pem"
    other.write_bytes(self_signed_pem("someone.else")[0])
    with client_for(server) as client:
        client.ehlo()
        with pytest.raises(ssl.SSLCertVerificationError):
            client.starttls(context=ssl.create_default_context(cafile=str(other)))
    assert server.store.count() == 0


def test_starttls_without_tls_configured_is_refused(server: Server):
    with WireClient(server.smtp_address) as client:
        assert "STARTTLS" not in client.ehlo().lines
        assert client.command("STARTTLS").code == 454
        queued_id(send_message(client, SIMPLE + b".\r\n"))  # still usable in plain text
    assert server.store.get(server.store.ids()[0])["tls"] == 0


def test_require_tls_refuses_mail_before_starttls_and_accepts_it_after(
    make_server: Callable[..., Server],
):
    server = make_server(smtp_tls_self_signed=True, smtp_require_tls=True)
    with WireClient(server.smtp_address) as client:
        assert "STARTTLS" in client.ehlo().lines
        assert client.command("MAIL FROM:<a@example.com>").code == 530
        assert client.command("AUTH PLAIN " + base64.b64encode(b"\0u\0p").decode()).code == 530
        assert client.command("STARTTLS").code == 220
        client.start_tls(unverified_context())
        client.ehlo()
        message_id = queued_id(send_message(client, SIMPLE + b".\r\n"))
    assert server.store.ids() == [message_id]
    assert server.store.get(message_id)["tls"] == 1


def test_require_tls_with_smtplib(make_server: Callable[..., Server]):
    server = make_server(smtp_tls_self_signed=True, smtp_require_tls=True)
    with client_for(server) as client:
        client.ehlo()
        assert client.mail("a@example.com")[0] == 530
        client.starttls(context=unverified_context())
        message_id = deliver(client, SIMPLE)
    assert server.store.get(message_id)["tls"] == 1


def test_commands_pipelined_after_starttls_in_plain_text_are_discarded(
    make_server: Callable[..., Server],
):
    # The STARTTLS command injection attack (CVE-2011-0411 and kin): plain-text
    # commands sent right behind STARTTLS must not run inside the TLS session.
    server = make_server(smtp_tls_self_signed=True)
    with WireClient(server.smtp_address) as client:
        client.ehlo()
        client.send(b"STARTTLS\r\nMAIL FROM:<injected@attacker.example>\r\n")
        assert client.reply().code == 220
        client.start_tls(unverified_context())
        client.ehlo()
        # Had the injected MAIL run, this would be a nested MAIL (503).
        message_id = queued_id(send_message(client, SIMPLE + b".\r\n"))
    assert server.store.get(message_id)["mail_from"] == "sender@example.com"


def test_starttls_is_no_new_connection_for_the_connection_limit(
    make_server: Callable[..., Server],
):
    server = make_server(smtp_tls_self_signed=True, smtp_max_connections=1)
    for _ in range(2):  # the slot is given back when a TLS session ends
        with smtp_when_a_slot_is_free(server) as client:
            client.ehlo()
            client.starttls(context=unverified_context())
            with WireClient(server.smtp_address, read_greeting=False) as extra:
                assert extra.read_until_closed(timeout=3).startswith(b"421 ")
            deliver(client, SIMPLE)
    assert server.store.count() == 2


def smtp_when_a_slot_is_free(server: Server, timeout: float = 3.0) -> smtplib.SMTP:
    """Connect, retrying while the server refuses with 421 (a closed slot frees up shortly)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client_for(server)
        except smtplib.SMTPConnectError as refused:
            assert refused.smtp_code == 421
            assert time.monotonic() < deadline, "no connection slot came free"
            time.sleep(0.05)


# -- AUTH without credentials: anything goes -----------------------------------------------


def test_auth_plain_with_any_credentials_is_accepted_without_tls(server: Server):
    with client_for(server) as client:
        client.ehlo()
        code, _ = client.login("anyone@example.com", "any password")  # smtplib picks PLAIN
        assert code == 235
        message_id = deliver(client, SIMPLE)
    row = server.store.get(message_id)
    assert row["auth_user"] == "anyone@example.com"
    assert row["tls"] == 0


def test_auth_login_with_any_credentials_is_accepted(server: Server):
    with client_for(server) as client:
        client.ehlo()
        client.user, client.password = "login-user", "whatever"
        code, _ = client.auth("LOGIN", client.auth_login)
        assert code == 235
        message_id = deliver(client, SIMPLE)
    assert server.store.get(message_id)["auth_user"] == "login-user"


def test_auth_plain_and_login_with_challenges_on_the_wire(server: Server):
    with WireClient(server.smtp_address) as client:
        client.ehlo()
        reply = client.command("AUTH PLAIN")
        assert (reply.code, reply.text) == (334, "")
        assert client.command(base64.b64encode(b"\0plain-user\0pw")).code == 235
        assert client.command("AUTH PLAIN " + base64.b64encode(b"\0x\0y").decode()).code == 503
        first = queued_id(send_message(client, SIMPLE + b".\r\n"))
    with WireClient(server.smtp_address) as client:
        client.ehlo()
        reply = client.command("AUTH LOGIN")
        assert reply.code == 334
        assert base64.b64decode(reply.text) == b"User Name\0"
        reply = client.command(base64.b64encode(b"login-user"))
        assert reply.code == 334
        assert base64.b64decode(reply.text) == b"Password\0"
        assert client.command(base64.b64encode(b"pw")).code == 235
        second = queued_id(send_message(client, SIMPLE + b".\r\n"))
    assert server.store.get(first)["auth_user"] == "plain-user"
    assert server.store.get(second)["auth_user"] == "login-user"


def test_auth_with_an_unknown_mechanism_or_bad_base64_is_refused(server: Server):
    with WireClient(server.smtp_address) as client:
        client.ehlo()
        assert client.command("AUTH CRAM-MD5").code == 504
        assert client.command("AUTH PLAIN not!base64").code == 501
        assert client.command("AUTH PLAIN " + base64.b64encode(b"no-nul").decode()).code == 501
        reply = client.command("AUTH LOGIN")
        assert reply.code == 334
        assert client.command("*").code == 501  # the client gave up


def test_mail_without_auth_is_stored_with_no_auth_user(server: Server, smtp: smtplib.SMTP):
    message_id = deliver(smtp, SIMPLE)
    assert server.store.get(message_id)["auth_user"] is None


# -- AUTH with an htpasswd file ------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "password"), [("alice", "alice-secret"), ("bob", "bob-secret")], ids=["bcrypt", "apr1"]
)
def test_with_an_auth_file_only_the_right_credentials_let_mail_through(
    make_server: Callable[..., Server], htpasswd: Path, user: str, password: str
):
    server = make_server(smtp_auth_file=htpasswd)
    with client_for(server) as client:
        client.ehlo()
        assert client.mail("a@example.com")[0] == 530
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login(user, password + "-wrong")
        assert refused.value.smtp_code == 535
        with pytest.raises(smtplib.SMTPAuthenticationError) as unknown:
            client.login("mallory", password)
        assert unknown.value.smtp_code == 535
        assert client.mail("a@example.com")[0] == 530
        assert server.store.count() == 0
        assert client.login(user, password)[0] == 235
        message_id = deliver(client, SIMPLE)
    assert server.store.get(message_id)["auth_user"] == user
    assert server.store.ids() == [message_id]


def test_with_an_auth_file_auth_login_checks_the_password(
    make_server: Callable[..., Server], htpasswd: Path
):
    server = make_server(smtp_auth_file=htpasswd)
    with client_for(server) as client:
        client.ehlo()
        client.user, client.password = "alice", "wrong"
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.auth("LOGIN", client.auth_login)
        assert refused.value.smtp_code == 535
        client.password = "alice-secret"
        assert client.auth("LOGIN", client.auth_login)[0] == 235
        message_id = deliver(client, SIMPLE)
    assert server.store.get(message_id)["auth_user"] == "alice"


def test_with_an_auth_file_rcpt_and_data_without_auth_store_nothing(
    make_server: Callable[..., Server], htpasswd: Path
):
    server = make_server(smtp_auth_file=htpasswd)
    with WireClient(server.smtp_address) as client:
        client.ehlo()
        client.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        codes = [reply.code for reply in client.replies(3)]
        assert codes == [530, 503, 503]
    assert server.store.count() == 0


def test_authentication_before_starttls_is_forgotten_after_it(
    make_server: Callable[..., Server], htpasswd: Path
):
    # RFC 3207 4.2: the session starts over after the TLS handshake.
    server = make_server(smtp_auth_file=htpasswd, smtp_tls_self_signed=True)
    with client_for(server) as client:
        client.ehlo()
        assert client.login("alice", "alice-secret")[0] == 235
        client.starttls(context=unverified_context())
        client.ehlo()
        assert client.mail("a@example.com")[0] == 530
        assert client.login("bob", "bob-secret")[0] == 235
        message_id = deliver(client, SIMPLE)
    row = server.store.get(message_id)
    assert (row["auth_user"], row["tls"]) == ("bob", 1)
