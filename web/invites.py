"""``GET /api/v1/message/{ID}/calendar``: the invitations in a message, for the inbox's card.

Beyond Mailpit. Every ``text/calendar`` (or ``application/ics``) part of the
message, read up to MAX_CALENDAR_BYTES, as :func:`mailtrap.calendar.parse`
summarizes it: ``{"Calendars": [{"PartID", "Method", "Events": [...]}]}``.
A message without one answers an empty list.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, jsonify

from mailtrap import calendar
from mailtrap.message import parts
from mailtrap.web.heavy_reads import heavy_read

bp = Blueprint("invites", __name__, url_prefix="/api/v1")

MAX_CALENDAR_BYTES = 512 * 1024
MAX_CALENDARS = 4
CALENDAR_TYPES = ("text/calendar", "application/ics")


def register(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/message/<message_id>/calendar")
@heavy_read
def message_calendar(message_id: str) -> Any:
    store = current_app.config["MAILTRAP_SERVER"].store
    if message_id == "latest":
        message_id = store.latest_id()
    _, source = store.source(message_id)
    found = []
    for part in parts(source):
        if part.content_type in CALENDAR_TYPES and len(found) < MAX_CALENDARS:
            summary = calendar.parse(part.text(MAX_CALENDAR_BYTES)).as_json()
            found.append({"PartID": part.part_id, **summary})
    return jsonify({"Calendars": found})
