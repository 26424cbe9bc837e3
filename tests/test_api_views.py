"""``/view/{ID}.html`` and ``.txt``: the bodies alone, the HTML under a strict CSP."""

from __future__ import annotations

import base64

import pytest
from api_client import Api, plain, send

from mailtrap import Server
from mailtrap.web.views import content_security_policy

HTML_MAIL = (
    b"From: a@example.com\r\nSubject: Rich\r\nContent-Type: multipart/related; boundary=r\r\n\r\n"
    b"--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b'<p>Hi</p><img src="cid:logo@x"><img src=\'CID:logo@x\'><img src="cid:logo@xy">'
    b'<script>window.ran = 1</script><img src="https://tracker.example/pixel.gif">\r\n'
    b"--r\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64"
    b"\r\n\r\n" + base64.b64encode(b"PNG") + b"\r\n--r--\r\n"
)


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    return emptied_module_server


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for directive in policy.split(";"):
        name, *values = directive.split()
        parsed[name] = values
    return parsed


def test_the_html_view_rewrites_cid_links_to_the_parts(server: Server, api: Api):
    message_id = send(server, HTML_MAIL)
    reply = api.get(f"/view/{message_id}.html")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    part_url = f"../api/v1/message/{message_id}/part/2"
    html = reply.text
    assert html.count(f'src="{part_url}"') == 1 and html.count(f"src='{part_url}'") == 1
    assert 'src="cid:logo@xy"' in html  # another Content-ID: left alone
    # The link works from where the view is.
    assert api.get(f"/api/v1/message/{message_id}/part/2").body == b"PNG"


def test_the_html_view_runs_no_script_and_loads_no_remote_image(server: Server, api: Api):
    reply = api.get(f"/view/{send(server, HTML_MAIL)}.html")
    policy = directives(reply.headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["form-action"] == ["'none'"]
    assert policy["style-src"] == ["'unsafe-inline'"]
    assert set(policy["img-src"]) == {"'self'", "data:", "cid:"}
    assert reply.headers["Referrer-Policy"] == "no-referrer"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_remote_images_only_when_asked(server: Server, api: Api):
    reply = api.get(f"/view/{send(server, HTML_MAIL)}.html", remote="1")
    policy = directives(reply.headers["Content-Security-Policy"])
    assert set(policy["img-src"]) == {"'self'", "data:", "cid:", "https:", "http:"}
    assert policy["script-src"] == ["'none'"]


def test_the_policy_never_allows_script():
    for remote in (False, True):
        policy = directives(content_security_policy(remote_images=remote))
        assert policy["script-src"] == ["'none'"] and policy["default-src"] == ["'none'"]


def test_the_text_view(server: Server, api: Api):
    reply = api.get(f"/view/{send(server, plain('T', body='Just text'))}.txt")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert reply.text.strip() == "Just text"


def test_latest_and_a_message_without_html(server: Server, api: Api):
    send(server, HTML_MAIL)
    assert api.get("/view/latest.html").status == 200
    send(server, plain("Plain only", body="words"))
    reply = api.get("/view/latest.html")
    assert reply.status == 404
    assert "no HTML part" in reply.error
    assert api.get("/view/latest.txt").text.strip() == "words"
