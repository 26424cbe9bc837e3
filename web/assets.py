"""The inbox's static files: read once, cached by browsers for good under a versioned path.

Every file of ``static/`` is read when the app is made, and the whole folder
gets one version, a hash of its names and contents. The page refers to its
files as ``static/{version}/...``: those answers may be kept a year
(``immutable``), because a new release has a new version and so new URLs; a
relative ``import`` inside a module stays under the same version. The page
lists the modules its script imports statically, directly or not, with
``<link rel=modulepreload>``, so the browser fetches them all at once instead
of discovering them import by import. Modules only reachable through a dynamic
``import()`` (the message pane, loaded after the first rows are painted) are not
listed: fetched and compiled before those rows, they would only delay them.

``static/{path}`` without a version (or with an old one) is still answered,
with ``no-cache`` and an ETag. Text files also go out gzip-compressed to
clients that accept it, compressed once here rather than per request.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, abort, current_app, request

STATIC = Path(__file__).parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
MIN_COMPRESSED = 1024  # bytes: below this, gzip's framing costs more than it saves
_VERSION = re.compile(r"[0-9a-f]{12}")
_STATIC_REFERENCE = re.compile(r'(\b(?:href|src)=")static/')
# `import ... from "./x.js"`, `export ... from "./x.js"`; a dynamic import("./x.js") has no `from`.
_STATIC_IMPORT = re.compile(r'\bfrom\s*"\./([\w.-]+\.js)"')
PAGE_SCRIPT = "js/app.js"
_EXTENSION = "mailtrap_assets"
DATA_PRELOAD = "\n    <!--data-preload-->"  # where the page's own request for its first list goes


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None  # None when compressing does not pay
    mimetype: str
    etag: str


def make_asset(body: bytes, mimetype: str) -> Asset:
    compressible = mimetype.startswith("text/") or mimetype in (
        "application/javascript",
        "image/svg+xml",
        "application/json",
    )
    packed = None
    if compressible and len(body) >= MIN_COMPRESSED:
        packed = gzip.compress(body, 9, mtime=0)
        if len(packed) >= len(body):
            packed = None
    return Asset(body, packed, mimetype, hashlib.sha256(body).hexdigest()[:20])


class Assets:
    """The files of a static folder, their common version, and the page that uses them."""

    def __init__(self, folder: Path = STATIC):
        self.files: dict[str, Asset] = {}
        digest = hashlib.sha256()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            name = path.relative_to(folder).as_posix()
            if name == "index.html":
                continue
            body = path.read_bytes()
            mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if name.endswith(".js"):
                mimetype = "text/javascript"  # some systems' tables say application/x-...
            self.files[name] = make_asset(body, mimetype)
            digest.update(name.encode() + b"\0" + body + b"\0")
        self.version = digest.hexdigest()[:12]
        self.index = make_asset(self._page((folder / "index.html").read_text()), "text/html")

    def _page(self, html: str) -> bytes:
        """index.html with versioned references and a preload of the modules its script imports."""
        html = _STATIC_REFERENCE.sub(rf"\g<1>static/{self.version}/", html)
        preloads = "".join(
            f'\n    <link rel="modulepreload" href="static/{self.version}/{name}" />'
            for name in self.static_imports(PAGE_SCRIPT)
        )
        # The page's data first: browsers open six connections to a host, and
        # what is listed first is asked for first.
        html = html.replace(
            '\n    <link rel="stylesheet"', f'{DATA_PRELOAD}\n    <link rel="stylesheet"', 1
        )
        return html.replace("\n  </head>", f"{preloads}\n  </head>", 1).encode()

    def static_imports(self, script: str) -> list[str]:
        """The modules ``script`` imports statically, directly or through others, in the
        order they are found (``script`` itself not included)."""
        found: list[str] = []
        waiting = [script]
        while waiting:
            importer = waiting.pop(0)
            folder = importer.rpartition("/")[0]
            for name in _STATIC_IMPORT.findall(self.files[importer].body.decode()):
                path = f"{folder}/{name}" if folder else name
                if path != script and path not in found and path in self.files:
                    found.append(path)
                    waiting.append(path)
        return found


def register(app: Flask) -> None:
    app.extensions[_EXTENSION] = Assets()
    app.add_url_rule("/static/<path:filename>", "static", serve_static, methods=["GET"])


def assets() -> Assets:
    return current_app.extensions[_EXTENSION]


def serve_static(filename: str) -> Response:
    found = assets()
    version, _, rest = filename.partition("/")
    cache = REVALIDATE
    if _VERSION.fullmatch(version) and rest:
        # An old version (a page from before an upgrade) gets today's file, revalidated.
        cache = IMMUTABLE if version == found.version else REVALIDATE
        filename = rest
    asset = found.files.get(filename)
    if asset is None:
        abort(404, f"no static file {filename!r}")
    return send(asset, cache)


def send(asset: Asset, cache: str) -> Response:
    """``asset`` as the answer: 304 if the client has it, gzip if it accepts that."""
    headers = {
        "Cache-Control": cache,
        "ETag": f'"{asset.etag}"',
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if asset.etag in request.if_none_match:
        return Response(status=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.accept_encodings:
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    # Werkzeug adds "; charset=utf-8" to text types itself.
    return Response(body, mimetype=asset.mimetype, headers=headers)
