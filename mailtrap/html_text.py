"""The visible text and the links of an HTML body, in time linear in its length.

A tokenizer, not a tree builder: visible text needs no tree, and tree
construction is where HTML parsers go superlinear (libxml2 on unclosed
formatting elements). The standard library's ``html.parser`` is not used
either: on Python 3.11 it rescans the rest of the input for every ``<`` that
does not close (``<a <a <a ...``: 2.5 s at 12 KB, 200 s at 96 KB). Here every
search starts where the last one ended, so each character is looked at a
bounded number of times. The rules are HTML5's where they decide what is
text: a tag ends at the first ``>`` outside a quoted attribute value,
``script`` and ``style`` hold raw text up to their end tag, and a tag or
comment cut off by the end of the input is dropped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

# A tag with no quote before its ">", the common case, in one match. Possessive runs
# of character classes: nothing to backtrack, and a failed match scans only the tag.
_PLAIN_TAG = re.compile(r"<(/?)([a-zA-Z][^\t\n\f\r />]*+)([^\"'>]*+)>")
# Each is one character class, matched where it stands: nothing to backtrack.
_NAME = re.compile(r"[^\t\n\f\r />]*")
_SPACE = re.compile(r"[\t\n\f\r /]*")
_ATTRIBUTE_NAME = re.compile(r"[^\t\n\f\r />=]*")
_UNQUOTED_VALUE = re.compile(r"[^\t\n\f\r >]*")
_RAW_TEXT_END = {
    name: re.compile(rf"</{name}[\t\n\f\r />]", re.IGNORECASE) for name in ("script", "style")
}
# Numeric character references of many digits, rewritten before html.unescape,
# whose int() refuses more than 4300 digits (leading zeros count too).
_LONG_CHARREF = re.compile(r"&#(?:[xX][0-9a-fA-F]{9,}|[0-9]{9,});?")
# What may stand in a head (HTML5 "in head"); any other start tag, or text, ends it.
_HEAD_CONTENT = frozenset(
    {
        "base",
        "basefont",
        "bgsound",
        "link",
        "meta",
        "noframes",
        "noscript",
        "script",
        "style",
        "template",
        "title",
        "head",
    }
)
_CHECK_EVERY = 1024  # tokens between calls of the caller's budget check


class Tag(NamedTuple):
    """A start or end tag; ``name`` is lower case, "" for a comment or declaration."""

    name: str
    attributes: str = ""  # the raw text between the name and the closing ">"
    end: bool = False


_COMMENT = Tag("")


def tokens(markup: str) -> Iterator[str | Tag]:
    """Text (character references not yet decoded) and tags, in document order.

    The content of ``script`` and ``style`` is left out.
    """
    position, length = 0, len(markup)
    while position < length:
        lt = markup.find("<", position)
        if lt == -1:
            yield markup[position:]
            return
        if lt > position:
            yield markup[position:lt]
        plain = _PLAIN_TAG.match(markup, lt)
        if plain is not None:
            end, name, attributes = plain.groups()
            name = name.lower()
            yield Tag(name, attributes, bool(end))
            position = plain.end()
            if name in _RAW_TEXT_END and not end:
                raw_end = _RAW_TEXT_END[name].search(markup, position)
                if raw_end is None:
                    return
                position = raw_end.start()
            continue
        following = markup[lt + 1 : lt + 2]
        if following.isascii() and following.isalpha():
            name_end = _NAME.match(markup, lt + 1).end()  # type: ignore[union-attr]
            close = _tag_end(markup, name_end)
            if close == -1:
                return
            name = markup[lt + 1 : name_end].lower()
            yield Tag(name, markup[name_end : close - 1])
            position = close
            if name in _RAW_TEXT_END:
                raw_end = _RAW_TEXT_END[name].search(markup, position)
                if raw_end is None:
                    return
                position = raw_end.start()
        elif following == "/":
            after = markup[lt + 2 : lt + 3]
            if after.isascii() and after.isalpha():
                name_end = _NAME.match(markup, lt + 2).end()  # type: ignore[union-attr]
                close = _tag_end(markup, name_end)
                if close == -1:
                    return
                yield Tag(markup[lt + 2 : name_end].lower(), end=True)
                position = close
            else:  # "</>" or a bogus comment such as "</ x>"
                close = markup.find(">", lt + 2)
                if close == -1:
                    return
                yield _COMMENT
                position = close + 1
        elif following in ("!", "?"):
            close = _comment_end(markup, lt)
            if close == -1:
                return
            yield _COMMENT
            position = close
        else:  # "a < b": a literal "<"
            yield "<"
            position = lt + 1


def _tag_end(markup: str, position: int) -> int:
    """The index after the ">" that ends the tag whose attributes start at ``position``; -1 if none.

    Only a quoted attribute value (a quote right after "=") may hold a ">".
    """
    gt = -1
    while True:
        if gt < position:  # searched again only once passed, so each ">" is found once
            gt = markup.find(">", position)
            if gt == -1:
                return -1
        equals = markup.find("=", position, gt)
        if equals == -1:
            return gt + 1
        value = _SPACE.match(markup, equals + 1).end()  # type: ignore[union-attr]
        quote = markup[value : value + 1]
        if quote in ('"', "'"):
            closing = markup.find(quote, value + 1)
            if closing == -1:
                return -1
            position = closing + 1
        else:  # an unquoted value runs to white space or ">"
            position = _UNQUOTED_VALUE.match(markup, value).end()  # type: ignore[union-attr]


def _comment_end(markup: str, lt: int) -> int:
    """The index after a comment, declaration or processing instruction at ``lt``; -1 if cut off."""
    if markup.startswith("<!--", lt):
        for empty in ("<!-->", "<!--->"):
            if markup.startswith(empty, lt):
                return lt + len(empty)
        close = markup.find("-->", lt + 4)
        return -1 if close == -1 else close + 3
    close = markup.find(">", lt + 2)
    return -1 if close == -1 else close + 1


def unescape(text: str) -> str:
    """``html.unescape``, safe from character references of thousands of digits."""
    if "&" not in text:
        return text
    return html.unescape(_LONG_CHARREF.sub(_short_charref, text))


def _short_charref(match: re.Match[str]) -> str:
    digits = match.group(0)[2:].rstrip(";")
    base = digits[0] if digits[0] in "xX" else ""
    significant = digits[len(base) :].lstrip("0") or "0"
    # Past U+10FFFF, as HTML5 has it: U+FFFD.
    return "\ufffd" if len(significant) > 8 else f"&#{base}{significant};"


def attributes(raw: str) -> list[tuple[str, str]]:
    """The (lower-case name, decoded value) pairs of a tag's raw attribute text."""
    found: list[tuple[str, str]] = []
    position, length = 0, len(raw)
    while True:
        position = _SPACE.match(raw, position).end()  # type: ignore[union-attr]
        if position >= length:
            return found
        # A name may start with "=" (a parse error HTML5 takes as a name), so this always advances.
        name_end = max(_ATTRIBUTE_NAME.match(raw, position + 1).end(), position + 1)  # type: ignore[union-attr]
        name = raw[position:name_end].lower()
        position = _SPACE.match(raw, name_end).end()  # type: ignore[union-attr]
        value = ""
        if raw.startswith("=", position):
            position = _SPACE.match(raw, position + 1).end()  # type: ignore[union-attr]
            quote = raw[position : position + 1]
            if quote in ('"', "'"):
                closing = raw.find(quote, position + 1)
                closing = length if closing == -1 else closing
                value = raw[position + 1 : closing]
                position = closing + 1
            else:
                value_end = _UNQUOTED_VALUE.match(raw, position).end()  # type: ignore[union-attr]
                value = raw[position:value_end]
                position = value_end
        found.append((name, unescape(value)))


