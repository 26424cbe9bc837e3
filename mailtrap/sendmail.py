"""``mailtrap sendmail``: a stand-in for ``/usr/sbin/sendmail`` that hands mail to Mailtrap.

PHP's ``mail()``, cron and other programs pipe a message into sendmail; this
reads it the way sendmail does (``-t``: recipients from the header, ``-i``:
a lone dot does not end the message, ``-f``: the envelope sender) and sends
it over SMTP to the server.
"""

from __future__ import annotations

import getpass
import io
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from typing import BinaryIO

_BCC_FIELD = re.compile(rb"^bcc:.*(?:\r?\n[ \t].*)*\r?\n", re.IGNORECASE | re.MULTILINE)


_LINE_END = re.compile(rb"\r?\n")


class MessageTooLarge(Exception):
    """The message on standard input is over the size limit."""


@dataclass
class Outgoing:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


def read_message(stream: BinaryIO, *, dot_ends: bool, limit: int) -> bytes:
    """The message on ``stream``: up to EOF, or a lone ``.`` line unless ``-i``."""
    lines: list[bytes] = []
    size = 0
    for line in iter(lambda: stream.readline(64 * 1024), b""):
        if dot_ends and line.rstrip(b"\r\n") == b".":
            break
        size += len(line)
        if size > limit:
            raise MessageTooLarge(f"the message is larger than {limit} bytes")
        lines.append(line)
    return b"".join(lines)


def _header_block(data: bytes) -> bytes:
    match = re.search(rb"\r?\n\r?\n", data)
    return data[: match.end()] if match else data


def prepare(
    data: bytes, recipients: Iterable[str], *, from_header: bool, sender: str | None
) -> Outgoing:
    """Envelope and content; ``from_header`` is ``-t``: recipients from To, Cc and Bcc.

    Programs write Unix line ends; SMTP carries CRLF (smtplib converts only text).
    """
    data = _LINE_END.sub(b"\r\n", data)
    header = _header_block(data)
    fields = BytesHeaderParser(policy=compat32).parse(io.BytesIO(header))
    rcpt_tos = [address for address in recipients if address]
    if from_header:
        values = [str(value) for name in ("to", "cc", "bcc") for value in fields.get_all(name, [])]
        rcpt_tos += [address for _, address in getaddresses(values) if address]
        # sendmail -t takes Bcc out of the message it sends on.
        data = _BCC_FIELD.sub(b"", header) + data[len(header) :]
    if sender is None:
        sender = parseaddr(str(fields.get("from", "")))[1] or default_sender()
    return Outgoing(sender, list(dict.fromkeys(rcpt_tos)), data)


def default_sender() -> str:
    """``user@host``, as sendmail says when neither ``-f`` nor From names anyone."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "nobody"
    return f"{user}@{socket.gethostname()}"
