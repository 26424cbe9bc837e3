"""Attacks on the checks from what they talk to: a hostile message's DKIM fields and the
keys its DNS publishes, hostile web servers and links, and foreign pages.

Every test runs against real servers on loopback (a dnslib DNS server, http.server
sites, Mailtrap over SMTP and HTTP) and asserts what the check answers.
"""

from __future__ import annotations

import base64
import json
import random
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import dkim
import pytest
from api_client import Api, send
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dns_server import ZoneResolver, dns_server
from test_checks_auth import message, private_pem, send_and_check
from test_checks_links import Site

from mailtrap import Server
from mailtrap.checks.http_probe import MAX_REQUESTS, NOT_CHECKED, Prober
from mailtrap.checks.links import WORKERS, link_check
from mailtrap.checks.signatures import MAX_EXPONENT_BITS, MAX_KEY_BITS
from mailtrap.checks.spam import Spamd, spam_result
from mailtrap.config import Address
from mailtrap.resolver import make_resolver

S = TypeVar("S", bound=ThreadingHTTPServer)


@pytest.fixture
def dns() -> Iterator[tuple[ZoneResolver, Address]]:
    with dns_server() as running:
        yield running


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


@contextmanager
def serving(server: S) -> Iterator[S]:
    """``server`` answering in a thread of its own until the block ends."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    with serving(Site()) as server:
        yield server


def public_key_record(modulus_bits: int, exponent: int) -> str:
    """A DKIM key record of a made-up RSA key (no private key exists for it)."""
    modulus = random.Random(modulus_bits).getrandbits(modulus_bits) | 1 | (1 << (modulus_bits - 1))
    public = rsa.RSAPublicNumbers(exponent, modulus).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def signed_by(raw: bytes, key: rsa.RSAPrivateKey, selector: bytes) -> bytes:
    headers = [b"from", b"subject"]
    return dkim.sign(raw, selector, b"example.test", private_pem(key), include_headers=headers)


# -- DKIM and ARC ------------------------------------------------------------------


def test_keys_too_costly_for_dkimpys_pure_python_rsa_are_refused_before_it_computes(
    make_server: Callable[..., Server], dns: tuple[ZoneResolver, Address], key: Any
) -> None:
    # A 16384-bit key with a 16384-bit exponent costs dkimpy 8 s of CPU per signature,
    # holding the GIL (the whole server stops); ten signatures and fifty ARC sets, minutes.
    zone, address = dns
    zone.add_txt("big._domainkey.example.test", public_key_record(MAX_KEY_BITS + 8, 65537))
    huge_exponent = (1 << (MAX_EXPONENT_BITS + 100)) + 1
    zone.add_txt("exp._domainkey.example.test", public_key_record(2048, huge_exponent))
    server = make_server(dns=address)
    raw = message()
    raw = signed_by(raw, key, b"big") + signed_by(raw, key, b"exp") + raw

    result = send_and_check(server, raw, "news@example.test")

    big, exponent = result["DKIMSignatures"]
    assert big["Result"] == "permerror" and f"at most {MAX_KEY_BITS}" in big["Reason"], big
    assert exponent["Result"] == "permerror" and "exponent" in exponent["Reason"], exponent


@pytest.mark.parametrize(
    ("tag", "value"),
    [("t", "9" * 5000), ("x", "9" * 5000), ("i", "example.test")],
    ids=["t= of 5000 digits", "x= of 5000 digits", "i= equal to d="],
)
def test_dkim_fields_dkimpy_trips_over_are_a_permerror_not_a_server_error(
    make_server: Callable[..., Server], dns: tuple[ZoneResolver, Address], tag: str, value: str
) -> None:
    # dkimpy's int() of t= and x= meets Python's 4300-digit limit (ValueError); i= equal
    # to d= indexes before the string (IndexError): neither is a DKIMException.
    _, address = dns
    server = make_server(dns=address)
    signature = (
        f"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=s1; h=from; bh=AAAA; b=AAAA; "
        f"{tag}={value}\r\n"
    ).encode()

    result = send_and_check(server, signature + message(), "news@example.test")

    assert result["DKIMSignatures"][0]["Result"] == "permerror"
    assert "cannot be read" in result["DKIMSignatures"][0]["Reason"]


def test_an_arc_seal_dkimpy_trips_over_is_an_arc_fail_not_a_server_error(
    make_server: Callable[..., Server], dns: tuple[ZoneResolver, Address]
) -> None:
    _, address = dns
    server = make_server(dns=address)
    arc = (
        "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=example.test; s=s1; b=AAAA; t=" + "9" * 5000
    ) + (
        "\r\nARC-Message-Signature: i=1; a=rsa-sha256; d=example.test; s=s1; h=from; "
        "bh=AAAA; b=AAAA\r\nARC-Authentication-Results: i=1; relay.example.test; spf=pass\r\n"
    )

    result = send_and_check(server, arc.encode() + message(), "news@example.test")

    assert result["ARC"]["Result"] == "fail" and "cannot be read" in result["ARC"]["Reason"]


# -- links -------------------------------------------------------------------------


def test_links_with_non_ascii_hosts_and_paths_are_requested_as_a_browser_sends_them(
    make_server: Callable[..., Server], dns: tuple[ZoneResolver, Address], site: Site
) -> None:
    # http.client encodes the request line as ASCII and headers as Latin-1: an IDNA
    # host or a path with "ß" raised UnicodeEncodeError through the check (a 500).
    zone, address = dns
    zone.add("xn--bcher-kva.test. 60 IN A 127.0.0.1")  # bücher.test
    server = make_server(dns=address, link_check_allow_private=True)
    html = (
        f'<a href="http://bücher.test:{site.port}/straße?q=ü">a</a>'
        f'<img src="http://例え.test:{site.port}/">'
    )
    raw = f"Subject: idna\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
    message_id = send(server, raw.encode())

    reply = Api(server).get(f"/api/v1/message/{message_id}/link-check")

    assert reply.status == 200, reply.body
    statuses = [link["StatusCode"] for link in reply.json()["Links"]]
    assert statuses == [404, 0]  # the site's answer; no such host
    assert site.requests == [("HEAD", "/stra%C3%9Fe?q=%C3%BC", f"xn--bcher-kva.test:{site.port}")]
    assert "xn--r8jz45g.test" in reply.json()["Links"][1]["Status"]


# -- the API -------------------------------------------------------------------------


class Listener:
    """A TCP port that counts connections and closes each at once (a spamd that says nothing)."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.address = Address("127.0.0.1", self.socket.getsockname()[1])
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:  # closed: the test is over
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self.socket.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() does not
        self.socket.close()
        self.thread.join(5)


