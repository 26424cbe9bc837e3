"""What Mailpit's own test suite asserts of its API, replayed against Mailtrap.

Mailpit's server/server_test.go, internal/storage/*_test.go and
internal/tools/tools_test.go, in our words: the same mailbox shapes, the same
requests, the same answers. Where Mailtrap deliberately answers otherwise the
README's "Differences from Mailpit" says so, and the tests here say what we do.
"""

from __future__ import annotations

import hashlib
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import formataddr

import pytest
from api_client import Api, plain, send
from web_clients import events, next_change, next_frame, request

from mailtrap import Server
from mailtrap.config import Address
from mailtrap.html_text import SNIPPET_BREAKS, html_to_text
from mailtrap.mime import snippet
from mailtrap.search import parse

EPHEMERAL = Address("127.0.0.1", 0)


def _numbered(number: int) -> bytes:
    """Mailpit's test message number ``number`` (server_test.go, search_test.go)."""
    message = EmailMessage()
    message["From"] = formataddr((f"From {number}", f"from-{number}@example.com"))
    message["To"] = ", ".join(
        formataddr((f"{name} {number}", f"{name.lower()}-{number}@example.com"))
        for name in ("To", "To2")
    )
    message["Cc"] = ", ".join(
        formataddr((f"{name} {number}", f"{name.lower()}-{number}@example.com"))
        for name in ("CC", "CC2")
    )
    message["Reply-To"] = formataddr((f"Reply To {number}", f"reply-to-{number}@example.com"))
    message["Subject"] = f"Subject line {number} end"
    message.set_content(f"This is the email body {number} <jdsauk;dwqmdqw;>.")
    return message.as_bytes()


@pytest.fixture(scope="module")
def hundred(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """100 numbered messages, each tagged "Test tag NNN", in a server of their own."""
    server = Server(
        db=tmp_path_factory.mktemp("hundred") / "mail.db", smtp=EPHEMERAL, http=EPHEMERAL, pop3=None
    ).start()
    try:
        api = Api(server)
        address = server.smtp_address
        with smtplib.SMTP(address.host, address.port, timeout=30) as client:
            for number in range(100):
                client.sendmail(
                    f"from-{number}@example.com", [f"to-{number}@example.com"], _numbered(number)
                )
        for message in api.messages(limit=100)["messages"]:
            number = int(message["Subject"].split()[2])
            api.ok(
                "PUT", "/api/v1/tags", {"IDs": [message["ID"]], "Tags": [f"Test tag {number:03d}"]}
            )
        yield server
    finally:
        server.stop()


def _count(api: Api, query: str, limit: int) -> int:
    # As Mailpit's assertSearchEqual: limit=the count expected, and messages_count read.
    return api.search(query, limit=limit)["messages_count"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("from-1@example.com", 1),
        ("from:from-1@example.com", 1),
        ("-from:from-1@example.com", 99),
        ("-FROM:FROM-1@EXAMPLE.COM", 99),
        ("to:from-1@example.com", 0),
        ("from:@example.com", 100),
        ('subject:"Subject line"', 100),
        ('subject:"SUBJECT LINE 17 END"', 1),
        ("!thisdoesnotexist", 100),
        ("-ThisDoesNotExist", 100),
        ("thisdoesnotexist", 0),
        ('tag:"Test tag 065"', 1),
        ('tag:"TEST TAG 065"', 1),
        ('!tag:"Test tag 023"', 99),
        ("This is the email body", 100),
    ],
)
def test_search_counts_as_mailpit_counts(hundred: Server, query: str, expected: int):
    assert _count(Api(hundred), query, expected) == expected


@pytest.mark.parametrize("number", [1, 7, 42])
@pytest.mark.parametrize(
    "query",
    [
        "from-{n}@example.com",
        "from:from-{n}@example.com",
        "to-{n}@example.com",
        "to:to-{n}@example.com",
        "to2-{n}@example.com",
        "to:to2-{n}@example.com",
        "cc-{n}@example.com",
        "cc:cc-{n}@example.com",
        "cc2-{n}@example.com",
        "cc:cc2-{n}@example.com",
        "reply-to-{n}@example.com",  # Reply-To is in the plain search too
        'reply-to:"reply-to-{n}@example.com"',
        '"Subject line {n} end"',
        'subject:"Subject line {n} end"',
        '"the email body {n} jdsauk dwqmdqw"',
    ],
)
def test_each_unique_search_finds_its_one_message(hundred: Server, query: str, number: int):
    found = Api(hundred).search(query.format(n=number), limit=100)["messages"]
    assert len(found) == 1
    (message,) = found
    assert message["From"] == {"Name": f"From {number}", "Address": f"from-{number}@example.com"}
    assert message["To"][0] == {"Name": f"To {number}", "Address": f"to-{number}@example.com"}
    assert message["Subject"] == f"Subject line {number} end"


