"""Serving the app under a path prefix (``--webroot /mail/``), behind a reverse proxy."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Answers made here never reach Flask, so they carry the essential headers themselves.
_HEADERS = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")]


class Webroot:
    """WSGI middleware: requests under ``prefix`` go to ``app`` with the prefix moved
    from ``PATH_INFO`` to ``SCRIPT_NAME`` (so Flask builds URLs under it); the bare
    prefix redirects to its slash form, and every other path is a JSON 404.
    """

    def __init__(self, app: WSGIApplication, webroot: str):
        self.app = app
        self.prefix = "/" + webroot.strip("/")

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(self.prefix + "/"):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.prefix
            environ["PATH_INFO"] = path[len(self.prefix) :]
            return self.app(environ, start_response)
        if path == self.prefix:
            query = environ.get("QUERY_STRING", "")
            location = f"{environ.get('SCRIPT_NAME', '')}{self.prefix}/" + (
                f"?{query}" if query else ""
            )
            start_response("302 Found", [("Location", location), *_HEADERS])
            return [b""]
        body = json.dumps({"Error": f"not found: this server answers under {self.prefix}/"})
        start_response(
            "404 Not Found",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                *_HEADERS,
            ],
        )
        return [body.encode()]


def at_webroot(app: WSGIApplication, webroot: str) -> WSGIApplication:
    """``app`` served under ``webroot``; unchanged when that is ``/``."""
    return app if webroot.strip("/") == "" else Webroot(app, webroot)
