"""caniemail.com's support data, shipped inside the package, as Mailpit's HTML-check warnings.

The JSON comes from the ``caniemail`` npm package (``tools/refresh_caniemail.py``
replaces it); nothing is fetched at run time. For each feature only the latest
test of each client (family and platform) counts, so a client that gained
support is not held back by its old versions.
"""

from __future__ import annotations

import functools
import html
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

SUPPORT = {"y": "yes", "a": "partial", "n": "no"}  # "u" (unknown) is left out

# <script>: not in caniemail's data; no mail client runs it (as Mailpit reports it).
SCRIPT = {
    "slug": "html-script",
    "title": "<script> element",
    "description": "JavaScript is not supported in any email client.",
    "url": "",
    "category": "html",
    "tags": [],
    "keywords": "javascript",
    "stats": {},
}


@dataclass(frozen=True)
class Feature:
    """One caniemail feature, with the latest support of each client."""

    slug: str
    title: str
    description: str  # HTML, from caniemail's Markdown
    url: str
    category: str
    tags: list[str]
    keywords: str
    notes: dict[str, str]
    results: list[dict[str, str]]
    supported: float  # percentages of the clients' results
    partial: float
    unsupported: float

    def warning(self, found: int) -> dict[str, Any]:
        """Mailpit's HTMLCheckWarning for ``found`` uses of the feature."""
        return {
            "Slug": self.slug,
            "Title": self.title,
            "Description": self.description,
            "URL": self.url,
            "Category": self.category,
            "Tags": self.tags,
            "Keywords": self.keywords,
            "Results": self.results,
            "NotesByNumber": self.notes,
            "Score": {
                "Found": found,
                "Supported": self.supported,
                "Partial": self.partial,
                "Unsupported": self.unsupported,
            },
        }


@dataclass(frozen=True)
class Catalog:
    features: dict[str, Feature]
    platforms: dict[str, list[str]]  # platform -> client families tested on it
    updated: str
    families: dict[str, str] = field(default_factory=dict)


@functools.cache
def catalog() -> Catalog:
    """The shipped data, parsed once per process."""
    text = resources.files("mailtrap.checks").joinpath("data/caniemail.json").read_text("utf-8")
    return parse_catalog(json.loads(text))


def parse_catalog(data: dict[str, Any]) -> Catalog:
    names = data.get("nicenames", {})
    families = names.get("family", {})
    platform_names = names.get("platform", {})
    features = {}
    platforms: dict[str, set[str]] = {}
    for item in [*data.get("data", []), SCRIPT]:
        feature = _feature(item, families, platform_names)
        features[feature.slug] = feature
        for family, by_platform in item.get("stats", {}).items():
            for platform in by_platform:
                platforms.setdefault(platform, set()).add(families.get(family, family))
    return Catalog(
        features,
        {platform: sorted(clients) for platform, clients in sorted(platforms.items())},
        data.get("last_update_date", ""),
        families,
    )


def _feature(item: dict[str, Any], families: dict[str, str], platforms: dict[str, str]) -> Feature:
    results = []
    for family, by_platform in item.get("stats", {}).items():
        for platform, versions in by_platform.items():
            if not versions:
                continue
            version, value = list(versions.items())[-1]  # the data lists versions oldest first
            words = str(value).split()
            support = SUPPORT.get(words[0] if words else "")
            if support is None:
                continue
            notes = [word.lstrip("#") for word in words[1:] if word.startswith("#")]
            family_name = families.get(family, family)
            results.append(
                {
                    "Name": f"{family_name} {platforms.get(platform, platform)} ({version})",
                    "Platform": platform,
                    "Family": family,
                    "Version": version,
                    "Support": support,
                    "NoteNumber": notes[0] if notes else "",
                }
            )
    counts = {kind: sum(r["Support"] == kind for r in results) for kind in SUPPORT.values()}
    total = len(results)
    unsupported_share = 100.0 if not total else 100 * counts["no"] / total
    return Feature(
        slug=item["slug"],
        title=item.get("title", item["slug"]),
        description=markdown_to_html(item.get("description") or ""),
        url=item.get("url") or "",
        category=item.get("category", ""),
        tags=list(item.get("tags") or []),
        keywords=item.get("keywords") or "",
        notes={str(k): markdown_to_html(v) for k, v in (item.get("notes_by_num") or {}).items()},
        results=results,
        supported=round(100 * counts["yes"] / total, 2) if total else 0.0,
        partial=round(100 * counts["partial"] / total, 2) if total else 0.0,
        unsupported=round(unsupported_share, 2),
    )


_CODE = re.compile(r"`([^`]*)`")
_LINK = re.compile(r"\[([^\]]*)\]\((https?://[^)\s]*)\)")


def markdown_to_html(text: str) -> str:
    """The little Markdown caniemail's texts use (code spans, links), as safe HTML.

    Only our shipped data goes through this, never message content.
    """
    escaped = html.escape(text, quote=True)
    escaped = _CODE.sub(r"<code>\1</code>", escaped)
    return _LINK.sub(r'<a href="\2" target="_blank" rel="noopener">\1</a>', escaped)
