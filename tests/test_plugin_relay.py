"""The plugin's relay state: a test asserts that a message was relayed, to whom, and what the
remote server answered, in-process and against an external ``mailtrap serve``.

The outer test runs a loopback dnslib zone and an aiosmtpd "MX" (example.test on
127.0.0.2, which refuses never@example.test for good); the inner sessions' server
auto-relays every message, so the inner tests only send mail and wait.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dns_server import ZoneResolver
from relay_helpers import mx_config, write_config
from serve_process import ServeProcess
from smtp_receiver import Receiver
from test_plugin_external import INNER, External, serve

from mailtrap.config import Address

pytest_plugins = ["pytester"]

INNER_TESTS = """
import smtplib

import pytest

from mailtrap.pytest_plugin import Delivery, MailAssertionError


def send(inbox, *to):
    raw = f"From: app@example.com\\r\\nTo: {', '.join(to)}\\r\\nSubject: Welcome\\r\\n\\r\\nHi"
    with smtplib.SMTP(inbox.smtp_host, inbox.smtp_port, timeout=10) as smtp:
        smtp.sendmail("app@example.com", list(to), raw)


def test_relayed_to_whom_and_what_the_server_answered(mailtrap):
    send(mailtrap, "Ann@example.test", "never@example.test")
    mail = mailtrap.wait_for(subject="Welcome")

    ann = mail.wait_for_relay(to="ann@example.test", state="sent")
    assert isinstance(ann, Delivery)
    assert (ann.sent, ann.code, ann.reply) == (True, 250, "250 2.0.0 queued as R1")
    assert (ann.remote_host, ann.reason, ann.attempts) == ("mx.example.test [127.0.0.2]", "auto", 1)
    never = mail.wait_for_relay(to="never@example.test")  # settled: whatever the outcome
    assert (never.failed, never.code, never.reply) == (True, 550, "550 5.1.1 no such user")
    everything = mail.wait_for_relay()
    assert [(d.recipient, d.state) for d in everything] == [
        ("Ann@example.test", "sent"), ("never@example.test", "failed"),
    ]
    assert [d.state for d in mail.relay] == ["sent", "failed"]


def test_waiting_for_sent_fails_as_soon_as_it_failed(mailtrap):
    send(mailtrap, "never@example.test")
    mail = mailtrap.wait_for(subject="Welcome")
    mail.wait_for_relay(to="never@example.test", state="sent", timeout=60)


def test_a_message_that_was_never_relayed(mailtrap):
    send(mailtrap, "someone@elsewhere.invalid")  # not on the allowlist: auto-relay skips it
    mail = mailtrap.wait_for(subject="Welcome")
    assert mail.relay == []
    mail.wait_for_relay(timeout=0.3)
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver("127.0.0.2", replies={"never@example.test": "550 5.1.1 no such user"})
    yield receiver.start()
    receiver.stop()


@pytest.fixture
def relay_config(tmp_path: Path, receiver: Receiver) -> Path:
    # [[auto_relay]] without a query: every new message, to its allowed recipients.
    config = mx_config(receiver.port, allowed='["example.test"]') + "[[auto_relay]]\n"
    return write_config(tmp_path, config)


def check(result: pytest.RunResult, receiver: Receiver) -> None:
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.re_match_lines(
        [
            r".*MailAssertionError: The relay of message \S+ to never@example.test ended failed, "
            r"not sent\.",
            r".*never@example.test: failed after 1 attempt at mx.example.test \[127.0.0.2\] "
            r"\(550 5.1.1 no such user\)",
        ],
        consecutive=False,
    )
    result.stdout.fnmatch_lines(
        [
            "*Timed out after 0.3 s waiting for the relay of message * to its recipients "
            "to be sent or failed.",
            "*It was never relayed to its recipients.",
            "*It has no relay deliveries at all (released? relay configured?).",
        ]
    )
    # What the inner tests saw is what the receiving server got.
    assert receiver.recipients() == ["Ann@example.test"]


def test_in_process(
    pytester: pytest.Pytester,
    relay_config: Path,
    dns_zone: tuple[ZoneResolver, Address],
    receiver: Receiver,
):
    dns = dns_zone[1]
    pytester.makeconftest(
        f"""
import pytest
from pathlib import Path
from mailtrap.config import Address

@pytest.fixture(scope="session")
def mailtrap_settings():
    return {{"http": None, "relay_config": Path({str(relay_config)!r}),
            "dns": Address({dns.host!r}, {dns.port})}}
"""
    )
    pytester.makepyfile(INNER_TESTS)
    check(pytester.runpytest(*INNER), receiver)


def test_external_server(
    pytester: pytest.Pytester,
    tmp_path: Path,
    relay_config: Path,
    dns_zone: tuple[ZoneResolver, Address],
    receiver: Receiver,
):
    dns = dns_zone[1]
    process: ServeProcess = serve(
        tmp_path, "--relay-config", str(relay_config), "--dns", f"{dns.host}:{dns.port}"
    )
    try:
        pytester.makepyfile(INNER_TESTS)
        url = External(process).url
        check(pytester.runpytest(f"--mailtrap-url={url}", *INNER), receiver)
    finally:
        process.kill()