# The tags Mailpit's snippets put a space for (the end of a block, a line break, an
# image); every other tag joins the text on either side ("<b>A</b>lpha" is "Alpha").
SNIPPET_BREAKS = frozenset(
    {
        "div", "p", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li",
        "address", "article", "aside", "blockquote", "dl", "dt", "footer", "header", "hr",
        "main", "nav", "pre", "table", "thead", "tfoot", "video", "br", "img",
    }
)  # fmt: skip


def _breaks(token: Tag, breaks: frozenset[str] | None) -> bool:
    if breaks is None:
        return True
    if token.name in ("br", "img"):
        return True
    return token.end and token.name in breaks


def html_to_text(
    markup: str,
    check: Callable[[], None] | None = None,
    limit: int | None = None,
    *,
    breaks: frozenset[str] | None = None,
) -> str:
    """The visible words of an HTML body, for snippets and the search index.

    Character references are decoded; tags, comments and what is inside
    ``head``, ``title``, ``script`` and ``style`` become spaces, so the line
    structure of the text is kept. ``check`` is called every so many tokens
    (a budget can raise there to stop the work); past ``limit`` characters
    of text, the rest is not read. With ``breaks`` (:data:`SNIPPET_BREAKS`),
    only those tags become spaces and the others join the text around them.
    """
    chunks: list[str] = []
    remaining = len(markup) if limit is None else limit
    in_head = in_title = False
    countdown = _CHECK_EVERY
    for token in tokens(markup):
        countdown -= 1
        if not countdown:
            countdown = _CHECK_EVERY
            if check is not None:
                check()
        if type(token) is str:
            if in_head and not in_title and not token.isspace():
                in_head = False  # text ends a head left open, as in a browser
            if not (in_head or in_title):
                chunks.append(unescape(token))
                remaining -= len(token)
                if remaining <= 0:
                    break
            continue
        if _breaks(token, breaks):
            chunks.append(" ")
        if token.name == "title":
            in_title = not token.end
        elif token.name == "head" or (
            in_head and not token.end and token.name not in _HEAD_CONTENT
        ):
            in_head = token.name == "head" and not token.end
    return "".join(chunks)


def links(markup: str) -> list[str]:
    """The ``href`` of every ``<a>`` and ``<area>``, decoded, in order.

    Fragments (``#...``) and ``mailto:`` links are left out.
    """
    found: list[str] = []
    for token in tokens(markup):
        if isinstance(token, Tag) and not token.end and token.name in ("a", "area"):
            for name, value in attributes(token.attributes):
                value = value.strip()
                if name == "href" and value and not value.startswith(("#", "mailto:")):
                    found.append(value)
    return found
