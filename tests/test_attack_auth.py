"""Brute force against SMTP AUTH, POP3 and HTTP basic auth, from distinct loopback addresses.

Linux routes all of 127/8 to lo, so a client socket bound to 127.0.0.2 plays the
attacker and one bound to 127.0.0.3 an innocent client of the same server.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import select
import smtplib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from htpasswd import write_htpasswd
from passlib.apache import HtpasswdFile
from passlib.hash import bcrypt
from pop3_client import Pop3Wire
from smtp_wire import WireClient

from mailtrap import Server

MakeServer = Callable[..., Server]
ATTACKER, INNOCENT, OBSERVER = "127.0.0.2", "127.0.0.3", "127.0.0.4"
SIMPLE = b"From: a@example.com\r\nSubject: hello\r\n\r\nBody\r\n"
# The 3rd failure is the first delayed one, and with a limit of 3 the one that locks out.
THROTTLE = {"auth_failure_limit": 3, "auth_failure_delay": 2.0, "auth_lockout": 600.0}


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    return write_htpasswd(tmp_path / "users.htpasswd", {"alice": ("bcrypt", "right")})


@pytest.fixture(scope="module")
def slow_htpasswd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alice with a bcrypt cost that takes a good fraction of a second, as real files have;
    mallory with the cheapest, for failures that cost nothing."""
    path = tmp_path_factory.mktemp("slow") / "slow.htpasswd"
    file = HtpasswdFile(str(path), new=True)
    file.set_hash("alice", bcrypt.using(rounds=12).hash("right"))
    file.set_hash("mallory", bcrypt.using(rounds=4).hash("right"))
    file.save()
    return path


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def has_reply(client: WireClient | Pop3Wire) -> bool:
    """Whether the server has answered (or closed) without waiting for it."""
    return bool(select.select([client.sock], [], [], 0)[0])


def smtp_from(server: Server, source: str) -> smtplib.SMTP:
    address = server.smtp_address
    return smtplib.SMTP(address.host, address.port, timeout=30, source_address=(source, 0))


def send_as_alice(server: Server, source: str) -> None:
    with smtp_from(server, source) as client:
        assert client.login("alice", "right")[0] == 235
        client.sendmail("a@example.com", ["b@example.com"], SIMPLE)


# -- SMTP ---------------------------------------------------------------------------


def test_smtp_guesses_are_delayed_then_refused_while_alice_sends_from_elsewhere(
    make_server: MakeServer, htpasswd: Path, caplog: pytest.LogCaptureFixture
):
    server = make_server(smtp_auth_file=htpasswd, **THROTTLE)
    with WireClient(server.smtp_address, timeout=30, source=ATTACKER) as attacker:
        attacker.ehlo()
        for guess in ("one", "two"):
            assert attacker.command(f"AUTH PLAIN {plain('alice', guess)}").code == 535
        attacker.send_line(f"AUTH PLAIN {plain('alice', 'three')}")
        # While the third failure waits for its reply, alice logs in and sends.
        send_as_alice(server, INNOCENT)
        assert not has_reply(attacker)
        assert attacker.reply().code == 535
        # Locked out now, even with the right password.
        locked = attacker.command(f"AUTH PLAIN {plain('alice', 'right')}")
        assert (locked.code, locked.text) == (
            454,
            "4.7.0 Too many failed logins from your address, try again later",
        )
    with WireClient(server.smtp_address, read_greeting=False, source=ATTACKER) as again:
        assert again.read_until_closed() == (
            b"421 4.7.0 Too many failed logins from your address\r\n"
        )
    send_as_alice(server, INNOCENT)
    assert server.store.count() == 2
    throttle = server.auth_throttle
    assert (throttle.failures, throttle.lockouts, throttle.locked_addresses) == (3, 1, 1)
    assert "locking out 127.0.0.2 for 600 s after 3 failed logins" in caplog.text