def test_before_limits_listings_and_searches(hundred: Server):
    api = Api(hundred)
    newest, *_ = api.messages(limit=3)["messages"]
    older = api.messages(before=newest["Created"], limit=100)
    assert newest["ID"] not in [message["ID"] for message in older["messages"]]
    assert older["messages_count"] == 100  # as Mailpit: the mailbox's count
    found = api.search("from:@example.com", before=newest["Created"], limit=100)
    assert newest["ID"] not in [message["ID"] for message in found["messages"]]


def test_limit_zero_is_everything_in_a_listing_and_nothing_in_a_search(hundred: Server):
    api = Api(hundred)
    assert len(api.messages(limit=0)["messages"]) == 100
    assert api.search("from:@example.com", limit=0)["messages"] == []
    assert len(api.messages(limit=-5, start=-3)["messages"]) == 50  # Mailpit's defaults


# -- reading marks read; toggling; deleting (server_test.go) ------------------------------------


def test_reading_ten_marks_ten_read_and_delete_all_with_an_empty_object(server: Server):
    api = Api(server)
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=30) as client:
        for number in range(20):
            client.sendmail("a@example.com", ["b@example.com"], _numbered(number))
    listed = api.messages()
    assert (listed["unread"], listed["total"]) == (20, 20)
    for message in listed["messages"][:10]:
        for suffix in ("", "/raw", "/headers"):
            assert api.request("GET", f"/api/v1/message/{message['ID']}{suffix}").status == 200
    listed = api.messages()
    assert (listed["unread"], listed["total"]) == (10, 20)
    ids = [message["ID"] for message in listed["messages"][:10]]
    assert api.ok("PUT", "/api/v1/messages", {"Read": False, "IDs": ids}) == "ok"
    assert api.messages()["unread"] == 20
    assert api.ok("PUT", "/api/v1/messages", {"Read": True, "IDs": []}) == "ok"  # no IDs: all
    assert api.messages()["unread"] == 0
    assert api.ok("DELETE", "/api/v1/messages", {}) == "ok"
    assert api.messages()["total"] == 0


def test_json_field_names_are_matched_in_any_case_as_go_does(server: Server):
    api = Api(server)
    message_id = send(server, plain("Case"))
    assert api.ok("PUT", "/api/v1/messages", {"ids": [message_id], "read": True}) == "ok"
    assert api.messages()["unread"] == 0
    assert api.ok("DELETE", "/api/v1/messages", {"ids": [message_id]}) == "ok"
    assert server.store.ids() == []


def test_a_delete_with_a_form_type_and_an_empty_body_deletes_everything(server: Server):
    # What mailpit-api-client sends for delete_messages([]).
    send(server, plain("One"))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert request(server, "DELETE", "/api/v1/messages", headers=form, body=b"").status == 200
    assert server.store.ids() == []


def test_curl_d_with_json_deletes_the_ids(server: Server):
    # curl -X DELETE -d '{"IDs": [...]}' says it sends a form; Mailpit reads JSON anyway.
    keep, drop = send(server, plain("Keep")), send(server, plain("Drop"))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = b'{"IDs": ["%s"]}' % drop.encode()
    assert request(server, "DELETE", "/api/v1/messages", headers=form, body=body).status == 200
    assert server.store.ids() == [keep]


def test_a_star_is_searched_for_literally_so_delete_by_star_deletes_only_those(server: Server):
    api = Api(server)
    keep = send(server, plain("Plain"))
    send(server, plain("Starred *"))
    assert api.subjects("*") == ["Starred *"]
    assert api.ok("DELETE", "/api/v1/search", query="*") == "ok"
    assert server.store.ids() == [keep]


# -- the send API (TestAPIv1Send) ------------------------------------------------------------

# A 1x1 PNG (Mailpit's test sends its logo).
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAC"
    "hwGA60e6kgAAAABJRU5ErkJggg=="
)
SEND = {
    "From": {"Email": "john@example.com", "Name": "John Doe"},
    "To": [{"Email": "jane@example.com", "Name": "Jane Doe"}],
    "Cc": [
        {"Email": "manager1@example.com", "Name": "Manager 1"},
        {"Email": "manager2@example.com", "Name": "Manager 2"},
    ],
    "Bcc": ["jack@example.com"],
    "Headers": {"X-IP": "1.2.3.4"},
    "Subject": "Mailpit message via the HTTP API",
    "Text": "This is the text body",
    "HTML": '<p style="font-family: arial">Mailpit is <b>awesome</b>!</p>',
    "Attachments": [
        {
            "Content": "VGhpcyBpcyBhIHBsYWluIHRleHQgYXR0YWNobWVudA==",
            "Filename": "Attached File.txt",
        },
        {
            "Content": PIXEL,
            "Filename": "logo.png",
            "ContentID": "inline-cid",
            "ContentType": "overridden/type",
        },
    ],
    "ReplyTo": [{"Email": "secretary@example.com", "Name": "Secretary"}],
    "Tags": ["Tag 1", "Tag 2"],
}


