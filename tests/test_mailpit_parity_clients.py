"""Mailpit's Python clients against a real Mailtrap, used as their READMEs show.

``mailpit-api-client`` (PyPI 1.0.0), including its ``mailpit_api`` pytest
fixture, whose teardown deletes with form fields (``ids=...``); and
``pytest-mailpit``, whose version gate warns about a server "older than 1.22"
unless ``/api/v1/chaos`` answers as a current Mailpit does. Each runs in a
pytest of its own (a subprocess), as a user's suite would run it.
"""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import textwrap
from pathlib import Path

import mailpit.client.api as mailpit_api_client
from api_client import Api, plain, send

from mailtrap import Server


def test_mailpit_api_client_reads_messages_parts_and_headers(server: Server):
    # Its header model needs these fields (with Mailpit too), as a delivered message has them.
    headers = (
        "Cc: Copy <copy@example.com>\r\nDate: Wed, 27 Jul 2022 15:44:41 +1200\r\n"
        "Delivered-To: user@example.com\r\nMessage-ID: <client-check@example.com>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
    )
    message_id = send(server, plain("Client check", headers=headers))
    client = mailpit_api_client.API(server.http_url.rstrip("/"))
    listed = client.get_messages()
    assert [message.id for message in listed.messages] == [message_id]
    message = client.get_message(message_id)
    assert (message.subject, message.to[0].address) == ("Client check", "user@example.com")
    assert message.cc[0].name == "Copy"
    headers = client.get_message_headers(message_id)
    assert headers.content_type
    # Its delete sends form fields (ids=...), which Mailpit reads as "no JSON".
    client.delete_messages([message_id])
    assert server.store.ids() == []


def test_mailpit_api_client_marks_read_with_form_fields(server: Server):
    message_id = send(server, plain("Unread"))
    mailpit_api_client.API(server.http_url.rstrip("/")).put_messages([message_id], "Read", True)
    assert Api(server).message(message_id)["ID"] == message_id
    assert server.store.get(message_id)["read"] == 1


def _run_pytest(tmp_path: Path, test: str, *args: str, env: dict[str, str] | None = None):
    (tmp_path / "test_user.py").write_text(textwrap.dedent(test))
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:mailtrap",
         "-p", "no:django", *args, str(tmp_path / "test_user.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_the_mailpit_api_fixture_and_its_teardown_work(server: Server, tmp_path: Path):
    for number in range(3):
        send(server, plain(f"Kept {number}"))
    url = server.http_url.rstrip("/")
    result = _run_pytest(
        tmp_path,
        f"""
        import pytest
        from mailpit.testing.pytest import mailpit_api

        @pytest.mark.parametrize("mailpit_api", [{url!r}], indirect=True)
        def test_sees_the_mail(mailpit_api):
            assert mailpit_api.get_messages().total == 3
        """,
        "-p",
        "no:mailpit",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout and "error" not in result.stdout.lower()
    assert server.store.ids() == []  # the teardown deleted what it listed


def test_pytest_mailpit_treats_mailtrap_as_a_current_mailpit(server: Server, tmp_path: Path):
    smtp = server.smtp_address
    result = _run_pytest(
        tmp_path,
        f"""
        import smtplib
        from email.message import EmailMessage

        def test_a_signup_mail_arrives(mailpit_inbox):
            message = EmailMessage()
            message["From"] = "app@example.com"
            message["To"] = mailpit_inbox.address
            message["Subject"] = "Welcome"
            message.set_content("Hello")
            with smtplib.SMTP({smtp.host!r}, {smtp.port}) as client:
                client.send_message(message)
            found = mailpit_inbox.wait_for_message(subject="Welcome")
            assert found.subject == "Welcome"
        """,
        f"--mailpit-url={server.http_url}",
        "-W",
        "error::pytest_mailpit.MailpitWarning",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "older than" not in result.stdout + result.stderr


def test_smtp_counters_are_what_mailpit_reports(server: Server):
    with smtplib.SMTP(server.smtp_address.host, server.smtp_address.port) as client:
        client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nbody\r\n")
    stats = Api(server).ok("GET", "/api/v1/info")["RuntimeStats"]
    assert stats["SMTPAccepted"] == 1 and stats["SMTPAcceptedSize"] > 0