def test_auth_login_failures_count_too_and_a_success_forgets_them(
    make_server: MakeServer, htpasswd: Path
):
    server = make_server(smtp_auth_file=htpasswd, **THROTTLE)

    def auth_login(client: smtplib.SMTP, password: str) -> int:
        client.user, client.password = "alice", password
        return client.auth("LOGIN", client.auth_login, initial_response_ok=False)[0]

    for _ in range(2):  # two failures each time: without the success, the third locks out
        with smtp_from(server, ATTACKER) as client:
            client.ehlo()
            for _ in range(2):
                with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                    auth_login(client, "wrong")
                assert refused.value.smtp_code == 535
            assert auth_login(client, "right") == 235
    assert server.auth_throttle.lockouts == 0


@contextlib.contextmanager
def guessing(
    server: Server, sources: list[str], *, suspects: bool = False
) -> Iterator[list[WireClient]]:
    """One connection per source, each with a guess at alice's password sent, unanswered.

    ``suspects``: each address fails a cheap login first, so it has a recent failure.
    """
    attackers = [WireClient(server.smtp_address, timeout=60, source=s) for s in sources]
    try:
        for attacker in attackers:
            attacker.ehlo()
            if suspects:
                assert attacker.command(f"AUTH PLAIN {plain('mallory', 'x')}").code == 535
        for number, attacker in enumerate(attackers):
            attacker.send_line(f"AUTH PLAIN {plain('alice', f'guess-{number}')}")
        time.sleep(0.2)  # let the first checks start
        yield attackers
        assert attackers[0].reply().code == 535  # the checks do run
    finally:
        for attacker in attackers:
            attacker.close()


EIGHT_ADDRESSES = [f"127.0.0.{10 + number}" for number in range(8)]


def test_bcrypt_checks_never_block_the_event_loop(make_server: MakeServer, slow_htpasswd: Path):
    server = make_server(smtp_auth_file=slow_htpasswd, auth_failure_delay=0)
    with WireClient(server.smtp_address, timeout=60, source=OBSERVER) as observer:
        observer.ehlo()
        with guessing(server, EIGHT_ADDRESSES) as attackers:
            # Another client is served before any of the eight checks is answered.
            assert observer.command("NOOP").code == 250
            assert not any(has_reply(attacker) for attacker in attackers)


def test_the_right_password_from_another_address_does_not_queue_behind_an_attack(
    make_server: MakeServer, slow_htpasswd: Path
):
    server = make_server(smtp_auth_file=slow_htpasswd, auth_failure_delay=0)
    with WireClient(server.smtp_address, timeout=60, source=INNOCENT) as alice:
        alice.ehlo()
        with guessing(server, [ATTACKER] * 8) as attackers:
            assert alice.command("NOOP").code == 250
            assert not any(has_reply(attacker) for attacker in attackers)
            # One attacking address gets one check at a time: alice's runs beside it.
            assert alice.command(f"AUTH PLAIN {plain('alice', 'right')}").code == 235
            assert sum(has_reply(attacker) for attacker in attackers) < 8


def test_the_right_password_goes_before_guesses_from_many_addresses(
    make_server: MakeServer, slow_htpasswd: Path
):
    server = make_server(smtp_auth_file=slow_htpasswd, auth_failure_delay=0)
    with WireClient(server.smtp_address, timeout=60, source=INNOCENT) as alice:
        alice.ehlo()
        with guessing(server, EIGHT_ADDRESSES, suspects=True) as attackers:
            # Two workers, eight guesses waiting: alice's check takes the next free one.
            assert alice.command(f"AUTH PLAIN {plain('alice', 'right')}").code == 235
            assert sum(has_reply(attacker) for attacker in attackers) < 8


# -- POP3 ---------------------------------------------------------------------------


