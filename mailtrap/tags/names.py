"""Tag names as Mailpit keeps them: cleaned, at most 100 characters, one spelling each.

A tag's identity is its name in lower case (ASCII letters only, as SQLite's
``lower()`` and Mailpit's ``COLLATE NOCASE`` have it): ``Invoice`` and
``INVOICE`` are one tag, spelled as it was first stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

MAX_TAG_LENGTH = 100
# Mailpit keeps letters, digits, space and "-_.@" and makes anything else a space; here
# a letter or digit of any script is kept too.
_NOT_ALLOWED = re.compile(r"[^\w\- .@]")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def clean_tag(name: str) -> str:
    """``Dirty! "Tag"`` -> ``Dirty Tag``: other characters become spaces, runs of them one."""
    cleaned = " ".join(_NOT_ALLOWED.sub(" ", name).split())
    return cleaned[:MAX_TAG_LENGTH].rstrip()


def tag_key(name: str) -> str:
    """What makes two names one tag: the name with ASCII letters in lower case."""
    return name.translate(_ASCII_LOWER)


def unique_tags(
    names: Iterable[str], spelling: Callable[[str], str | None] | None = None
) -> list[str]:
    """The names cleaned, without blanks or case-insensitive repeats, sorted.

    ``spelling`` gives the stored spelling of a tag's key (None if there is
    none yet): a name already in use keeps the spelling it has.
    """
    found: dict[str, str] = {}
    for name in names:
        cleaned = clean_tag(name)
        key = tag_key(cleaned)
        if cleaned and key not in found:
            found[key] = (spelling(key) if spelling else None) or cleaned
    return sorted(found.values())


def plus_tags(addresses: Iterable[str]) -> list[str]:
    """Tags of plus addresses: ``user+a+b@example.com`` gives ``a`` and ``b``."""
    tags: list[str] = []
    for address in addresses:
        plus = address.find("+")
        at = address.find("@", plus + 1) if plus >= 0 else -1
        if at > plus >= 0:
            tags += address[plus + 1 : at].split("+")
    return tags


_WORD_START = re.compile(r"(?:^|(?<=[\s\-.@]))(\w)")


def title_case(name: str) -> str:
    """``x-tag one`` -> ``X-Tag One`` (``--tags-title-case``); other letters stay as they are."""
    return _WORD_START.sub(lambda match: match[1].upper(), name)
