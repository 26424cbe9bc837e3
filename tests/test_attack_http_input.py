"""Hostile HTTP input: no request shape makes the server answer 5xx.

Every route is attacked over real HTTP (http.client, raw bytes on the wire):
first a table of the shapes that once answered 500, then a hypothesis-driven
client that generates paths, query arguments, JSON bodies of random shape,
depth and encoding, and browser headers, and checks that every answer is
below 500, that every error is JSON with a message, and that a rejected
request changed no stored message.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.utils import getaddresses
from typing import Any
from urllib.parse import quote

import pytest
from api_client import plain, send
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web_clients import Reply, origin_of, request

from mailtrap import Server
from mailtrap.compose import ComposeError, compose

JSON = {"Content-Type": "application/json"}
HUGE = "9" * 30
DEEP = "[" * 5000 + "]" * 5000  # deeper than the json module's recursion limit


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    return emptied_module_server


def snapshot(server: Server) -> list[dict[str, Any]]:
    """Every stored message's summary (ID, Read, Tags...), newest first."""
    return json.loads(request(server, "GET", "/api/v1/messages?limit=1000").body)["messages"]


def assert_json_error(reply: Reply, status: int | None = None) -> str:
    assert reply.status < 500, (reply.status, reply.body[:300])
    if status is not None:
        assert reply.status == status, (reply.status, reply.body[:300])
    assert reply.headers.get_content_type() == "application/json", reply.headers
    body = json.loads(reply.body)
    assert set(body) == {"Error"} and isinstance(body["Error"], str) and body["Error"], body
    assert "Traceback" not in body["Error"]
    return body["Error"]


# -- a GET that marks read ---------------------------------------------------------

FOREIGN = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # another port of this host: any local app
    {"Origin": "http://evil.example"},
    {"Origin": "http://[", "Sec-Fetch-Site": "cross-site"},
]


@pytest.mark.parametrize("headers", FOREIGN)
@pytest.mark.parametrize("path", ["/api/v1/message/{id}", "/api/v1/message/latest"])
def test_a_foreign_page_reads_a_message_without_marking_it_read(
    server: Server, headers: dict[str, str], path: str
) -> None:
    message_id = send(server, plain("Unread"))
    reply = request(server, "GET", path.format(id=message_id), headers=headers)
    assert reply.status == 200 and json.loads(reply.body)["ID"] == message_id
    assert snapshot(server)[0]["Read"] is False
    # The inbox itself (same origin) and plain clients still mark it read, as Mailpit does.
    request(server, "GET", f"/api/v1/message/{message_id}", headers={"Sec-Fetch-Site": "none"})
    assert snapshot(server)[0]["Read"] is True


def test_an_origin_allowed_by_api_cors_marks_read(make_server: Any) -> None:
    server = make_server(api_cors=("http://app.example",))
    message_id = send(server, plain("Unread"))
    foreign = {"Origin": "http://other.example", "Sec-Fetch-Site": "cross-site"}
    request(server, "GET", f"/api/v1/message/{message_id}", headers=foreign)
    assert snapshot(server)[0]["Read"] is False
    allowed = {"Origin": "http://app.example", "Sec-Fetch-Site": "cross-site"}
    request(server, "GET", f"/api/v1/message/{message_id}", headers=allowed)
    assert snapshot(server)[0]["Read"] is True


# -- the shapes that answered 500 before ------------------------------------------


def q(text: str) -> str:
    return quote(text, safe="", errors="surrogatepass")


BAD_QUERIES = [
    (f"larger:{HUGE}", "invalid size"),  # beyond SQLite's integers
    (f"smaller:1{'9' * 400}.5", "invalid size"),  # a float that is infinite
    ("before:0001-01-01", "the year must be"),  # out of datetime's range in a local zone
    ("after:0999-12-31", "the year must be"),
]
BAD_ZONES = [("America", "unknown time zone"), ("a" * 300, "unknown time zone")]
SURROGATE_TEXT = '"\\ud800"'  # valid JSON, no valid text


def bad_get_requests() -> Iterator[tuple[str, str, str]]:
    for query, error in BAD_QUERIES:
        yield "GET", f"/api/v1/search?query={q(query)}", error
        yield "GET", f"/api/v1/message/latest?query={q(query)}", error
        yield "DELETE", f"/api/v1/search?query={q(query)}", error
    for zone, error in BAD_ZONES:
        yield "GET", f"/api/v1/search?query=a&tz={q(zone)}", error
        yield "GET", f"/api/v1/message/latest?query=a&tz={q(zone)}", error


