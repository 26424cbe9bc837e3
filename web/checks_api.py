"""The message-check routes: Mailpit's html-check, link-check and sa-check, and our auth-check.

Each answers in Mailpit's shape; a check that cannot run for a message (no
HTML, no spamd configured) is a 400 with ``{"Error": ...}``, as in Mailpit.
Results are cached per message; ``refresh=1`` runs the check again.
The link check sends requests out, so a foreign page (which could make a
browser load this URL) cannot start one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, abort, current_app, jsonify, request

from mailtrap.errors import CheckError
from mailtrap.web import security
from mailtrap.web.api import _message_id
from mailtrap.web.heavy_reads import Busy, busy_response, heavy_read_slot

if TYPE_CHECKING:
    from mailtrap.checks.service import Checks

bp = Blueprint("checks", __name__, url_prefix="/api/v1")


def register(app: Flask) -> None:
    app.register_blueprint(bp)


def _checks() -> Checks:
    checks = current_app.config["MAILTRAP_SERVER"].checks
    assert checks is not None  # made when the server starts, before HTTP listens
    return checks


def _flag(name: str) -> bool:
    return request.args.get(name, "").lower() in ("1", "true", "yes")


@bp.errorhandler(CheckError)
def _not_possible(error: CheckError) -> Any:
    return jsonify({"Error": str(error)}), 400


@bp.errorhandler(Busy)
def _busy(error: Busy) -> Any:
    return busy_response()


@bp.get("/checks")
def checks_settings() -> Any:
    """Which checks this server can run, for the inbox's Checks tab."""
    config = current_app.config["MAILTRAP_SERVER"].config
    return jsonify(
        {
            "SpamAssassin": config.spamassassin is not None,
            "LinkCheckAllowPrivate": config.link_check_allow_private,
            "DNS": str(config.dns) if config.dns is not None else "system",
            "DKIMKeys": sorted(_checks().keys),
        }
    )


@bp.get("/message/<message_id>/html-check")
def html_check(message_id: str) -> Any:
    checks = _checks()
    return jsonify(checks.html(_message_id(message_id), _flag("refresh"), heavy_read_slot))


@bp.get("/message/<message_id>/link-check")
def link_check(message_id: str) -> Any:
    if security.from_foreign_page():
        abort(403, "a link check cannot be started from another site's page")
    checks = _checks()
    message_id = _message_id(message_id)
    return jsonify(checks.links(message_id, _flag("follow"), _flag("refresh"), heavy_read_slot))


@bp.get("/message/<message_id>/sa-check")
def spam_check(message_id: str) -> Any:
    return jsonify(_checks().spam(_message_id(message_id), _flag("refresh")))


@bp.get("/message/<message_id>/auth-check")
def auth_check(message_id: str) -> Any:
    checks = _checks()
    return jsonify(checks.auth(_message_id(message_id), _flag("refresh"), heavy_read_slot))
