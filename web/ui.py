"""The web inbox: the page itself, its static files, and the settings it needs.

The page is plain HTML with JavaScript modules from ``static/``
(:mod:`mailtrap.web.assets` serves them, under a versioned path). Everything
it shows comes from the JSON API; the page is served with a
Content-Security-Policy that allows nothing but this origin's own scripts and
styles, so even a bug that put message text into markup could not run it.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, jsonify, request

from mailtrap import __version__
from mailtrap.web import assets

if TYPE_CHECKING:
    from mailtrap.server import Server

# Only this origin's files; the message frame is same-origin (/view/{ID}.html)
# and sandboxed by the page. connect-src names the websocket origin explicitly
# because not every browser lets 'self' cover ws: and wss:.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self' {websocket}; frame-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)
PAGE_SIZES = ("25", "50", "100", "200")  # the inbox's choices
DEFAULT_PAGE_SIZE = 50
PAGE_SIZE_COOKIE = "mailtrap_page_size"
_HOST = re.compile(r"[A-Za-z0-9.\-]+(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?")


def register(app: Flask) -> None:
    """Add the inbox page, its static files and ``/api/v1/webui`` to ``app``."""
    assets.register(app)
    app.add_url_rule("/", "ui_index", index, methods=["GET"])
    app.add_url_rule("/api/v1/webui", "ui_webui", webui, methods=["GET"])


def index() -> Response:
    # Revalidated every time (a new version shows at once), 304 when unchanged.
    response = assets.send(_page(), "no-cache")
    response.vary.add("Cookie")
    response.headers["Content-Security-Policy"] = CSP.format(websocket=_websocket_sources())
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


@functools.lru_cache(maxsize=16)
def _page_with_preload(page: assets.Asset, limit: int | None) -> assets.Asset:
    """The page, asking for its first list as it loads (in parallel with its scripts)."""
    link = ""
    if limit is not None:
        link = (
            f'<link rel="preload" as="fetch" crossorigin="anonymous" '
            f'href="api/v1/messages?start=0&amp;limit={limit}" />'
        )
    html = page.body.replace(assets.DATA_PRELOAD.encode(), f"\n    {link}".encode())
    return assets.make_asset(html, "text/html")


def _page() -> assets.Asset:
    """The page for this request: the first list preloaded when it is the plain inbox,
    with the page size the inbox last used (a cookie the page sets)."""
    plain = not request.args.get("q") and not request.args.get("start")
    limit = request.cookies.get(PAGE_SIZE_COOKIE, "")
    size = int(limit) if limit in PAGE_SIZES else DEFAULT_PAGE_SIZE
    return _page_with_preload(assets.assets().index, size if plain else None)


def _websocket_sources() -> str:
    # request.host is what the browser asked for; anything odd gets no
    # websocket at all rather than text spliced into the header.
    host = request.host
    return f"ws://{host} wss://{host}" if _HOST.fullmatch(host) else ""


def _message_relay(server: Server) -> dict[str, Any]:
    """Mailpit's MessageRelay; the allowlist and blocklist are lists, not patterns, here."""
    relay = server.relay
    if relay is None:
        return {
            "Enabled": False, "SMTPServer": "", "ReturnPath": "", "AllowedRecipients": "",
            "BlockedRecipients": "", "OverrideFrom": "", "PreserveMessageIDs": False,
            "RecipientAllowlist": "",
        }  # fmt: skip
    settings = relay.settings
    policy = settings.recipients
    allowed = "*" if policy.allow_any else ", ".join(sorted(policy.addresses | policy.domains))
    return {
        "Enabled": True,
        "SMTPServer": settings.server_description,
        "ReturnPath": settings.sender or "",
        "AllowedRecipients": allowed,
        "BlockedRecipients": ", ".join(sorted(policy.blocked_addresses | policy.blocked_domains)),
        "OverrideFrom": "",  # Mailtrap never rewrites the From header
        "PreserveMessageIDs": settings.keep_message_id,
        "RecipientAllowlist": allowed,  # the older name of AllowedRecipients
    }


def webui() -> Any:
    """Mailpit's ``WebUIConfiguration``, plus where SMTP listens (for the empty inbox)."""
    server: Server = current_app.config["MAILTRAP_SERVER"]
    config = server.config
    smtp = server.smtp_address
    return jsonify(
        {
            "Label": "",
            "MessageRelay": _message_relay(server),
            "SpamAssassin": False,
            "ChaosEnabled": False,
            "DuplicatesIgnored": False,
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
