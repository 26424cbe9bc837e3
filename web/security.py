"""What keeps other web pages out of the inbox: Host check, cross-site refusal,
basic auth, CORS and security headers.

A developer's inbox on 127.0.0.1 is reachable from every page their browser
opens, so every request passes, in this order:

1. the Host check (DNS rebinding: a hostile name resolving to 127.0.0.1);
2. CORS preflights from the origins ``--api-cors`` allows, answered before
   auth because browsers send preflights without credentials;
3. the cross-site check on what a foreign page could forge (state-changing
   methods and websocket handshakes), before auth so that a foreign page
   never triggers a login prompt;
4. basic auth, when ``--ui-auth-file`` is set.

The rules are plain functions of header values; ``register`` wires them in.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, jsonify, request

from mailtrap.auth import Credentials, LoginGate, Outcome
from mailtrap.config import Config

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The body types an HTML form or a no-preflight fetch can send: never JSON API input.
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
OPEN_PATHS = frozenset({"/livez", "/readyz"})  # health checks need no credentials
CORS_METHODS = "GET, POST, PUT, PATCH, DELETE"
CORS_MAX_AGE = "600"
# For HTML pages that set no policy of their own (the UI sets its own; /view/ pages
# show mail and set theirs).
DEFAULT_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


# -- the rules, as plain functions ------------------------------------------


def split_host(host: str) -> tuple[str, str]:
    """``("example.com", "8025")`` from a Host value; IPv6 brackets removed, name lowercased."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, rest.removeprefix(":")
    name, _, port = host.partition(":")
    return name, port


