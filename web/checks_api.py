"""The message-check routes: Mailpit's html-check, link-check and sa-check, and our auth-check.

Each answers in Mailpit's shape; a check that cannot run for a message (no
HTML, no spamd configured) is a 400 with ``{"Error": ...}``, as in Mailpit.
Results are cached per message; ``refresh=1`` runs the check again.
Every check sends traffic out or spends the server's time (the link check
requests URLs, the auth check asks DNS about the message's domains, the spam
check hands the message to spamd, which may ask DNS block lists), so a
foreign page, which can make a browser load these URLs with an ``<img>``,
starts none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, abort, current_app, jsonify, request

from mailtrap.errors import CheckError
from mailtrap.web import security
from mailtrap.web.api import _message_id
from mailtrap.web.heavy_reads import Busy, busy_response, heavy_read_slot
from mailtrap.web.params import fail

if TYPE_CHECKING:
    from mailtrap.checks.service import Checks

bp = Blueprint("checks", __name__, url_prefix="/api/v1")


def register(app: Flask) -> None:
    app.register_blueprint(bp)


def _checks() -> Checks:
    checks = current_app.config["MAILTRAP_SERVER"].checks
    assert checks is not None  # made when the server starts, before HTTP listens
    return checks


TRUE, FALSE = ("1", "true", "yes"), ("", "0", "false", "no")


def _flag(name: str) -> bool:
    value = request.args.get(name, "").strip().lower()
    if value not in TRUE + FALSE:
        fail(f"{name} must be true or false (1 or 0), not {value[:40]!r}")
    return value in TRUE


def _refuse_foreign_page() -> None:
    if security.from_foreign_page():
        abort(403, "a check cannot be started from another site's page")


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
    _refuse_foreign_page()
    checks = _checks()
    return jsonify(checks.html(_message_id(message_id), _flag("refresh"), heavy_read_slot))


@bp.get("/message/<message_id>/link-check")
def link_check(message_id: str) -> Any:
    _refuse_foreign_page()
    checks = _checks()
    message_id = _message_id(message_id)
    return jsonify(checks.links(message_id, _flag("follow"), _flag("refresh"), heavy_read_slot))


@bp.get("/message/<message_id>/sa-check")
def spam_check(message_id: str) -> Any:
    _refuse_foreign_page()
    return jsonify(_checks().spam(_message_id(message_id), _flag("refresh")))


@bp.get("/message/<message_id>/auth-check")
def auth_check(message_id: str) -> Any:
    _refuse_foreign_page()
    checks = _checks()
    return jsonify(checks.auth(_message_id(message_id), _flag("refresh"), heavy_read_slot))
