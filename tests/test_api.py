"""The JSON API over real HTTP: listing, reading, deleting, marking, tags, info and errors."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from api_client import Api, plain, send

from mailtrap import Server
from mailtrap.errors import StorageError
from mailtrap.web.api import MAILPIT_API_VERSION

MIXED = (
    b"From: Shop <shop@example.com>\r\nTo: you@example.com\r\nSubject: Your order\r\n"
    b"Return-Path: <bounces@example.com>\r\n"
    b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
    b"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
    b"--inner\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 receipt\r\n"
    b"--inner\r\nContent-Type: multipart/related; boundary=rel\r\n\r\n"
    b"--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b'<p>Receipt <img src="cid:logo@shop"></p>\r\n'
    b"--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@shop>\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"\x89PNG-logo") + b"\r\n"
    b"--rel--\r\n--inner--\r\n"
    b"--outer\r\nContent-Type: application/pdf\r\n"
    b'Content-Disposition: attachment; filename="receipt.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"%PDF-1.4 receipt") + b"\r\n"
    b"--outer\r\nContent-Type: text/html\r\n"
    b'Content-Disposition: attachment; filename="../../evil\r\n "page.html"\r\n\r\n'
    b"<script>alert(1)</script>\r\n"
    b"--outer--\r\n"
)


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    return emptied_module_server


# -- listing -------------------------------------------------------------------


def test_the_list_is_newest_first_with_mailbox_counts(server: Server, api: Api):
    ids = [send(server, plain(f"Message {n}")) for n in range(3)]
    listing = api.messages()
    assert [m["ID"] for m in listing["messages"]] == ids[::-1]
    assert [m["Subject"] for m in listing["messages"]] == ["Message 2", "Message 1", "Message 0"]
    assert (listing["total"], listing["unread"], listing["count"], listing["start"]) == (3, 3, 3, 0)
    assert (listing["messages_count"], listing["messages_unread"]) == (3, 3)


def test_pagination_with_start_and_limit(server: Server, api: Api):
    ids = [send(server, plain(f"Message {n}")) for n in range(5)][::-1]
    pages = [api.messages(start=start, limit=2)["messages"] for start in (0, 2, 4, 6)]
    assert [[m["ID"] for m in page] for page in pages] == [ids[0:2], ids[2:4], ids[4:], []]
    second = api.messages(start=2, limit=2)
    assert (second["start"], second["count"], second["total"]) == (2, 2, 5)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"limit": "ten"}, "limit must be an integer"),
        ({"start": "20000000"}, "start must be at most"),
        ({"start": "1e3"}, "start must be an integer"),
    ],
)
def test_bad_paging_is_400_with_a_json_error(api: Api, query: dict[str, str], error: str):
    reply = api.get("/api/v1/messages", **query)
    assert reply.status == 400
    assert error in reply.error


# -- one message -------------------------------------------------------------------


def test_a_message_with_its_bodies_parts_and_addresses(server: Server, api: Api):
    message_id = send(server, MIXED, mail_from="envelope@example.com")
    message = api.message(message_id)
    assert message["ID"] == message_id
    assert message["From"] == {"Name": "Shop", "Address": "shop@example.com"}
    assert message["To"] == [{"Name": "", "Address": "you@example.com"}]
    assert message["Bcc"] == [{"Name": "", "Address": "rcpt@example.com"}]  # envelope only
    assert message["ReturnPath"] == "bounces@example.com"
    assert message["Subject"] == "Your order"
    assert message["Text"].strip() == "Café receipt"  # quoted-printable, latin-1
    assert message["HTML"].strip() == '<p>Receipt <img src="cid:logo@shop"></p>'
    assert message["Size"] == len(MIXED)
    (inline,) = message["Inline"]
    assert inline["PartID"] == "1.2.2"
    assert (inline["ContentID"], inline["ContentType"], inline["Size"]) == (
        "logo@shop",
        "image/png",
        len(b"\x89PNG-logo"),
    )
    assert inline["FileName"] == "logo@shop"  # no name: the Content-ID, as Mailpit
    pdf, page = message["Attachments"]
    assert (pdf["PartID"], pdf["FileName"], pdf["ContentType"]) == (
        "2",
        "receipt.pdf",
        "application/pdf",
    )
    assert pdf["Size"] == len(b"%PDF-1.4 receipt")
    assert pdf["Checksums"]["SHA256"] == hashlib.sha256(b"%PDF-1.4 receipt").hexdigest()
    assert page["PartID"] == "3"


def test_reading_a_message_marks_it_read(server: Server, api: Api):
    message_id = send(server, plain("Read me"))
    assert api.messages()["unread"] == 1
    api.message(message_id)
    listing = api.messages()
    assert listing["unread"] == 0 and listing["messages"][0]["Read"] is True


def test_latest_is_the_newest_message(server: Server, api: Api):
    send(server, plain("Older"))
    newest = send(server, plain("Newer"))
    assert api.message("latest")["ID"] == newest
    assert api.ok("GET", "/api/v1/message/latest/raw") == plain("Newer").decode()


def test_latest_with_a_query_is_the_newest_match(server: Server, api: Api):
    wanted = send(server, plain("Wanted"))
    send(server, plain("Other"))
    assert api.ok("GET", "/api/v1/message/latest", query="subject:wanted")["ID"] == wanted


def test_latest_of_an_empty_mailbox_is_404(api: Api):
    reply = api.get("/api/v1/message/latest")
    assert reply.status == 404
    assert "not found" in reply.error


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/message/nosuchid",
        "/api/v1/message/nosuchid/raw",
        "/api/v1/message/nosuchid/headers",
        "/api/v1/message/nosuchid/part/1",
        "/view/nosuchid.html",
        "/view/nosuchid.txt",
    ],
)
def test_unknown_ids_are_404_with_a_json_error(api: Api, path: str):
    reply = api.get(path)
    assert reply.status == 404
    assert "nosuchid" in reply.error


def test_raw_is_byte_exact(server: Server, api: Api):
    raw = (
        b"From: a@example.com\r\nSubject: =?utf-8?q?b=C3=B6?=\r\nX-8bit: caf\xc3\xa9 \xff\r\n"
        b"\r\nline\r\n\x00nul and bare\nLF\r\n"
    )
    message_id = send(server, raw)
    reply = api.get(f"/api/v1/message/{message_id}/raw")
    assert reply.status == 200
    assert reply.body == raw
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    download = api.get(f"/api/v1/message/{message_id}/raw", dl="1")
    assert download.headers["Content-Disposition"] == f'attachment; filename="{message_id}.eml"'


def test_headers_are_a_sorted_map_of_value_lists(server: Server, api: Api):
    raw = (
        b"Received: from a\r\nreceived: from b\r\n  (folded)\r\nMessage-ID: <x@y>\r\n"
        b"MIME-Version: 1.0\r\nSubject: =?utf-8?q?not_decoded?=\r\n\r\nbody\r\n"
    )
    headers = api.ok("GET", f"/api/v1/message/{send(server, raw)}/headers")
    assert headers == {
        "Message-Id": ["<x@y>"],  # Go's canonical names, which Mailpit's clients use
        "Mime-Version": ["1.0"],
        "Received": ["from a", "from b (folded)"],
        "Subject": ["=?utf-8?q?not_decoded?="],
    }
    assert list(headers) == sorted(headers)


def test_a_part_downloads_as_an_attachment_that_is_never_sniffed(server: Server, api: Api):
    message_id = send(server, MIXED)
    pdf = api.get(f"/api/v1/message/{message_id}/part/2")
    assert pdf.status == 200
    assert pdf.body == b"%PDF-1.4 receipt"
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Content-Disposition"] == 'attachment; filename="receipt.pdf"'
    assert pdf.headers["X-Content-Type-Options"] == "nosniff"
    # An HTML attachment with a hostile name: still a download, and the name only a label.
    page = api.get(f"/api/v1/message/{message_id}/part/3")
    assert page.body.strip() == b"<script>alert(1)</script>"
    disposition = page.headers["Content-Disposition"]
    assert disposition.startswith("attachment; ")
    assert "/" not in disposition and "\r" not in disposition and "\n" not in disposition
    assert "sandbox" in page.headers["Content-Security-Policy"]
    assert api.get(f"/api/v1/message/{message_id}/part/1.2.2").body == b"\x89PNG-logo"


def test_an_unknown_part_is_404(server: Server, api: Api):
    reply = api.get(f"/api/v1/message/{send(server, MIXED)}/part/9.9")
    assert reply.status == 404
    assert "no part 9.9" in reply.error


def test_non_ascii_file_names_travel_percent_encoded(server: Server, api: Api):
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        b"hi\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment;"
        b" filename*=UTF-8''r%C3%A9sum%C3%A9.bin\r\n\r\nX\r\n--b--\r\n"
    )
    reply = api.get(f"/api/v1/message/{send(server, raw)}/part/2")
    assert reply.headers["Content-Disposition"] == (
        "attachment; filename=\"r_sum_.bin\"; filename*=UTF-8''r%C3%A9sum%C3%A9.bin"
    )


def test_malformed_mail_is_shown_with_empty_fields_not_an_error(server: Server, api: Api):
    raws = [
        b"no headers at all, just text",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain;"
        b" charset=no-such-charset\r\n\r\nhi\r\n--x\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Type: image/png\r\nContent-Disposition: attachment\r\n\r\n!!not base64!!\r\n",
        b"Content-Type: multipart/mixed\r\n\r\nno boundary parameter\r\n",
        b"From: <<<@>>>\r\nTo: ,,,;\r\nSubject: =?bogus?q?x?=\r\nDate: yesterday\r\n\r\n\xff\xfe",
        b"Content-Type: " + b"multipart/mixed; boundary=a\r\n\r\n--a\r\n" * 60 + b"x",
    ]
    for raw in raws:
        message_id = send(server, raw)
        message = api.message(message_id)
        assert message["ID"] == message_id
        assert isinstance(message["Text"], str) and isinstance(message["Attachments"], list)
        assert api.get(f"/api/v1/message/{message_id}/headers").status == 200
        stored = server.store.raw(message_id)
        assert api.get(f"/api/v1/message/{message_id}/raw").body == stored


# -- deleting and marking ---------------------------------------------------------


def test_delete_some_then_all(server: Server, api: Api):
    ids = [send(server, plain(f"M{n}")) for n in range(3)]
    assert api.ok("DELETE", "/api/v1/messages", {"IDs": ids[:2]}) == "ok"
    assert [m["ID"] for m in api.messages()["messages"]] == [ids[2]]
    assert api.ok("DELETE", "/api/v1/messages", {"IDs": ["unknown"]}) == "ok"
    assert api.messages()["total"] == 1
    assert api.ok("DELETE", "/api/v1/messages") == "ok"  # no body: every message
    assert api.messages()["total"] == 0


def test_an_empty_id_list_deletes_everything_as_in_mailpit(server: Server, api: Api):
    send(server, plain("M"))
    api.ok("DELETE", "/api/v1/messages", {"IDs": []})
    assert api.messages()["total"] == 0


def test_mark_read_and_unread_by_ids_and_all(server: Server, api: Api):
    first, second = send(server, plain("1")), send(server, plain("2"))
    assert api.ok("PUT", "/api/v1/messages", {"IDs": [first], "Read": True}) == "ok"
    read = {m["ID"]: m["Read"] for m in api.messages()["messages"]}
    assert read == {first: True, second: False}
    api.ok("PUT", "/api/v1/messages", {"Read": True})  # no IDs: every message
    assert api.messages()["unread"] == 0
    api.ok("PUT", "/api/v1/messages", {"IDs": [second], "Read": False})
    assert api.messages()["unread"] == 1
    api.ok("PUT", "/api/v1/messages", {})  # Read defaults to false
    assert api.messages()["unread"] == 2


@pytest.mark.parametrize(
    ("method", "path", "data", "status", "error"),
    [
        ("DELETE", "/api/v1/messages", b"{not json", 400, "invalid JSON body"),
        ("DELETE", "/api/v1/messages", b"[1, 2]", 400, "must be an object"),
        ("DELETE", "/api/v1/messages", b'{"IDs": "abc"}', 400, "IDs must be an array of strings"),
        ("DELETE", "/api/v1/messages", b'{"IDs": [1]}', 400, "IDs must be an array of strings"),
        ("PUT", "/api/v1/messages", b'{"Read": "yes"}', 400, "Read must be true or false"),
        ("PUT", "/api/v1/messages", b'{"IDs": ["a"], "Search": "x"}', 400, "not both"),
        ("PUT", "/api/v1/messages", b'{"Search": 5}', 400, "Search must be a string"),
        ("PUT", "/api/v1/messages", b'{"Search": "%s"}' % (b"x " * 100), 400, "more than 64"),
        ("PUT", "/api/v1/tags", b'{"IDs": ["a"], "Tags": "a"}', 400, "Tags must be an array"),
        ("PUT", "/api/v1/tags/x", b'{"Name": 3}', 400, "Name must be a string"),
        ("PUT", "/api/v1/tags/x", b'{"Name": " , "}', 400, "invalid tag name"),
        ("PUT", "/api/v1/tags/nosuchtag", b'{"Name": "y"}', 400, "tag not found"),
        ("DELETE", "/api/v1/tags/nosuchtag", None, 400, "tag not found"),
        ("POST", "/api/v1/send", b'"text"', 400, "must be a JSON object"),
        ("GET", "/api/v1/nosuchroute", None, 404, "not found"),
        ("PATCH", "/api/v1/messages", b"{}", 405, "not allowed"),
    ],
)
def test_bad_requests_are_json_errors_with_a_meaningful_status(
    api: Api, method: str, path: str, data: bytes | None, status: int, error: str
):
    reply = api.request(method, path, data=data)
    assert reply.status == status, reply.body
    assert error.lower() in reply.error.lower()


def test_a_body_over_the_limit_is_413(api: Api):
    reply = api.request("DELETE", "/api/v1/messages", data=b" " * (9 * 1024 * 1024))
    assert reply.status == 413
    assert "larger than" in reply.error


# -- tags ----------------------------------------------------------------------------


def test_tags_from_x_tags_and_set_through_the_api(server: Server, api: Api):
    tagged = send(server, plain("Tagged", headers="X-Tags: signup, Beta\r\n"))
    other = send(server, plain("Other"))
    assert api.ok("GET", "/api/v1/tags") == ["Beta", "signup"]
    assert api.messages()["tags"] == ["Beta", "signup"]
    api.ok("PUT", "/api/v1/tags", {"IDs": [other], "Tags": ["  new   tag ", "signup", ""]})
    assert api.message(other)["Tags"] == ["new tag", "signup"]
    assert api.ok("GET", "/api/v1/tags") == ["Beta", "new tag", "signup"]
    api.ok("PUT", "/api/v1/tags", {"IDs": [tagged]})  # no Tags: remove them all
    assert api.message(tagged)["Tags"] == []
    assert api.ok("GET", "/api/v1/info")["Tags"] == {"new tag": 1, "signup": 1}


def test_rename_and_delete_a_tag(server: Server, api: Api):
    one = send(server, plain("1", headers="X-Tags: old, keep\r\n"))
    two = send(server, plain("2", headers="X-Tags: old\r\n"))
    three = send(server, plain("3", headers="X-Tags: new\r\n"))
    # As Mailpit: a rename onto another tag's name is refused, not a merge.
    reply = api.request("PUT", "/api/v1/tags/old", {"Name": "New"})
    assert (reply.status, reply.json()["Error"]) == (400, "tag already exists: New")
    assert api.ok("PUT", "/api/v1/tags/old", {"Name": "renamed"}) == "ok"
    tags = {m["ID"]: m["Tags"] for m in api.messages()["messages"]}
    assert tags == {one: ["keep", "renamed"], two: ["renamed"], three: ["new"]}
    assert api.ok("DELETE", "/api/v1/tags/RENAMED") == "ok"  # any case names the tag
    assert api.ok("GET", "/api/v1/tags") == ["keep", "new"]
    assert api.messages()["total"] == 3  # deleting a tag keeps the messages


def test_tag_names_with_spaces_travel_url_encoded(server: Server, api: Api):
    send(server, plain("1", headers="X-Tags: Tag One\r\n"))
    api.ok("PUT", "/api/v1/tags/Tag%20One", {"Name": "Tag Two"})
    assert api.ok("GET", "/api/v1/tags") == ["Tag Two"]


# -- info ------------------------------------------------------------------------------


def test_info_reports_version_counts_and_database(server: Server, api: Api):
    send(server, plain("1"))
    api.message(send(server, plain("2", headers="X-Tags: t\r\n")))
    info = api.ok("GET", "/api/v1/info")
    assert info["Version"] == MAILPIT_API_VERSION  # what Mailpit's clients gate features on
    assert info["Mailtrap"] == {"Version": __import__("mailtrap").__version__}
    assert info["LatestVersion"] == "disabled"
    assert (info["Messages"], info["Unread"], info["Tags"]) == (2, 1, {"t": 1})
    assert info["Database"] == str(server.store.path)
    assert info["DatabaseSize"] > 0
    assert isinstance(info["RuntimeStats"]["Uptime"], int)  # Go's uint64: never a float
    assert info["RuntimeStats"]["SMTPAccepted"] >= 2
    assert info["RuntimeStats"]["Memory"] > 10 * 1024 * 1024


def test_every_api_error_is_json_never_a_traceback(server: Server, api: Api):
    """Even an unexpected failure inside a handler answers JSON, without internals."""
    message_id = send(server, plain("x"))
    server.store.reader.execute("SELECT 1")  # this thread's connection; the server has its own
    original = server.store.raw_chunks

    def broken(_: str) -> tuple[int, Iterator[bytes]]:
        raise RuntimeError("secret internal detail")

    server.store.raw_chunks = broken  # type: ignore[method-assign]
    try:
        reply = api.get(f"/api/v1/message/{message_id}/raw")
    finally:
        server.store.raw_chunks = original  # type: ignore[method-assign]
    assert reply.status == 500
    assert json.loads(reply.body) == {"Error": "internal error"}


@pytest.mark.parametrize("path", ["/view/{}.html", "/view/{}.txt"])
def test_a_store_failure_in_a_view_is_a_503_not_a_500(server: Server, api: Api, path: str):
    message_id = send(server, plain("x"))
    original = server.store.source

    def unavailable(_: str) -> Any:
        raise StorageError("database is locked")

    server.store.source = unavailable  # type: ignore[method-assign]
    try:
        reply = api.get(path.format(message_id))
    finally:
        server.store.source = original  # type: ignore[method-assign]
    assert reply.status == 503
    assert json.loads(reply.body) == {"Error": "the message store is unavailable; try again"}
