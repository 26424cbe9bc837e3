"""Tags as Mailpit's tests expect them (internal/storage/tags_test.go), and tag rules.

Plus addresses tag on arrival unless ``--tags-disable plus-addresses``; names
are cleaned as Mailpit cleans them and one spelling is kept per tag, in any
case; ``--tag`` and ``--tags-config`` rules tag arriving mail with our search
syntax, and ``POST /api/v1/tag-rules/apply`` tags the mail already stored.
"""

from __future__ import annotations

import json
import smtplib
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from api_client import Api, plain, send

from mailtrap import Server
from mailtrap.errors import ConfigError
from mailtrap.tags.names import clean_tag
from mailtrap.tags.rules import load_rules, parse_rule

# Mailpit's testdata/tags.eml, in our words: a plus address in every field, and X-Tags.
TAGGED = (
    b"From: Sender Smith <sender+FromFag@example.com>\r\n"
    b"To: Recipient Ross <recipient+ToTag@example.com>\r\n"
    b"Cc: Recipient Ross <cc+CcTag@example.com>\r\n"
    b"Bcc: <bcc+BccTag@example.com>\r\n"
    b"Subject: Plain text message\r\nX-Tags: X-tag1, X-tag2\r\n"
    b"Content-Type: text/plain\r\n\r\nLorem ipsum\r\n"
)


def _tags(api: Api, message_id: str) -> list[str]:
    return api.message(message_id)["Tags"]


def test_tags_from_plus_addresses_and_x_tags(server: Server):
    message_id = send(server, TAGGED, rcpt_tos=("recipient+ToTag@example.com",))
    assert _tags(Api(server), message_id) == [
        "BccTag", "CcTag", "FromFag", "ToTag", "X-tag1", "X-tag2",
    ]  # fmt: skip


def test_plus_address_tags_can_be_turned_off(make_server: Callable[..., Server]):
    server = make_server(tags_disable=("plus-addresses",))
    assert _tags(Api(server), send(server, TAGGED)) == ["X-tag1", "X-tag2"]
    server = make_server(tags_disable=("x-tags", "plus-addresses"))
    assert _tags(Api(server), send(server, TAGGED)) == []


def test_title_case_applies_to_automatic_tags(make_server: Callable[..., Server]):
    server = make_server(tags_title_case=True)
    raw = plain("t", to="user+weekly-report@example.com", headers="X-Tags: x-tag one\r\n")
    assert _tags(Api(server), send(server, raw)) == ["Weekly-Report", "X-Tag One"]


def test_the_login_becomes_a_tag_with_tags_username(
    make_server: Callable[..., Server], tmp_path: Path
):
    server = make_server(tags_username=True)
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port) as client:
        client.login("testuser", "any password")  # any login is accepted without a file
        client.sendmail("a@example.com", ["b@example.com"], plain("Signed in"))
    (message_id,) = server.store.ids()
    assert _tags(Api(server), message_id) == ["testuser"]


def test_set_tags_as_mailpit_sets_them(server: Server):
    api = Api(server)
    ids = [send(server, plain(f"Message {number}")) for number in range(10)]
    for number, message_id in enumerate(ids):
        api.ok("PUT", "/api/v1/tags", {"IDs": [message_id], "Tags": [f"Tag-{number}"]})
    assert [_tags(api, message_id) for message_id in ids] == [[f"Tag-{n}"] for n in range(10)]
    twenty = [f"AnotherTag {number:02d}" for number in range(20)]
    api.ok("PUT", "/api/v1/tags", {"IDs": [ids[0]], "Tags": twenty})
    assert _tags(api, ids[0]) == twenty
    api.ok("PUT", "/api/v1/tags", {"IDs": [ids[0]], "Tags": ["Duplicate Tag", "Duplicate Tag"]})
    assert _tags(api, ids[0]) == ["Duplicate Tag"]
    api.ok("PUT", "/api/v1/tags", {"IDs": [ids[0]], "Tags": ['Dirty! "Tag"']})
    assert _tags(api, ids[0]) == ["Dirty Tag"]
    api.ok("PUT", "/api/v1/tags", {"IDs": ids, "Tags": []})
    assert api.ok("GET", "/api/v1/tags") == []  # unused tags are gone from the list
    assert api.ok("PUT", "/api/v1/tags", {"Tags": ["x"]}) == "ok"  # no IDs: nothing to do


def test_one_spelling_per_tag_whatever_the_case(server: Server):
    api = Api(server)
    first = send(server, plain("1", headers="X-Tags: Invoice\r\n"))
    second = send(server, plain("2", headers="X-Tags: INVOICE, invoice\r\n"))
    assert _tags(api, first) == _tags(api, second) == ["Invoice"]
    assert api.ok("GET", "/api/v1/info")["Tags"] == {"Invoice": 2}
    api.ok("PUT", "/api/v1/tags", {"IDs": [first], "Tags": ["invoice", "Paid"]})
    assert _tags(api, first) == ["Invoice", "Paid"]
    assert api.subjects("tag:INVOICE") == ["2", "1"]
    # A change of case only is a rename Mailpit allows.
    assert api.ok("PUT", "/api/v1/tags/Invoice", {"Name": "invoice"}) == "ok"
    assert api.ok("GET", "/api/v1/tags") == ["Paid", "invoice"]


