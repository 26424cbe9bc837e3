"""The web service against other web pages: Host check, forged requests, basic auth,
CORS, webroot and security headers, all over real HTTP."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Response
from htpasswd import write_htpasswd
from web_clients import HANDSHAKE, events, next_frame, origin_of, request

from mailtrap import Server
from mailtrap.config import Address
from mailtrap.store import IncomingMessage
from mailtrap.web.security import (
    DEFAULT_CSP,
    host_allowed,
    is_loopback_name,
    is_same_origin,
    security_headers,
)

EPHEMERAL = Address("127.0.0.1", 0)


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    return emptied_module_server


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Servers with special settings, shared by this module's tests that only read."""
    started: list[Server] = []

    def start(**settings: Any) -> Server:
        folder = tmp_path_factory.mktemp("server")
        server = Server(
            db=folder / "mail.db", smtp=EPHEMERAL, http=EPHEMERAL, pop3=None, **settings
        )
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


def add_message(server: Server) -> str:
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Hi\r\n\r\nHi\r\n"
    message = IncomingMessage(raw=raw, mail_from="a@example.com", rcpt_tos=["b@example.com"])
    return server.store.add(message).result(10)


def host_of(server: Server) -> str:
    return f"127.0.0.1:{server.http_address.port}"


# -- DNS rebinding: the Host check ---------------------------------------------


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8025", "127.0.0.1.evil.example", "localhost.evil"]
)
def test_a_foreign_host_is_refused_on_loopback(server: Server, host: str) -> None:
    reply = request(server, "GET", "/livez", headers={"Host": host})
    assert reply.status == 403
    assert "--allowed-hosts" in reply.json()["Error"]


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST:8025", "127.0.0.1", "127.0.0.2:80", "[::1]:8025", "app.localhost"],
)
def test_loopback_names_are_answered(server: Server, host: str) -> None:
    assert request(server, "GET", "/livez", headers={"Host": host}).status == 200


def test_allowed_hosts_let_a_proxy_name_through(make_server: Callable[..., Server]) -> None:
    server = make_server(allowed_hosts=("mail.example.com", ".dev.example"))
    for host in ("mail.example.com", "Mail.Example.com:443", "dev.example", "a.b.dev.example"):
        assert request(server, "GET", "/livez", headers={"Host": host}).status == 200, host
    for host in ("example.com", "evil.example", "xdev.example"):
        assert request(server, "GET", "/livez", headers={"Host": host}).status == 403, host


def test_the_websocket_checks_the_host_too(server: Server) -> None:
    reply = request(server, "GET", "/api/events", headers={**HANDSHAKE, "Host": "evil.example"})
    assert reply.status == 403


def test_host_rules() -> None:
    assert is_loopback_name("::1") and is_loopback_name("127.8.9.10")
    assert not is_loopback_name("0.0.0.0") and not is_loopback_name("10.0.0.1")
    assert host_allowed(None, ())  # no Host: not a browser, so not a rebinding
    assert not host_allowed("[::2]:80", ())


# -- forged requests -------------------------------------------------------------


def delete_one(server: Server, message_id: str, **headers: str) -> int:
    reply = request(
        server, "DELETE", "/api/v1/messages", headers=headers, json_body={"IDs": [message_id]}
    )
    return reply.status


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost:1"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
    ],
)
def test_a_cross_site_request_is_refused(server: Server, headers: dict[str, str]) -> None:
    message_id = add_message(server)
    assert delete_one(server, message_id, **headers) == 403
    assert server.store.ids() == [message_id]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain;charset=UTF-8",
    ],
)
def test_a_form_body_is_refused_by_the_api(server: Server, content_type: str) -> None:
    # What an HTML form can send with no Origin-aware browser in the way: a POST.
    # (A PUT or DELETE cannot come from a form, and a page's fetch of one is
    # preflighted; those bodies are read whatever their type, as Mailpit reads them.)
    reply = request(
        server,
        "POST",
        "/api/v1/send",
        headers={"Content-Type": content_type},
        body=b'{"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}]}',
    )
    assert reply.status == 415
    assert "application/json" in reply.json()["Error"]
    assert server.store.ids() == []


