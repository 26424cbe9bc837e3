"""Attachment thumbnails, invitations, body downloads and List-Unsubscribe checks, over HTTP.

Thumbnails follow Mailpit's ``/part/{PartID}/thumb`` (180x120 JPEG, cropped
or padded, blank for what is no image); attachments are hostile, so bombs and
oversized parts get the blank thumbnail without being decoded.
"""

from __future__ import annotations

import io
import struct
import zlib
from email.message import EmailMessage

import pytest
from api_client import Api, send
from PIL import Image

from mailtrap import Server
from mailtrap.calendar import parse
from mailtrap.unsubscribe import check
from mailtrap.web import thumbnails


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    return emptied_module_server


def image(width: int, height: int, colour: str = "red", kind: str = "PNG") -> bytes:
    output = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(output, kind)
    return output.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width * 3 + 1) * 2)  # two rows; the rest missing
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def with_parts(*parts: tuple[bytes, str, str, str]) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "Parts"
    message.set_content("body")
    for data, maintype, subtype, filename in parts:
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


def thumbnail(api: Api, message_id: str, part_id: str) -> Image.Image:
    reply = api.get(f"/api/v1/message/{message_id}/part/{part_id}/thumb")
    assert reply.status == 200, reply.body[:200]
    assert reply.headers["Content-Type"] == "image/jpeg"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    picture = Image.open(io.BytesIO(reply.body))
    assert picture.format == "JPEG" and picture.size == (180, 120)
    return picture.convert("RGB")


def is_blank(picture: Image.Image) -> bool:
    return all(low >= 250 for low, _ in picture.getextrema())  # type: ignore[misc]


def test_thumbnails_fill_pad_or_blank_as_mailpits(server: Server, api: Api):
    message_id = send(
        server,
        with_parts(
            (image(800, 400), "image", "png", "wide.png"),
            (image(40, 30, "blue", "JPEG"), "image", "jpeg", "small.jpg"),
            (b"%PDF-1.4", "application", "pdf", "doc.pdf"),
            (b"not an image at all", "image", "png", "liar.png"),
            (png_claiming(30_000, 30_000), "image", "png", "bomb.png"),
        ),
    )
    parts = {p["FileName"]: p["PartID"] for p in api.message(message_id)["Attachments"]}

    wide = thumbnail(api, message_id, parts["wide.png"])  # cropped to fill: red to the edges
    assert wide.getpixel((0, 0))[0] > 200 and wide.getpixel((179, 119))[0] > 200
    small = thumbnail(api, message_id, parts["small.jpg"])  # smaller: centred, padded white
    assert small.getpixel((90, 60))[2] > 200 and min(small.getpixel((2, 2))) >= 250
    for name in ("doc.pdf", "liar.png", "bomb.png"):
        assert is_blank(thumbnail(api, message_id, parts[name])), name

    latest = api.get(f"/api/v1/message/latest/part/{parts['wide.png']}/thumb")
    assert latest.status == 200 and latest.headers["Cache-Control"] == "no-cache"
    missing = api.get(f"/api/v1/message/{message_id}/part/9.9/thumb")
    assert missing.status == 404 and "no part" in missing.json()["Error"]
    assert api.get("/api/v1/message/nope/part/2/thumb").status == 404


def test_thumbnail_input_is_bounded_before_decoding():
    # Bytes past the bound are never read, let alone decoded.
    consumed = []

    def chunks():
        for n in range(100):
            consumed.append(n)
            yield b"x" * 1024

    assert thumbnails.bounded(chunks(), 10 * 1024) is None
    assert len(consumed) == 11
    assert thumbnails.bounded(iter([b"ab", b"cd"]), 4) == b"abcd"
    # A header over the pixel bound is refused without decoding (Pillow would
    # allocate 2.7 GB for it); Pillow's own bound is set to ours as a backstop.
    assert Image.MAX_IMAGE_PIXELS == thumbnails.MAX_PIXELS
    blank = Image.open(io.BytesIO(thumbnails.make_thumbnail(png_claiming(30_000, 30_000))))
    assert is_blank(blank.convert("RGB"))


