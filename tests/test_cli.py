"""``mailtrap serve`` as users run it: a subprocess, its banner, settings, signals, restarts."""

from __future__ import annotations

import signal
import smtplib
import socket
import time
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from serve_process import ServeProcess, run_mailtrap
from smtp_wire import WireClient, queued_id

from mailtrap import __version__
from mailtrap.cli import main
from mailtrap.config import Address
from mailtrap.store import Store

StartServe = Callable[..., ServeProcess]

LOOPBACK_ANY_PORT = "127.0.0.1:0"


def message(subject: str, body_size: int = 100) -> bytes:
    body = (b"x" * 70 + b"\r\n") * (body_size // 72 + 1)
    return (
        f"From: sender@example.com\r\nTo: rcpt@example.com\r\nSubject: {subject}\r\n\r\n".encode()
        + body
    )


def send(address: Address, raw: bytes, *, recipients: int = 1) -> tuple[int, str]:
    """MAIL, RCPT, DATA with smtplib; returns the final reply to DATA."""
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        client.ehlo()
        client.mail("sender@example.com")
        for number in range(recipients):
            code, reply = client.rcpt(f"rcpt{number}@example.com")
            if code != 250:
                return code, reply.decode()
        code, reply = client.data(raw)
        return code, reply.decode()


def stored_id(reply: tuple[int, str]) -> str:
    code, text = reply
    assert code == 250, reply
    return text.rsplit(" ", 1)[1]


def wait_until_refusing_connections(address: Address, timeout: float = 10.0) -> None:
    """Wait until the listener is closed: the observable start of a shutdown."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address.host, address.port), timeout=1):
                pass
        except ConnectionRefusedError:
            return
        time.sleep(0.02)
    raise AssertionError(f"{address} still accepts connections after {timeout} s")


def assert_no_traceback(process: ServeProcess | str) -> None:
    stderr = process if isinstance(process, str) else process.stderr
    assert "Traceback" not in stderr, stderr


# -- version, banner, addresses ----------------------------------------------------------


def test_version_prints_the_package_version() -> None:
    result = run_mailtrap("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"mailtrap, version {__version__}"


def test_serve_reports_the_real_port_and_the_database(
    start_serve: StartServe, tmp_path: Path
) -> None:
    db = tmp_path / "mail.db"
    serve = start_serve("--smtp", LOOPBACK_ANY_PORT, "--db", db)

    address = serve.smtp_address
    assert address.host == "127.0.0.1"
    assert address.port != 0
    assert f"SMTP listening on 127.0.0.1:{address.port}\n" in serve.stdout
    assert f"Database: {db}\n" in serve.stdout
    assert db.is_file()
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        assert client.ehlo()[0] == 250
    assert serve.stop() == 0


def test_serve_listens_on_ipv6_loopback_when_asked(start_serve: StartServe, tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    serve = start_serve("--smtp", "[::1]:0", "--db", tmp_path / "mail.db")

    assert serve.smtp_address.host == "::1"
    assert f"SMTP listening on [::1]:{serve.smtp_address.port}\n" in serve.stdout
    with smtplib.SMTP("::1", serve.smtp_address.port, timeout=10) as client:
        assert client.ehlo()[0] == 250
    assert serve.stop() == 0


@pytest.mark.parametrize(
    ("env", "drop_env", "expected"),
    [
        ({"XDG_DATA_HOME": "{tmp}/xdg", "HOME": "{tmp}/home"}, [], "xdg/mailtrap/mailtrap.db"),
        ({"HOME": "{tmp}/home"}, ["XDG_DATA_HOME"], "home/.local/share/mailtrap/mailtrap.db"),
    ],
    ids=["XDG_DATA_HOME", "HOME"],
)
def test_without_db_the_database_is_in_the_users_data_directory(
    start_serve: StartServe,
    tmp_path: Path,
    env: dict[str, str],
    drop_env: list[str],
    expected: str,
) -> None:
    env = {name: value.format(tmp=tmp_path) for name, value in env.items()}
    serve = start_serve("--smtp", LOOPBACK_ANY_PORT, env=env, drop_env=drop_env)

    assert serve.database == str(tmp_path / expected)
    assert (tmp_path / expected).is_file()
    assert serve.stop() == 0


# -- settings from the environment -------------------------------------------------------


def test_every_option_of_every_command_reads_its_mailtrap_environment_variable() -> None:
    assert isinstance(main, click.Group)
    checked = 0
    for command in main.commands.values():
        for parameter in command.params:
            if isinstance(parameter, click.Option) and parameter.name != "help":
                assert parameter.envvar == "MAILTRAP_" + (parameter.name or "").upper(), (
                    command.name,
                    parameter.opts,
                )
                checked += 1
    assert checked >= 15  # serve's options, and --db of dump and ingest


def test_serve_help_shows_the_environment_variable_of_each_option() -> None:
    result = run_mailtrap("serve", "--help")
    assert result.returncode == 0, result.stderr
    for variable in (
        "MAILTRAP_SMTP",
        "MAILTRAP_DB",
        "MAILTRAP_MAX_MESSAGE_SIZE",
        "MAILTRAP_MAX_AGE",
    ):
        assert variable in result.stdout


def test_settings_come_from_mailtrap_environment_variables(
    start_serve: StartServe, tmp_path: Path
) -> None:
    db = tmp_path / "from-env.db"
    serve = start_serve(
        env={
            "MAILTRAP_SMTP": LOOPBACK_ANY_PORT,
            "MAILTRAP_DB": str(db),
            "MAILTRAP_MAX_MESSAGE_SIZE": "1k",
            "MAILTRAP_HOSTNAME": "from-env.test",
            "MAILTRAP_SMTP_MAX_RECIPIENTS": "2",
            "MAILTRAP_SMTP_TLS_SELF_SIGNED": "1",
        }
    )
    address = serve.smtp_address

    assert address.port != 0
    assert serve.database == str(db)
    assert send(address, message("small", 500))[0] == 250
    assert send(address, message("big", 2000))[0] == 552
    assert send(address, message("three recipients"), recipients=3)[0] == 452
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        code, greeting = client.ehlo()
        assert code == 250
        assert greeting.startswith(b"from-env.test")
        assert client.has_extn("starttls")
    assert serve.stop() == 0
    assert Store(db).count() == 1


def test_command_line_options_beat_environment_variables(
    start_serve: StartServe, tmp_path: Path
) -> None:
    db = tmp_path / "from-cli.db"
    serve = start_serve(
        "--smtp",
        LOOPBACK_ANY_PORT,
        "--db",
        db,
        "--max-message-size",
        "10k",
        "--hostname",
        "from-cli.test",
        env={
            # Not even parsed: the command line gave --smtp.
            "MAILTRAP_SMTP": "nonsense",
            "MAILTRAP_DB": str(tmp_path / "from-env.db"),
            "MAILTRAP_MAX_MESSAGE_SIZE": "1k",
            "MAILTRAP_HOSTNAME": "from-env.test",
        },
    )

    assert serve.database == str(db)
    assert send(serve.smtp_address, message("2 KB", 2000))[0] == 250
    with smtplib.SMTP(serve.smtp_address.host, serve.smtp_address.port, timeout=10) as client:
        assert client.ehlo()[1].startswith(b"from-cli.test")
    assert serve.stop() == 0
    assert not (tmp_path / "from-env.db").exists()


# -- bad settings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "env", "named"),
    [
        (["--smtp", "nonsense"], {}, "'--smtp'"),
        (["--max-age", "7x"], {}, "'--max-age'"),
        (["--max-message-size", "lots"], {}, "'--max-message-size'"),
        (["--max-messages", "-1"], {}, "'--max-messages'"),
        ([], {"MAILTRAP_SMTP": "nonsense"}, "MAILTRAP_SMTP"),
        ([], {"MAILTRAP_MAX_AGE": "7x"}, "MAILTRAP_MAX_AGE"),
        (["--max-message-size", "0"], {}, "--max-message-size"),
        (["--smtp-require-tls"], {}, "--smtp-require-tls"),
    ],
)
def test_a_bad_setting_is_a_usage_error_without_a_traceback(
    tmp_path: Path, arguments: list[str], env: dict[str, str], named: str
) -> None:
    result = run_mailtrap(
        "serve", "--db", tmp_path / "mail.db", *arguments, env=env, cwd=tmp_path, timeout=30
    )

    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Error:" in result.stderr
    assert named in result.stderr
    assert_no_traceback(result.stderr)
    assert "SMTP listening" not in result.stdout


def test_a_busy_port_is_a_clear_error_without_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        result = run_mailtrap(
            "serve", "--smtp", f"127.0.0.1:{port}", "--db", tmp_path / "mail.db", timeout=30
        )

    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"Error: cannot listen for SMTP on 127.0.0.1:{port}" in result.stderr
    assert "in use" in result.stderr
    assert_no_traceback(result.stderr)


@pytest.mark.parametrize("command", ["serve", "dump"])
def test_a_file_that_is_not_a_database_is_a_clear_error_without_a_traceback(
    tmp_path: Path, command: str
) -> None:
    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("these are my notes, not a SQLite database\n" * 100)
    arguments = ["--smtp", LOOPBACK_ANY_PORT] if command == "serve" else [str(tmp_path / "out")]

    result = run_mailtrap(command, "--db", not_a_database, *arguments, timeout=30)

    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"Error: cannot open database {not_a_database}" in result.stderr
    assert_no_traceback(result.stderr)
    assert not_a_database.read_text().startswith("these are my notes")


# -- stopping ---------------------------------------------------------------------------


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_server_cleanly(
    start_serve: StartServe, tmp_path: Path, number: signal.Signals
) -> None:
    serve = start_serve("--smtp", LOOPBACK_ANY_PORT, "--db", tmp_path / "mail.db")
    message_id = stored_id(send(serve.smtp_address, message("before the signal")))

    assert serve.stop(number) == 0
    assert serve.stdout.endswith("Stopped.\n")
    assert_no_traceback(serve)
    assert Store(tmp_path / "mail.db").ids() == [message_id]


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_as_soon_as_the_banner_starts_still_stops_cleanly(
    start_serve: StartServe, tmp_path: Path, number: signal.Signals
) -> None:
    serve = start_serve("--smtp", LOOPBACK_ANY_PORT, "--db", tmp_path / "mail.db", ready=False)
    assert serve.next_line().startswith("Mailtrap ")

    assert serve.stop(number) == 0
    assert serve.stdout.endswith("Stopped.\n")
    assert_no_traceback(serve)


def test_an_idle_connection_gets_421_and_does_not_hold_up_the_stop(
    start_serve: StartServe, tmp_path: Path
) -> None:
    serve = start_serve("--smtp", LOOPBACK_ANY_PORT, "--db", tmp_path / "mail.db")
    with WireClient(serve.smtp_address, timeout=10) as client:
        client.ehlo()
        started = time.monotonic()
        serve.send_signal(signal.SIGTERM)
        goodbye = client.read_until_closed(timeout=10)
        assert serve.wait() == 0
    assert time.monotonic() - started < 5
    assert goodbye.startswith(b"421 "), goodbye


def test_a_transaction_in_flight_finishes_after_sigterm(
    start_serve: StartServe, tmp_path: Path
) -> None:
    db = tmp_path / "mail.db"
    serve = start_serve("--smtp", LOOPBACK_ANY_PORT, "--db", db)
    raw = message("in flight", 20_000)
    half = len(raw) // 2

    with WireClient(serve.smtp_address, timeout=15) as client:
        client.ehlo()
        assert client.command("MAIL FROM:<sender@example.com>").code == 250
        assert client.command("RCPT TO:<rcpt@example.com>").code == 250
        assert client.command("DATA").code == 354
        client.send(raw[:half])

        serve.send_signal(signal.SIGTERM)
        # The shutdown has begun once the listener is closed; only then send the rest.
        wait_until_refusing_connections(serve.smtp_address)
        assert serve.process.poll() is None, "the server quit with a transaction open"
        client.send(raw[half:] + b".\r\n")
        message_id = queued_id(client.reply())

    assert serve.wait() == 0
    assert_no_traceback(serve)
    assert Store(db).raw(message_id) == raw


def test_mail_survives_a_restart(start_serve: StartServe, tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    first = start_serve("--smtp", LOOPBACK_ANY_PORT, "--db", db)
    before = message("before the restart")
    before_id = stored_id(send(first.smtp_address, before))
    assert first.stop() == 0

    second = start_serve("--smtp", LOOPBACK_ANY_PORT, "--db", db)
    after = message("after the restart")
    after_id = stored_id(send(second.smtp_address, after))
    store = Store(db)  # a reader beside the running server

    assert store.ids() == [before_id, after_id]
    assert store.raw(before_id) == before
    assert store.raw(after_id) == after
    assert second.stop() == 0

    dumped = run_mailtrap("dump", "--db", db, tmp_path / "dump")
    assert dumped.returncode == 0, dumped.stderr
    assert (tmp_path / "dump" / f"{before_id}.eml").read_bytes() == before