@pytest.mark.parametrize(
    ("name", "cleaned"),
    [
        ("this is a test", "this is a test"),
        ("thiS IS a Test :-)", "thiS IS a Test -"),
        ("  thiS 99     IS a Test :-)", "thiS 99 IS a Test -"),
        ("this_is-a test ", "this_is-a test"),
        ("this_is-a&^%%(*)@ test", "this_is-a @ test"),
        ("x" * 150, "x" * 100),
    ],
)
def test_tag_names_are_cleaned_as_mailpit_cleans_them(name: str, cleaned: str):
    assert clean_tag(name) == cleaned


# -- rules -------------------------------------------------------------------------------------


def test_tag_rules_tag_arriving_mail_with_our_search_syntax(make_server: Callable[..., Server]):
    rules = (parse_rule("Invoices,Billing=subject:invoice"), parse_rule("VIP=from:@big.example"))
    server = make_server(tag=rules)
    api = Api(server)
    invoice = send(server, plain("Your invoice", sender="shop@small.example"))
    vip = send(server, plain("Hello", sender="ceo@big.example"))
    other = send(server, plain("Hello", sender="x@small.example"))
    assert _tags(api, invoice) == ["Billing", "Invoices"]
    assert _tags(api, vip) == ["VIP"]
    assert _tags(api, other) == []
    assert api.ok("GET", "/api/v1/tag-rules") == [
        {"Tags": ["Billing", "Invoices"], "Match": "subject:invoice"},
        {"Tags": ["VIP"], "Match": "from:@big.example"},
    ]


def test_a_rule_with_words_finds_them_in_the_arriving_message_alone(
    make_server: Callable[..., Server],
):
    server = make_server(tag=(parse_rule("Reset=password reset"),))
    api = Api(server)
    hit = send(server, plain("Account", body="Your password reset link"))
    miss = send(server, plain("Account", body="Your password"))
    assert (_tags(api, hit), _tags(api, miss)) == (["Reset"], [])


def test_rules_from_a_toml_file(make_server: Callable[..., Server], tmp_path: Path):
    config = tmp_path / "tags.toml"
    config.write_text(
        '[[filters]]\nmatch = "subject:alert"\ntags = "Alerts, Ops"\n\n'
        '[[filters]]\nmatch = "has:attachment"\ntags = ["Files"]\n'
    )
    assert [rule.tags for rule in load_rules(config)] == [("Alerts", "Ops"), ("Files",)]
    server = make_server(tags_config=config)
    assert _tags(Api(server), send(server, plain("Disk alert"))) == ["Alerts", "Ops"]


@pytest.mark.parametrize(
    ("text", "error"),
    [("no-equals", "expected TAG"), ("a=", "no search"), ("!!!=x", "no tag name"),
     ("a=<>", "matches every message"), ("a=" + "x " * 100, "more than 64 terms")],
)  # fmt: skip
def test_bad_rules_are_refused_when_read(text: str, error: str):
    with pytest.raises(ConfigError, match=error):
        parse_rule(text)


def test_a_bad_rules_file_stops_the_server(make_server: Callable[..., Server], tmp_path: Path):
    config = tmp_path / "tags.toml"
    config.write_text("filters:\n  - match: yaml\n")  # Mailpit's YAML is not TOML
    with pytest.raises(ConfigError, match="is not TOML"):
        make_server(tags_config=config)


def test_rules_apply_to_stored_mail_on_demand(make_server: Callable[..., Server], tmp_path: Path):
    db = tmp_path / "stored.db"
    before = make_server(db=db)
    old = send(before, plain("Old invoice"))
    send(before, plain("Old note"))
    before.stop()
    server = make_server(db=db, tag=(parse_rule("Invoices=subject:invoice"),))
    api = Api(server)
    assert _tags(api, old) == []  # stored before the rule existed
    result = api.ok("POST", "/api/v1/tag-rules/apply")
    assert result == {"Rules": 1, "Matched": 1, "Tagged": 1}
    assert _tags(api, old) == ["Invoices"]
    assert api.ok("POST", "/api/v1/tag-rules/apply")["Tagged"] == 0  # nothing new the second time


def test_tag_rules_from_the_command_line_and_environment(start_serve: Callable[..., object]):
    serve = start_serve(
        "--tag", "Invoices=subject:invoice",
        env={"MAILTRAP_TAG": "Alerts=subject:alert\nOps=subject:disk"},
    )  # fmt: skip
    banner = serve.stdout  # type: ignore[attr-defined]
    api_url = banner.split("(web inbox: ", 1)[1].split(")", 1)[0]
    with urllib.request.urlopen(f"{api_url}api/v1/tag-rules", timeout=10) as reply:
        rules = json.load(reply)
    # The command line wins over the environment (CLI > env).
    assert rules == [{"Tags": ["Invoices"], "Match": "subject:invoice"}]


def test_rules_from_the_environment_one_a_line(start_serve: Callable[..., object]):
    serve = start_serve(env={"MAILTRAP_TAG": "Alerts=subject:alert\nOps=subject:disk"})
    banner = serve.stdout  # type: ignore[attr-defined]
    api_url = banner.split("(web inbox: ", 1)[1].split(")", 1)[0]
    with urllib.request.urlopen(f"{api_url}api/v1/tag-rules", timeout=10) as reply:
        assert [rule["Tags"] for rule in json.load(reply)] == [["Alerts"], ["Ops"]]
