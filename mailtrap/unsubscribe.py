"""List-Unsubscribe (RFC 2369) and one-click unsubscription (RFC 8058), read and checked.

``check`` returns the links and what is wrong with the fields, in the shape of
Mailpit's ``ListUnsubscribe`` (``Links``, and ``Errors`` as one string). The
header comes from a message, so it is scanned once, left to right, a character
at a time: linear in its length whatever it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ONE_CLICK = "List-Unsubscribe=One-Click"  # the only body RFC 8058 allows
MAX_ERRORS = 10  # a header of a thousand bad links does not need a thousand messages
MAX_COMMENT_DEPTH = 8


@dataclass
class Unsubscribe:
    links: list[str] = field(default_factory=list)  # the first mailto: and the first http(s)
    errors: list[str] = field(default_factory=list)
    one_click: bool = False  # RFC 8058 holds: a valid Post field and an https link

    def error(self, text: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(text)


def check(header: str, post: str = "") -> Unsubscribe:
    """The links of a List-Unsubscribe ``header``, and its and ``post``'s faults."""
    result = Unsubscribe()
    if not header.strip():
        if post.strip():
            result.error("List-Unsubscribe-Post without a List-Unsubscribe header (RFC 8058)")
        return result
    uris = _bracketed(header, result)
    schemes: set[str] = set()
    https = False
    for uri in uris:
        scheme = uri.partition(":")[0].lower() if ":" in uri else ""
        if scheme not in ("mailto", "http", "https"):
            result.error(f'"{_short(uri)}" should start with mailto:, http:// or https://')
            continue
        if scheme != "mailto" and not uri.lower().startswith(f"{scheme}://"):
            result.error(f'"{_short(uri)}" has no host')
            continue
        https = https or scheme == "https"
        kind = "mailto" if scheme == "mailto" else "http"
        if kind in schemes:
            result.error(f'"{_short(uri)}": more than one {kind} link')
            continue
        schemes.add(kind)
        result.links.append(uri)
    if not uris:
        result.error("no <...> link in List-Unsubscribe")
    if post.strip():
        if " ".join(post.split()).lower() != ONE_CLICK.lower():
            result.error(f'List-Unsubscribe-Post must be "{ONE_CLICK}" (RFC 8058)')
        elif not https:
            result.error("one-click unsubscription needs an https:// link (RFC 8058)")
        else:
            result.one_click = True
    return result


def _bracketed(header: str, result: Unsubscribe) -> list[str]:
    """The ``<...>`` URIs of a comma-separated list, comments skipped; faults noted."""
    uris: list[str] = []
    position, end = 0, len(header)
    expect_uri = True
    while position < end:
        char = header[position]
        if char.isspace():
            position += 1
        elif char == "(":
            position = _skip_comment(header, position)
        elif char == ",":
            expect_uri = True
            position += 1
        elif char == "<":
            # Each scan ends at the next "<", so no character is read twice.
            stop = _next(header, position + 1, "<")
            close = header.find(">", position + 1, stop)
            if close < 0:  # unclosed: go on from the next "<"
                result.error("a < without its >")
                position = stop
                continue
            uri = header[position + 1 : close]
            if not expect_uri:
                result.error("links should be separated by commas")
            if any(c.isspace() for c in uri):
                result.error(f'"{_short(uri)}" should not contain spaces')
                uri = "".join(uri.split())
            uris.append(uri)
            expect_uri = False
            position = close + 1
        else:
            stop = _next(header, position, "<,")
            result.error(f'"{_short(header[position:stop].strip())}" is outside <...>')
            position = max(stop, position + 1)
    return uris


def _next(text: str, position: int, chars: str) -> int:
    """The position of the first of ``chars`` from ``position`` on, or the end."""
    while position < len(text) and text[position] not in chars:
        position += 1
    return position


def _skip_comment(header: str, position: int) -> int:
    """The position after the comment at ``position`` (RFC 5322 comments nest)."""
    depth = 0
    while position < len(header):
        char = header[position]
        if char == "\\":
            position += 2
            continue
        if char == "(":
            depth = min(depth + 1, MAX_COMMENT_DEPTH)
        elif char == ")":
            depth -= 1
            if depth == 0:
                return position + 1
        position += 1
    return position


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
