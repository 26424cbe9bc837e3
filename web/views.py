"""``/view/{ID}.html`` and ``/view/{ID}.txt``: a message's bodies alone, as Mailpit serves them.

The HTML of a message is hostile content served from our own origin, so it
goes out with a Content-Security-Policy that allows no script, no plugin, no
form, no frame and no connection: only inline styles, and images that are
part of the message (``cid:`` references, rewritten to the API's part URLs,
and ``data:`` URLs). Remote images load only with ``?remote=1``, which adds
``http:`` and ``https:`` to ``img-src``; the referrer is never sent.

The policy's ``sandbox`` directive gives the page, even opened on its own in a
tab, the sandbox the inbox's iframe has: an opaque origin, no script, no form,
no navigation of the top window, and no ``<meta http-equiv=refresh>`` (the HTML
standard's "sandboxed automatic features" flag, which Chromium enforces).
Popups stay allowed, as in the iframe, so a link the reader clicks opens.

With ``?dl=1`` either body is a download (``{ID}.html``, ``{ID}.txt``), as the
inbox offers it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, abort, current_app, request

from mailtrap.message import Bodies, bodies
from mailtrap.web.downloads import attachment_headers
from mailtrap.web.heavy_reads import heavy_read

if TYPE_CHECKING:
    from mailtrap.store import Store

bp = Blueprint("views", __name__, url_prefix="/view")

_POLICY = (
    "sandbox allow-popups allow-popups-to-escape-sandbox; "
    "default-src 'none'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'; style-src 'unsafe-inline'; "
    "font-src data:; img-src 'self' data: cid:{remote}"
)


def content_security_policy(*, remote_images: bool) -> str:
    """The policy of the HTML view: no script ever; remote images only when asked."""
    return _POLICY.format(remote=" https: http:" if remote_images else "")


def register(app: Flask) -> None:
    app.register_blueprint(bp)


def _store() -> Store:
    return current_app.config["MAILTRAP_SERVER"].store


def _bodies(message_id: str) -> tuple[str, Bodies]:
    store = _store()
    if message_id == "latest":
        message_id = store.latest_id()
    _, source = store.source(message_id)
    return message_id, bodies(source)


@bp.get("/<message_id>.html")
@heavy_read
def message_html(message_id: str) -> Any:
    message_id, found = _bodies(message_id)
    if not found.html:
        abort(404, "this message has no HTML part")
    remote = request.args.get("remote") == "1"
    html = _link_inline_parts(found, message_id)
    response = Response(html, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = content_security_policy(remote_images=remote)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return _download(response, f"{message_id}.html")


@bp.get("/<message_id>.txt")
@heavy_read
def message_text(message_id: str) -> Any:
    message_id, found = _bodies(message_id)
    response = Response(found.text, content_type="text/plain; charset=utf-8")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return _download(response, f"{message_id}.txt")


def _download(response: Response, filename: str) -> Response:
    """With ``?dl=1`` (as ``/raw`` takes it), the body is saved as ``filename``."""
    if request.args.get("dl") == "1":
        disposition = attachment_headers(filename)["Content-Disposition"]
        response.headers["Content-Disposition"] = disposition
    return response


def _link_inline_parts(found: Bodies, message_id: str) -> str:
    """``cid:`` references to the message's own parts become the API's part URLs."""
    html = found.html
    for part in [*found.inline, *found.attachments]:
        content_id = part.content_id
        if not content_id:
            continue
        # Relative to /view/, so it works under any --webroot.
        url = f"../api/v1/message/{message_id}/part/{part.part_id}"
        pattern = re.compile(r"(=\s*[\"']?)cid:" + re.escape(content_id) + r"(?=[\"'\s/>;])", re.I)
        html = pattern.sub(lambda match, url=url: match[1] + url, html)
    return html
