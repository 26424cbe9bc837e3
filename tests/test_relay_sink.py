"""Relay against Postfix's ``smtp-sink``: a real MTA that answers 4xx, 5xx, 421 or hangs up.

Each domain of the loopback zone has its own sink on its own 127.0.0.x address,
all on the relay's MX port, each made to misbehave one way by its options. The
checks are the relay's per-recipient state and what each sink wrote to its dump.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from api_client import Api, plain, send
from dns_server import ZoneResolver
from postfix_tools import PostfixTool, find_tool
from relay_helpers import mx_config, settled, start_relay, states, wait_relay
from smtp_sink import SmtpSink

from mailtrap.config import Address

ZONE = """
soft.test. 60 IN MX 10 mx.soft.test.
mx.soft.test. 60 IN A 127.0.0.11
hard.test. 60 IN MX 10 mx.hard.test.
mx.hard.test. 60 IN A 127.0.0.12
busy.test. 60 IN MX 10 mx.busy.test.
mx.busy.test. 60 IN A 127.0.0.13
drop.test. 60 IN MX 10 mx.drop.test.
mx.drop.test. 60 IN A 127.0.0.14
doubt.test. 60 IN MX 10 mx.doubt.test.
mx.doubt.test. 60 IN A 127.0.0.15
"""
DOMAINS = '["soft.test", "hard.test", "busy.test", "drop.test", "doubt.test"]'
GREYLISTED = "451 4.7.1 greylisted, try again later"
NO_SUCH_USER = "550 5.1.1 no such user here"


@pytest.fixture(scope="module")
def sink_tool() -> PostfixTool:
    tool, note = find_tool("smtp-sink")
    if tool is None:  # .ci/run fetches it first, so CI never gets here
        pytest.skip(note)
    return tool


@pytest.fixture
def sink(sink_tool: PostfixTool) -> Iterator[Callable[..., SmtpSink]]:
    """Start sinks on 127.0.0.x, all on the port the first one got."""
    started: list[SmtpSink] = []

    def start(host: str, *options: str) -> SmtpSink:
        port = started[0].port if started else 0
        started.append(SmtpSink(sink_tool, host, port, *options).start())
        return started[-1]

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def dns(dns_zone: tuple[ZoneResolver, Address]) -> Address:
    zone, address = dns_zone
    zone.add(ZONE)
    return address


def by_recipient(deliveries: list[dict]) -> dict[str, dict]:
    return {d["Recipient"]: d for d in deliveries}


def test_4xx_421_and_drops_retry_5xx_fails_a_lost_final_reply_is_never_resent(
    make_server, tmp_path, dns, sink
):
    soft = sink("127.0.0.11", "-r", "RCPT", "-b", GREYLISTED)
    hard = sink("127.0.0.12", "-f", "RCPT", "-B", NO_SUCH_USER)
    busy = sink("127.0.0.13", "-Q", "MAIL")  # 421 and hangs up
    drop = sink("127.0.0.14", "-q", "RCPT")  # hangs up before anything was accepted
    doubt = sink("127.0.0.15", "-q", ".")  # takes the message, hangs up before its reply
    server = start_relay(make_server, tmp_path, dns, mx_config(soft.port, allowed=DOMAINS))
    message_id = send(server, plain("sink"))
    recipients = ["a@soft.test", "b@hard.test", "c@busy.test", "d@drop.test", "e@doubt.test"]
    reply = Api(server).request("POST", f"/api/v1/message/{message_id}/release", {"To": recipients})
    assert reply.status == 200, reply.body

    deliveries = by_recipient(
        wait_relay(
            server,
            message_id,
            lambda ds: all(
                d["State"] == "failed"
                if d["Recipient"] in ("b@hard.test", "e@doubt.test")
                else d["State"] == "retrying" and d["Attempts"] >= 2
                for d in ds
            ),
        )
    )

    assert deliveries["a@soft.test"]["Reply"] == GREYLISTED
    assert deliveries["a@soft.test"]["NextAttempt"]
    hard_failure = deliveries["b@hard.test"]
    assert (hard_failure["Reply"], hard_failure["Attempts"]) == (NO_SUCH_USER, 1)
    assert hard_failure["RemoteHost"] == "mx.hard.test [127.0.0.12]"
    assert deliveries["c@busy.test"]["Reply"].startswith("MAIL FROM: 421 ")
    assert "mx.drop.test [127.0.0.14]" in deliveries["d@drop.test"]["Reply"]
    assert "Disconnected" in deliveries["d@drop.test"]["Reply"]
    in_doubt = deliveries["e@doubt.test"]
    assert in_doubt["Attempts"] == 1 and "not sent again" in in_doubt["Reply"]
    assert [m.rcpt_tos for m in doubt.messages()] == [["<e@doubt.test>"]]
    assert soft.messages() == hard.messages() == busy.messages() == drop.messages() == []

    # The servers mend: a plain sink takes each address over, and the retries get through.
    mended = {}
    for broken in (soft, busy, drop):
        broken.stop()
        mended[broken.host] = sink(broken.host)
    deliveries = by_recipient(wait_relay(server, message_id, settled))

    assert states(list(deliveries.values())) == {
        "a@soft.test": "sent", "b@hard.test": "failed", "c@busy.test": "sent",
        "d@drop.test": "sent", "e@doubt.test": "failed",
    }  # fmt: skip
    assert deliveries["a@soft.test"]["Reply"] == "250 2.0.0 Ok"
    assert deliveries["a@soft.test"]["RemoteHost"] == "mx.soft.test [127.0.0.11]"
    for host, recipient in [
        ("127.0.0.11", "a@soft.test"), ("127.0.0.13", "c@busy.test"), ("127.0.0.14", "d@drop.test"),
    ]:  # fmt: skip
        (message,) = mended[host].messages()
        assert message.rcpt_tos == [f"<{recipient}>"]
        assert "Subject: sink" in message.text
    # The message that may have arrived was not sent a second time.
    assert len(doubt.messages()) == 1


def test_a_server_that_keeps_deferring_fails_after_the_retry_lifetime(
    make_server, tmp_path, dns, sink
):
    soft = sink("127.0.0.11", "-r", "RCPT", "-b", GREYLISTED)
    config = mx_config(soft.port, allowed=DOMAINS, lifetime="1.5s")
    server = start_relay(make_server, tmp_path, dns, config)
    message_id = send(server, plain("lifetime"))
    reply = Api(server).request(
        "POST", f"/api/v1/message/{message_id}/release", {"To": ["a@soft.test"]}
    )
    assert reply.status == 200, reply.body

    (delivery,) = wait_relay(server, message_id, settled)

    assert delivery["State"] == "failed"
    assert delivery["Attempts"] >= 3
    assert delivery["Reply"] == f"gave up after the retry lifetime; last: {GREYLISTED}"
    assert delivery["NextAttempt"] == ""
    assert soft.messages() == []
