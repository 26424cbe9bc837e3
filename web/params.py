"""Reading a request's input: query arguments, time zones and JSON bodies.

Everything is checked before it reaches the store or the ``email`` package:
numbers and their ranges, time-zone names (against the zones installed, before
any file is opened), the size, depth and encoding of JSON bodies. Whatever is
wrong ends the request with a 400 (413 for a body too big) whose JSON message
says what was wrong.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import urllib.parse
import zoneinfo
from typing import Any, NoReturn

from flask import abort, request

MAX_JSON_BODY = 8 * 1024 * 1024
MAX_JSON_DEPTH = 32  # Mailpit's requests nest four deep; the stdlib parser recurses
# Bytes outside strings (brackets, numbers, punctuation) bound the number of
# values, hence the memory a body can cost; strings are bounded by the size alone.
MAX_JSON_STRUCTURE = 1024 * 1024
MAX_FORM_FIELDS = 100_000  # as many as the API takes IDs
MAX_ZONE_NAME = 64  # the longest IANA name has 32 characters

# A JSON string, escapes and all; an unclosed one runs to the end, so every attempt
# matches and the scan stays linear.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\[\s\S][^"\\]*)*(?:"|\\?\Z)')
_SURROGATE = re.compile("[\ud800-\udfff]")


def fail(message: str) -> NoReturn:
    """End the request with a 400 and ``message``."""
    abort(400, message)


def int_arg(name: str, default: int, minimum: int, maximum: int) -> int:
    """The integer query argument ``name`` (``default`` when absent), within its range."""
    text = request.args.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        fail(f"{name} must be an integer, not {text[:40]!r}")
    if not minimum <= value <= maximum:
        fail(f"{name} must be between {minimum} and {maximum}")
    return value


def seconds_arg(name: str, maximum: float) -> float:
    """A number of seconds from 0 to ``maximum`` (0 when absent)."""
    text = request.args.get(name, "").strip()
    if not text:
        return 0.0
    try:
        seconds = float(text)
    except ValueError:
        fail(f"{name} must be a number of seconds, not {text[:40]!r}")
    if not 0 <= seconds <= maximum:  # also refuses nan and inf
        fail(f"{name} must be between 0 and {maximum:g} seconds")
    return seconds


@functools.cache
def _zone_names() -> frozenset[str]:
    # Looked up once: the list only changes when the system's tzdata does.
    return frozenset(zoneinfo.available_timezones())


def time_zone(name: str) -> datetime.tzinfo | None:
    """The IANA zone ``name``; None (the server's own zone) for an empty name or ``Local``.

    The name is checked against the installed zones before ZoneInfo opens a
    file, so a directory, a path or a name too long for the file system is
    refused like any other unknown name.
    """
    name = name.strip()
    if not name or name == "Local":  # "Local" as Go's time.LoadLocation, which Mailpit uses
        return None
    if len(name) > MAX_ZONE_NAME or name not in _zone_names():
        fail(f"unknown time zone {name[:MAX_ZONE_NAME]!r}: expected an IANA name like Europe/Paris")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # a broken tzdata file
        fail(f"time zone {name!r} cannot be loaded on this server")


def json_body(limit: int = MAX_JSON_BODY) -> Any:
    """The request's JSON body, None if it has none.

    413 if it is larger than ``limit``; 400 if it is not UTF-8, not JSON, nested
    deeper than ``MAX_JSON_DEPTH``, or holds a string with an unpaired surrogate
    (``"\\ud800"``: valid JSON, but not text that UTF-8, SQLite or e-mail can carry).
    """
    text = _body_text(limit)
    return _json(text) if text.strip() else None


def fields_body() -> dict[str, Any] | None:
    """The body of a PUT or DELETE: a JSON object, or form fields; None if empty.

    Mailpit reads any body as JSON, whatever its type (``curl -d`` says it
    sends a form); the Python client ``mailpit-api-client`` sends real form
    fields (``ids=...&ids=...``), read here as a JSON object with lists for
    repeated fields (``{"ids": [...]}``).
    """
    text = _body_text(MAX_JSON_BODY)
    if not text.strip():
        return None
    if request.mimetype == "application/x-www-form-urlencoded" and not text.lstrip().startswith(
        ("{", "[")
    ):
        fields = urllib.parse.parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
        return {name: values if len(values) > 1 else values[0] for name, values in fields.items()}
    value = _json(text)
    if not isinstance(value, dict):
        fail("the JSON body must be an object")
    return value


def _body_text(limit: int) -> str:
    if request.content_length is not None and request.content_length > limit:
        abort(413, f"the request body is larger than {limit} bytes")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        abort(413, f"the request body is larger than {limit} bytes")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        fail(f"the request body is not UTF-8: invalid byte at offset {error.start}")


def _json(text: str) -> Any:
    structure = len(_JSON_STRING.sub("", text))
    if structure > MAX_JSON_STRUCTURE:
        fail(f"the JSON body has more than {MAX_JSON_STRUCTURE} bytes outside strings")
    try:
        value = json.loads(text, parse_constant=_not_json)
    except RecursionError:  # the parser's own depth limit, far deeper than ours
        fail(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
    except ValueError as error:
        fail(f"invalid JSON body: {error}")
    _check_values(value)
    return value


def _not_json(name: str) -> NoReturn:
    fail(f"invalid JSON body: {name} is not a JSON value")


def _check_values(value: Any) -> None:
    """Nesting within ``MAX_JSON_DEPTH``; every string and key text that UTF-8 can encode."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                fail(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending += ((child, depth + 1) for child in children)
        elif isinstance(item, str) and _SURROGATE.search(item):
            fail("the JSON body holds an unpaired surrogate (\\ud800-\\udfff) in a string")
