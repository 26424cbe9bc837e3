"""Real POP3 clients against Mailtrap: curl, fetchmail and getmail6 (Debian packages).

Each retrieves what was sent over SMTP and the test compares bytes. What a
client adds by design is named where it is removed: getmail writes a
``Return-Path`` header and stores lines with LF endings, as Maildir files do;
fetchmail is configured to add nothing (``invisible``, ``no rewrite``,
``no stripcr``), so its delivered files are the SMTP bytes exactly.
"""

from __future__ import annotations

import base64
import os
import pwd
import random
import shutil
import smtplib
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import EPHEMERAL
from smtp_wire import deliver

from mailtrap import Server
from mailtrap.tls import self_signed_pem

MakeServer = Callable[..., Server]
TOOL_TIMEOUT = 60


def _attachment() -> bytes:
    data = base64.encodebytes(random.Random(4).randbytes(3000))
    return data.replace(b"\n", b"\r\n")


# A message that is hard to carry unchanged: dot-led lines (dot-stuffing), a
# "From " line (mbox escaping), 8-bit UTF-8, an encoded word, a folded header,
# a trailing-space line and a base64 attachment.
MESSAGE = (
    b"From: App <app@example.com>\r\n"
    b"To: you@example.com\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?= and dots\r\n"
    b"X-Folded: a header that goes on\r\n\tover two lines\r\n"
    b"Message-ID: <clients@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"caf\xc3\xa9\r\n.\r\n..\r\n.leading dot\r\ntrailing space \r\nFrom the start of a line\r\n"
    b"--b1\r\n"
    b'Content-Type: application/octet-stream; name="data.bin"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + _attachment() + b"--b1--\r\n"
)
SECOND = b"From: app@example.com\r\nTo: you@example.com\r\nSubject: second\r\n\r\n.\r\nbye\r\n"


def needs(tool: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        shutil.which(tool) is None,
        reason=f"{tool} is not installed (Debian package; .ci/run installs it)",
    )


def send(server: Server, *messages: bytes) -> list[str]:
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        return [deliver(client, raw, rcpt_tos=("you@example.com",)) for raw in messages]


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    return emptied_module_server


@pytest.fixture
def tls_server(make_server: MakeServer, tmp_path: Path) -> tuple[Server, Path]:
    """A server with a test certificate for localhost and 127.0.0.1, POP3S on; the cert file."""
    cert_pem, key_pem = self_signed_pem("mailtrap.test")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    server = make_server(smtp_tls_cert=cert, smtp_tls_key=key, pop3s=EPHEMERAL, http=None)
    return server, cert


# -- curl --------------------------------------------------------------------------------