def test_pop3_guesses_are_delayed_then_refused_and_closed_while_alice_logs_in(
    make_server: MakeServer, htpasswd: Path
):
    server = make_server(pop3_auth_file=htpasswd, **THROTTLE)
    refused = b"-ERR [AUTH] invalid user name or password"
    locked = b"-ERR [AUTH] too many failed logins from your address, try again later"
    with Pop3Wire(server.pop3_address, timeout=30, source=ATTACKER) as attacker:
        assert attacker.login("alice", "one") == refused
        assert attacker.login("alice", "two") == refused
        assert attacker.command("USER alice").startswith(b"+OK")
        attacker.send_line("PASS three")
        with Pop3Wire(server.pop3_address, source=INNOCENT) as alice:
            assert alice.login("alice", "right").startswith(b"+OK")
            assert alice.command("STAT").startswith(b"+OK")
        assert not has_reply(attacker)
        assert attacker.line() == refused
        assert attacker.login("alice", "right") == locked
        assert attacker.read_until_closed(timeout=5) == b""
    with Pop3Wire(server.pop3_address, read_greeting=False, source=ATTACKER) as again:
        assert again.read_until_closed(timeout=5) == locked + b"\r\n"
    with Pop3Wire(server.pop3_address, source=INNOCENT) as alice:
        assert alice.login("alice", "right").startswith(b"+OK")
    assert server.auth_throttle.lockouts == 1


# -- HTTP basic auth, and one throttle for every listener ---------------------------------


def http_get(server: Server, source: str, password: str | None) -> http.client.HTTPResponse:
    address = server.http_address
    connection = http.client.HTTPConnection(
        address.host, address.port, timeout=30, source_address=(source, 0)
    )
    headers = {}
    if password is not None:
        token = base64.b64encode(f"alice:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    connection.request("GET", "/api/v1/messages", headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_http_guesses_get_429_with_retry_after_and_lock_smtp_out_too(
    make_server: MakeServer, htpasswd: Path
):
    server = make_server(
        ui_auth_file=htpasswd, smtp_auth_file=htpasswd, **{**THROTTLE, "auth_failure_delay": 0.1}
    )
    assert http_get(server, ATTACKER, None).status == 401  # no credentials: no failure
    assert [http_get(server, ATTACKER, "wrong").status for _ in range(3)] == [401] * 3
    address = server.http_address
    connection = http.client.HTTPConnection(
        address.host, address.port, timeout=30, source_address=(ATTACKER, 0)
    )
    token = base64.b64encode(b"alice:right").decode()
    connection.request("GET", "/api/v1/messages", headers={"Authorization": f"Basic {token}"})
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == 429
    assert 0 < int(response.headers["Retry-After"]) <= 600
    assert body["Error"].startswith("too many failed logins from your address")
    assert http_get(server, INNOCENT, "right").status == 200
    with WireClient(server.smtp_address, read_greeting=False, source=ATTACKER) as smtp:
        assert smtp.read_until_closed().startswith(b"421 4.7.0")
    send_as_alice(server, INNOCENT)


# -- long lines in the AUTH exchange -----------------------------------------------------


@pytest.mark.parametrize("size", [20_000, 70_000], ids=["over-the-auth-limit", "over-64KiB"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_a_long_reply_to_334_gets_500_5_5_6_and_the_session_goes_on(
    server: Server, mechanism: str, size: int
):
    with WireClient(server.smtp_address) as client:
        client.ehlo()
        assert client.command(f"AUTH {mechanism}").code == 334
        reply = client.command(b"QUFB" * (size // 4))
        assert str(reply) == "500 5.5.6 Authentication exchange line is too long"
        assert client.command("NOOP").code == 250
        client.ehlo()
        assert client.command(f"AUTH PLAIN {plain('u', 'p')}").code == 235


def test_a_long_initial_response_gets_500_5_5_6_and_the_session_goes_on(server: Server):
    with WireClient(server.smtp_address) as client:
        client.ehlo()
        reply = client.command("AUTH PLAIN " + "QUFB" * 5000)
        assert str(reply) == "500 5.5.6 Authentication exchange line is too long"
        assert client.command("NOOP").code == 250
        assert client.command(f"AUTH PLAIN {plain('u', 'p')}").code == 235