def test_a_sent_message_reads_back_exactly_as_sent(server: Server):
    api = Api(server)
    message_id = api.ok("POST", "/api/v1/send", SEND)["ID"]
    message = api.message(message_id)
    assert message["Subject"] == "Mailpit message via the HTTP API"
    assert message["Text"] == "This is the text body"  # no line break added
    assert message["HTML"] == '<p style="font-family: arial">Mailpit is <b>awesome</b>!</p>'
    assert message["From"] == {"Name": "John Doe", "Address": "john@example.com"}
    assert message["To"] == [{"Name": "Jane Doe", "Address": "jane@example.com"}]
    assert [cc["Name"] for cc in message["Cc"]] == ["Manager 1", "Manager 2"]
    assert message["Bcc"] == [{"Name": "", "Address": "jack@example.com"}]
    assert message["ReplyTo"] == [{"Name": "Secretary", "Address": "secretary@example.com"}]
    assert message["Tags"] == ["Tag 1", "Tag 2"]
    (attachment,) = message["Attachments"]
    assert (attachment["FileName"], attachment["ContentType"]) == (
        "Attached File.txt",
        "text/plain",
    )
    (inline,) = message["Inline"]
    assert (inline["FileName"], inline["ContentType"]) == ("logo.png", "overridden/type")
    part = api.request("GET", f"/api/v1/message/{message_id}/part/{attachment['PartID']}")
    assert part.body == b"This is a plain text attachment"


# -- attachments and inline parts (messages_test.go) -------------------------------------------


def _mixed(parts: str) -> bytes:
    return (
        "From: Sender Smith <sender2@example.com>\r\n"
        "To: Recipient Ross <recipient2@example.com>\r\n"
        "Subject: inline + attachment\r\nMessage-ID: <parity@example.com>\r\n"
        'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        '--outer\r\nContent-Type: multipart/related; boundary="inner"\r\n\r\n'
        "--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        "<p>Message with inline image and attachment:</p>\r\n"
        f"{parts}--outer--\r\n"
    ).encode()


INLINE_IMAGE = (
    "--inner\r\nContent-Type: image/png; name=inline-image.png\r\n"
    "Content-Disposition: inline; filename=inline-image.png\r\n"
    "Content-ID: <test1@example.com>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    "iVBORw0KGgo=\r\n--inner--\r\n"
)
ATTACHED_PDF = (
    '--outer\r\nContent-Type: application/pdf; name="Sample PDF.pdf"\r\n'
    'Content-Disposition: attachment; filename="Sample PDF.pdf"\r\n'
    "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
)


def test_inline_regular_and_mixed_attachments(server: Server):
    api = Api(server)
    inline = api.message(send(server, _mixed(INLINE_IMAGE)))
    assert (len(inline["Inline"]), len(inline["Attachments"])) == (1, 0)
    assert inline["Inline"][0]["ContentID"] == "test1@example.com"
    regular = api.message(send(server, _mixed("--inner--\r\n" + ATTACHED_PDF)))
    assert (len(regular["Inline"]), len(regular["Attachments"])) == (0, 1)
    assert regular["Attachments"][0]["ContentID"] == ""
    pdf = b"%PDF-1.4\n"  # the decoded content: checksums are of it
    assert regular["Attachments"][0]["Checksums"] == {
        "MD5": hashlib.md5(pdf).hexdigest(),
        "SHA1": hashlib.sha1(pdf).hexdigest(),
        "SHA256": hashlib.sha256(pdf).hexdigest(),
    }
    mixed_id = send(server, _mixed(INLINE_IMAGE + ATTACHED_PDF))
    mixed = api.message(mixed_id)
    assert (len(mixed["Inline"]), len(mixed["Attachments"])) == (1, 1)
    (summary,) = [m for m in api.messages()["messages"] if m["ID"] == mixed_id]
    assert summary["Snippet"] == "Message with inline image and attachment:"
    assert summary["Attachments"] == 1
    assert summary["MessageID"] == "parity@example.com"
    assert api.subjects("has:inline") == ["inline + attachment", "inline + attachment"]


