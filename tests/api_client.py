"""A small client of Mailtrap's JSON API over real HTTP (urllib), for the API tests."""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import quote, urlencode

from smtp_wire import deliver

from mailtrap import Server

# Mailpit's key sets, from its swagger.json (server/ui/api/v1/swagger.json) and,
# for the fields newer than the swagger, from internal/storage/structs.go.
SUMMARY_KEYS = {
    "ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo", "Subject", "Created",
    "Username", "Tags", "Size", "Attachments", "Snippet",
}  # fmt: skip
MESSAGE_KEYS = {
    "ID", "MessageID", "From", "To", "Cc", "Bcc", "ReplyTo", "ReturnPath", "Subject",
    "ListUnsubscribe", "Date", "Tags", "Username", "Text", "HTML", "Size", "Inline",
    "Attachments",
}  # fmt: skip
ATTACHMENT_KEYS = {"PartID", "FileName", "ContentType", "ContentID", "Size", "Checksums"}
LIST_UNSUBSCRIBE_KEYS = {"Header", "Links", "Errors", "HeaderPost"}
ADDRESS_KEYS = {"Name", "Address"}
MESSAGES_SUMMARY_KEYS = {
    "total", "unread", "count", "messages_count", "messages_unread", "start", "tags", "messages",
}  # fmt: skip
INFO_KEYS = {
    "Version", "LatestVersion", "Database", "DatabaseSize", "Messages", "Unread", "Tags",
    "RuntimeStats",
}  # fmt: skip
RUNTIME_STATS_KEYS = {
    "Uptime", "Memory", "MessagesDeleted", "SMTPAccepted", "SMTPAcceptedSize", "SMTPRejected",
    "SMTPIgnored",
}  # fmt: skip


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        assert self.headers.get_content_type() == "application/json", self.headers
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()

    @property
    def error(self) -> str:
        """The message of an error reply, which must be JSON ``{"Error": "..."}``."""
        body = self.json()
        assert set(body) == {"Error"}, body
        return body["Error"]


class Api:
    """Requests to one server; HTTP errors are returned as replies, never raised."""

    def __init__(self, server: Server):
        self.base = server.http_url.rstrip("/")

    def request(
        self, method: str, path: str, body: Any = None, *, data: bytes | None = None, **query: Any
    ) -> Reply:
        url = self.base + path
        if query:
            url += "?" + urlencode(query)
        headers = {}
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Reply(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, error.headers, error.read())

    def get(self, path: str, **query: Any) -> Reply:
        return self.request("GET", path, **query)

    def ok(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        """A request that must succeed; its JSON, or its text for Mailpit's plain ``ok``."""
        reply = self.request(method, path, body, **query)
        assert reply.status == 200, (reply.status, reply.body)
        if reply.headers.get_content_type() == "application/json":
            return reply.json()
        return reply.text

    def messages(self, **query: Any) -> dict[str, Any]:
        return self.ok("GET", "/api/v1/messages", **query)

    def search(self, query: str, **params: Any) -> dict[str, Any]:
        return self.ok("GET", "/api/v1/search", query=query, **params)

    def subjects(self, query: str) -> list[str]:
        return [message["Subject"] for message in self.search(query)["messages"]]

    def message(self, message_id: str) -> dict[str, Any]:
        return self.ok("GET", f"/api/v1/message/{quote(message_id)}")


def send(
    server: Server,
    raw: bytes,
    *,
    mail_from: str = "sender@example.com",
    rcpt_tos: tuple[str, ...] = ("rcpt@example.com",),
) -> str:
    """Deliver ``raw`` over SMTP; returns the ID in the ``250`` reply."""
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        return deliver(client, raw, mail_from=mail_from, rcpt_tos=rcpt_tos)


def plain(
    subject: str,
    *,
    sender: str = "app@example.com",
    to: str = "user@example.com",
    body: str = "Hello",
    headers: str = "",
) -> bytes:
    """A small text message."""
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n{headers}"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()
