"""The tags a message gets when it arrives, and the writer's tag bookkeeping.

Header tags (``X-Tags``, plus addresses, the SMTP login with
``--tags-username``) are found by the summarizer with the rest of the
summary; the rules run as searches on the message's own row once its
summary is written, in the same transaction, so a message is never listed
without its tags. Every name goes through :func:`spellings`: a tag already
in use keeps the spelling it has (``tag_names``, kept by triggers, migration
m006).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mailtrap.mime import Summary
from mailtrap.search import Search, one_message
from mailtrap.tags.names import plus_tags, title_case, unique_tags
from mailtrap.tags.rules import TagRule


@dataclass(frozen=True)
class Tagging:
    """How arriving mail is tagged (``--tag``, ``--tags-config``, ``--tags-*``)."""

    rules: tuple[TagRule, ...] = ()
    plus_addresses: bool = True
    x_tags: bool = True
    title_case: bool = False
    username: bool = False
    _searches: list[Search] = field(default_factory=list, compare=False, repr=False)

    def to_json(self) -> str:
        return json.dumps(
            {
                "rules": [[list(rule.tags), rule.match] for rule in self.rules],
                "plus_addresses": self.plus_addresses,
                "x_tags": self.x_tags,
                "title_case": self.title_case,
                "username": self.username,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Tagging:
        data: dict[str, Any] = json.loads(text)
        rules = tuple(TagRule(tuple(tags), match) for tags, match in data.pop("rules"))
        return cls(rules=rules, **data)

    def header_tags(self, summary: Summary, auth_user: str | None) -> list[str]:
        """Names from the header fields and the login, not yet cleaned (see unique_tags)."""
        found: list[str] = []
        if self.x_tags:
            found += summary.tags
        if self.plus_addresses:
            people = [*summary.to, *summary.cc, *summary.bcc]
            if summary.from_:
                people.append(summary.from_)
            found += plus_tags(person["Address"] for person in people)
        if self.title_case:
            found = [title_case(name) for name in found]
        if self.username and auth_user:
            found.append(auth_user)
        return found

    def prepare(self, conn: sqlite3.Connection) -> None:
        """Give ``conn`` the one-message index the rules search (outside a transaction)."""
        if not self.rules:
            return
        conn.execute("ATTACH DATABASE ':memory:' AS arrival")
        conn.execute(
            f"CREATE VIRTUAL TABLE arrival.{_TEXT} USING fts5("
            "subject, addresses, body, attachment_names, tokenize='unicode61 remove_diacritics 2')"
        )
        self._searches.extend(one_message(rule.search(), f"arrival.{_TEXT}") for rule in self.rules)

    def rule_tags(self, conn: sqlite3.Connection, seq: int, values: dict[str, Any]) -> list[str]:
        """The tags of every rule whose search finds message ``seq`` (summary ``values``)."""
        if not self.rules:
            return []
        text = [values.get(name) or "" for name in _TEXT_COLUMNS]
        conn.execute(
            f"INSERT INTO arrival.{_TEXT} ({', '.join(_TEXT_COLUMNS)}) VALUES (?, ?, ?, ?)", text
        )
        try:
            found: list[str] = []
            for rule, search in zip(self.rules, self._searches, strict=True):
                sql = f"SELECT 1 FROM messages WHERE seq = ? AND ({search.where})"
                if conn.execute(sql, [seq, *search.params]).fetchone():
                    found += rule.tags
            return found
        finally:
            conn.execute(f"DELETE FROM arrival.{_TEXT}")


_TEXT = "message_text"  # the arriving message's words, as messages_fts holds them
_TEXT_COLUMNS = ("subject", "addresses", "body", "attachment_names")


def spellings(conn: sqlite3.Connection) -> Callable[[str], str | None]:
    """The stored spelling of a tag key, or None for a tag not in use."""

    def spelling(key: str) -> str | None:
        row = conn.execute("SELECT name FROM tag_names WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    return spelling


def stored_tags(conn: sqlite3.Connection, names: list[str]) -> list[str]:
    """``names`` as they are stored: cleaned, one of each, in the spelling in use."""
    return unique_tags(names, spellings(conn))
