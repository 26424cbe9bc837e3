"""Archive on prune, ingest into a running server, honest read commands, healthcheck, make run."""

from __future__ import annotations

import mailbox
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from api_client import plain, send
from checkout import REPO
from web_clients import events, next_change, next_frame

from mailtrap import Server


def mailtrap(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailtrap", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- archive on prune ----------------------------------------------------------------


def test_retention_archives_to_a_maildir_before_it_deletes(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    server = make_server(max_messages=2, archive=archive)
    first = plain("first", body="kept in the archive")
    send(server, first)
    send(server, plain("second"))
    send(server, plain("third"))
    assert server.store.count() == 2

    (kept,) = mailbox.Maildir(archive, create=False)
    assert kept["Subject"] == "first"
    assert kept.get_payload().strip() == "kept in the archive"
    (name,) = (archive / "new").iterdir()
    assert name.read_bytes() == first.replace(b"\r\n", b"\n")


def test_retention_archives_to_an_mbox(make_server: Callable[..., Server], tmp_path: Path) -> None:
    archive = tmp_path / "old.mbox"
    server = make_server(max_messages=1, archive=archive, archive_format="mbox")
    send(server, plain("one", body="From here on\nquoted"), mail_from="app@example.com")
    send(server, plain("two"))
    send(server, plain("three"))

    box = mailbox.mbox(archive, create=False)
    try:
        subjects = [message["Subject"] for message in box]
    finally:
        box.close()
    assert subjects == ["one", "two"]
    text = archive.read_bytes()
    assert text.startswith(b"From app@example.com ")
    assert b"\n>From here on\n" in text  # a From_ line in the body is quoted


def test_an_archive_that_cannot_be_written_keeps_the_messages(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the Maildir should go")
    server = make_server(max_messages=1, archive=blocked)
    send(server, plain("one"))
    send(server, plain("two"))
    assert server.store.count() == 2  # history over the limit, rather than lost


# -- ingest into a running server, and read commands -----------------------------------


def test_ingest_into_a_running_server_shows_live_and_respects_its_retention(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = make_server(max_messages=3)
    server.store.get(send(server, plain("over smtp")))  # its "new" event is out, then
    folder = tmp_path / "import"
    folder.mkdir()
    for number in range(4):
        (folder / f"{number}.eml").write_bytes(plain(f"imported {number}"))

    with events(server) as client:
        next_frame(client)  # the stream is running: it will see what comes next
        result = mailtrap("ingest", "--db", server.store.path, folder)
        assert result.returncode == 0, result.stderr
        assert "Imported 4 messages" in result.stdout
        assert "Told the server running on this database" in result.stdout
        changes = [next_change(client) for _ in range(5)]  # 2 deletes, 3 new

    deleted = [frame["Data"]["ID"] for frame in changes if frame["Type"] == "delete"]
    announced = [frame["Data"]["Subject"] for frame in changes if frame["Type"] == "new"]
    assert len(deleted) == 2  # "over smtp" and "imported 0": 5 were over the limit of 3
    assert announced == ["imported 1", "imported 2", "imported 3"]
    assert server.store.count() == 3
    assert sorted(row["subject"] for row in map(server.store.get, server.store.ids())) == [
        "imported 1",
        "imported 2",
        "imported 3",
    ]


def test_dump_of_a_missing_database_fails_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such.db"
    result = mailtrap("dump", "--db", missing, tmp_path / "out")
    assert result.returncode == 1
    assert f"no database at {missing}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not missing.exists() and not missing.parent.exists()
    assert not (tmp_path / "out").exists()


# -- healthcheck ---------------------------------------------------------------------


def test_healthcheck_passes_only_while_smtp_http_and_the_database_answer(
    make_server: Callable[..., Server],
) -> None:
    server = make_server()
    smtp, http = str(server.smtp_address), str(server.http_address)
    healthy = mailtrap("healthcheck", "--smtp", smtp, "--http", http)
    assert healthy.returncode == 0, healthy.stderr
    no_http = mailtrap("healthcheck", "--smtp", smtp, "--http", "off", "--db", server.store.path)
    assert no_http.returncode == 0, no_http.stderr

    server.stop()
    down = mailtrap("healthcheck", "--smtp", smtp, "--http", http, "--check-timeout", "2")
    assert down.returncode == 1
    assert f"unhealthy: SMTP on {smtp}" in down.stderr
    assert f"unhealthy: HTTP on {http}" in down.stderr


def test_healthcheck_without_http_reads_the_database_and_creates_none(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = make_server()
    missing = tmp_path / "missing.db"
    args = ("--smtp", str(server.smtp_address), "--http", "off", "--db", missing)
    result = mailtrap("healthcheck", *args)
    assert result.returncode == 1 and "unhealthy: database" in result.stderr
    assert not missing.exists()


# -- make run --------------------------------------------------------------------------


def test_make_run_installs_the_runtime_dependencies_only(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    result = subprocess.run(
        ["make", "--dry-run", "-C", str(REPO), "run", f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    installs = [line for line in result.stdout.splitlines() if " install " in line]
    assert any(line.endswith(f"{venv}/bin/pip install --quiet -e .") for line in installs)
    assert not [line for line in installs if "[test]" in line]
