"""Interoperability with Debian's swaks, a real-world SMTP test client, run as a subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from htpasswd import write_htpasswd

from mailtrap import Server

SWAKS = shutil.which("swaks")

pytestmark = pytest.mark.skipif(
    SWAKS is None, reason="swaks is not installed (Debian package 'swaks')"
)

# swaks exit codes (man swaks, "EXIT CODES")
AUTH_FAILED = 28


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    """This module's tests need no special settings: they share one server, emptied."""
    return emptied_module_server


def swaks(server: Server, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run swaks against ``server`` with a fixed sender, recipient and HELO name."""
    assert SWAKS is not None
    address = server.smtp_address
    command = [
        SWAKS,
        "--server", address.host,
        "--port", str(address.port),
        "--helo", "swaks.test",
        "--from", "swaks@example.com",
        "--timeout", "10",
        *map(str, args),
    ]  # fmt: skip
    if "--to" not in args:
        command += ["--to", "rcpt@example.com"]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def only_row(server: Server) -> dict[str, object]:
    ids = server.store.ids()
    assert len(ids) == 1, ids
    return dict(server.store.get(ids[0]))


def test_a_plain_send_is_stored(server: Server):
    result = swaks(server, "--header", "Subject: from swaks", "--body", "hello from swaks")
    assert result.returncode == 0, result.stdout + result.stderr
    row = only_row(server)
    assert row["mail_from"] == "swaks@example.com"
    assert json.loads(str(row["rcpt_tos"])) == ["rcpt@example.com"]
    assert row["helo"] == "swaks.test"
    assert row["subject"] == "from swaks"
    assert row["snippet"] == "hello from swaks"
    assert (row["tls"], row["auth_user"]) == (0, None)
    assert "250 2.0.0 Ok: queued as " + str(row["id"]) in result.stdout


def test_raw_data_with_dot_lines_and_several_recipients_round_trips(server: Server, tmp_path: Path):
    # swaks ends the data with CRLF before the dot; without a final line end
    # in the file, what it sends is the file plus that CRLF.
    data = b"From: a@example.com\r\nSubject: raw\r\n\r\n.dot line\r\n..two dots\r\n.\r\nlast"
    message = tmp_path / "message.eml"
    message.write_bytes(data)
    result = swaks(server, "--to", "one@example.com,two@example.org", "--data", f"@{message}")
    assert result.returncode == 0, result.stdout + result.stderr
    message_id = server.store.ids()[0]
    assert server.store.raw(message_id) == data + b"\r\n"
    row = server.store.get(message_id)
    assert json.loads(row["rcpt_tos"]) == ["one@example.com", "two@example.org"]


def test_starttls_to_a_self_signed_server_is_stored_with_tls(
    make_server: Callable[..., Server],
):
    server = make_server(smtp_tls_self_signed=True)
    result = swaks(server, "--tls", "--header", "Subject: over tls")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TLS started" in result.stdout
    row = only_row(server)
    assert (row["tls"], row["subject"]) == (1, "over tls")


def test_starttls_with_required_tls_and_auth(make_server: Callable[..., Server]):
    server = make_server(smtp_tls_self_signed=True, smtp_require_tls=True)
    result = swaks(server, "--tls", "--auth", "PLAIN", "--auth-user", "u", "--auth-password", "p")
    assert result.returncode == 0, result.stdout + result.stderr
    row = only_row(server)
    assert (row["tls"], row["auth_user"]) == (1, "u")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_with_any_credentials_is_stored_with_the_user(server: Server, mechanism: str):
    result = swaks(
        server, "--auth", mechanism, "--auth-user", f"user-{mechanism}", "--auth-password", "pw"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert only_row(server)["auth_user"] == f"user-{mechanism}"


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_against_an_htpasswd_file(
    make_server: Callable[..., Server], tmp_path: Path, mechanism: str
):
    users = write_htpasswd(tmp_path / "users", {"alice": ("bcrypt", "right")})
    server = make_server(smtp_auth_file=users)
    auth = ["--auth", mechanism, "--auth-user", "alice"]
    refused = swaks(server, *auth, "--auth-password", "wrong")
    assert refused.returncode == AUTH_FAILED, refused.stdout + refused.stderr
    assert "535" in refused.stdout
    assert server.store.count() == 0
    accepted = swaks(server, *auth, "--auth-password", "right")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert only_row(server)["auth_user"] == "alice"


def test_pipelined_send_is_stored(server: Server):
    result = swaks(
        server, "--pipeline", "--to", "a@example.com,b@example.com", "--header", "Subject: piped"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # swaks only pipelines when the server advertises PIPELINING; then it
    # sends MAIL, RCPT, RCPT and DATA before reading any reply.
    transcript = result.stdout
    assert "250-PIPELINING" in transcript
    commands_then_replies = transcript.index(" -> DATA") < transcript.index("<-  250 2.1.0")
    assert commands_then_replies, transcript
    row = only_row(server)
    assert json.loads(str(row["rcpt_tos"])) == ["a@example.com", "b@example.com"]
    assert row["subject"] == "piped"
