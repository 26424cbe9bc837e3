"""The events of a ``text/calendar`` part (iCalendar, RFC 5545), summarized for the inbox.

Only what an invitation card shows: each VEVENT's title, start and end, place,
organiser and attendees, and the calendar's METHOD (REQUEST, CANCEL, ...). The
text comes from a message, so reading it is one pass over its lines with
bounds on events, attendees and the length of every value; nothing recurses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MAX_EVENTS = 20
MAX_ATTENDEES = 500
MAX_VALUE = 2000  # characters kept of any one value

_DATE_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z?))?")
_ESCAPES = {"n": "\n", "N": "\n", ",": ",", ";": ";", "\\": "\\"}


@dataclass
class Event:
    summary: str = ""
    start: str = ""  # ISO 8601: "2024-05-01T09:30:00Z", "...T09:30:00" (local) or "2024-05-01"
    end: str = ""
    time_zone: str = ""  # the TZID of the start, for local times
    all_day: bool = False
    location: str = ""
    organizer: dict[str, str] = field(default_factory=dict)
    attendees: list[dict[str, str]] = field(default_factory=list)
    attendee_count: int = 0  # all of them, also those past MAX_ATTENDEES

    def as_json(self) -> dict[str, Any]:
        return {
            "Summary": self.summary,
            "Start": self.start,
            "End": self.end,
            "TimeZone": self.time_zone,
            "AllDay": self.all_day,
            "Location": self.location,
            "Organizer": self.organizer or None,
            "Attendees": self.attendees,
            "AttendeeCount": self.attendee_count,
        }


@dataclass
class Calendar:
    method: str = ""
    events: list[Event] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"Method": self.method, "Events": [event.as_json() for event in self.events]}


def parse(text: str) -> Calendar:
    """The calendar in ``text``; what is malformed is skipped, never raised."""
    calendar = Calendar()
    event: Event | None = None
    depth = 0  # inside a component of the event (VALARM): its fields are not the event's
    for line in _unfolded(text):
        name, params, value = _content_line(line)
        if name == "BEGIN":
            if value.upper() == "VEVENT" and event is None:
                event = Event()
            elif event is not None:
                depth += 1
        elif name == "END":
            if event is not None and depth:
                depth -= 1
            elif event is not None and value.upper() == "VEVENT":
                if len(calendar.events) < MAX_EVENTS:
                    calendar.events.append(event)
                event = None
        elif event is None:
            if name == "METHOD" and not calendar.method:
                calendar.method = value.strip().upper()[:40]
        elif not depth:
            _event_field(event, name, params, value)
    return calendar


def _event_field(event: Event, name: str, params: dict[str, str], value: str) -> None:
    if name == "SUMMARY":
        event.summary = _text(value)
    elif name == "LOCATION":
        event.location = _text(value)
    elif name in ("DTSTART", "DTEND"):
        moment, all_day = _moment(value)
        if name == "DTSTART":
            event.start, event.all_day = moment, all_day
            local = bool(moment) and not all_day and not moment.endswith("Z")
            event.time_zone = params.get("TZID", "")[:100] if local else ""
        else:
            event.end = moment
    elif name == "ORGANIZER":
        event.organizer = _person(params, value)
    elif name == "ATTENDEE":
        event.attendee_count += 1
        if len(event.attendees) < MAX_ATTENDEES:
            person = _person(params, value)
            person["Status"] = params.get("PARTSTAT", "").upper()[:40]
            event.attendees.append(person)


def _unfolded(text: str) -> list[str]:
    """Lines with their folded continuations (a leading space or tab) joined back."""
    lines: list[str] = []
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and lines:
            if len(lines[-1]) < MAX_VALUE * 2:
                lines[-1] += line[1:]
        elif line:
            lines.append(line[: MAX_VALUE * 2])
    return lines


def _content_line(line: str) -> tuple[str, dict[str, str], str]:
    """NAME;PARAM=VALUE;...:VALUE, with quoted parameter values (which may hold ':' and ';')."""
    params: dict[str, str] = {}
    position, end = 0, len(line)
    while position < end and line[position] not in ";:":
        position += 1
    name = line[:position].upper()
    while position < end and line[position] == ";":
        start = position + 1
        position = start
        while position < end and line[position] not in "=;:":
            position += 1
        key = line[start:position].upper()
        chars: list[str] = []
        if position < end and line[position] == "=":
            position += 1
            quoted = False
            while position < end and (quoted or line[position] not in ";:"):
                if line[position] == '"':
                    quoted = not quoted
                else:
                    chars.append(line[position])
                position += 1
        params.setdefault(key, "".join(chars))
    value = line[position + 1 :] if position < end else ""
    return name, params, value


def _text(value: str) -> str:
    """An iCalendar TEXT value with its backslash escapes undone."""
    out: list[str] = []
    escaped = False
    for char in value[:MAX_VALUE]:
        if escaped:
            out.append(_ESCAPES.get(char, char))
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(char)
    return "".join(out).strip()


def _moment(value: str) -> tuple[str, bool]:
    """("2024-05-01T09:30:00Z", False) from 20240501T093000Z; a DATE is all-day."""
    match = _DATE_TIME.fullmatch(value.strip())
    if not match:
        return "", False
    year, month, day, hour, minute, second, utc = match.groups()
    if hour is None:
        return f"{year}-{month}-{day}", True
    return f"{year}-{month}-{day}T{hour}:{minute}:{second}{utc}", False


def _person(params: dict[str, str], value: str) -> dict[str, str]:
    address = value.strip()
    if address.lower().startswith("mailto:"):
        address = address[len("mailto:") :]
    return {"Name": params.get("CN", "")[:200], "Address": address[:320]}
