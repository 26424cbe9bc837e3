"""Hooks for other tools: chaos triggers, the webhook, mailtrap sendmail."""

from __future__ import annotations

import json
import random
import smtplib
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from api_client import Api, plain, send
from web_clients import wait_until

from mailtrap import Server
from mailtrap.hooks.chaos import Chaos, ChaosError

pytest_plugins = ["pytester"]

# -- chaos ---------------------------------------------------------------------------


def test_chaos_fires_by_probability_and_validates_like_mailpit() -> None:
    chaos = Chaos(enabled=True, rng=random.Random(7))
    chaos.set_from_json({"Sender": {"ErrorCode": 450, "Probability": 30}})
    fired = [chaos.fires("Sender") for _ in range(1000)]
    assert set(fired) == {None, 450}
    assert 200 < fired.count(450) < 400
    assert chaos.to_json()["Recipient"] == {"ErrorCode": 451, "Probability": 0}
    assert chaos.to_json()["Authentication"] == {"ErrorCode": 535, "Probability": 0}
    for bad in (
        {"Sender": {"ErrorCode": 250, "Probability": 1}},
        {"Sender": {"ErrorCode": 451, "Probability": 101}},
        {"Sender": {"ErrorCode": "451"}},
        {"Nobody": {}},
        [],
    ):
        with pytest.raises(ChaosError):
            chaos.set_from_json(bad)


def test_chaos_api_is_off_unless_enabled(api: Api) -> None:
    reply = api.get("/api/v1/chaos")
    assert reply.status == 400
    assert "not enabled" in reply.error
    assert api.request("PUT", "/api/v1/chaos", {}).status == 400


def test_chaos_from_the_api_fails_smtp_steps(make_server: Callable[..., Server]) -> None:
    server = make_server(enable_chaos=True)
    api = Api(server)
    triggers = {"Recipient": {"ErrorCode": 452, "Probability": 100}}
    answer = api.ok("PUT", "/api/v1/chaos", triggers)
    assert answer["Recipient"] == {"ErrorCode": 452, "Probability": 100}
    assert api.ok("GET", "/api/v1/chaos") == answer
    bad = api.request("PUT", "/api/v1/chaos", {"Sender": {"ErrorCode": 200, "Probability": 1}})
    assert bad.status == 400 and "between 400 and 599" in bad.error

    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("app@example.com", ["user@example.com"], plain("chaos"))
        assert refused.value.recipients["user@example.com"][0] == 452

        api.ok("PUT", "/api/v1/chaos", {"Sender": {"ErrorCode": 421, "Probability": 100}})
        code, _ = client.mail("app@example.com")
        assert code == 421
    api.ok("PUT", "/api/v1/chaos", {})  # all reset
    send(server, plain("through again"))
    assert server.stats.smtp_rejected["chaos-recipient"] == 1
    assert server.stats.smtp_rejected["chaos-sender"] == 1


def test_chaos_fails_authentication(make_server: Callable[..., Server]) -> None:
    server = make_server(enable_chaos=True)
    server.chaos.set_from_json({"Authentication": {"Probability": 100}})
    address = server.smtp_address
    with (
        smtplib.SMTP(address.host, address.port, timeout=10) as client,
        pytest.raises(smtplib.SMTPAuthenticationError) as refused,
    ):
        client.login("app", "any")
    assert refused.value.smtp_code == 535


# -- webhook -------------------------------------------------------------------------


class Receiver:
    """A real HTTP server on loopback that records webhook POSTs; fails the first ``fail``."""

    def __init__(self, fail: int = 0):
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.arrived:
                    receiver.attempts += 1
                    failing = receiver.attempts <= fail
                    if not failing:
                        receiver.bodies.append(json.loads(body))
                    receiver.arrived.notify_all()
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.bodies) >= count, timeout), self.bodies
            return list(self.bodies)

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def test_the_webhook_posts_each_new_message_summary(
    make_server: Callable[..., Server], receiver: Receiver
) -> None:
    server = make_server(webhook_url=receiver.url, webhook_limit=0)
    first = send(server, plain("first"))
    second = send(server, plain("second"))
    bodies = receiver.wait_for(2)
    assert [body["ID"] for body in bodies] == [first, second]
    assert bodies[0]["Subject"] == "first"
    assert set(bodies[0]) >= {"ID", "MessageID", "From", "To", "Subject", "Created", "Size"}
    webhook = server.webhook
    assert webhook is not None
    assert wait_until(lambda: webhook.outcomes["delivered"] == 2)