def is_loopback_name(name: str) -> bool:
    """localhost, *.localhost (RFC 6761 keeps them on this machine) or a loopback IP."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_allowed(host: str | None, allowed_hosts: tuple[str, ...]) -> bool:
    """Whether a server on loopback answers this Host header.

    ``allowed_hosts`` entries are names (``mail.example.com``) or, with a
    leading dot, a domain and all its subdomains (``.example.com``). No Host
    at all is allowed: browsers always send one, so it cannot be a rebinding.
    """
    if not host:
        return True
    name, _ = split_host(host)
    if is_loopback_name(name):
        return True
    for entry in allowed_hosts:
        entry = entry.lower()
        if name == entry or (entry.startswith(".") and (name.endswith(entry) or name == entry[1:])):
            return True
    return False


def is_same_origin(origin: str, host: str | None) -> bool:
    """Whether an Origin (``scheme://host[:port]``) names the Host the request was sent to.

    Only host and port are compared: behind a TLS-terminating proxy the
    scheme the browser used is not the one this server sees.
    """
    if not host:
        return False
    try:
        parts = urlsplit(origin.strip().lower())
    except ValueError:  # "http://[" and the like: not an origin at all
        return False
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc:
        return False  # "null" (sandboxed frames, file:) and anything odd
    default = _DEFAULT_PORTS[parts.scheme]
    origin_name, origin_port = split_host(parts.netloc)
    host_name, host_port = split_host(host)
    return (origin_name, origin_port or default) == (host_name, host_port or default)


def normalize_origin(origin: str) -> str:
    return origin.strip().lower().rstrip("/")


@dataclass(frozen=True)
class CorsPolicy:
    """The origins ``--api-cors`` names; ``*`` allows any (then without credentials)."""

    origins: frozenset[str]

    @classmethod
    def from_list(cls, origins: tuple[str, ...]) -> CorsPolicy:
        return cls(frozenset(normalize_origin(origin) for origin in origins))

    @property
    def any_origin(self) -> bool:
        return "*" in self.origins

    def allows(self, origin: str | None) -> bool:
        return origin is not None and (self.any_origin or normalize_origin(origin) in self.origins)

    def headers(self, origin: str) -> dict[str, str]:
        """The headers that let a page of ``origin`` read the response."""
        if self.any_origin:
            # A wildcard must not extend the user's credentials to every site.
            return {"Access-Control-Allow-Origin": "*"}
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true"}


def cross_site_refusal(
    *,
    method: str,
    path: str,
    headers: Any,
    websocket: bool,
    cors: CorsPolicy,
) -> tuple[int, str] | None:
    """Why a request that a foreign page could have made is refused, or None.

    ``headers`` is a mapping of request headers (case-insensitive ``get``).
    Clients that send neither ``Origin`` nor ``Sec-Fetch-Site`` (curl, Node,
    Python) are not browsers acting for someone else, and pass.
    """
    if method not in UNSAFE_METHODS and not websocket:
        return None  # reads cannot be read back cross-site without CORS
    if method == "POST" and path.startswith("/api/") and _mimetype(headers) in FORM_TYPES:
        # What an HTML form (or a fetch without preflight) sends: the API takes JSON.
        # PUT and DELETE cannot come from a form, and a page's fetch of them is
        # preflighted, so their bodies are read whatever their type (as Mailpit
        # reads them; mailpit-api-client sends form fields).
        return 415, "the API takes JSON: send Content-Type: application/json"
    reason = foreign_page(headers, cors)
    return (403, reason) if reason else None


def foreign_page(headers: Any, cors: CorsPolicy) -> str | None:
    """Why the request came from a page of another origin, or None if it did not.

    A page ``--api-cors`` allows is not foreign. ``Sec-Fetch-Site`` is what the
    browser says; ``Origin`` covers browsers without it. ``same-site`` (another
    port of the same host: any local app) counts as foreign, as a different
    port's ``Origin`` does.
    """
    origin = headers.get("Origin")
    if origin is not None and cors.allows(origin):
        return None
    if headers.get("Sec-Fetch-Site", "").lower() in ("cross-site", "same-site"):
        return "cross-site request refused"
    if origin is not None and not is_same_origin(origin, headers.get("Host")):
        return f"cross-origin request from {origin[:200]} refused (see --api-cors)"
    return None


def from_foreign_page() -> bool:
    """Whether the current request came from a foreign page (see :func:`foreign_page`).

    For the reads with a side effect (Mailpit's GET of a message marks it read):
    a page elsewhere may still load them, as an ``<img>`` can, but changes nothing.
    """
    cors: CorsPolicy = current_app.extensions["mailtrap_cors"]
    return foreign_page(request.headers, cors) is not None


def _mimetype(headers: Any) -> str:
    return headers.get("Content-Type", "").partition(";")[0].strip().lower()


def security_headers(response: Response, path: str) -> None:
    """Headers every response carries; a CSP for HTML pages that set none."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    # SAMEORIGIN, not DENY: the inbox shows /view/ pages in its own iframe.
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    is_mail_view = path.startswith("/view/") and path.endswith(".html")
    if response.mimetype == "text/html" and not is_mail_view:
        response.headers.setdefault("Content-Security-Policy", DEFAULT_CSP)


# -- wiring -------------------------------------------------------------------


def _error(status: int, message: str, **headers: str) -> Response:
    response = jsonify({"Error": message})
    response.status_code = status
    response.headers.update(headers)
    return response


def _is_loopback_bind(config: Config) -> bool:
    return config.http is not None and is_loopback_name(config.http.host.lower())


def register(app: Flask) -> None:
    """Add the checks before every request and the headers after every response."""
    config: Config = app.config["MAILTRAP_SERVER"].config
    check_host = _is_loopback_bind(config)
    cors = CorsPolicy.from_list(config.api_cors)
    app.extensions["mailtrap_cors"] = cors
    credentials = Credentials(config.ui_auth_file) if config.ui_auth_file else None

    def foreign_host() -> Response | None:
        host = request.headers.get("Host")
        if check_host and not host_allowed(host, config.allowed_hosts):
            name, _ = split_host(host or "")
            return _error(403, f"host {name!r} is not allowed: add it to --allowed-hosts")
        return None

    def cors_preflight() -> Response | None:
        origin = request.headers.get("Origin")
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        if origin is None or not cors.allows(origin):
            return _error(403, "origin not allowed (see --api-cors)")
        response = Response(status=204)
        response.headers.update(cors.headers(origin))
        response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
        response.headers["Access-Control-Allow-Headers"] = request.headers.get(
            "Access-Control-Request-Headers", "Authorization, Content-Type"
        )
        response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE
        return response

    def cross_site() -> Response | None:
        refusal = cross_site_refusal(
            method=request.method,
            path=request.path,
            headers=request.headers,
            websocket=request.headers.get("Upgrade", "").lower() == "websocket",
            cors=cors,
        )
        return _error(*refusal) if refusal else None

    def login() -> Response | None:
        if credentials is None or request.path in OPEN_PATHS:
            return None
        # The server's one throttle: failures here count with SMTP's and POP3's.
        gate: LoginGate = app.config["MAILTRAP_SERVER"].login_gate
        host = request.remote_addr or ""
        auth = request.authorization
        outcome = Outcome.REFUSED
        if gate.throttle.retry_after(host):
            outcome = Outcome.LOCKED_OUT
        elif auth and auth.type == "basic":
            user, password = auth.username or "", auth.password or ""
            outcome = gate.check_in_thread(credentials, host, user, password)
        if outcome is Outcome.ACCEPTED:
            return None
        if outcome is Outcome.LOCKED_OUT:
            retry_after = math.ceil(gate.throttle.retry_after(host))
            return _error(
                429,
                f"too many failed logins from your address: try again in {retry_after} s",
                **{"Retry-After": str(retry_after)},
            )
        return _error(
            401, "authentication required", **{"WWW-Authenticate": 'Basic realm="Mailtrap"'}
        )

    checks: tuple[Callable[[], Response | None], ...] = (
        foreign_host,
        cors_preflight,
        cross_site,
        login,
    )

    @app.before_request
    def guard() -> Response | None:
        for check in checks:
            refusal = check()
            if refusal is not None:
                return refusal
        return None

    @app.after_request
    def add_headers(response: Response) -> Response:
        security_headers(response, request.path)
        if cors.origins:
            response.vary.add("Origin")  # the answer depends on it
            origin = request.headers.get("Origin")
            if cors.allows(origin):
                assert origin is not None
                for name, value in cors.headers(origin).items():
                    response.headers.setdefault(name, value)
        return response
