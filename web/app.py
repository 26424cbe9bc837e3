"""The Flask application: the web inbox, the Mailpit-compatible JSON API and live events."""

from __future__ import annotations

import logging
import threading
from email.message import Message
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from mailtrap import __version__
from mailtrap.errors import MessageNotFound, StorageError
from mailtrap.search import SearchSyntaxError
from mailtrap.web import api, chaos, checks_api, events, metrics, openapi, relay_api, security, ui
from mailtrap.web.webroot import at_webroot

if TYPE_CHECKING:
    from mailtrap.server import Server

log = logging.getLogger(__name__)


def create_app(server: Server) -> Flask:
    """The app for one running :class:`mailtrap.Server` (its store, hub and settings)."""
    app = Flask(__name__, static_folder=None)  # assets.py serves static/
    app.config["MAILTRAP_SERVER"] = server
    app.config["MAILTRAP_STOPPING"] = threading.Event()  # set on shutdown: long waits end
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep Mailpit's field order
    _register_error_handlers(app)
    security.register(app)  # first: its checks run before every other handler
    api.register(app)
    checks_api.register(app)
    relay_api.register(app)
    events.register(app)
    ui.register(app)
    openapi.register(app)
    metrics.register(app)  # /metrics
    chaos.register(app)  # /api/v1/chaos

    @app.get("/livez")
    def livez() -> Any:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Any:
        server.store.count()  # a read that fails (503 below) if the database does
        return jsonify({"status": "ok", "version": __version__})

    app.wsgi_app = at_webroot(app.wsgi_app, server.config.webroot)  # type: ignore[method-assign]
    return app


def is_long_lived(target: str, headers: Message) -> bool:
    """Whether a request holds its thread for long: the websocket, and long-poll searches.

    The HTTP server counts these apart (``--http-max-streams``), so they
    cannot take the threads ordinary requests need.
    """
    if headers.get("Upgrade", "").lower() == "websocket":
        return True
    url = urlsplit(target)
    if not url.path.endswith("/api/v1/search"):
        return False
    wait = parse_qs(url.query).get("wait", [""])[0]
    try:
        return float(wait) > 0
    except ValueError:
        return False  # the API answers 400


def _register_error_handlers(app: Flask) -> None:
    """Every error is JSON with a status that says what went wrong; never a traceback."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        return jsonify({"Error": error.description}), error.code

    @app.errorhandler(SearchSyntaxError)
    def bad_search(error: SearchSyntaxError) -> Any:
        return jsonify({"Error": str(error)}), 400

    @app.errorhandler(MessageNotFound)
    def not_found(error: MessageNotFound) -> Any:
        return jsonify({"Error": f"message not found: {error}"}), 404

    @app.errorhandler(StorageError)
    def store_unavailable(error: StorageError) -> Any:
        # As in the API: the database is away for a moment, not a bug of ours.
        log.error("storage error answering a request: %s", error)
        return jsonify({"Error": "the message store is unavailable; try again"}), 503

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Any:
        log.exception("error answering a request")
        return jsonify({"Error": "internal error"}), 500