def test_a_same_origin_request_works(server: Server) -> None:
    message_id = add_message(server)
    headers = {"Origin": origin_of(server), "Sec-Fetch-Site": "same-origin"}
    assert delete_one(server, message_id, **headers) == 200
    assert server.store.ids() == []


def test_a_request_without_origin_works(server: Server) -> None:
    # curl, the npm client in Node, Python scripts: no browser, nothing forged.
    message_id = add_message(server)
    assert delete_one(server, message_id) == 200
    assert server.store.ids() == []


def test_reads_are_not_checked_for_origin(server: Server) -> None:
    headers = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    reply = request(server, "GET", "/livez", headers=headers)
    assert reply.status == 200
    assert "Access-Control-Allow-Origin" not in reply.headers  # so the page cannot read it


def test_origin_rules() -> None:
    assert is_same_origin("http://localhost:8025", "localhost:8025")
    assert is_same_origin("https://mail.example.com", "mail.example.com")
    assert is_same_origin("https://mail.example.com", "mail.example.com:443")
    assert is_same_origin("http://[::1]:8025", "[::1]:8025")
    assert not is_same_origin("http://localhost:8026", "localhost:8025")
    assert not is_same_origin("http://localhost", "localhost:8025")
    assert not is_same_origin("null", "localhost:8025")
    assert not is_same_origin("http://localhost:8025", None)


# -- basic auth --------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server(
    module_servers: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory
) -> Server:
    path = tmp_path_factory.mktemp("auth") / "htpasswd"
    return module_servers(ui_auth_file=write_htpasswd(path, {"admin": ("apr1", "s3cret")}))


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.mark.parametrize("path", ["/", "/api/v1/messages", "/api/v1/webui"])
def test_auth_is_required(auth_server: Server, path: str) -> None:
    reply = request(auth_server, "GET", path)
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"].startswith("Basic ")
    assert reply.json() == {"Error": "authentication required"}
    assert request(auth_server, "GET", path, headers=basic("admin", "wrong")).status == 401
    assert request(auth_server, "GET", path, headers=basic("nobody", "s3cret")).status == 401


def test_the_right_credentials_are_let_in(auth_server: Server) -> None:
    reply = request(auth_server, "GET", "/api/v1/messages", headers=basic("admin", "s3cret"))
    assert reply.status == 200


@pytest.mark.parametrize("path", ["/livez", "/readyz"])
def test_health_checks_need_no_auth(auth_server: Server, path: str) -> None:
    assert request(auth_server, "GET", path).status == 200


def test_the_websocket_needs_auth(auth_server: Server) -> None:
    refused = request(auth_server, "GET", "/api/events", headers=HANDSHAKE)
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic ")
    with events(auth_server, headers=basic("admin", "s3cret")) as client:
        assert next_frame(client)["Type"] == "stats"


# -- CORS ----------------------------------------------------------------------------


PREFLIGHT = {
    "Origin": "http://app.example:3000",
    "Access-Control-Request-Method": "DELETE",
    "Access-Control-Request-Headers": "content-type",
}


