"""Field-name compatibility with Mailpit's API: the same keys, of the same JSON types.

The expected key sets are Mailpit's (see ``api_client``); a client written for
Mailpit reads exactly these.
"""

from __future__ import annotations

import base64
import re

import pytest
from api_client import (
    ADDRESS_KEYS,
    ATTACHMENT_KEYS,
    INFO_KEYS,
    LIST_UNSUBSCRIBE_KEYS,
    MESSAGE_KEYS,
    MESSAGES_SUMMARY_KEYS,
    RUNTIME_STATS_KEYS,
    SUMMARY_KEYS,
    Api,
    send,
)

from mailtrap import Server

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")

FULL = (
    b"From: Ann <ann@example.com>\r\nTo: Bo <bo@example.com>\r\nCc: cy@example.com\r\n"
    b"Reply-To: help@example.com\r\nSubject: Compat\r\nMessage-ID: <compat@example.com>\r\n"
    b"Date: Mon, 01 Apr 2024 10:00:00 +0200\r\nX-Tags: one\r\n"
    b"List-Unsubscribe: <mailto:unsub@example.com>, <https://example.com/unsub>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/html\r\n\r\n<p>Hi <img src=cid:pic></p>\r\n"
    b"--b\r\nContent-Type: image/gif\r\nContent-ID: <pic>\r\nContent-Transfer-Encoding: base64\r\n"
    b"\r\n" + base64.b64encode(b"GIF89a") + b"\r\n"
    b'--b\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename="a.csv"\r\n\r\n'
    b"x,y\r\n--b--\r\n"
)


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    return emptied_module_server


def assert_address(value: object) -> None:
    assert isinstance(value, dict) and set(value) == ADDRESS_KEYS, value
    assert all(isinstance(part, str) for part in value.values())


def assert_summary(summary: dict[str, object]) -> None:
    assert set(summary) == SUMMARY_KEYS
    for key in ("ID", "MessageID", "Subject", "Username", "Snippet", "Created"):
        assert isinstance(summary[key], str), key
    assert RFC3339.fullmatch(str(summary["Created"]))
    assert isinstance(summary["Read"], bool)
    assert isinstance(summary["Size"], int) and isinstance(summary["Attachments"], int)
    assert_address(summary["From"])
    for key in ("To", "Cc", "Bcc", "ReplyTo"):
        assert isinstance(summary[key], list), key
        for address in summary[key]:  # type: ignore[attr-defined]
            assert_address(address)
    assert isinstance(summary["Tags"], list)


def test_messages_summary_keys(server: Server, api: Api):
    send(server, FULL)
    for listing in (api.messages(), api.search("compat")):
        assert set(listing) == MESSAGES_SUMMARY_KEYS
        for key in MESSAGES_SUMMARY_KEYS - {"tags", "messages"}:
            assert isinstance(listing[key], int), key
        assert listing["tags"] == ["one"]
        (summary,) = listing["messages"]
        assert_summary(summary)


def test_an_empty_mailbox_has_the_same_shape(api: Api):
    listing = api.messages()
    assert set(listing) == MESSAGES_SUMMARY_KEYS
    assert (listing["messages"], listing["tags"], listing["total"]) == ([], [], 0)


def test_message_keys(server: Server, api: Api):
    message = api.message(send(server, FULL))
    # Relay is Mailtrap's own key (the message's relay deliveries); Read is for
    # mailpit-api-client (Mailpit dropped it). Clients ignore what they do not know.
    assert set(message) == MESSAGE_KEYS | {"Relay", "Read"}
    assert message["Relay"] == []
    assert_address(message["From"])
    for key in ("To", "Cc", "Bcc", "ReplyTo"):
        for address in message[key]:
            assert_address(address)
    assert message["ReplyTo"] == [{"Name": "", "Address": "help@example.com"}]
    assert message["MessageID"] == "compat@example.com"
    assert message["Date"] == "2024-04-01T10:00:00+02:00"
    assert set(message["ListUnsubscribe"]) == LIST_UNSUBSCRIBE_KEYS
    assert message["ListUnsubscribe"]["Links"] == [
        "mailto:unsub@example.com",
        "https://example.com/unsub",
    ]
    assert message["ListUnsubscribe"]["HeaderPost"] == "List-Unsubscribe=One-Click"
    assert message["Text"] == "Hi"  # made from the HTML when there is no text part
    for part in message["Inline"] + message["Attachments"]:
        assert set(part) == ATTACHMENT_KEYS
        assert set(part["Checksums"]) == {"MD5", "SHA1", "SHA256"}
        assert isinstance(part["Size"], int)
    assert [part["FileName"] for part in message["Inline"]] == ["pic"]
    assert [part["FileName"] for part in message["Attachments"]] == ["a.csv"]


def test_a_message_without_a_date_header_shows_when_it_arrived(server: Server, api: Api):
    message = api.message(send(server, b"Subject: no date\r\n\r\nx\r\n"))
    assert RFC3339.fullmatch(message["Date"])
    assert message["Date"] == api.messages()["messages"][0]["Created"]


def test_info_keys(api: Api):
    info = api.ok("GET", "/api/v1/info")
    # Mailpit's keys, and one of our own: what the server really is.
    assert set(info) == INFO_KEYS | {"Mailtrap"}
    assert set(info["RuntimeStats"]) == RUNTIME_STATS_KEYS
    # Go's uint64s: a float would not decode in a Go client.
    assert all(type(value) is int for value in info["RuntimeStats"].values())


def test_send_answers_an_id(api: Api):
    reply = api.ok("POST", "/api/v1/send", {"From": {"Email": "a@example.com"}})
    assert set(reply) == {"ID"} and isinstance(reply["ID"], str)


def test_writes_answer_plain_ok_as_mailpit(server: Server, api: Api):
    """Mailpit's clients read these as text."""
    message_id = send(server, FULL)
    for method, path, body in [
        ("PUT", "/api/v1/messages", {"IDs": [message_id], "Read": True}),
        ("PUT", "/api/v1/tags", {"IDs": [message_id], "Tags": ["x"]}),
        ("PUT", "/api/v1/tags/x", {"Name": "y"}),
        ("DELETE", "/api/v1/tags/y", None),
        ("DELETE", "/api/v1/search?query=compat", None),
        ("DELETE", "/api/v1/messages", None),
    ]:
        reply = api.request(method, path, body)
        assert (reply.status, reply.text) == (200, "ok"), (method, path)
        assert reply.headers.get_content_type() == "text/plain"
