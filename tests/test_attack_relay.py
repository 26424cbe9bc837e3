"""Relay attacked as an adversary (or a careless user) would: every way mail could leave by mistake.

Real servers throughout: an aiosmtpd smarthost or MX on loopback, the dnslib
zone of conftest, Mailtrap's own SMTP and HTTP. Each test names the hole it
closes; without the fix beside it, it fails.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from api_client import Api, plain, send
from relay_helpers import mx_config, settled, start_relay, wait_relay, write_config
from smtp_receiver import Receiver

from mailtrap.config import Address
from mailtrap.relay.addresses import normalize_domain, parse_mailbox
from mailtrap.relay.config import RecipientPolicy, RelayConfigError, load
from mailtrap.relay.mx import dns_lookup, route
from mailtrap.resolver import make_resolver
from mailtrap.tls import self_signed_pem

FAST_RETRY = """
[retry]
first_delay = "0.2s"
max_delay = "0.4s"
lifetime = "2s"
"""


def smarthost_config(port: int, *extra: str, allowed: str = '["allowed.test"]') -> str:
    lines = ['mode = "smarthost"', f"allowed_recipients = {allowed}", 'timeout = "5s"', *extra]
    return "\n".join([*lines, "[smarthost]", 'host = "127.0.0.1"', f"port = {port}"]) + (
        '\ntls = "none"\n' + FAST_RETRY
    )


@pytest.fixture
def smarthost() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


# Each is one string a parser may read another mailbox out of than the one the
# allowlist saw, or that could end the RCPT command early.
HOSTILE_RECIPIENTS = [
    '"evil@attacker.test\\"@allowed.test',  # email.utils reads evil@attacker.test
    '"evil@attacker.test"@allowed.test',
    "evil%attacker.test@allowed.test",
    "attacker.test!evil@allowed.test",
    "@attacker.test:evil@allowed.test",
    "evil@attacker.test@allowed.test",
    "evil@[127.0.0.1]",
    "evil@127.0.0.1",
    "a@allowed.test\x00",
    "a@allowed.test\rRCPT TO:<evil@attacker.test>",
    "x" * 65 + "@allowed.test",
]


def test_release_refuses_every_address_another_parser_could_read_differently(
    make_server, tmp_path, smarthost
):
    config = smarthost_config(smarthost.port)
    server = make_server(relay_config=write_config(tmp_path, config))
    message_id = send(server, plain("hostile"))
    api = Api(server)
    for recipient in HOSTILE_RECIPIENTS:
        reply = api.request("POST", f"/api/v1/message/{message_id}/release", {"To": [recipient]})
        assert reply.status == 400, (recipient, reply.body)
        assert "refused" in reply.error or "Invalid" in reply.error, reply.error

    # The one plain address goes out as the allowlist compared it, once.
    api.ok(
        "POST",
        f"/api/v1/message/{message_id}/release",
        {"To": ["QA@Allowed.Test.", "qa@allowed.test"]},
    )
    deliveries = wait_relay(server, message_id, settled)
    assert [d["State"] for d in deliveries] == ["sent"]
    assert smarthost.rcpt_seen == ["QA@allowed.test"]


def test_a_queued_row_is_checked_again_right_before_rcpt(make_server, tmp_path, smarthost):
    # A row queued before this check existed, or by any path but the API's, must
    # not reach smtplib's quoteaddr, which would send RCPT TO:<evil@attacker.test>.
    server = make_server(relay_config=write_config(tmp_path, smarthost_config(smarthost.port)))
    message_id = send(server, plain("queued"))
    hostile = 'evil@attacker.test"@allowed.test'
    server.store.relay_write(
        "enqueue", [(message_id, [hostile, "ok@allowed.test"], "release")], None, time.time()
    ).result()
    server.relay.wake()
    deliveries = wait_relay(server, message_id, settled)
    assert {d["Recipient"]: d["State"] for d in deliveries} == {
        hostile: "failed",
        "ok@allowed.test": "sent",
    }
    assert smarthost.rcpt_seen == ["ok@allowed.test"]


def test_unicode_domains_are_idna_2008_so_an_allowlist_never_means_another_domain():
    # IDNA 2003 (Python's "idna" codec) maps ß to ss: straße.de would become the
    # unrelated domain strasse.de, both in the allowlist and as the RCPT domain.
    assert normalize_domain("Straße.DE.") == "xn--strae-oqa.de"
    assert str(parse_mailbox("Anna@\uff42\u00fccher.example")) == "Anna@xn--bcher-kva.example"
    german = RecipientPolicy(domains=frozenset({normalize_domain("straße.de")}))
    assert german.refusal("x@strasse.de") == "not on the allowlist"
    assert german.refusal("x@xn--strae-oqa.de") is None
    other = RecipientPolicy(domains=frozenset({"strasse.de"}))
    assert other.refusal("x@straße.de") == "not on the allowlist"
    for bad in ("a@exa_mple..test", "a@-x.test", "a@x.123", "a@[::1]"):
        with pytest.raises(ValueError):
            parse_mailbox(bad)


def free_port() -> int:
    """A port nothing listens on now, for a server whose own config must name its port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_forwarding_to_our_own_smtp_port_does_not_loop(make_server, tmp_path):
    # The careless setup: the smarthost is Mailtrap's own SMTP port, and every
    # message with "loop" in its subject is forwarded: each copy comes back.
    port = free_port()
    config = smarthost_config(
        port, "[[forward]]", 'to = ["qa@allowed.test"]', 'query = "subject:loop"'
    )
    server = make_server(
        relay_config=write_config(tmp_path, config), smtp=Address("127.0.0.1", port)
    )
    original = send(server, plain("loop 1"))
    wait_relay(server, original, settled)  # sent: the copy is captured (its 250 came after commit)
    [copy] = [i for i in server.store.ids() if i != original]
    assert b"(Mailtrap relay)" in server.store.raw(copy)

    # Rules look at messages in order, so once a later message is chosen the copy
    # has been judged: it must not have been forwarded again.
    later = send(server, plain("loop 2"))
    wait_relay(server, later, bool)
    assert server.relay.deliveries(copy) == []
    assert [d["Recipient"] for d in server.relay.deliveries(later)] == ["qa@allowed.test"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[retry]\nfirst_delay = nan", "retry.first_delay must be positive"),
        ("[retry]\nlifetime = inf", "retry.lifetime must be positive"),
        ("timeout = 1e300", "timeout must be positive and at most 365 days"),
        ('dns_timeout = "-5s"', "dns_timeout"),
        ('helo = "relay.test\\r\\nRCPT TO:<evil@attacker.test>"', "helo: not a domain name"),
        ('helo = "[127.0.0.1]"', "helo: not a domain name"),
    ],
)
def test_bad_values_stop_start_up_naming_the_key(tmp_path, text, message):
    path = write_config(tmp_path, 'allowed_recipients = ["allowed.test"]\n' + text + "\n")
    with pytest.raises(RelayConfigError) as raised:
        load(path)
    assert message in str(raised.value)


