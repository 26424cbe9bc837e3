"""Brute-force benchmark: what an attacker gets from SMTP AUTH and POP3, and what it
costs an innocent client.

Against a server started in this process (SMTP and POP3, HTTP off) with an
htpasswd file holding one bcrypt user at passlib's default cost (12), over
loopback, with the attacker's sockets bound to 127.0.0.2 (or 127.0.0.10-17 with
``--sources many``: one address per guesser) and the innocent client's to
127.0.0.3:

- **smtp guesses**: one attacker connection sending wrong AUTH PLAIN passwords
  back to back for ``--seconds``, reconnecting when closed: guesses checked per
  second (answered 535), and how many were refused unchecked (454/421);
- **pop3 guesses**: the same with USER/PASS;
- **innocent with N guessers**: ``--guessers`` threads guessing as above, and
  meanwhile (after ``--warm-up`` seconds) the innocent client runs
  ``--sessions`` whole SMTP sessions in a row (connect, EHLO, AUTH with the
  right password, one message, QUIT), each timed, each as another user so that
  every one needs a bcrypt check (a pair verified before is answered from a
  cache).

Runs against whatever ``mailtrap`` is importable, so the same script measures
an older checkout (``PYTHONPATH=/path/to/old/checkout``) with the same settings
(all defaults).

Usage:
    python bench/auth.py [--seconds 20] [--guessers 8] [--sessions 5] [--sources one|many]
                         [--warm-up 5] [--skip-guesses]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import smtplib
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from passlib.apache import HtpasswdFile
from passlib.hash import bcrypt

from mailtrap import Server
from mailtrap.config import Address

ATTACKER, INNOCENT = "127.0.0.2", "127.0.0.3"
MESSAGE = b"From: alice@example.com\r\nSubject: hello\r\n\r\nBody\r\n"


@contextlib.contextmanager
def running_server(folder: Path, innocents: int = 0) -> Iterator[Server]:
    htpasswd = folder / "users.htpasswd"
    file = HtpasswdFile(str(htpasswd), new=True)
    for user in ["alice", *innocent_users(innocents)]:
        file.set_hash(user, bcrypt.hash("right"))  # passlib's default cost: 12
    file.save()
    loopback = Address("127.0.0.1", 0)
    folder = Path(tempfile.mkdtemp(dir=folder))
    server = Server(
        db=folder / "mail.db",
        smtp=loopback,
        pop3=loopback,
        http=None,
        smtp_auth_file=htpasswd,
        pop3_auth_file=htpasswd,
    ).start()
    try:
        yield server
    finally:
        server.stop()


class LineClient:
    def __init__(self, address: Address, source: str):
        self.sock = socket.create_connection(
            (address.host, address.port), timeout=60, source_address=(source, 0)
        )
        self.file = self.sock.makefile("rb")

    def line(self) -> bytes:
        line = self.file.readline()
        if not line:
            raise ConnectionError("closed")
        return line

    def reply(self) -> bytes:
        """An SMTP reply's last line (multi-line replies are skipped to it)."""
        while True:
            line = self.line()
            if line[3:4] != b"-":
                return line

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def guess_smtp(address: Address, source: str, stop: threading.Event, tally: Counter) -> None:
    number = 0
    while not stop.is_set():
        try:
            client = LineClient(address, source)
            if not client.reply().startswith(b"220"):
                tally["refused"] += 1
                client.close()
                continue
            client.send("EHLO attacker")
            client.reply()
            while not stop.is_set():
                number += 1
                secret = base64.b64encode(f"\0alice\0guess-{source}-{number}".encode()).decode()
                client.send(f"AUTH PLAIN {secret}")
                code = client.reply()[:3]
                tally["checked" if code == b"535" else "refused"] += 1
                if code != b"535":
                    break
            client.close()
        except (ConnectionError, OSError):
            tally["refused"] += 1


def guess_pop3(address: Address, source: str, stop: threading.Event, tally: Counter) -> None:
    number = 0
    while not stop.is_set():
        try:
            client = LineClient(address, source)
            if not client.line().startswith(b"+OK"):
                tally["refused"] += 1
                client.close()
                continue
            while not stop.is_set():
                number += 1
                client.send("USER alice")
                client.line()
                client.send(f"PASS guess-{number}")
                reply = client.line()
                checked = reply.startswith(b"-ERR [AUTH] invalid")
                tally["checked" if checked else "refused"] += 1
                if not checked:
                    break
            client.close()
        except (ConnectionError, OSError):
            tally["refused"] += 1


def attack(target: object, address: Address, sources: list[str], seconds: float) -> Counter:
    stop = threading.Event()
    tally: Counter = Counter()
    threads = [
        threading.Thread(target=target, args=(address, source, stop, tally), daemon=True)
        for source in sources
    ]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    return tally


def innocent_users(count: int) -> list[str]:
    return [f"user{number}" for number in range(count)]


def innocent_sessions(address: Address, count: int) -> list[float]:
    """Each session logs in as another user: each needs a real bcrypt check."""
    times = []
    for user in innocent_users(count):
        started = time.perf_counter()
        with smtplib.SMTP(
            address.host, address.port, timeout=120, source_address=(INNOCENT, 0)
        ) as client:
            client.login(user, "right")
            client.sendmail("alice@example.com", ["bob@example.com"], MESSAGE)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--guessers", type=int, default=8)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--sources", choices=["one", "many"], default="one")
    parser.add_argument("--warm-up", type=float, default=5.0, help="attack before the sessions")
    parser.add_argument("--skip-guesses", action="store_true", help="only the innocent client")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for name, target, attribute in (
            ()
            if options.skip_guesses
            else (
                ("smtp", guess_smtp, "smtp_address"),
                ("pop3", guess_pop3, "pop3_address"),
            )
        ):
            with running_server(Path(folder)) as server:
                tally = attack(target, getattr(server, attribute), [ATTACKER], options.seconds)
            rate = tally["checked"] / options.seconds
            print(
                f"{name} guesses, one attacker: {tally['checked']} checked in "
                f"{options.seconds:.0f} s ({rate:.2f}/s), {tally['refused']} refused unchecked"
            )
        if options.sources == "many":
            sources = [f"127.0.0.{10 + n}" for n in range(options.guessers)]
        else:
            sources = [ATTACKER] * options.guessers
        with running_server(Path(folder), options.sessions) as server:
            address = server.smtp_address
            stop = threading.Event()
            tally: Counter = Counter()
            threads = [
                threading.Thread(target=guess_smtp, args=(address, s, stop, tally), daemon=True)
                for s in sources
            ]
            for thread in threads:
                thread.start()
            time.sleep(options.warm_up)  # every guesser has failed by now
            times = innocent_sessions(address, options.sessions)
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        print(
            f"innocent SMTP sessions with {options.guessers} guessers "
            f"({options.sources} address{'es' if options.sources == 'many' else ''}): "
            f"median {statistics.median(times):.3f} s, max {max(times):.3f} s "
            f"({len(times)} sessions, each a new user); guesses checked meanwhile: "
            f"{tally['checked']}"
        )


if __name__ == "__main__":
    main()
