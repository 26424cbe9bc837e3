"""The relay's pure parts, without sockets: MX routing, the delivery plan, the config file."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from serve_process import run_mailtrap

from mailtrap.relay import mx
from mailtrap.relay.config import RelayConfigError, Retry, load, normalize_address
from mailtrap.relay.plan import (
    FAIL,
    RETRY,
    Delivery,
    after_rcpt,
    next_attempt,
    normalize_line_endings,
    relayed_message,
    stuff_dots,
    transactions,
)


def lookup_from(answers: dict[tuple[str, str], mx.Answer]) -> mx.Lookup:
    return lambda name, rdtype: answers.get((name, rdtype), mx.Answer(mx.NO_DATA))


A = mx.Answer(mx.ANSWER, ("192.0.2.1",))  # a documentation address: never routable
PUBLIC = mx.Answer(mx.ANSWER, ("8.8.8.8",))


def test_mx_by_preference_with_equal_ones_in_random_order():
    records = ("20 c.test.", "10 b.test.", "10 a.test.", "30 d.test.")
    orders = {tuple(mx.order_mx(records, random.Random(seed))) for seed in range(40)}
    assert orders == {
        ("a.test", "b.test", "c.test", "d.test"),
        ("b.test", "a.test", "c.test", "d.test"),
    }


def test_route_cases():
    answers = {
        ("null.test", "MX"): mx.Answer(mx.ANSWER, ("0 .",)),
        ("gone.test", "MX"): mx.Answer(mx.NO_DOMAIN),
        ("broken.test", "MX"): mx.Answer(mx.TEMPORARY, detail="SERVFAIL"),
        ("plain.test", "A"): PUBLIC,
        ("mx.test", "MX"): mx.Answer(mx.ANSWER, ("10 in.mx.test.",)),
        ("mx.test", "A"): PUBLIC,  # not used: an MX exists
        ("in.mx.test", "A"): mx.Answer(mx.ANSWER, ("8.8.4.4", "10.0.0.1")),
        ("in.mx.test", "AAAA"): mx.Answer(mx.ANSWER, ("2001:4860::1", "::ffff:127.0.0.1")),
        ("private.test", "A"): mx.Answer(mx.ANSWER, ("127.0.0.1", "100.64.0.1", "169.254.0.1")),
    }
    lookup = lookup_from(answers)
    assert mx.route("null.test", lookup).permanent
    assert mx.route("gone.test", lookup).permanent
    broken = mx.route("broken.test", lookup)
    assert not broken.permanent and not broken.hosts and "SERVFAIL" in broken.error
    assert mx.route("plain.test", lookup).hosts == (mx.Host("plain.test", ("8.8.8.8",)),)
    # Private and mapped-loopback addresses are dropped; the public ones stay, in order.
    assert mx.route("mx.test", lookup).hosts == (
        mx.Host("in.mx.test", ("8.8.4.4", "2001:4860::1")),
    )
    refused = mx.route("private.test", lookup)
    assert refused.permanent and "refused" in refused.error and "100.64.0.1" in refused.error
    allowed = mx.route("private.test", lookup, allow_private=True)
    assert allowed.hosts == (mx.Host("private.test", ("127.0.0.1", "100.64.0.1", "169.254.0.1")),)
    assert mx.route("nothing.test", lookup).permanent  # no MX, no address


def test_a_temporary_address_lookup_is_temporary():
    lookup = lookup_from(
        {("t.test", "MX"): mx.Answer(mx.ANSWER, ("10 h.t.test.",)),
         ("h.t.test", "A"): mx.Answer(mx.TEMPORARY, detail="timeout")}
    )  # fmt: skip
    found = mx.route("t.test", lookup)
    assert not found.permanent and "timeout" in found.error


def delivery(number: int, seq: int, recipient: str, sender: str = "s@a.test") -> Delivery:
    return Delivery(number, seq, f"M{seq}", recipient, recipient.split("@")[1], sender, 0, 0.0)


def test_transactions_group_by_message_sender_and_domain():
    queued = [
        delivery(1, 1, "a@x.test"), delivery(2, 1, "b@y.test"), delivery(3, 1, "c@x.test"),
        delivery(4, 2, "d@x.test"), delivery(5, 1, "e@x.test", sender="other@a.test"),
    ]  # fmt: skip
    grouped = [[d.id for d in t.deliveries] for t in transactions(queued)]
    assert grouped == [[1, 3], [2], [4], [5]]
    through_smarthost = [
        [d.id for d in t.deliveries] for t in transactions(queued, by_domain=False)
    ]
    assert through_smarthost == [[1, 2, 3], [4], [5]]
    assert [len(t.deliveries) for t in transactions(queued[:3], max_recipients=1)] == [1, 1, 1]


def test_the_relayed_bytes():
    raw = (
        b"Return-Path: <x@y>\nMessage-ID: <a@b>\nBcc: secret@x.test,\n other@x.test\n"
        b"Subject: hi\n\n.line\r\nBcc: not a header\n"
    )
    sent = relayed_message(raw, received=b"Received: by me; now\r\n", new_message_id=b"<n@me>")
    assert sent == (
        b"Received: by me; now\r\nMessage-ID: <n@me>\r\nSubject: hi\r\n\r\n"
        b".line\r\nBcc: not a header\r\n"
    )
    kept = relayed_message(raw, received=b"", new_message_id=None)
    assert kept.startswith(b"Message-ID: <a@b>\r\nSubject: hi\r\n")
    assert stuff_dots(sent).count(b"\r\n..line\r\n") == 1


@given(st.binary(max_size=300))
def test_no_line_of_stuffed_data_is_a_lone_dot(data: bytes):
    wire = stuff_dots(normalize_line_endings(data))
    assert b"\n" not in wire.replace(b"\r\n", b"")
    assert b"\r" not in wire.replace(b"\r\n", b"")
    assert not any(line == b"." for line in wire.split(b"\r\n"))


def test_replies_and_backoff():
    a, b, c = delivery(1, 1, "a@x.test"), delivery(2, 1, "b@x.test"), delivery(3, 1, "c@x.test")
    settled = after_rcpt([(a, 250, "ok"), (b, 450, "later"), (c, 550, "no")])
    assert {k: v.state for k, v in settled.items()} == {2: RETRY, 3: FAIL}
    retry = Retry(first_delay=10, max_delay=40, lifetime=100)
    assert [next_attempt(n, 0.0, 0.0, retry) for n in (1, 2, 3, 4, 50_000)] == [10, 20, 40, 40, 40]
    assert next_attempt(1, 0.0, 95.0, retry) is None  # past the lifetime


def test_addresses_are_compared_in_lower_case_idna():
    assert normalize_address("Ünïcode@BÜCHER.Example") == "ünïcode@xn--bcher-kva.example"
    for bad in ("no-at", "@x.test", "a@", "a b@x.test", "a@x..test", "a@-?.test"):
        with pytest.raises(ValueError):
            normalize_address(bad)


FULL = """
mode = "smarthost"
allowed_recipients = ["qa@example.com", "example.org", "@bücher.example"]
blocked_recipients = ["ceo@example.org"]
sender = "bounces@example.com"
keep_message_id = true
helo = "mailtrap.example.com"
timeout = "30s"
concurrency = 2

