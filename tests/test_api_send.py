"""``POST /api/v1/send``: composing a message from Mailpit's JSON, over HTTP and on its own."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from api_client import Api

from mailtrap import Server
from mailtrap.compose import ComposeError, compose
from mailtrap.message import bodies, headers_map


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    return emptied_module_server


FULL_REQUEST: dict[str, Any] = {
    "From": {"Email": "john@example.com", "Name": "John Doe"},
    "To": [{"Email": "jane@example.com", "Name": "Jane Doe"}, {"Email": "max@example.com"}],
    "Cc": [{"Email": "manager@example.com", "Name": "Manager"}],
    "Bcc": ["jack@example.com"],
    "ReplyTo": [{"Email": "secretary@example.com", "Name": "Secretary"}],
    "Subject": "Mailtrap message via the HTTP API",
    "Text": "Mailtrap is awesome!",
    "HTML": '<p>Mailtrap is <b>awesome</b>!</p><p><img src="cid:logo"></p>',
    "Tags": ["Tag 1", "Tag 2"],
    "Headers": {"X-IP": "1.2.3.4"},
    "Attachments": [
        {
            "Content": base64.b64encode(b"GIF89a").decode(),
            "Filename": "logo.gif",
            "ContentID": "logo",
        },
        {"Content": base64.b64encode(b"a,b\n").decode(), "Filename": "data.csv"},
    ],
}


def test_a_sent_message_is_stored_with_everything_it_asked_for(server: Server, api: Api):
    message_id = api.ok("POST", "/api/v1/send", FULL_REQUEST)["ID"]
    message = api.message(message_id)
    assert message["From"] == {"Name": "John Doe", "Address": "john@example.com"}
    assert message["To"] == [
        {"Name": "Jane Doe", "Address": "jane@example.com"},
        {"Name": "", "Address": "max@example.com"},
    ]
    assert message["Cc"] == [{"Name": "Manager", "Address": "manager@example.com"}]
    assert message["Bcc"] == [{"Name": "", "Address": "jack@example.com"}]
    assert message["ReplyTo"] == [{"Name": "Secretary", "Address": "secretary@example.com"}]
    assert message["Subject"] == "Mailtrap message via the HTTP API"
    assert message["Text"].strip() == "Mailtrap is awesome!"
    assert "<b>awesome</b>" in message["HTML"]
    assert message["Tags"] == ["Tag 1", "Tag 2"]
    assert [(p["FileName"], p["ContentID"]) for p in message["Inline"]] == [("logo.gif", "logo")]
    assert [(p["FileName"], p["ContentType"]) for p in message["Attachments"]] == [
        ("data.csv", "text/csv")
    ]
    headers = api.ok("GET", f"/api/v1/message/{message_id}/headers")
    assert headers["X-Ip"] == ["1.2.3.4"] and "Bcc" not in headers
    row = server.store.get(message_id)
    assert row["mail_from"] == "john@example.com"
    assert sorted(__import__("json").loads(row["rcpt_tos"])) == [
        "jack@example.com", "jane@example.com", "manager@example.com", "max@example.com",
    ]  # fmt: skip
    assert row["helo"] == "HTTP API"


def test_the_smallest_request_is_a_sender(api: Api):
    message = api.message(
        api.ok("POST", "/api/v1/send", {"From": {"Email": "a@example.com"}})["ID"]
    )
    assert (message["Subject"], message["To"], message["Text"].strip()) == ("", [], "")


@pytest.mark.parametrize(
    ("request_body", "error"),
    [
        ({}, "From must be a JSON object"),
        ({"From": {"Name": "x"}}, "From needs an Email"),
        ({"From": {"Email": "not an address"}}, "invalid From address"),
        ({"From": {"Email": "a@example.com"}, "To": [{"Email": "b@@x"}]}, "invalid To address"),
        ({"From": {"Email": "a@example.com"}, "To": "b@example.com"}, "To must be an array"),
        (
            {"From": {"Email": "a@example.com"}, "Bcc": [{"Email": "b@x.com"}]},
            "Bcc must be a string",
        ),
        ({"From": {"Email": "a@example.com"}, "Subject": 5}, "Subject must be a string"),
        ({"From": {"Email": "a@example.com"}, "Subject": "a\r\nBcc: x@y.z"}, "invalid Subject"),
        ({"From": {"Email": "a@example.com"}, "Headers": {"Subject": "x"}}, "cannot overwrite"),
        ({"From": {"Email": "a@example.com"}, "Headers": {"Bad Name": "x"}}, "invalid header name"),
        ({"From": {"Email": "a@example.com"}, "Headers": {"X-A": "1\nX-B: 2"}}, "invalid X-A"),
        (
            {"From": {"Email": "a@example.com"}, "Tags": ["t"], "Headers": {"X-Tags": "u"}},
            "cannot overwrite header 'X-Tags'",
        ),
        (
            {
                "From": {"Email": "a@example.com"},
                "Attachments": [{"Filename": "x", "Content": "%%"}],
            },
            "is not valid base64",
        ),
        (
            {"From": {"Email": "a@example.com"}, "Attachments": [{"Content": "eA=="}]},
            "needs a Filename",
        ),
        (
            {
                "From": {"Email": "a@example.com"},
                "Attachments": [{"Filename": "x", "Content": "eA==", "ContentType": "bad\r\ntype"}],
            },
            "invalid ContentType",
        ),
    ],
)
def test_invalid_requests_are_400_and_store_nothing(
    server: Server, api: Api, request_body: dict[str, Any], error: str
):
    reply = api.request("POST", "/api/v1/send", request_body)
    assert reply.status == 400
    assert error in reply.error
    assert server.store.count() == 0


def test_a_message_over_the_size_limit_is_413(make_server: Callable[..., Server]):
    server = make_server(max_message_size=10_000)
    body = {"From": {"Email": "a@example.com"}, "Text": "x" * 20_000}
    reply = Api(server).request("POST", "/api/v1/send", body)
    assert reply.status == 413
    assert "larger than" in reply.error
    assert server.store.count() == 0


def test_compose_builds_related_html_with_inline_images():
    composed = compose(FULL_REQUEST)
    found = bodies(composed.raw)
    assert [part.content_id for part in found.inline] == ["logo"]
    assert [part.filename for part in found.attachments] == ["data.csv"]
    assert headers_map(composed.raw)["X-Tags"] == ["Tag 1, Tag 2"]


def test_compose_accepts_a_data_url_as_content():
    request = {
        "From": {"Email": "a@example.com"},
        "Attachments": [{"Filename": "p.png", "Content": "data:image/png;base64,UE5H"}],
    }
    (attachment,) = bodies(compose(request).raw).attachments
    assert (attachment.content, attachment.content_type) == (b"PNG", "image/png")


def test_a_message_id_header_replaces_the_generated_one():
    request = {"From": {"Email": "a@example.com"}, "Headers": {"Message-ID": "<mine@example.com>"}}
    assert headers_map(compose(request).raw)["Message-Id"] == ["<mine@example.com>"]


def test_compose_errors_are_value_errors():
    with pytest.raises(ComposeError):
        compose([])
