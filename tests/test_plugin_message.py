"""The plugin's message object: pure code over raw bytes and the envelope."""

from __future__ import annotations

import datetime
import re
from email.message import EmailMessage

import pytest

from mailtrap.pytest_plugin import Attachment, Envelope, Mail

ENVELOPE = Envelope("bounce@example.com", ("bob@example.com", "hidden@example.com"), True, "app")


def rich_message() -> bytes:
    message = EmailMessage()
    message["From"] = "Shop <shop@example.com>"
    message["To"] = "Bob <bob@example.com>, carol@example.com"
    message["Cc"] = "dave@example.com"
    message["Reply-To"] = "help@example.com"
    message["Subject"] = "=?utf-8?q?Your_order_=E2=9C=93?="
    message["Date"] = "Tue, 01 Oct 2024 10:20:30 +0200"
    message["X-Campaign"] = "welcome"
    message["X-Campaign"] = "autumn"
    message.set_content(
        "Hello Bob,\nconfirm at https://shop.example.com/confirm/abc123.\n"
        "Your code: 482913\nUnsubscribe: https://shop.example.com/unsubscribe\n"
    )
    message.add_alternative(
        '<html><head><style>p { color: #123456 }</style></head><body width="600">'
        '<p>Hello Bob, <a href="https://shop.example.com/confirm/abc123?src=mail&amp;x=1">'
        'confirm</a>. <a href="mailto:help@example.com">help</a> <a href="#top">top</a></p>'
        "<p>Code: <b>482913</b></p></body></html>",
        subtype="html",
    )
    message.add_attachment(
        b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="invoice.pdf"
    )
    message.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="rows.csv")
    return message.as_bytes()


RAW = rich_message()


@pytest.fixture
def mail() -> Mail:
    received = datetime.datetime(2024, 10, 1, 8, 20, 31, tzinfo=datetime.UTC)
    return Mail("AbC123", RAW, ENVELOPE, received)


def test_headers_are_decoded_and_addresses_are_bare(mail: Mail):
    assert mail.subject == "Your order ✓"
    assert mail.from_ == "shop@example.com"
    assert mail.to == ["bob@example.com", "carol@example.com"]
    assert mail.cc == ["dave@example.com"]
    assert mail.reply_to == ["help@example.com"]
    assert mail.date == datetime.datetime(
        2024, 10, 1, 10, 20, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )


def test_bcc_holds_the_envelope_recipients_the_headers_do_not_name(mail: Mail):
    assert mail.bcc == ["hidden@example.com"]


def test_the_envelope_and_session_facts(mail: Mail):
    assert mail.mail_from == "bounce@example.com"
    assert mail.rcpt_tos == ["bob@example.com", "hidden@example.com"]
    assert mail.tls is True
    assert mail.auth_user == "app"
    assert mail.id == "AbC123"


def test_bodies_headers_and_the_standard_email_object(mail: Mail):
    assert "Your code: 482913" in mail.text
    assert "<b>482913</b>" in mail.html
    assert mail.headers["x-campaign"] == "welcome"
    assert mail.headers.get_all("X-CAMPAIGN") == ["welcome", "autumn"]
    assert "Subject" in mail.headers
    assert mail.email["Subject"] == "Your order ✓"
    assert mail.email.get_content_type() == "multipart/mixed"
    assert mail.raw == RAW


def test_attachments_have_name_type_and_decoded_bytes(mail: Mail):
    assert mail.attachments == [
        Attachment("invoice.pdf", "application/pdf", b"%PDF-1.4 fake"),
        Attachment("rows.csv", "text/csv", b"a,b\n1,2\n"),
    ]
    assert mail.attachments[0].size == 13


def test_links_come_from_hrefs_and_text_without_repeats_or_mailto(mail: Mail):
    assert mail.links() == [
        "https://shop.example.com/confirm/abc123?src=mail&x=1",
        "https://shop.example.com/confirm/abc123",
        "https://shop.example.com/unsubscribe",
    ]
    assert mail.links(contains="unsubscribe") == ["https://shop.example.com/unsubscribe"]
    assert mail.link(contains=re.compile(r"/confirm/\w+$")) == (
        "https://shop.example.com/confirm/abc123"
    )
    assert mail.link() == "https://shop.example.com/confirm/abc123?src=mail&x=1"


def test_a_missing_link_fails_listing_the_links_there_are(mail: Mail):
    with pytest.raises(AssertionError, match=r"no link containing '/reset/'.*unsubscribe"):
        mail.link(contains="/reset/")


def test_code_finds_a_one_time_code_or_a_custom_pattern(mail: Mail):
    assert mail.code() == "482913"
    assert mail.code(r"confirm/(\w+)") == "abc123"
    with pytest.raises(AssertionError, match="no match for 'XYZ-"):
        mail.code(r"XYZ-\d+")


def test_code_in_html_only_mail_ignores_colours_and_attributes():
    message = EmailMessage()
    message["Subject"] = "Code"
    message.set_content(
        '<div style="color:#112233" width="123456">Your code is <b>7788</b></div>',
        subtype="html",
    )
    mail = Mail("x", message.as_bytes(), Envelope("", ()))
    assert mail.text == ""
    assert mail.code() == "7788"


def test_a_plain_message_without_headers_or_parts_still_reads():
    mail = Mail("x", b"just a body\r\n", Envelope(None, ("a@example.com",)))
    assert (mail.subject, mail.from_, mail.to, mail.date) == ("", "", [], None)
    assert mail.text == "just a body\r\n"
    assert mail.html == ""
    assert mail.attachments == []
    assert mail.bcc == ["a@example.com"]
    assert mail.links() == []


def test_an_unknown_charset_does_not_stop_reading_the_body():
    raw = b"Subject: x\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\ncaf\xc3\xa9 42424\r\n"
    mail = Mail("x", raw, Envelope(None, ()))
    assert "42424" in mail.text


def test_summary_and_repr_name_sender_recipients_and_subject(mail: Mail):
    assert mail.summary() == (
        "from shop@example.com to bob@example.com, carol@example.com: 'Your order ✓'"
    )
    assert repr(mail).startswith("<Mail AbC123 from shop@example.com")
