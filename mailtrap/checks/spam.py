"""Spam check: what SpamAssassin's ``spamd`` says of a message, as Mailpit's sa-check shows it.

:class:`Spamd` speaks the spamd protocol (``REPORT SPAMC/1.5``) over TCP;
:func:`parse_report` and :func:`spam_result` are pure. A message larger than
MAX_SPAM_BYTES is not sent, as spamc does not send one either.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailtrap.config import Address

PROTOCOL = "SPAMC/1.5"
MAX_SPAM_BYTES = 500 * 1024  # spamc's default --max-size
MAX_ANSWER_BYTES = 1024 * 1024  # a report is a few KB; more is not spamd
TIMEOUT = 30.0  # seconds for one check; spamd takes a second or two


class SpamdError(Exception):
    """spamd could not be reached, or did not answer as spamd does."""


@dataclass
class Rule:
    name: str
    score: float
    description: str


@dataclass
class Report:
    is_spam: bool = False
    score: float = 0.0
    threshold: float = 5.0
    rules: list[Rule] = field(default_factory=list)


class SpamClient(Protocol):
    def report(self, message: bytes) -> bytes: ...


class Spamd:
    """A spamd at ``address`` (``--spamassassin HOST:PORT``)."""

    def __init__(self, address: Address, timeout: float = TIMEOUT):
        self.address = address
        self.timeout = timeout

    def report(self, message: bytes) -> bytes:
        """spamd's whole answer to REPORT (status line, headers, report text)."""
        request = f"REPORT {PROTOCOL}\r\nContent-length: {len(message)}\r\n\r\n".encode()
        try:
            with socket.create_connection(
                (self.address.host, self.address.port), self.timeout
            ) as connection:
                connection.sendall(request)
                connection.sendall(message)
                connection.shutdown(socket.SHUT_WR)
                return _read_all(connection)
        except TimeoutError:
            raise SpamdError(f"spamd at {self.address} did not answer in time") from None
        except OSError as error:
            reason = error.strerror or str(error)
            raise SpamdError(f"cannot reach spamd at {self.address}: {reason}") from None


def _read_all(connection: socket.socket) -> bytes:
    pieces: list[bytes] = []
    size = 0
    while chunk := connection.recv(64 * 1024):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise SpamdError("spamd's answer is larger than any report")
        pieces.append(chunk)
    return b"".join(pieces)


def parse_report(answer: bytes) -> Report:
    """Read spamd's answer: ``SPAMD/1.1 0 EX_OK``, a ``Spam:`` header, the report table."""
    head, _, body = answer.replace(b"\r\n", b"\n").partition(b"\n\n")
    lines = head.decode("utf-8", "replace").split("\n")
    status = lines[0].split(None, 2)
    if len(status) < 2 or not status[0].startswith("SPAMD/"):
        raise SpamdError("the answer is not spamd's")
    if status[1] != "0":
        raise SpamdError(f"spamd answered {' '.join(status[1:])}")
    report = Report()
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "spam":
            # "True ; 5.1 / 5.0"
            verdict, _, scores = value.partition(";")
            score, _, threshold = scores.partition("/")
            report.is_spam = verdict.strip().lower() in ("true", "yes")
            report.score = _number(score)
            report.threshold = _number(threshold, 5.0)
    report.rules = _rules(body.decode("utf-8", "replace"))
    return report


def _rules(text: str) -> list[Rule]:
    """The rows of the report's table, below its ``---- ----`` line.

    A description too long for its column goes on in the next line,
    indented to the column.
    """
    rules: list[Rule] = []
    in_table = False
    for line in text.split("\n"):
        if not in_table:
            in_table = line.startswith("----")
            continue
        if not line.strip():
            continue
        words = line.split(None, 2)
        score = _number(words[0], math.nan) if words else math.nan
        if len(words) >= 2 and not math.isnan(score):
            rules.append(Rule(words[1], score, words[2].strip() if len(words) > 2 else ""))
        elif rules:  # a continued description
            rules[-1].description = f"{rules[-1].description} {line.strip()}".strip()
    return rules


def _number(text: str, default: float = 0.0) -> float:
    try:
        return float(text.strip())
    except ValueError:
        return default


def spam_result(message: bytes, client: SpamClient, size: int | None = None) -> dict[str, Any]:
    """Mailpit's SpamAssassinResponse; an unreachable spamd is an ``Error`` in it, as there.

    ``size``: the message's size, when ``message`` was not read for being too large.
    """
    result: dict[str, Any] = {"IsSpam": False, "Error": "", "Score": 0.0, "Rules": []}
    size = len(message) if size is None else size
    if size > MAX_SPAM_BYTES:
        result["Error"] = (
            f"the message has {size} bytes; like spamc, Mailtrap sends SpamAssassin "
            f"messages of at most {MAX_SPAM_BYTES} bytes"
        )
        return result
    try:
        report = parse_report(client.report(message))
    except SpamdError as error:
        result["Error"] = str(error)
        return result
    result["IsSpam"] = report.score >= report.threshold
    result["Score"] = _one_decimal(report.score)
    result["Rules"] = [
        {"Score": _one_decimal(rule.score), "Name": rule.name, "Description": rule.description}
        for rule in report.rules
    ]
    return result


def _one_decimal(value: float) -> float:
    return math.floor(value * 10) / 10  # as Mailpit rounds
