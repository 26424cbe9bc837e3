"""Spam check against a real spamd (Debian's SpamAssassin, rules installed offline)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from api_client import Api, send
from spamd_process import spamd

from mailtrap import Server
from mailtrap.checks.spam import MAX_SPAM_BYTES, Spamd, parse_report, spam_result
from mailtrap.config import Address

SPAMMY = (
    b"From: winner@lottery.test\r\nTo: you@example.com\r\nSubject: FREE VIAGRA!!! You won\r\n"
    b"\r\nBuy viagra and cialis now. Free money, click here! 100% guaranteed.\r\n"
)
HONEST = (
    b"From: Shop <shop@example.com>\r\nTo: you@example.com\r\nSubject: Your receipt\r\n"
    b"Date: Mon, 1 Jun 2026 10:00:00 +0000\r\nMessage-ID: <r1@example.com>\r\n"
    b"\r\nThank you for your order number 1234.\r\n"
)


@pytest.fixture(scope="module")
def spamd_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Address]:
    """One spamd for the module: it takes a second or two to load its rules."""
    with spamd(tmp_path_factory.mktemp("spamd")) as address:
        yield address


def test_spamd_reports_the_score_and_each_rule_with_its_description(
    spamd_address: Address,
) -> None:
    result = spam_result(SPAMMY, Spamd(spamd_address))

    assert result["Error"] == ""
    names = {rule["Name"]: rule for rule in result["Rules"]}
    assert "DRUGS_ERECTILE" in names, names
    assert names["DRUGS_ERECTILE"]["Description"] == "Refers to an erectile drug"
    assert names["DRUGS_ERECTILE"]["Score"] > 0
    assert result["Score"] >= sum(rule["Score"] for rule in result["Rules"]) - 0.2
    honest = spam_result(HONEST, Spamd(spamd_address))
    assert honest["Score"] < result["Score"]
    assert honest["IsSpam"] is False


def test_the_sa_check_route_answers_mailpits_shape(
    make_server: Callable[..., Server], spamd_address: Address
) -> None:
    server = make_server(spamassassin=spamd_address)
    message_id = send(server, SPAMMY)

    result = Api(server).ok("GET", f"/api/v1/message/{message_id}/sa-check")

    assert set(result) == {"IsSpam", "Error", "Score", "Rules"}
    assert all(set(rule) == {"Score", "Name", "Description"} for rule in result["Rules"])
    assert any(rule["Name"] == "DRUGS_ERECTILE" for rule in result["Rules"])


def test_without_spamd_configured_the_route_is_a_400_saying_how_to_configure_it(
    make_server: Callable[..., Server],
) -> None:
    server = make_server()
    message_id = send(server, HONEST)

    reply = Api(server).get(f"/api/v1/message/{message_id}/sa-check")

    assert reply.status == 400
    assert "--spamassassin" in reply.error


def test_an_unreachable_spamd_or_a_large_message_is_an_error_in_the_result(
    tmp_path: Path,
) -> None:
    from spamd_process import free_port

    nobody = Spamd(Address("127.0.0.1", free_port()), timeout=2)
    assert "cannot reach spamd" in spam_result(HONEST, nobody)["Error"]
    large = spam_result(b"x" * (MAX_SPAM_BYTES + 1), nobody)
    assert "like spamc" in large["Error"]


def test_a_report_whose_descriptions_wrap_is_read_whole() -> None:
    answer = (
        b"SPAMD/1.1 0 EX_OK\r\nContent-length: 400\r\nSpam: False ; 1.3 / 5.0\r\n\r\n"
        b"Content analysis details:   (1.3 points, 5.0 required)\n\n"
        b" pts rule name              description\n"
        b"---- ---------------------- --------------------------------------------------\n"
        b" 1.2 LONG_RULE              A description that is far too long to fit in one\n"
        b"                            line of the table\n"
        b" 0.1 SHORT                  Short\n"
    )
    report = parse_report(answer)

    assert (report.is_spam, report.score, report.threshold) == (False, 1.3, 5.0)
    assert [(rule.name, rule.score) for rule in report.rules] == [
        ("LONG_RULE", 1.2),
        ("SHORT", 0.1),
    ]
    assert report.rules[0].description.endswith("fit in one line of the table")
