"""The filters of wait_for / assert_sent / assert_no_message, on messages built in memory."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

import pytest

from mailtrap.pytest_plugin import Envelope, Mail
from mailtrap.pytest_plugin.filters import FILTER_NAMES, Filters


def make_mail(
    *,
    to: str = "bob@example.com",
    subject: str = "Welcome",
    text: str = "Hello there",
    html: str | None = None,
    attachment: str | None = None,
    rcpt_tos: tuple[str, ...] = (),
    **headers: str,
) -> Mail:
    message = EmailMessage()
    message["From"] = "App <app@example.com>"
    message["To"] = to
    message["Subject"] = subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    if attachment:
        message.add_attachment(b"data", maintype="application", subtype="pdf", filename=attachment)
    return Mail("id1", message.as_bytes(), Envelope("app@example.com", rcpt_tos or (to,)))


def matches(mail: Mail, **filters: Any) -> bool:
    return Filters.from_keywords(filters).matches(mail)


MAIL = make_mail(
    to="Bob <Bob@Example.com>, carol@example.com",
    Cc="dave@example.com",
    Reply_To="help@example.com",
    X_Campaign="autumn-sale",
    html="<p>Hi <b>Bob</b></p>",
    attachment="invoice-42.pdf",
    rcpt_tos=("bob@example.com", "carol@example.com", "dave@example.com", "eve@example.com"),
)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        # addresses: exact, ignoring case; any address of the field
        ({"to": "bob@example.com"}, True),
        ({"to": "BOB@EXAMPLE.COM"}, True),
        ({"to": "carol@example.com"}, True),
        ({"to": "ob@example.com"}, False),
        ({"to": "bob@example.co"}, False),
        ({"to": re.compile(r"^carol@")}, True),
        ({"to": lambda address: address.endswith("@example.com")}, True),
        ({"cc": "dave@example.com"}, True),
        ({"cc": "bob@example.com"}, False),
        ({"bcc": "eve@example.com"}, True),
        ({"bcc": "dave@example.com"}, False),
        ({"from_": "app@example.com"}, True),
        ({"from_": "App@Example.com"}, True),
        ({"from_": "app@example.org"}, False),
        ({"reply_to": "help@example.com"}, True),
        # text: by substring, case-sensitive; regex searched; callable given the value
        ({"subject": "Welcome"}, True),
        ({"subject": "elcom"}, True),
        ({"subject": "welcome"}, False),
        ({"subject": re.compile("(?i)WELCOME")}, True),
        ({"subject": lambda subject: len(subject) == 7}, True),
        ({"text": "Hello there"}, True),
        ({"text": "<b>Bob</b>"}, False),
        ({"html": "<b>Bob</b>"}, True),
        ({"html": "Hello there"}, False),
        ({"body": "Hello there"}, True),
        ({"body": "<b>Bob</b>"}, True),
        ({"body": "nowhere"}, False),
        ({"body": re.compile(r"H\w+o")}, True),
        # headers: (name, value by substring), or a name alone for presence
        ({"header": ("X-Campaign", "autumn")}, True),
        ({"header": ("x-campaign", "spring")}, False),
        ({"header": ("X-Campaign", re.compile(r"-sale$"))}, True),
        ({"header": ("X-Campaign", lambda value: value.startswith("autumn"))}, True),
        ({"header": "X-Campaign"}, True),
        ({"header": "X-Missing"}, False),
        # attachments: the file name exactly; regex on the name; callable on the Attachment
        ({"attachment": "invoice-42.pdf"}, True),
        ({"attachment": "invoice"}, False),
        ({"attachment": re.compile(r"^invoice-\d+\.pdf$")}, True),
        (
            {"attachment": lambda a: a.content_type == "application/pdf" and a.content == b"data"},
            True,
        ),
        # all filters must hold
        ({"to": "bob@example.com", "subject": "Welcome", "attachment": "invoice-42.pdf"}, True),
        ({"to": "bob@example.com", "subject": "Goodbye"}, False),
        ({}, True),
    ],
    ids=repr,
)
def test_filter(filters: dict[str, Any], expected: bool):
    assert matches(MAIL, **filters) is expected


def test_every_documented_filter_is_tested():
    tested = {"to", "cc", "bcc", "from_", "reply_to", "subject", "text", "html", "body"}
    assert set(FILTER_NAMES) == tested | {"header", "attachment"}


def test_an_unknown_filter_is_a_type_error_with_a_suggestion():
    with pytest.raises(TypeError, match=r"unknown mail filter 'too'; did you mean 'to'\?"):
        Filters.from_keywords({"too": "bob@example.com"})
    with pytest.raises(TypeError, match="did you mean 'from_'"):
        Filters.from_keywords({"from": "bob@example.com"})


def test_a_filter_value_of_the_wrong_type_is_a_type_error():
    with pytest.raises(
        TypeError, match="filter to= takes a string, a compiled regex or a callable"
    ):
        Filters.from_keywords({"to": 42})
    with pytest.raises(TypeError, match=r"header= takes a header name or a \(name, value\) pair"):
        Filters.from_keywords({"header": ("X-A", "b", "c")})


def test_descriptions_say_what_was_wanted():
    filters = Filters.from_keywords(
        {
            "to": "bob@example.com",
            "subject": "Welcome",
            "body": re.compile(r"\d+"),
            "header": ("X-Campaign", "autumn"),
            "attachment": "a.pdf",
        }
    )
    assert filters.describe() == (
        "to='bob@example.com', subject containing 'Welcome', body matching /\\d+/, "
        "header X-Campaign containing 'autumn', attachment='a.pdf'"
    )
    assert Filters.from_keywords({"header": "X-A"}).describe() == "a X-A header"
    assert Filters.from_keywords({}).describe() == "any message"


def test_closest_first_ranks_by_filters_met_then_by_similarity():
    far = make_mail(to="zed@example.org", subject="Invoice")
    near_address = make_mail(to="bob@example.org", subject="Invoice")
    right_subject = make_mail(to="zed@example.org", subject="Welcome Bob")
    wanted = Filters.from_keywords({"to": "bob@example.com", "subject": "Welcome"})
    ranked = wanted.closest_first([far, near_address, right_subject])
    assert [mail for mail, _ in ranked] == [right_subject, near_address, far]
    _, checks = ranked[1]
    (_, to_check), (_, subject_check) = checks
    assert not to_check.matched and to_check.actual == "'bob@example.org'"
    assert not subject_check.matched and subject_check.actual == "'Invoice'"