@pytest.fixture
def listener() -> Iterator[Listener]:
    running = Listener()
    yield running
    running.close()


@pytest.mark.parametrize("check", ["html-check", "link-check", "sa-check", "auth-check"])
def test_no_foreign_page_starts_a_check_and_nothing_is_sent_out(
    make_server: Callable[..., Server],
    dns: tuple[ZoneResolver, Address],
    listener: Listener,
    check: str,
) -> None:
    # An <img src=".../auth-check?refresh=1"> on any page made the server ask DNS about
    # the message's domains (and hand it to spamd) each time the page was shown.
    zone, address = dns
    server = make_server(dns=address, spamassassin=listener.address)
    html = "<p>Hi</p>"
    raw = f"From: a@example.test\r\nSubject: s\r\nContent-Type: text/html\r\n\r\n{html}\r\n"
    message_id = send(server, raw.encode(), mail_from="a@example.test")
    url = f"{server.http_url.rstrip('/')}/api/v1/message/{message_id}/{check}?refresh=1"

    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.test"}):
        request = urllib.request.Request(url, headers=headers)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        with refused.value as error:
            assert error.code == 403
            assert "another site" in json.loads(error.read())["Error"]
    assert zone.queries == [] and listener.connections == 0
    # The inbox's own page (same origin) runs it.
    same_origin = urllib.request.Request(url, headers={"Sec-Fetch-Site": "same-origin"})
    with urllib.request.urlopen(same_origin, timeout=10) as response:
        assert response.status == 200


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"follow": "maybe"}, "follow must be true or false"),
        ({"refresh": "2"}, "refresh must be true or false"),
    ],
)
def test_a_check_flag_that_is_neither_true_nor_false_is_a_400_naming_it(
    make_server: Callable[..., Server], query: dict[str, str], message: str
) -> None:
    server = make_server()
    message_id = send(server, b"Subject: s\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n")
    api = Api(server)

    for check in ("html-check", "link-check", "auth-check"):
        reply = api.get(f"/api/v1/message/{message_id}/{check}", **query)
        if check != "link-check" and "follow" in query:
            assert reply.status == 200  # only the link check has follow
            continue
        assert reply.status == 400 and message in reply.error, (check, reply.body)
    assert api.get(f"/api/v1/message/{message_id}/html-check", refresh="FALSE").status == 200


