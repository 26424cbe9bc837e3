"""The plugin against an already running server: ``--mailtrap-url`` and a ``mailtrap serve``
subprocess, read through the HTTP API (long-poll search for waiting)."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_process import ServeProcess

from mailtrap.pytest_plugin.backends import write_htpasswd

pytest_plugins = ["pytester"]

# Inner sessions skip the cache and Hypothesis's plugin (2 s per in-process session).
INNER = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


class External:
    """A ``mailtrap serve`` process and where it listens."""

    def __init__(self, process: ServeProcess):
        self.process = process
        match = re.search(r"^HTTP listening on \S+ \(web inbox: (\S+)\)$", process.stdout, re.M)
        assert match, process.stdout
        self.url = match[1]
        self.smtp = process.smtp_address

    def send(self, subject: str, to: str = "bob@example.com") -> None:
        with smtplib.SMTP(self.smtp.host, self.smtp.port, timeout=10) as smtp:
            raw = f"From: app@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello\r\n"
            smtp.sendmail("app@example.com", [to], raw)


def serve(folder: Path, *args: str) -> ServeProcess:
    process = ServeProcess(
        [
            "--smtp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--pop3",
            "off",
            "--db",
            "mail.db",
            *args,
        ],
        cwd=folder,
    )
    return process.wait_ready()


@pytest.fixture(scope="module")
def external(tmp_path_factory: pytest.TempPathFactory) -> Iterator[External]:
    process = serve(tmp_path_factory.mktemp("external"))
    try:
        yield External(process)
    finally:
        process.kill()


@pytest.fixture(autouse=True)
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAILTRAP_URL", "MAILTRAP_SMTP", "MAILTRAP_SKIP_UNREACHABLE", "MAILTRAP_EML_DIR"):
        monkeypatch.delenv(name, raising=False)


INNER_TESTS = """
import smtplib
import threading
import time

import pytest

from mailtrap.pytest_plugin import MailAssertionError


def send(mailtrap, subject, to="bob@example.com", user=None):
    with smtplib.SMTP(mailtrap.smtp_host, mailtrap.smtp_port, timeout=10) as smtp:
        if user:
            smtp.login(user, "any password")
        lines = ["From: app@example.com", f"To: {to}", f"Subject: {subject}", "", "Code 4242"]
        raw = "\\r\\n".join(lines)
        smtp.sendmail("app@example.com", [to], raw)


def test_mail_from_before_the_test_is_not_seen(mailtrap):
    assert len(mailtrap) == 0
    mailtrap.assert_no_message(within=0.1)


def test_wait_for_and_the_message(mailtrap):
    send(mailtrap, "first", user="robot")
    mail = mailtrap.wait_for(subject="first", to="BOB@example.com")
    assert (mail.subject, mail.from_, mail.to, mail.code()) == (
        "first", "app@example.com", ["bob@example.com"], "4242"
    )
    # what the API tells, and what it cannot
    assert (mail.auth_user, mail.rcpt_tos, mail.mail_from, mail.tls) == (
        "robot", ["bob@example.com"], None, None
    )
    assert mailtrap.assert_sent(subject="first") == mail


def test_each_test_sees_only_its_own_mail(mailtrap):
    assert len(mailtrap) == 0
    send(mailtrap, "second")
    assert [mail.subject for mail in mailtrap] == ["second"]


def test_the_long_poll_wakes_the_wait(mailtrap):
    for number in range(3):
        threading.Timer(0.3 + 0.1 * number, send, [mailtrap, f"late {number}"]).start()
    started = time.monotonic()
    mails = mailtrap.wait_for(timeout=30, count=3)
    assert time.monotonic() - started < 10
    assert [mail.subject for mail in mails] == ["late 0", "late 1", "late 2"]


def test_assert_no_message_fails_when_one_arrives(mailtrap):
    threading.Timer(0.3, send, [mailtrap, "unwanted"]).start()
    started = time.monotonic()
    with pytest.raises(MailAssertionError, match="but 1 arrived"):
        mailtrap.assert_no_message(within=30, subject="unwanted")
    assert time.monotonic() - started < 10


def test_there_is_no_in_process_server(mailtrap_server):
    pass


def test_a_failure_reports_the_mail(mailtrap):
    send(mailtrap, "reported")
    mailtrap.wait_for(timeout=0.3, subject="never sent")
"""


def test_the_fixtures_work_against_a_running_server(pytester: pytest.Pytester, external: External):
    external.send("sent before the session")
    pytester.makepyfile(INNER_TESTS)
    result = pytester.runpytest(*INNER, "-rs", f"--mailtrap-url={external.url}")
    result.assert_outcomes(passed=5, skipped=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"mailtrap: external server {external.url}",
            "E * Timed out after 0.3 s waiting for 1 message matching: "
            "subject containing 'never sent'.",
            "E *1. from app@example.com to bob@example.com: 'reported'",
            "*- mailtrap: captured mail -*",
            "1 message received during this test, saved as .eml files in *:",
            f"SKIPPED * mailtrap_server is the in-process server; this run uses {external.url}",
        ]
    )


def test_the_smtp_address_comes_from_the_server_or_the_option(
    pytester: pytest.Pytester, external: External, monkeypatch: pytest.MonkeyPatch
):
    pytester.makepyfile(
        """
        import os

        def test_address(mailtrap):
            expected = os.environ["EXPECTED_SMTP"]
            assert f"{mailtrap.smtp_host}:{mailtrap.smtp_port}" == expected
            assert mailtrap.url == os.environ["MAILTRAP_URL"]
        """
    )
    monkeypatch.setenv("MAILTRAP_URL", external.url)
    monkeypatch.setenv("EXPECTED_SMTP", str(external.smtp))  # as the server reports it
    pytester.runpytest(*INNER).assert_outcomes(passed=1)
    monkeypatch.setenv("EXPECTED_SMTP", "mail.test:2525")
    pytester.runpytest(*INNER, "--mailtrap-smtp=mail.test:2525").assert_outcomes(passed=1)
    monkeypatch.setenv("MAILTRAP_SMTP", "mail.test:2525")  # the environment works too
    pytester.runpytest(*INNER).assert_outcomes(passed=1)


def test_credentials_in_the_url_are_sent_as_basic_auth(pytester: pytest.Pytester, tmp_path: Path):
    users = write_htpasswd(tmp_path, {"tester": "pa ss"})
    process = serve(tmp_path, "--ui-auth-file", str(users))
    try:
        server = External(process)
        pytester.makepyfile(
            """
            import smtplib
            import threading

            def send(mailtrap):
                with smtplib.SMTP(mailtrap.smtp_host, mailtrap.smtp_port, timeout=10) as smtp:
                    smtp.sendmail("a@example.com", ["b@example.com"], "Subject: locked\\n\\nx")

            def test_it(mailtrap):
                assert len(mailtrap) == 0  # an empty server: the wait starts from nothing
                threading.Timer(0.2, send, [mailtrap]).start()
                assert mailtrap.wait_for(timeout=30).subject == "locked"
            """
        )
        with_password = server.url.replace("http://", "http://tester:pa%20ss@")
        result = pytester.runpytest(*INNER, f"--mailtrap-url={with_password}")
        result.assert_outcomes(passed=1)
        result = pytester.runpytest(*INNER, f"--mailtrap-url={server.url}")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["Mailtrap server at *: GET *api/v1/info answered 401*"])
    finally:
        process.kill()