def curl(url: str, *args: str) -> bytes:
    result = subprocess.run(
        ["curl", "--silent", "--show-error", "--user", "you@example.com:secret", *args, url],
        capture_output=True,
        timeout=TOOL_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@needs("curl")
def test_curl_lists_retrieves_and_deletes(server: Server):
    first, _ = send(server, MESSAGE, SECOND)
    url = f"pop3://127.0.0.1:{server.pop3_address.port}"
    assert curl(url + "/") == b"1 %d\r\n2 %d\r\n" % (len(MESSAGE), len(SECOND))
    assert curl(url + "/1") == MESSAGE  # curl undoes dot-stuffing and nothing else
    assert curl(url + "/2") == SECOND
    assert curl(url + "/2", "--request", "DELE", "--head") == b""
    assert server.store.ids() == [first]


@needs("curl")
def test_curl_over_stls_and_pop3s_verifying_the_certificate(tls_server: tuple[Server, Path]):
    server, cert = tls_server
    send(server, MESSAGE)
    stls = f"pop3://127.0.0.1:{server.pop3_address.port}/1"
    assert curl(stls, "--ssl-reqd", "--cacert", str(cert)) == MESSAGE
    pop3s = f"pop3s://127.0.0.1:{server.pop3s_address.port}/1"
    assert curl(pop3s, "--cacert", str(cert)) == MESSAGE


# -- fetchmail ---------------------------------------------------------------------------


class Fetchmail:
    """Runs fetchmail with an rc file; an MDA writes each message to a file of its own.

    ``keep``: leave mail on the server and fetch only what UIDL says is new;
    otherwise fetch everything and delete it. ``tls``: fetchmail's TLS options
    (by default it insists on STLS; ``sslproto ""`` turns TLS off).
    """

    def __init__(self, folder: Path, port: int, *, keep: bool, tls: str = 'sslproto ""'):
        self.folder = folder
        self.inbox = folder / "inbox"
        self.inbox.mkdir()
        mda = folder / "deliver"
        mda.write_text(f'#!/bin/sh\ncat > "$(mktemp {self.inbox}/msg.XXXXXX)"\n')
        mda.chmod(0o755)
        self.rc = folder / "fetchmailrc"
        self.rc.write_text(
            "set no bouncemail\n"
            "set invisible\n"  # no Received header of its own
            f"poll 127.0.0.1 service {port} protocol POP3"
            f"{' uidl' if keep else ''} auth password\n"
            f'  user "you@example.com" there with password "secret" is "{_user()}" here\n'
            # no rewrite: addresses in headers stay as they are; no stripcr: CRLF stays.
            f"  {tls} options {'keep' if keep else 'fetchall'} no rewrite no stripcr\n"
            f'  mda "{mda}"\n'
        )
        self.rc.chmod(0o600)  # fetchmail refuses an rc file others can read

    def run(self) -> subprocess.CompletedProcess[str]:
        command = ["fetchmail", "-f", str(self.rc), "--nosyslog", "-v"]
        command += ["--pidfile", str(self.folder / "pid"), "--idfile", str(self.folder / "ids")]
        environment = {"HOME": str(self.folder), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        return subprocess.run(
            command, capture_output=True, text=True, env=environment, timeout=TOOL_TIMEOUT
        )

    def delivered(self) -> list[bytes]:
        return sorted(path.read_bytes() for path in self.inbox.iterdir())


def _user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


@needs("fetchmail")
def test_fetchmail_retrieves_byte_identical_messages_and_deletes_them(
    server: Server, tmp_path: Path
):
    send(server, MESSAGE, SECOND)
    fetchmail = Fetchmail(tmp_path, server.pop3_address.port, keep=False)
    result = fetchmail.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert fetchmail.delivered() == sorted([MESSAGE, SECOND])
    assert server.store.ids() == []  # fetchmail sent DELE for each, then QUIT


@needs("fetchmail")
def test_fetchmail_keeping_mail_fetches_only_new_messages_by_uidl(server: Server, tmp_path: Path):
    send(server, MESSAGE)
    fetchmail = Fetchmail(tmp_path, server.pop3_address.port, keep=True)
    assert fetchmail.run().returncode == 0
    assert fetchmail.delivered() == [MESSAGE]
    second_run = fetchmail.run()
    assert second_run.returncode == 1, second_run.stdout  # 1: no new mail
    send(server, SECOND)
    assert fetchmail.run().returncode == 0
    assert fetchmail.delivered() == sorted([MESSAGE, SECOND])
    assert len(server.store.ids()) == 2


@needs("fetchmail")
def test_fetchmail_over_stls_checking_the_certificate(
    tls_server: tuple[Server, Path], tmp_path: Path
):
    server, cert = tls_server
    send(server, MESSAGE)
    # fetchmail matches the certificate against the host's name, not its IP SAN.
    tls = f'sslproto "tls1.2+" sslcertck sslcertfile "{cert}" sslcommonname "mailtrap.test"'
    fetchmail = Fetchmail(tmp_path, server.pop3_address.port, keep=False, tls=tls)
    result = fetchmail.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "POP3> STLS" in result.stderr + result.stdout
    assert fetchmail.delivered() == [MESSAGE]


# -- getmail6 ----------------------------------------------------------------------------


@pytest.fixture
def maildir() -> Iterator[tuple[Path, str]]:
    """A Maildir, and the ``user =`` line getmail needs.

    getmail refuses to deliver as root; as root it delivers as ``nobody``, so
    the Maildir lives in a folder of nobody's own, outside pytest's root-only
    temporary tree.
    """
    folder = Path(tempfile.mkdtemp(prefix="mailtrap-getmail-"))
    box = folder / "Maildir"
    for name in ("cur", "new", "tmp"):
        (box / name).mkdir(parents=True)
    user_line = ""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for path in [folder, box, *box.iterdir()]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        user_line = "user = nobody\n"
    yield box, user_line
    shutil.rmtree(folder)


def run_getmail(
    folder: Path, port: int, box: Path, user_line: str, *, delete: bool, read_all: bool
) -> subprocess.CompletedProcess[str]:
    rc = folder / "getmailrc"
    rc.write_text(
        "[retriever]\ntype = SimplePOP3Retriever\nserver = 127.0.0.1\n"
        f"port = {port}\nusername = you@example.com\npassword = secret\n"
        f"[destination]\ntype = Maildir\npath = {box}/\n{user_line}"
        f"[options]\nread_all = {read_all}\ndelete = {delete}\n"
        "received = false\ndelivered_to = false\nverbose = 2\n"
    )
    result = subprocess.run(
        ["getmail", "--rcfile", str(rc), "--getmaildir", str(folder)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def as_getmail_stores(raw: bytes) -> bytes:
    """getmail adds Return-Path (POP3 carries no envelope sender) and writes LF line ends."""
    return b"Return-Path: <unknown>\n" + raw.replace(b"\r\n", b"\n")


@needs("getmail")
def test_getmail_retrieves_into_a_maildir_new_mail_by_uidl_then_deletes(
    server: Server, tmp_path: Path, maildir: tuple[Path, str]
):
    box, user_line = maildir
    port = server.pop3_address.port
    send(server, MESSAGE, SECOND)
    run_getmail(tmp_path, port, box, user_line, delete=False, read_all=False)
    stored = sorted(path.read_bytes() for path in (box / "new").iterdir())
    assert stored == sorted(as_getmail_stores(raw) for raw in (MESSAGE, SECOND))
    again = run_getmail(tmp_path, port, box, user_line, delete=False, read_all=False)
    assert "0 messages (0 bytes) retrieved" in again.stdout + again.stderr  # seen by UIDL
    assert len(list((box / "new").iterdir())) == 2
    run_getmail(tmp_path, port, box, user_line, delete=True, read_all=True)
    assert server.store.ids() == []