INVITE = (
    "BEGIN:VCALENDAR\r\nMETHOD:CANCEL\r\nBEGIN:VEVENT\r\nSUMMARY:Offsite\\nday\r\n"
    "DTSTART;VALUE=DATE:20250601\r\nDTEND;VALUE=DATE:20250602\r\nLOCATION:Lisbon\r\n"
    "ORGANIZER:mailto:boss@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_calendar_route_summarizes_invitations(server: Server, api: Api):
    message_id = send(server, with_parts((INVITE.encode(), "text", "calendar", "invite.ics")))
    [calendar] = api.ok("GET", f"/api/v1/message/{message_id}/calendar")["Calendars"]
    assert calendar["Method"] == "CANCEL"
    [event] = calendar["Events"]
    assert event["Summary"] == "Offsite\nday"
    assert (event["Start"], event["End"], event["AllDay"]) == ("2025-06-01", "2025-06-02", True)
    assert event["Location"] == "Lisbon"
    assert event["Organizer"] == {"Name": "", "Address": "boss@example.com"}
    plain = send(server, with_parts())
    assert api.ok("GET", f"/api/v1/message/{plain}/calendar") == {"Calendars": []}
    assert api.get("/api/v1/message/nope/calendar").status == 404


def test_calendar_parsing_is_bounded():
    many = "BEGIN:VCALENDAR\r\n" + "BEGIN:VEVENT\r\nSUMMARY:x\r\nEND:VEVENT\r\n" * 500
    assert len(parse(many).events) == 20
    attendees = "BEGIN:VEVENT\r\n" + "ATTENDEE:mailto:a@example.com\r\n" * 2000 + "END:VEVENT\r\n"
    [event] = parse(attendees).events
    assert event.attendee_count == 2000 and len(event.attendees) == 500
    assert parse("garbage;;;:::\r\n\x00\r\nBEGIN:VEVENT\r\n").events == []  # unclosed: none


def test_bodies_download_with_dl(server: Server, api: Api):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "Dl"
    message.set_content("text body")
    message.add_alternative("<p>html body</p>", subtype="html")
    message_id = send(server, message.as_bytes())
    html = api.get(f"/view/{message_id}.html", dl="1")
    assert html.headers["Content-Disposition"] == f'attachment; filename="{message_id}.html"'
    assert (
        "html body" in html.text and "script-src 'none'" in html.headers["Content-Security-Policy"]
    )
    text = api.get(f"/view/{message_id}.txt", dl="1")
    assert text.headers["Content-Disposition"] == f'attachment; filename="{message_id}.txt"'
    assert api.get(f"/view/{message_id}.txt").headers["Content-Disposition"] is None


@pytest.mark.parametrize(
    ("header", "post", "links", "error", "one_click"),
    [
        ("<mailto:a@x.test>, <https://x.test/u>", "List-Unsubscribe=One-Click", 2, "", True),
        ("<https://x.test/u>", "", 1, "", False),
        ("<http://x.test/u>", "List-Unsubscribe=One-Click", 1, "needs an https://", False),
        ("<https://x.test/u>", "yes please", 1, "must be", False),
        ("https://x.test/u", "", 0, "outside <...>", False),
        ("<ftp://x.test/u>", "", 0, "should start with", False),
        ("<https://a.test> <https://b.test>", "", 1, "separated by commas", False),
        ("(a comment) <mailto:a@x.test>", "", 1, "", False),
        ("", "List-Unsubscribe=One-Click", 0, "without a List-Unsubscribe", False),
    ],
)
def test_list_unsubscribe_is_checked(header, post, links, error, one_click):
    result = check(header, post)
    assert len(result.links) == links
    assert (error in " ".join(result.errors)) if error else result.errors == []
    assert result.one_click is one_click


def test_the_message_reports_list_unsubscribe_errors(server: Server, api: Api):
    raw = b"From: a@x.test\r\nList-Unsubscribe: https://x.test/u\r\nSubject: s\r\n\r\nbody\r\n"
    info = api.message(send(server, raw))["ListUnsubscribe"]
    assert info["Links"] == [] and "outside <...>" in info["Errors"]