def test_the_webhook_retries_a_failing_receiver(make_server: Callable[..., Server]) -> None:
    failing = Receiver(fail=1)
    try:
        server = make_server(webhook_url=failing.url, webhook_limit=0)
        message_id = send(server, plain("retried"))
        (body,) = failing.wait_for(1)
        assert body["ID"] == message_id
        assert failing.attempts == 2
    finally:
        failing.close()


def test_a_dead_webhook_receiver_never_holds_up_smtp(make_server: Callable[..., Server]) -> None:
    # Nothing listens there: every POST fails, and the 250s come all the same.
    server = make_server(webhook_url="http://127.0.0.1:1/hook", webhook_timeout=1.0)
    ids = [send(server, plain(f"message {number}")) for number in range(5)]
    assert len(set(ids)) == 5


def test_sendmail_reads_stdin_like_sendmail(server: Server) -> None:
    message = (
        b"From: Cron <cron@example.com>\n"
        b"To: ops@example.com\n"
        b"Bcc: hidden@example.com\n"
        b"Subject: nightly\n\n"
        b"all good\n.\nstill the body\n"
    )
    address = server.smtp_address
    result = subprocess.run(
        [sys.executable, "-m", "mailtrap", "sendmail", "--smtp", str(address), "-t", "-i"],
        input=message,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    (stored,) = Api(server).messages()["messages"]
    row = server.store.get(stored["ID"])
    assert json.loads(row["rcpt_tos"]) == ["ops@example.com", "hidden@example.com"]
    assert row["mail_from"] == "cron@example.com"
    raw = server.store.raw(stored["ID"])
    assert b"Bcc:" not in raw  # sendmail -t takes it out
    # -i: the lone dot is content, not the end.
    assert raw.endswith(b"all good\r\n.\r\nstill the body\r\n")


def test_sendmail_without_recipients_or_server_fails_with_sendmail_codes(server: Server) -> None:
    def sendmail(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "mailtrap", "sendmail", *args],
            input=b"Subject: x\n\nbody\n",
            capture_output=True,
            timeout=60,
        )

    nobody = sendmail("--smtp", str(server.smtp_address))
    assert nobody.returncode == 65 and b"no recipients" in nobody.stderr
    closed = sendmail("--smtp", "127.0.0.1:1", "someone@example.com")
    assert closed.returncode == 75 and b"cannot send" in closed.stderr


# -- chaos from the pytest plugin ----------------------------------------------------------


def test_a_test_suite_uses_chaos_through_the_plugin_to_test_retries(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import smtplib

        import pytest

        def deliver(inbox):
            with smtplib.SMTP(inbox.smtp_host, inbox.smtp_port, timeout=10) as client:
                raw = b"To: a@example.com\\r\\nSubject: hi\\r\\n\\r\\nhi"
                client.sendmail("app@example.com", ["a@example.com"], raw)

        def send_with_retries(inbox, attempts):
            for attempt in range(1, attempts + 1):
                try:
                    deliver(inbox)
                    return attempt
                except smtplib.SMTPSenderRefused as error:
                    assert error.smtp_code == 451
                    inbox.server.chaos.set_from_json({})  # the outage ends
            raise AssertionError("never delivered")

        def test_the_app_retries(mailtrap):
            mailtrap.server.chaos.set_from_json({"Sender": {"ErrorCode": 451, "Probability": 100}})
            assert send_with_retries(mailtrap, 3) == 2
            assert mailtrap.wait_for(to="a@example.com").subject == "hi"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