[smarthost]
host = "smtp.example.com"
port = 587
tls = "starttls"
auth = "login"
username = "mailtrap"
password_env = "RELAY_TEST_PASSWORD"

[retry]
first_delay = "30s"
max_delay = "30m"
lifetime = "2d"

[[auto_relay]]
query = "subject:Welcome"

[[forward]]
to = ["qa@example.com"]
"""


def test_a_full_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RELAY_TEST_PASSWORD", "from the environment")
    path = tmp_path / "relay.toml"
    path.write_text(FULL)
    settings = load(path)
    assert settings.smarthost is not None
    assert (settings.smarthost.port, settings.smarthost.password) == (587, "from the environment")
    assert settings.recipients.domains == {"example.org", "xn--bcher-kva.example"}
    assert settings.recipients.refusal("QA@Example.COM") is None
    assert settings.recipients.refusal("anyone@sub.example.org") == "not on the allowlist"
    assert settings.recipients.refusal("ceo@EXAMPLE.org") == "on the blocklist"
    assert settings.retry == Retry(30, 1800, 172800)
    assert settings.auto_relay[0].search is not None and settings.forward[0].search is None


OK = 'allowed_recipients = ["x.test"]\n'
SMARTHOST = (
    'mode = "smarthost"\n' + OK + '[smarthost]\nhost = "h"\nauth = "plain"\nusername = "u"\n'
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('mode = "mx"\nallowed_recipients = ["a.test"]\nfoo = 1', "unknown key foo"),
        ('mode = "pigeon"\nallowed_recipients = []', "mode must be one of mx, smarthost"),
        ("mode = 'mx'", "allowed_recipients is required"),
        ('allowed_recipients = ["*@x.test"]', "allowed_recipients[0]: '*@x.test': patterns"),
        ('allowed_recipients = ["a@"]', "allowed_recipients[0]: not an e-mail address"),
        ('allowed_recipients = ["x.test"]\n[mx]\nport = 0', "mx.port must be a port"),
        ('allowed_recipients = ["x.test"]\n[mx]\nallow_private_targets = "yes"', "true or false"),
        ('allowed_recipients = ["x.test"]\n[retry]\nlifetime = "soon"', "retry.lifetime: invalid"),
        # (is:purple is a word now, as Mailpit reads it; a year before 1000 is still refused)
        (OK + '[[auto_relay]]\nquery = "before:0999-01-01"', "auto_relay[0].query"),
        (OK + '[[forward]]\nto = ["a@y.test"]', "forward[0].to: a@y.test is not on the allowlist"),
        ('mode = "smarthost"\nallowed_recipients = ["x.test"]', "needs a [smarthost] table"),
        (SMARTHOST + 'tls = "none"', "no password in clear"),
        (SMARTHOST + 'password_env = "NOT_SET_ANYWHERE_42"', "$NOT_SET_ANYWHERE_42 is not set"),
        ('allowed_recipients = ["x.test"\nmode = "mx"', "line 2"),
    ],
)  # fmt: skip
def test_a_bad_config_names_the_key_or_line(tmp_path: Path, text: str, message: str):
    path = tmp_path / "relay.toml"
    path.write_text(text)
    with pytest.raises(RelayConfigError) as raised:
        load(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_serve_refuses_to_start_with_a_bad_relay_config(tmp_path: Path):
    path = tmp_path / "relay.toml"
    path.write_text(
        textwrap.dedent('mode = "mx"\nallowed_recipients = ["x.test"]\n[mx]\nprot = 25\n')
    )
    completed = run_mailtrap(
        "serve", "--db", tmp_path / "m.db", "--smtp", "127.0.0.1:0", "--relay-config", path
    )
    assert completed.returncode == 2
    assert "unknown key mx.prot" in completed.stderr and "Traceback" not in completed.stderr
