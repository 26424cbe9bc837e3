"""``mailtrap ingest`` (.eml, mbox, Maildir, folders of them) and ``mailtrap dump``."""

from __future__ import annotations

import mailbox
import smtplib
from collections.abc import Callable
from pathlib import Path

import pytest
from serve_process import run_mailtrap

from mailtrap import Server
from mailtrap.ingest import Problem, Source, find_sources
from mailtrap.store import Store

NOT_MAIL = "not an e-mail message"


def eml(subject: str, *, to: str = "rcpt@example.com", body: str = "Hello.") -> bytes:
    return (
        f"Return-Path: <bounce@example.com>\r\nFrom: Sender <sender@example.com>\r\n"
        f"To: {to}\r\nSubject: {subject}\r\n\r\n{body}\r\n"
    ).encode()


def make_mbox(path: Path, subjects: list[str]) -> list[bytes]:
    """An mbox file written by the standard library; returns each message as it reads back."""
    box = mailbox.mbox(path)
    try:
        for subject in subjects:
            box.add(eml(subject).replace(b"\r\n", b"\n"))
        box.flush()
        return [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()


def make_maildir(path: Path, subjects: list[str]) -> list[bytes]:
    """A Maildir written by the standard library, one message already seen (in cur/)."""
    folder = mailbox.Maildir(path, create=True)
    keys = [folder.add(eml(subject)) for subject in subjects]
    seen = folder.get_message(keys[0])
    seen.set_subdir("cur")
    seen.add_flag("S")
    folder[keys[0]] = seen
    return [folder.get_bytes(key) for key in keys]


def stored_messages(db: Path) -> list[bytes]:
    store = Store(db)
    return [raw for _, raw in store.iter_raw()]


def ingest(db: Path, *paths: Path) -> tuple[int, str, str]:
    result = run_mailtrap("ingest", "--db", db, *paths)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


def test_ingest_imports_eml_files_byte_for_byte(tmp_path: Path) -> None:
    first, second = tmp_path / "first.eml", tmp_path / "second.eml"
    first.write_bytes(eml("First"))
    second.write_bytes(eml("Second", body="caf\xe9 8-bit \x00 NUL and a\rbare CR"))
    db = tmp_path / "mail.db"

    code, stdout, stderr = ingest(db, first, second)

    assert code == 0, stderr
    assert "Imported 2 messages" in stdout
    assert stored_messages(db) == [first.read_bytes(), second.read_bytes()]


def test_ingest_takes_the_envelope_from_the_headers(tmp_path: Path) -> None:
    source = tmp_path / "one.eml"
    source.write_bytes(
        b"Return-Path: <bounce@example.com>\r\nFrom: a@example.com\r\n"
        b"To: Ann <ann@example.com>, bob@example.com\r\nCc: cid@example.com\r\n"
        b"Subject: Envelope\r\n\r\nHi\r\n"
    )
    db = tmp_path / "mail.db"

    assert ingest(db, source)[0] == 0

    (message_id,) = Store(db).ids()
    row = Store(db).get(message_id)
    assert row["mail_from"] == "bounce@example.com"
    for address in ("ann@example.com", "bob@example.com", "cid@example.com"):
        assert address in row["rcpt_tos"]


@pytest.mark.parametrize("name", ["archive.mbox", "archive-without-suffix"])
def test_ingest_imports_every_message_of_an_mbox_file(tmp_path: Path, name: str) -> None:
    expected = make_mbox(tmp_path / name, ["One", "Two", "From the start"])
    db = tmp_path / "mail.db"

    code, stdout, stderr = ingest(db, tmp_path / name)

    assert code == 0, stderr
    assert "Imported 3 messages" in stdout
    assert stored_messages(db) == expected
    assert b"Subject: From the start" in stored_messages(db)[2]


def test_ingest_imports_a_maildir_folder_new_and_cur(tmp_path: Path) -> None:
    expected = make_maildir(tmp_path / "Maildir", ["Seen", "Unseen"])
    db = tmp_path / "mail.db"

    code, stdout, stderr = ingest(db, tmp_path / "Maildir")

    assert code == 0, stderr
    assert "Imported 2 messages" in stdout
    assert sorted(stored_messages(db)) == sorted(expected)


def test_ingest_searches_a_folder_for_eml_mbox_and_maildir(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    (folder / "nested" / "deeper").mkdir(parents=True)
    (folder / "top.eml").write_bytes(eml("Top"))
    (folder / "nested" / "deeper" / "deep.EML").write_bytes(eml("Deep"))
    mbox_messages = make_mbox(folder / "nested" / "archive.mbox", ["Mbox one", "Mbox two"])
    maildir_messages = make_maildir(folder / "nested" / "Maildir", ["Maildir one", "Maildir two"])
    (folder / "README.txt").write_text("Not mail, and not named like mail: left alone.\n")
    db = tmp_path / "mail.db"

    code, stdout, stderr = ingest(db, folder)

    assert code == 0, stderr
    assert "Imported 6 messages" in stdout
    expected = [eml("Top"), eml("Deep"), *mbox_messages, *maildir_messages]
    assert sorted(stored_messages(db)) == sorted(expected)


def test_what_cannot_be_read_is_reported_and_the_rest_is_imported(tmp_path: Path) -> None:
    good = tmp_path / "good.eml"
    good.write_bytes(eml("Good"))
    missing = tmp_path / "missing.eml"
    dangling = tmp_path / "dangling.eml"
    dangling.symlink_to(tmp_path / "gone.eml")
    not_mail = tmp_path / "photo.eml"
    not_mail.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    db = tmp_path / "mail.db"

    code, stdout, stderr = ingest(db, missing, dangling, not_mail, good)

    assert code == 1
    errors = stderr.splitlines()
    assert f"error: {missing}: No such file or directory" in errors
    assert f"error: {dangling}: No such file or directory" in errors
    assert any(line.startswith(f"error: {not_mail}: {NOT_MAIL}") for line in errors), stderr
    assert "Imported 1 messages, 3 failed" in stdout
    assert stored_messages(db) == [eml("Good")]


def test_a_bad_file_inside_a_folder_is_reported_and_the_rest_of_the_folder_imported(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "a-dangling.eml").symlink_to(tmp_path / "gone.eml")
    (folder / "b-not-mail.eml").write_bytes(b"just some words\n")
    (folder / "c-good.eml").write_bytes(eml("Good"))
    db = tmp_path / "mail.db"

    code, _, stderr = ingest(db, folder)

    assert code == 1
    errors = stderr.splitlines()
    assert f"error: {folder / 'a-dangling.eml'}: No such file or directory" in errors, stderr
    assert any(
        line.startswith(f"error: {folder / 'b-not-mail.eml'}: {NOT_MAIL}") for line in errors
    )
    assert stored_messages(db) == [eml("Good")]


def test_an_unreadable_file_in_a_folder_does_not_end_the_search_of_that_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tests run as root, for whom chmod 000 changes nothing: make open() refuse instead.
    folder = tmp_path / "export"
    folder.mkdir()
    for name in ("a.eml", "b-locked.eml", "c.eml"):
        (folder / name).write_bytes(eml(name))
    real_open = Path.open

    def refusing_open(self: Path, *args: object, **kwargs: object) -> object:
        if self.name == "b-locked.eml":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", refusing_open)

    found = list(find_sources([folder]))

    assert [item.label for item in found if isinstance(item, Source)] == [
        str(folder / "a.eml"),
        str(folder / "c.eml"),
    ]
    assert [item for item in found if isinstance(item, Problem)] == [
        Problem(str(folder / "b-locked.eml"), "Permission denied")
    ]


def test_dump_writes_each_message_as_received_over_smtp(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = make_server()
    sent = [
        eml("Plain"),
        b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n",
        b"Subject: 8-bit\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9 \xff\xfe\r\n",
        b"Subject: LF only\n\nbare\nline feeds\n",
    ]
    ids = []
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        client.ehlo()
        for raw in sent:
            client.mail("sender@example.com")
            client.rcpt("rcpt@example.com")
            code, reply = client.data(raw)
            assert code == 250, reply
            ids.append(reply.decode().rsplit(" ", 1)[1])
    folder = tmp_path / "dump"

    result = run_mailtrap("dump", "--db", server.config.db_path, folder)

    assert result.returncode == 0, result.stderr
    assert "Wrote 4 messages" in result.stdout
    assert sorted(path.name for path in folder.iterdir()) == sorted(f"{i}.eml" for i in ids)
    for message_id in ids:
        assert (folder / f"{message_id}.eml").read_bytes() == server.store.raw(message_id)
    # smtplib sends bytes as given (dot-stuffed on the wire), adding only a final CRLF.
    assert [(folder / f"{i}.eml").read_bytes() for i in ids] == [*sent[:3], sent[3] + b"\r\n"]


def test_ingest_then_dump_gives_back_the_same_files(tmp_path: Path) -> None:
    originals = tmp_path / "originals"
    originals.mkdir()
    for number in range(5):
        (originals / f"{number}.eml").write_bytes(eml(f"Number {number}", body="x" * number))
    db = tmp_path / "mail.db"
    assert ingest(db, originals)[0] == 0

    assert run_mailtrap("dump", "--db", db, tmp_path / "dump").returncode == 0

    dumped = sorted(path.read_bytes() for path in (tmp_path / "dump").iterdir())
    assert dumped == sorted(path.read_bytes() for path in originals.iterdir())
