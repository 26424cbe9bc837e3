"""A real SpamAssassin ``spamd`` on a free loopback port, with Debian's rules, offline.

Debian's ``spamassassin`` package installs its rules in /usr/share/spamassassin
(sa-update, which needs the internet, would put newer ones in /var/lib); the
``.pre`` files that load the plugins are in /etc/spamassassin. The site
configuration here is a copy of those with network tests, Bayes and
auto-whitelisting off, so a check is the same on every machine.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailtrap.config import Address

RULES = Path("/usr/share/spamassassin")
PLUGINS = Path("/etc/spamassassin")
START_TIMEOUT = 60.0
LOCAL_CF = """\
use_bayes 0
bayes_auto_learn 0
skip_rbl_checks 1
dns_available no
use_auto_whitelist 0
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def spamd(folder: Path) -> Iterator[Address]:
    """Start spamd, wait until it answers PING, yield its address; stop it by its PID."""
    executable = shutil.which("spamd") or "/usr/sbin/spamd"
    # Started as root, spamd reads its configuration as "nobody": the folder must be
    # readable by everyone, which pytest's own temporary folders are not.
    site = Path(tempfile.mkdtemp(prefix="mailtrap-spamd-"))
    site.chmod(0o755)
    for pre in PLUGINS.glob("*.pre"):
        shutil.copy(pre, site)
    (site / "local.cf").write_text(LOCAL_CF)
    port = free_port()  # spamd cannot report a port it picked itself
    log = (folder / "spamd.log").open("wb")
    process = subprocess.Popen(
        [
            executable,
            f"--listen=127.0.0.1:{port}",
            "--local",
            "--max-children=2",
            f"--configpath={RULES}",
            f"--siteconfigpath={site}",
            "--nouser-config",
            f"--pidfile={folder / 'spamd.pid'}",
            "--syslog=stderr",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    log.close()  # the child has its own copy
    try:
        _wait_until_answering(port, process, folder / "spamd.log")
        yield Address("127.0.0.1", port)
    finally:
        process.send_signal(signal.SIGTERM)  # spamd stops its children itself
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(site, ignore_errors=True)


def _wait_until_answering(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"spamd exited ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
                connection.sendall(b"PING SPAMC/1.5\r\n\r\n")
                if connection.recv(100).startswith(b"SPAMD/"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"spamd did not answer within {START_TIMEOUT} s: {log.read_text()[-2000:]}")
