"""The web inbox: the page itself, its static files, and the settings it needs.

The page is plain HTML with JavaScript modules from ``static/`` (Flask's own
static route serves them). Everything it shows comes from the JSON API; the
page is served with a Content-Security-Policy that allows nothing but this
origin's own scripts and styles, so even a bug that put message text into
markup could not run it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, jsonify, request

from mailtrap import __version__

if TYPE_CHECKING:
    from mailtrap.server import Server

STATIC = Path(__file__).parent / "static"

# Only this origin's files; the message frame is same-origin (/view/{ID}.html)
# and sandboxed by the page. connect-src names the websocket origin explicitly
# because not every browser lets 'self' cover ws: and wss:.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self' {websocket}; frame-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)
_HOST = re.compile(r"[A-Za-z0-9.\-]+(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?")


def register(app: Flask) -> None:
    """Add the inbox page and ``/api/v1/webui`` to ``app``."""
    app.add_url_rule("/", "ui_index", index, methods=["GET"])
    app.add_url_rule("/api/v1/webui", "ui_webui", webui, methods=["GET"])


def index() -> Response:
    response = Response((STATIC / "index.html").read_bytes(), mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP.format(websocket=_websocket_sources())
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-cache"  # revalidate: a new version shows at once
    return response


def _websocket_sources() -> str:
    # request.host is what the browser asked for; anything odd gets no
    # websocket at all rather than text spliced into the header.
    host = request.host
    return f"ws://{host} wss://{host}" if _HOST.fullmatch(host) else ""


def webui() -> Any:
    """Mailpit's ``WebUIConfiguration``, plus where SMTP listens (for the empty inbox)."""
    server: Server = current_app.config["MAILTRAP_SERVER"]
    config = server.config
    smtp = server.smtp_address
    return jsonify(
        {
            "Label": "",
            "MessageRelay": {
                "Enabled": False,
                "SMTPServer": "",
                "ReturnPath": "",
                "AllowedRecipients": "",
                "BlockedRecipients": "",
                "OverrideFrom": "",
                "PreserveMessageIDs": False,
                "RecipientAllowlist": "",  # Mailpit still sends this old name of AllowedRecipients
            },
            "SpamAssassin": False,
            "ChaosEnabled": False,
            "DuplicatesIgnored": False,
            "HideDeleteAllButton": False,
            # Beyond Mailpit: what the empty inbox tells people to configure.
            "Version": __version__,
            "SMTP": {
                "Host": smtp.host,
                "Port": smtp.port,
                "STARTTLS": config.smtp_tls_enabled,
                "RequireTLS": config.smtp_require_tls,
                "Auth": config.smtp_auth_file is not None,
            },
        }
    )