@pytest.mark.parametrize(("method", "path", "error"), list(bad_get_requests()))
def test_a_bad_query_argument_is_400_with_a_json_message(
    server: Server, method: str, path: str, error: str
) -> None:
    send(server, plain("kept"))
    before = snapshot(server)
    reply = request(server, method, path)
    assert error in assert_json_error(reply, 400)
    assert snapshot(server) == before


def bad_bodies() -> Iterator[tuple[str, str, bytes, str]]:
    for method, path in [
        ("DELETE", "/api/v1/messages"),
        ("PUT", "/api/v1/messages"),
        ("PUT", "/api/v1/tags"),
        ("PUT", "/api/v1/tags/old"),
        ("POST", "/api/v1/send"),
    ]:
        yield method, path, DEEP.encode(), "nested deeper"
        yield method, path, b'{"IDs": [%s]}' % SURROGATE_TEXT.encode(), "unpaired surrogate"
    for query, error in BAD_QUERIES:
        yield "PUT", "/api/v1/messages", json.dumps({"Search": query}).encode(), error
    sender = '"From": {"Email": "a@example.com"}'
    for field in ("Text", "HTML", "Subject"):
        body = f'{{{sender}, "{field}": "x{SURROGATE_TEXT[1:]}}}'.encode()
        yield "POST", "/api/v1/send", body, "unpaired surrogate"
    yield "PUT", "/api/v1/tags", b'{"IDs": ["REAL"], "Tags": ["\\udfff"]}', "unpaired surrogate"
    yield "PUT", "/api/v1/tags/old", b'{"Name": "\\ud800x"}', "unpaired surrogate"


@pytest.mark.parametrize(("method", "path", "body", "error"), list(bad_bodies()))
def test_a_bad_json_body_is_400_with_a_json_message(
    server: Server, method: str, path: str, body: bytes, error: str
) -> None:
    message_id = send(server, plain("kept", headers="X-Tags: old\r\n"))
    before = snapshot(server)
    reply = request(
        server, method, path, headers=JSON, body=body.replace(b"REAL", message_id.encode())
    )
    assert error in assert_json_error(reply, 400)
    assert snapshot(server) == before


def test_an_origin_that_is_not_a_url_is_refused_not_a_crash(server: Server) -> None:
    message_id = send(server, plain("kept"))
    reply = request(
        server,
        "DELETE",
        "/api/v1/messages",
        headers={**JSON, "Origin": "http://["},
        json_body={"IDs": [message_id]},
    )
    assert_json_error(reply, 403)
    assert server.store.ids() == [message_id]


# -- /send: header text ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Subject", "a\x00b"),
        ("Subject", "x" * 5000),
        ("Name", "Ann\x00"),
        ("Name", "A" * 300),
        ("Email", "a" * 250 + "@example.com"),
        ("Header", "1\x00X-Injected: yes"),
        ("Filename", "a\x00.txt"),
        ("ContentID", "id\x1b@x"),
    ],
)
def test_send_refuses_header_text_that_is_not_plain_or_too_long(
    server: Server, field: str, value: str
) -> None:
    sender: dict[str, str] = {"Email": "a@example.com"}
    body: dict[str, Any] = {"From": sender}
    if field in ("Name", "Email"):
        sender[field] = value
    elif field == "Header":
        body["Headers"] = {"X-A": value}
    elif field in ("Filename", "ContentID"):
        attachment = {"Filename": "a.txt", "Content": "eA==", field: value}
        body["Attachments"] = [attachment]
    else:
        body[field] = value
    reply = request(server, "POST", "/api/v1/send", json_body=body)
    assert_json_error(reply, 400)
    assert server.store.count() == 0


CONTROLS = {chr(code) for code in [*range(0x20), 0x7F]} - {"\t"}
HEADER_TEXT = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\r", "\n", "\x00", "\x0b", "\x85", "\u2028", ":", ",", '"', "="]),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(name=HEADER_TEXT, subject=HEADER_TEXT, value=HEADER_TEXT, filename=HEADER_TEXT)
def test_composed_messages_have_exactly_the_headers_asked_for(
    name: str, subject: str, value: str, filename: str
) -> None:
    # Whatever the text, it stays inside its own field: no header is added.
    request = {
        "From": {"Email": "a@example.com", "Name": name},
        "To": [{"Email": "b@example.com", "Name": name}],
        "Subject": subject,
        "Headers": {"X-Value": value},
        "Attachments": [{"Filename": filename or "f", "Content": "eA=="}],
    }
    # Refused exactly when some text holds what a header cannot carry.
    has_controls = bool(CONTROLS.intersection(name + subject + value + filename))
    try:
        composed = compose(request)
    except ComposeError:
        assert has_controls
        return
    assert not has_controls, "a control character went into a header"
    # The compat32 parser, as mailtrap.mime reads headers: RFC 2047 decoding that
    # ignores the folding between encoded words (policy.default keeps a space there).
    message = email.message_from_bytes(composed.raw)
    names = {"From", "To", "Date", "Message-ID", "Content-Type", "MIME-Version"}
    names |= {"Subject"} if subject else set()
    names |= {"X-Value"} if value else set()
    assert set(message.keys()) == names
    assert composed.rcpt_tos == ["b@example.com"]
    assert all(line.startswith((b" ", b"\t")) or b":" in line for line in header_lines(composed))
    [(display_name, address)] = getaddresses(message.get_all("To"))
    assert address == "b@example.com"
    assert words(decoded(display_name)) == words(name)
    if subject:
        assert words(decoded(message["Subject"])) == words(subject)
    if value:
        assert words(decoded(message["X-Value"])) == words(value)
    [attachment] = email.message_from_bytes(
        composed.raw, policy=email.policy.default
    ).iter_attachments()
    assert attachment.get_payload(decode=True) == b"x"  # get_content() is str for text/*


