"""Import messages from .eml files, mbox files and Maildir folders; export to .eml files."""

from __future__ import annotations

import mailbox
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from pathlib import Path

from mailtrap.store import IncomingMessage, Store

EML_SUFFIXES = {".eml"}
MBOX_SUFFIXES = {".mbox", ".mbx"}
_HEADER_LINE = re.compile(rb"[!-9;-~]+:")  # a field name, then a colon (RFC 5322 2.2)


@dataclass
class Source:
    """One message to import: where it comes from, and how to read its bytes."""

    label: str
    read: Callable[[], bytes]


@dataclass
class Problem:
    """A file or folder that could not be read; the import goes on without it."""

    label: str
    reason: str


def find_sources(paths: Iterable[Path]) -> Iterator[Source | Problem]:
    """Every message under ``paths``: files are sniffed, folders searched.

    What cannot be read becomes a :class:`Problem` naming that file or folder
    alone; the search goes on with the rest.
    """
    for path in paths:
        if _is_maildir(path):
            yield from _reported(path, _maildir_sources)
        elif path.is_dir():
            try:
                children = sorted(path.rglob("*"))
            except OSError as error:
                yield Problem(str(path), _reason(error))
                continue
            for child in children:
                if child.is_dir():
                    if _is_maildir(child):
                        yield from _reported(child, _maildir_sources)
                # A dangling symlink named like mail is reported; FIFOs and such are skipped.
                elif child.suffix.lower() in EML_SUFFIXES | MBOX_SUFFIXES and (
                    child.is_file() or not child.exists()
                ):
                    yield from _reported(child, _file_sources)
        else:
            yield from _reported(path, _file_sources)


def _reported(
    path: Path, sources: Callable[[Path], Iterator[Source | Problem]]
) -> Iterator[Source | Problem]:
    try:
        yield from sources(path)
    except (OSError, mailbox.Error) as error:
        yield Problem(str(path), _reason(error))


def _is_maildir(path: Path) -> bool:
    return all((path / sub).is_dir() for sub in ("cur", "new", "tmp"))


def _maildir_sources(path: Path) -> Iterator[Source | Problem]:
    folder = mailbox.Maildir(path, factory=None, create=False)
    for key in sorted(folder.keys()):
        yield Source(f"{path}/{key}", lambda key=key: folder.get_bytes(key))


def _file_sources(path: Path) -> Iterator[Source | Problem]:
    with path.open("rb") as file:
        start = file.read(5)
    if start == b"From ":
        box = mailbox.mbox(path, factory=None, create=False)
        for number, key in enumerate(box.keys(), 1):
            yield Source(f"{path}#{number}", lambda key=key: box.get_bytes(key))
    else:
        yield Source(str(path), path.read_bytes)


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def load(source: Source) -> IncomingMessage:
    """Read a source; raises ValueError when its bytes are not a mail message."""
    raw = source.read()
    if not _HEADER_LINE.match(raw):
        raise ValueError("not an e-mail message (it does not start with a header field)")
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    sender = parseaddr(str(headers.get("Return-Path") or headers.get("From") or ""))[1]
    fields = [str(v) for name in ("To", "Cc", "Bcc") for v in headers.get_all(name, [])]
    recipients = [address for _, address in getaddresses(fields) if address]
    return IncomingMessage(raw=raw, mail_from=sender, rcpt_tos=recipients, peer="ingest")


def dump(store: Store, folder: Path) -> int:
    """Write every stored message to ``folder/<ID>.eml``, byte for byte; returns the count."""
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    # IDs are made by the store from letters and digits only, never from message data.
    for message_id, raw in store.iter_raw():
        (folder / f"{message_id}.eml").write_bytes(raw)
        written += 1
    return written