def test_a_password_of_the_wrong_type_is_not_echoed(tmp_path):
    config = smarthost_config(25).replace(
        'tls = "none"', 'tls = "tls"\nauth = "plain"\nusername = "u"\npassword = 31415926535'
    )
    with pytest.raises(RelayConfigError) as raised:
        load(write_config(tmp_path, config))
    assert "smarthost.password must be a string" in str(raised.value)
    assert "31415926535" not in str(raised.value)


def test_a_hostname_that_is_no_host_name_is_refused_as_the_helo(make_server, tmp_path):
    path = write_config(tmp_path, smarthost_config(25))
    with pytest.raises(RelayConfigError, match="set helo"):
        make_server(relay_config=path, hostname="mailtrap\r\nRCPT TO:<evil@attacker.test>")


def test_an_error_of_ours_counts_as_an_attempt_and_the_lifetime_ends_it(
    make_server, tmp_path, smarthost
):
    # The CA file vanishes after start: every attempt raises before connecting.
    # It used to rest 30 s and start over, never counted, never given up.
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(self_signed_pem("smarthost.test")[0])
    config = smarthost_config(smarthost.port).replace(
        'tls = "none"', f'tls = "starttls"\nca_file = "{ca_file}"'
    )
    server = make_server(relay_config=write_config(tmp_path, config))
    ca_file.unlink()
    message_id = send(server, plain("no CA"))
    Api(server).ok("POST", f"/api/v1/message/{message_id}/release", {"To": ["a@allowed.test"]})
    [delivery] = wait_relay(server, message_id, settled)
    assert delivery["State"] == "failed"
    assert delivery["Reply"].startswith("gave up after the retry lifetime; last: error in Mailtrap")
    assert delivery["Attempts"] >= 2
    assert smarthost.connections == 0


def test_ipv6_addresses_that_lead_to_loopback_or_private_ipv4_are_refused_mx_targets(dns_zone):
    zone, address = dns_zone
    zone.add(
        """
        tunnel.test. 60 IN MX 10 mx.tunnel.test.
        mx.tunnel.test. 60 IN AAAA 2002:7f00:1::1
        mx.tunnel.test. 60 IN AAAA 64:ff9b::a00:1
        mx.tunnel.test. 60 IN AAAA ::7f00:1
        mx.tunnel.test. 60 IN AAAA fec0::1
        mx.tunnel.test. 60 IN AAAA ::ffff:c0a8:101
        """
    )
    found = route("tunnel.test", dns_lookup(make_resolver(address, 2.0)))
    assert (found.hosts, found.permanent) == ((), True)
    assert found.error.count("mx.tunnel.test (") == 5, found.error


def test_a_stalling_domain_cannot_take_every_slot(make_server, tmp_path, dns_zone):
    # other.test's MX holds the end of DATA; example.test's answers at once.
    # With two slots, four queued transactions to other.test used to fill both.
    _zone, dns = dns_zone
    fast = Receiver("127.0.0.2").start()
    slow = Receiver("127.0.0.3", fast.port)
    slow.hold = threading.Event()
    slow.start()
    try:
        config = mx_config(fast.port, "concurrency = 2").replace(
            'timeout = "5s"', 'timeout = "30s"'
        )
        server = start_relay(make_server, tmp_path, dns, config)
        api = Api(server)
        stalled = [send(server, plain(f"slow {n}")) for n in range(4)]
        for message_id in stalled:
            api.ok("POST", f"/api/v1/message/{message_id}/release", {"To": ["a@other.test"]})
        assert slow.data_started.wait(10)
        quick = send(server, plain("quick"))
        api.ok("POST", f"/api/v1/message/{quick}/release", {"To": ["a@example.test"]})

        assert [m.rcpt_tos for m in fast.wait_for(1)] == [["a@example.test"]]
        assert len(slow.received) == 1  # the others wait their turn, not a slot each
        slow.hold.set()
        for message_id in stalled:
            assert wait_relay(server, message_id, settled)[0]["State"] == "sent"
    finally:
        slow.stop()
        fast.stop()
