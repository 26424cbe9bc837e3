"""Tag rules: "give these tags to every message this search finds".

From the command line, ``--tag 'Invoices,Billing=subject:invoice'`` (repeatable):
the tags before the first ``=``, comma-separated, and the search after it. From a
TOML file (``--tags-config``), the shape of Mailpit's YAML file::

    [[filters]]
    match = "subject:invoice"
    tags = "Invoices, Billing"      # or ["Invoices", "Billing"]

The search is Mailtrap's own syntax (:mod:`mailtrap.search`), checked when the
rules are read, so a rule that cannot work stops the server from starting.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailtrap.errors import ConfigError
from mailtrap.search import Search, SearchSyntaxError, parse
from mailtrap.tags.names import unique_tags

MAX_RULES = 1000  # each costs a query per arriving message


@dataclass(frozen=True)
class TagRule:
    """Tags, and the search whose matches get them."""

    tags: tuple[str, ...]
    match: str

    def search(self) -> Search:
        return parse(self.match)

    def to_json(self) -> dict[str, Any]:
        return {"Tags": list(self.tags), "Match": self.match}


def make_rule(tags: list[str], match: str, where: str) -> TagRule:
    """A checked rule; ``where`` names its origin in the error."""
    names = unique_tags(tags)
    match = match.strip()
    if not names:
        raise ConfigError(f"{where}: no tag name (letters, digits, space, -_.@)")
    if not match:
        raise ConfigError(f"{where}: no search after the tags")
    try:
        search = parse(match)
    except SearchSyntaxError as error:
        raise ConfigError(f"{where}: {error}") from error
    if search.matches_everything:
        raise ConfigError(f"{where}: the search {match!r} matches every message")
    return TagRule(tuple(names), match)


def parse_rule(text: str) -> TagRule:
    """``TAG[,TAG...]=SEARCH``, as ``--tag`` takes it."""
    tags, equals, match = text.partition("=")
    if not equals:
        raise ConfigError(f"--tag {text!r}: expected TAG[,TAG...]=SEARCH")
    return make_rule(tags.split(","), match, f"--tag {text!r}")


def load_rules(path: Path) -> tuple[TagRule, ...]:
    """The ``[[filters]]`` of a TOML file."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read tag rules from {path}: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not TOML: {error}") from error
    filters = document.get("filters")
    if not isinstance(filters, list) or not all(isinstance(item, dict) for item in filters):
        raise ConfigError(f"{path}: expected [[filters]] tables with match and tags")
    rules = []
    for number, item in enumerate(filters, 1):
        where = f"{path}, filter {number}"
        tags, match = item.get("tags"), item.get("match")
        if isinstance(tags, str):
            tags = tags.split(",")
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise ConfigError(f"{where}: tags must be a string or an array of strings")
        if not isinstance(match, str):
            raise ConfigError(f"{where}: match must be a string")
        rules.append(make_rule(tags, match, where))
    return tuple(rules)