def decoded(header: str) -> str:
    return str(make_header(decode_header(header)))


def words(text: str) -> list[str]:
    return text.split()


def header_lines(composed: Any) -> list[bytes]:
    head, _, _ = composed.raw.partition(b"\r\n\r\n")
    return head.split(b"\r\n")


# -- the hypothesis client ---------------------------------------------------------

REAL = "REAL-ID"  # replaced by a stored message's ID when the request is sent
FIELDS = ["IDs", "Read", "Search", "Tags", "Name", "From", "To", "Cc", "Bcc", "ReplyTo"]
FIELDS += ["Subject", "Text", "HTML", "Headers", "Attachments", "Email", "Filename"]
FIELDS += ["Content", "ContentType", "ContentID"]
ODD_TEXT = ["", "\x00", "\ud800", "\udfff", "\r\nX-A: b", "é", "=?utf-8?q?x?=", "../x", REAL]
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=12),  # surrogates too
    st.sampled_from(ODD_TEXT),
)
NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["", "-0", "1e3", "١٢", "0x10", "1_0", "nan", "inf", HUGE]),
)
DATES = st.sampled_from(
    ["0001-01-01", "9999-12-31", "2024-02-30", "2024-01-01 25:00", "01/02/2024", "10000-01-01"]
)
ZONES = st.one_of(
    st.sampled_from(["UTC", "Europe/Paris", "America", "Local", "zone.tab", "../../etc/passwd"]),
    st.sampled_from(["/etc/localtime", "a" * 300, "right/UTC", "posixrules", "Etc", "\x00"]),
    TEXT,
)
FILTERS = ["from", "to", "cc", "bcc", "reply-to", "addressed", "subject", "message-id", "tag"]
FILTERS += ["header", "is", "has", "before", "after", "larger", "smaller", ""]
TERMS = st.builds(
    lambda negation, name, value, quoted: (
        negation + (f"{name}:" if name else "") + (f'"{value}"' if quoted else value)
    ),
    st.sampled_from(["", "-", "!"]),
    st.sampled_from(FILTERS),
    st.one_of(TEXT, NUMBERS, DATES, st.sampled_from(["1.5k", "2g", "read", "attachment", "X:y"])),
    st.booleans(),
)
QUERIES = st.lists(TERMS, max_size=4).map(" ".join)
# wait only short or refused, so no example sleeps long.
WAITS = st.sampled_from(["", "0", "0.01", "-1", "nan", "inf", "301", "1e999", "soon"])
ARGUMENTS = st.dictionaries(
    st.sampled_from(["start", "limit", "query", "tz", "wait", "dl", "remote"]),
    st.one_of(NUMBERS, QUERIES, ZONES, TEXT),
    max_size=4,
).flatmap(
    lambda arguments: (
        st.just(arguments)
        if "wait" not in arguments
        else WAITS.map(lambda wait: {**arguments, "wait": wait})
    )
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), TEXT), children, max_size=4),
    ),
    max_leaves=12,
)
ADDRESSES = st.sampled_from(["a@example.com", "b@[127.0.0.1]", '"x y"@example.com', "c@é.example"])
PERSON = st.fixed_dictionaries({}, optional={"Email": st.one_of(ADDRESSES, TEXT), "Name": TEXT})
FIELD_VALUES = st.one_of(VALUES, PERSON, st.lists(st.one_of(ADDRESSES, TEXT, PERSON), max_size=3))
OBJECTS = st.fixed_dictionaries({}, optional={field: FIELD_VALUES for field in FIELDS})
DEPTHS = st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth)


