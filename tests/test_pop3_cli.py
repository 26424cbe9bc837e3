"""``mailtrap serve`` with POP3: the flags, their environment variables and the banner."""

from __future__ import annotations

import poplib
import re
import smtplib
import ssl
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from passlib.apache import HtpasswdFile
from serve_process import ServeProcess, run_mailtrap
from smtp_wire import deliver

from mailtrap.config import Address, parse_address

StartServe = Callable[..., ServeProcess]


def banner_address(serve: ServeProcess, name: str) -> Address:
    match = re.search(rf"^{name} listening on (\S+)", serve.stdout, re.MULTILINE)
    assert match, f"no {name} line in {serve.stdout!r}"
    return parse_address(match[1])


def test_serve_prints_where_pop3_listens_and_serves_mail_there(
    start_serve: StartServe, tmp_path: Path
):
    # command_env sets MAILTRAP_POP3=127.0.0.1:0; the flag wins over it.
    serve = start_serve("--smtp", "127.0.0.1:0", "--db", tmp_path / "mail.db", "--pop3", "0")
    address = banner_address(serve, "POP3")
    assert address.host == "127.0.0.1" and address.port != 0
    assert "POP3S" not in serve.stdout
    with smtplib.SMTP(serve.smtp_address.host, serve.smtp_address.port, timeout=10) as smtp:
        message_id = deliver(smtp, b"Subject: via the CLI\r\n\r\nhello\r\n")
    with closing(poplib.POP3(address.host, address.port, timeout=10)) as client:
        client.user("anyone")
        client.pass_("anything")
        assert client.uidl(1) == f"+OK 1 {message_id}".encode()
        client.quit()
    assert serve.stop() == 0


def test_pop3s_and_an_auth_file_from_the_environment(start_serve: StartServe, tmp_path: Path):
    users = HtpasswdFile(str(tmp_path / "pop3.htpasswd"), new=True)
    users.set_password("reader", "reader-secret")  # passlib's default scheme for htpasswd
    users.save()
    env = {
        "MAILTRAP_POP3": "off",
        "MAILTRAP_POP3S": "127.0.0.1:0",
        "MAILTRAP_POP3_AUTH_FILE": str(tmp_path / "pop3.htpasswd"),
        "MAILTRAP_POP3_MAX_CONNECTIONS": "5",
        "MAILTRAP_POP3_IDLE_TIMEOUT": "15m",
        "MAILTRAP_SMTP_TLS_SELF_SIGNED": "1",
    }
    serve = start_serve("--smtp", "127.0.0.1:0", "--db", tmp_path / "mail.db", env=env)
    assert "POP3 listening" not in serve.stdout
    address = banner_address(serve, "POP3S")
    assert f"POP3S listening on {address} (implicit TLS)\n" in serve.stdout
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with closing(poplib.POP3_SSL(address.host, address.port, context=context, timeout=10)) as pop:
        pop.user("reader")
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            pop.pass_("wrong")
        pop.user("reader")
        assert pop.pass_("reader-secret").startswith(b"+OK maildrop has 0 messages")
        pop.quit()
    assert serve.stop() == 0


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--pop3s", "127.0.0.1:0"], "--pop3s needs a certificate"),
        (["--pop3-idle-timeout", "9m"], "--pop3-idle-timeout"),
        (["--pop3-max-connections", "0"], "--pop3-max-connections"),
        (["--pop3", "nonsense"], "--pop3"),
        (["--pop3-auth-file", "missing.htpasswd"], "--pop3-auth-file"),
    ],
)
def test_bad_pop3_settings_are_usage_errors(tmp_path: Path, arguments: list[str], named: str):
    result = run_mailtrap("serve", "--db", tmp_path / "mail.db", *arguments, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert named in result.stderr
    assert "Traceback" not in result.stderr