def test_attachments_are_listed_breadth_first_as_mailpit_lists_them(server: Server):
    # A nested attachment comes after the top-level one, though it is first in the source.
    raw = (
        b"From: a@example.com\r\nSubject: order\r\n"
        b"Content-Type: multipart/mixed; boundary=o\r\n\r\n"
        b"--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n"
        b"--i\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
        b"--i\r\nContent-Type: text/plain\r\n"
        b"Content-Disposition: attachment; filename=deep.txt\r\n\r\n"
        b"deep\r\n--i--\r\n"
        b"--o\r\nContent-Type: text/plain\r\n"
        b"Content-Disposition: attachment; filename=top.txt\r\n\r\n"
        b"top\r\n--o--\r\n"
    )
    message = Api(server).message(send(server, raw))
    assert [a["FileName"] for a in message["Attachments"]] == ["top.txt", "deep.txt"]


# -- snippets, tag names and sizes (tools_test.go, html2text_test.go, search_test.go) -----------

SNIPPETS = {
    "this is a  test": "this is a test",
    "thiS IS a Test :-)": "thiS IS a Test :-)",
    "<h1>This is a test.</h1> ": "This is a test.",
    "this_is-a     test ": "this_is-a test",
    "<h1>Heading</h1><p>Paragraph</p>": "Heading Paragraph",
    "<h1>Heading</h1>\n\t\t<p>Paragraph</p>": "Heading Paragraph",
    '<h1>Heading</h1><p>   <a href="https://github.com">linked text</a></p>': "Heading linked text",
    '<h1>Heading</h3><p>   <a href="https://github.com">linked text.': "Heading linked text.",
    "<span>Alpha</span>bet <strong>chars</strong>": "Alphabet chars",
    "<table><tr><td>First</td><td>Second</td></table>": "First Second",
    " ".join(["abcdefghijklmnopqrstuvwxyx0123456789"] * 9): " ".join(
        ["abcdefghijklmnopqrstuvwxyx0123456789"] * 5
    )
    + " abcdefghijklmno...",
}


@pytest.mark.parametrize(("markup", "expected"), SNIPPETS.items())
def test_snippets_are_mailpits(markup: str, expected: str):
    assert snippet(html_to_text(markup, breaks=SNIPPET_BREAKS)) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [("1m", 1048576), ("1mb", 1048576), ('"1 M"', 1048576), ('"1 MB"', 1048576), ("1k", 1024),
     ("1kb", 1024), ('"1 kB"', 1024), ("1.5M", 1572864), ("1234567890", 1234567890)],
)  # fmt: skip
def test_sizes_are_read_as_mailpit_reads_them(size: str, expected: int):
    assert parse(f"larger:{size}").params == (expected,)


def test_what_is_no_size_is_a_word_as_in_mailpit():
    for size in ("invalid", "1.2.3", "1.2.3M"):
        assert "larger" in parse(f"larger:{size}").params[0]


# -- web UI settings, version gate, view/latest, websocket prune -------------------------------


def test_webui_has_every_field_of_mailpits(server: Server):
    config = Api(server).ok("GET", "/api/v1/webui")
    assert {"Label", "MessageRelay", "SpamAssassin", "ChaosEnabled", "DuplicatesIgnored",
            "HideDeleteAllButton"} <= set(config)  # fmt: skip
    assert {"Enabled", "SMTPServer", "ReturnPath", "AllowedRecipients", "BlockedRecipients",
            "OverrideFrom", "PreserveMessageIDs"} <= set(config["MessageRelay"])  # fmt: skip


def test_chaos_answers_as_a_current_mailpit_with_chaos_off(server: Server):
    for method in ("GET", "PUT"):
        reply = Api(server).request(method, "/api/v1/chaos", {} if method == "PUT" else None)
        # pytest-mailpit reads a 400 here as "a current Mailpit, Chaos off" (a 404: too old).
        assert reply.status == 400
        assert reply.json()["Error"].startswith("Chaos is not enabled")


def test_view_latest_redirects_to_the_newest_matching_message(server: Server):
    first = send(server, plain("First"))
    second = send(server, plain("Second"))
    reply = request(server, "GET", "/view/latest")
    assert (reply.status, reply.headers["Location"]) == (302, f"../?id={second}")
    reply = request(server, "GET", "/view/latest?query=subject:first")
    assert reply.headers["Location"] == f"../?id={first}"
    reply = request(server, "GET", f"/view/{first}")
    assert (reply.status, reply.headers["Location"]) == (302, f"../?id={first}")


def test_renaming_or_deleting_a_tag_sends_a_prune_frame(server: Server):
    api = Api(server)
    api.message(send(server, plain("Tagged", headers="X-Tags: old\r\n")))  # its "new" is out
    with events(server) as client:
        next_frame(client)  # the first stats frame: the stream is subscribed
        assert api.ok("PUT", "/api/v1/tags/old", {"Name": "new"}) == "ok"
        assert next_change(client) == {"Type": "prune", "Data": None}
        assert api.ok("DELETE", "/api/v1/tags/new") == "ok"
        assert next_change(client) == {"Type": "prune", "Data": None}