def test_no_cors_by_default(server: Server) -> None:
    reply = request(server, "GET", "/livez", headers={"Origin": "http://app.example:3000"})
    assert not [name for name in reply.headers if name.lower().startswith("access-control-")]
    preflight = request(server, "OPTIONS", "/api/v1/messages", headers=PREFLIGHT)
    assert preflight.status == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_for_the_configured_origins(make_server: Callable[..., Server]) -> None:
    server = make_server(api_cors=("http://app.example:3000",))
    preflight = request(server, "OPTIONS", "/api/v1/messages", headers=PREFLIGHT)
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://app.example:3000"
    assert "DELETE" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "content-type"

    allowed = request(server, "GET", "/livez", headers={"Origin": "http://app.example:3000"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://app.example:3000"
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in allowed.headers["Vary"]

    other = request(server, "GET", "/livez", headers={"Origin": "http://other.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert (
        request(
            server,
            "OPTIONS",
            "/api/v1/messages",
            headers={**PREFLIGHT, "Origin": "http://other.example"},
        ).status
        == 403
    )

    # The allowed origin may also change things, in JSON as everyone else.
    message_id = add_message(server)
    form = {"Origin": "http://app.example:3000", "Content-Type": "text/plain"}
    assert request(server, "POST", "/api/v1/send", headers=form, body=b"{}").status == 415
    assert delete_one(server, message_id, Origin="http://app.example:3000") == 200
    assert server.store.ids() == []


def test_a_cors_wildcard_does_not_extend_credentials(make_server: Callable[..., Server]) -> None:
    server = make_server(api_cors=("*",))
    reply = request(server, "GET", "/livez", headers={"Origin": "http://anything.example"})
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in reply.headers


# -- webroot ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mail_server(module_servers: Callable[..., Server]) -> Server:
    return module_servers(webroot="/mail/")


def test_the_api_is_served_under_the_webroot(mail_server: Server) -> None:
    assert mail_server.http_url.endswith("/mail/")
    assert request(mail_server, "GET", "/mail/livez").status == 200
    reply = request(mail_server, "GET", "/mail/api/v1/messages")
    assert reply.status == 200
    assert reply.json()["total"] == 0


@pytest.mark.parametrize("path", ["/livez", "/api/v1/messages", "/", "/mailbox/livez"])
def test_paths_outside_the_webroot_are_not_found(mail_server: Server, path: str) -> None:
    reply = request(mail_server, "GET", path)
    assert reply.status == 404
    assert "/mail/" in reply.json()["Error"]
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_the_bare_webroot_redirects_to_its_slash(mail_server: Server) -> None:
    reply = request(mail_server, "GET", "/mail?q=1")
    assert reply.status == 302
    assert reply.headers["Location"] == "/mail/?q=1"


def test_the_websocket_is_under_the_webroot(mail_server: Server) -> None:
    with events(mail_server) as client:
        assert next_frame(client)["Type"] == "stats"


def test_the_checks_apply_under_the_webroot(mail_server: Server) -> None:
    headers = {"Host": "evil.example"}
    assert request(mail_server, "GET", "/mail/livez", headers=headers).status == 403
    forged = {**HANDSHAKE, "Origin": "http://evil.example"}
    assert request(mail_server, "GET", "/mail/api/events", headers=forged).status == 403


# -- headers on every response -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/livez", "/api/v1/nothing-here", "/"])
def test_security_headers_on_every_response(server: Server, path: str) -> None:
    reply = request(server, "GET", path)
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Referrer-Policy"] == "no-referrer"
    assert reply.headers["X-Frame-Options"] in {"SAMEORIGIN", "DENY"}


def test_refusals_carry_the_headers_too(server: Server) -> None:
    reply = request(server, "GET", "/livez", headers={"Host": "evil.example"})
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_html_gets_a_default_csp_unless_it_has_its_own() -> None:
    page = Response("<p>hi</p>", mimetype="text/html")
    security_headers(page, "/some/page")
    assert page.headers["Content-Security-Policy"] == DEFAULT_CSP
    assert page.headers["X-Frame-Options"] == "SAMEORIGIN"

    own = Response("<p>hi</p>", mimetype="text/html")
    own.headers["Content-Security-Policy"] = "default-src 'none'"
    own.headers["X-Frame-Options"] = "DENY"
    security_headers(own, "/")
    assert own.headers["Content-Security-Policy"] == "default-src 'none'"
    assert own.headers["X-Frame-Options"] == "DENY"

    mail = Response("<p>mail</p>", mimetype="text/html")
    security_headers(mail, "/view/abc.html")
    assert "Content-Security-Policy" not in mail.headers  # the view sets its own

    data = Response("{}", mimetype="application/json")
    security_headers(data, "/api/v1/info")
    assert "Content-Security-Policy" not in data.headers
    assert data.headers["X-Content-Type-Options"] == "nosniff"