def test_unknown_messages_and_latest_of_an_empty_mailbox_are_404s_with_a_json_message(
    make_server: Callable[..., Server],
) -> None:
    api = Api(make_server())

    for check in ("html-check", "link-check", "sa-check", "auth-check"):
        for message_id in ("nope", "latest", "%2e%2e"):
            reply = api.get(f"/api/v1/message/{message_id}/{check}")
            assert reply.status in (400, 404), (check, message_id, reply.status)
            assert reply.error


class StallingSite(ThreadingHTTPServer):
    """A site whose answers wait (until released, or ``stall`` seconds); it counts requests
    in flight."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), StallingHandler)
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.in_flight = self.most_in_flight = 0
        self.released = threading.Event()
        self.stall = 5.0  # seconds an answer waits at most

    def link(self, n: int) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{n}"


class StallingHandler(BaseHTTPRequestHandler):
    server: StallingSite

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        site = self.server
        with site.lock:
            site.requests.append(self.path)
            site.in_flight += 1
            site.most_in_flight = max(site.most_in_flight, site.in_flight)
        site.released.wait(site.stall)
        with site.lock:
            site.in_flight -= 1
        try:
            self.send_response(200)
            self.end_headers()
        except OSError:  # the check hung up
            pass


@pytest.fixture
def stalling() -> Iterator[StallingSite]:
    with serving(StallingSite()) as server:
        yield server
        server.released.set()  # before shutdown, which waits for the stalled answers


def test_a_link_check_ends_at_its_deadline_and_what_it_cut_short_is_not_remembered(
    stalling: StallingSite, dns: tuple[ZoneResolver, Address]
) -> None:
    # Each link has 10 s; 100 links to servers that answer just before that kept one
    # check (and its request) busy for two minutes.
    prober = Prober(make_resolver(dns[1], timeout=2.0), allow_private=True)
    urls = [stalling.link(n) for n in range(20)]

    result = link_check(urls, prober.probe, prober.resolve, seconds=1.0)

    statuses = {link["Status"] for link in result["Links"]}
    assert result["Errors"] == 20 and statuses == {"timed out", NOT_CHECKED}, statuses
    assert len(stalling.requests) <= WORKERS
    stalling.released.set()
    asked = len(stalling.requests)
    assert prober.probe(urls[0], follow=False).status_code == 200  # asked again, not cached
    assert len(stalling.requests) == asked + 1


def test_link_checks_running_together_share_one_bound_on_requests_in_flight(
    stalling: StallingSite, dns: tuple[ZoneResolver, Address]
) -> None:
    # Each check had a pool of its own: n checks at once made 8n connections.
    stalling.stall = 1.0  # each answer comes after a second: the site's count stays true
    prober = Prober(make_resolver(dns[1], timeout=2.0), allow_private=True)
    checks = [
        threading.Thread(
            target=link_check,
            args=([stalling.link(100 * k + n) for n in range(MAX_REQUESTS // 2)], prober.probe),
            kwargs={"resolve": prober.resolve},
        )
        for k in range(3)
    ]
    for check in checks:
        check.start()
    for check in checks:
        check.join(10)

    assert len(stalling.requests) == 3 * (MAX_REQUESTS // 2)
    assert MAX_REQUESTS // 2 < stalling.most_in_flight <= MAX_REQUESTS


# -- spamd -------------------------------------------------------------------------


def test_a_spamd_that_trickles_its_answer_is_cut_at_the_checks_deadline() -> None:
    # The socket timeout bounded each recv only: a byte a second went on for ever.
    listening = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        connection, _ = listening.accept()
        with connection:
            for byte in b"SPAMD/1.1 0 EX_OK\r\nSpam: False ; 0.0 / 5.0\r\n\r\n" * 10:
                if stop.wait(0.05):
                    return
                connection.sendall(bytes([byte]))

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    spamd = Spamd(Address("127.0.0.1", listening.getsockname()[1]), timeout=0.5)
    try:
        result = spam_result(b"Subject: s\r\n\r\nx\r\n", spamd)
    finally:
        stop.set()
        thread.join(10)
        listening.close()

    assert "did not answer in time" in result["Error"], result
