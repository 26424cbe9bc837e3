"""What a failed test's report says about its mail, and the .eml files it leaves behind."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from mailtrap.pytest_plugin.message import Mail

SECTION_TITLE = "mailtrap: captured mail"


def safe_name(text: str, limit: int = 120) -> str:
    """A file name made from a test ID or message ID: nothing in it can climb or hide."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "unnamed"
    return name[:limit]


def unused_folder(parent: Path, name: str) -> Path:
    """``parent/name``, or ``name-2``, ``name-3``... if a rerun already used it."""
    candidate, number = parent / name, 1
    while candidate.exists():
        number += 1
        candidate = parent / f"{name}-{number}"
    return candidate


def save_messages(mails: Sequence[Mail], folder: Path) -> list[Path]:
    """Write each message as ``NN-ID.eml`` in ``folder`` (created); returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        mail.save(folder / f"{number:02d}-{safe_name(mail.id)}.eml")
        for number, mail in enumerate(mails, 1)
    ]


def section_text(mails: Sequence[Mail], paths: Sequence[Path], folder: Path | None) -> str:
    """The report section: one line per message (sender, recipients, subject, file)."""
    if not mails:
        return "No message was received during this test.\n"
    where = f", saved as .eml files in {folder}" if folder is not None else ""
    plural = "s" if len(mails) != 1 else ""
    lines = [f"{len(mails)} message{plural} received during this test{where}:"]
    for number, mail in enumerate(mails, 1):
        file = f"  [{paths[number - 1].name}]" if number <= len(paths) else ""
        lines.append(f"  {number}. {mail.summary()}{file}")
    return "\n".join(lines) + "\n"