@st.composite
def bodies(draw: st.DrawFn) -> bytes | None:
    kind = draw(st.sampled_from(["none", "object", "value", "deep", "bytes", "utf-16"]))
    if kind == "none":
        return None
    if kind == "deep":
        return draw(DEPTHS).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    value = draw(OBJECTS if kind == "object" else VALUES)
    # ensure_ascii=False writes a lone surrogate as the bytes UTF-8 forbids.
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-16" if kind == "utf-16" else "utf-8", "surrogatepass")


SEGMENTS = st.one_of(
    st.just(REAL),
    st.sampled_from(["latest", "0", "1", "1.2", "1.1.1", "-1", HUGE, "%00", "%ED%A0%80", "%FF"]),
    TEXT.map(q),
)
ROUTES = [
    ("GET", "/api/v1/messages"),
    ("DELETE", "/api/v1/messages"),
    ("PUT", "/api/v1/messages"),
    ("GET", "/api/v1/search"),
    ("DELETE", "/api/v1/search"),
    ("GET", "/api/v1/message/{id}"),
    ("GET", "/api/v1/message/{id}/raw"),
    ("GET", "/api/v1/message/{id}/headers"),
    ("GET", "/api/v1/message/{id}/part/{part}"),
    ("GET", "/api/v1/tags"),
    ("PUT", "/api/v1/tags"),
    ("PUT", "/api/v1/tags/{tag}"),
    ("DELETE", "/api/v1/tags/{tag}"),
    ("POST", "/api/v1/send"),
    ("GET", "/api/v1/info"),
    ("GET", "/api/v1/webui"),
    ("GET", "/view/{id}.html"),
    ("GET", "/view/{id}.txt"),
    ("GET", "/api/events"),
    ("GET", "/"),
    ("GET", "/livez"),
    ("GET", "/readyz"),
]
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclass
class Attack:
    method: str
    target: str  # path and query, percent-encoded, REAL not yet replaced
    headers: dict[str, str]
    body: bytes | None


@st.composite
def attacks(draw: st.DrawFn) -> Attack:
    method, template = draw(st.sampled_from(ROUTES))
    if draw(st.integers(0, 9)) == 0:  # now and then a method the route does not take
        method = draw(st.sampled_from(METHODS))
    path = template.format(id=draw(SEGMENTS), part=draw(SEGMENTS), tag=draw(SEGMENTS))
    arguments = draw(ARGUMENTS)
    if arguments:
        path += "?" + "&".join(f"{q(name)}={q(value)}" for name, value in arguments.items())
    headers: dict[str, str] = {}
    content_type = draw(st.sampled_from(["application/json", None, "text/plain", "x/y"]))
    if content_type:
        headers["Content-Type"] = content_type
    origin = draw(st.sampled_from([None, "self", "http://evil.example", "null", "http://["]))
    if origin:
        headers["Origin"] = origin
    site = draw(st.sampled_from([None, "same-origin", "same-site", "cross-site", "none", "?"]))
    if site:
        headers["Sec-Fetch-Site"] = site
    return Attack(method, path, headers, draw(bodies()))


def seed(server: Server) -> None:
    """A few messages of every kind the routes read: plain, tagged, HTML with parts."""
    attachment = base64.b64encode(b"GIF89a").decode()
    request(
        server,
        "POST",
        "/api/v1/send",
        json_body={
            "From": {"Email": "shop@example.com", "Name": "Shop"},
            "To": [{"Email": "ann@example.com"}],
            "Subject": "Rich",
            "Text": "text",
            "HTML": '<p>Hi <img src="cid:logo"></p>',
            "Tags": ["old", "new"],
            "Attachments": [
                {"Filename": "logo.gif", "Content": attachment, "ContentID": "logo"},
                {"Filename": "a.csv", "Content": attachment},
            ],
        },
    )
    send(server, plain("Plain", headers="X-Tags: old\r\n"))


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(attack=attacks())
def test_no_request_makes_a_5xx_and_a_refused_one_changes_nothing(
    server: Server, attack: Attack
) -> None:
    before = snapshot(server)
    if len(before) < 2:  # a successful DELETE emptied it
        seed(server)
        before = snapshot(server)
    real = before[0]["ID"]
    headers = dict(attack.headers)
    if headers.get("Origin") == "self":
        headers["Origin"] = origin_of(server)
    body = attack.body.replace(REAL.encode(), real.encode()) if attack.body else attack.body
    reply = request(
        server, attack.method, attack.target.replace(REAL, real), headers=headers, body=body
    )
    assert reply.status < 500, (reply.status, reply.body[:300])
    if reply.status >= 400:
        if attack.method != "HEAD":  # a HEAD answer has no body
            assert_json_error(reply)
        assert snapshot(server) == before
