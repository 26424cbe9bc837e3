"""Link check: real HTTP servers on loopback, names from a real DNS server on loopback.

Loopback is what the link check refuses by default, so the tests that make
requests run with ``--link-check-allow-private``, and the refusals are shown
against the same servers without it (they then see no request at all).
Other private ranges are only ever judged, never connected to.
"""

from __future__ import annotations

import ipaddress
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from api_client import Api, send
from dns_server import ZoneResolver, dns_server

from mailtrap import Server
from mailtrap.checks.http_probe import MAX_BODY, Prober
from mailtrap.checks.links import extract_links
from mailtrap.config import Address
from mailtrap.ip_targets import refusal
from mailtrap.resolver import make_resolver

BIG = 64 * 1024 * 1024


class Site(ThreadingHTTPServer):
    """A web site on a loopback port that records what it was asked."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Host)
        self.sent = 0  # body bytes written by /big
        self.big_done = threading.Event()

    @property
    def port(self) -> int:
        return self.server_address[1]


class Handler(BaseHTTPRequestHandler):
    server: Site

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        self.server.requests.append((self.command, self.path, self.headers.get("Host", "")))
        path = self.path
        if path == "/ok":
            self._reply(200)
        elif path == "/moved":
            self._reply(302, Location="/ok")
        elif path == "/loop":
            self._reply(302, Location="/loop")
        elif path.startswith("/to/"):  # /to/<url>: a redirect to anywhere
            self._reply(302, Location=path[len("/to/") :])
        elif path == "/get-only":
            self._reply(405 if self.command == "HEAD" else 200)
        elif path == "/big":
            self._big()
        elif path == "/slow":
            time.sleep(3)
            self._reply(200)
        else:
            self._reply(404)

    def _big(self) -> None:
        """64 MiB to GET (HEAD is not allowed), of which the check reads only its cap."""
        if self.command == "HEAD":
            self._reply(405)
            return
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(BIG // 65536):
                self.wfile.write(b"x" * 65536)
                self.server.sent += 65536
        except OSError:  # the check hung up, as it should
            pass
        finally:
            self.server.big_done.set()

    def _reply(self, code: int, **headers: str) -> None:
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def site() -> Iterator[Site]:
    server = Site()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def dns() -> Iterator[tuple[ZoneResolver, Address]]:
    with dns_server() as (zone, address):
        zone.add("shop.test. 60 IN A 127.0.0.1")
        zone.add("cdn.test. 60 IN A 127.0.0.1")
        zone.add("nowhere.test. 60 IN A 0.0.0.0")
        yield zone, address


def prober(dns: tuple[ZoneResolver, Address], **settings: object) -> Prober:
    return Prober(make_resolver(dns[1], timeout=2.0), **settings)  # type: ignore[arg-type]


def test_links_are_requested_at_the_address_resolved_once_with_their_host_name(
    site: Site, dns: tuple[ZoneResolver, Address]
) -> None:
    zone, _ = dns
    probe = prober(dns, allow_private=True)
    url = f"http://shop.test:{site.port}/ok"

    status = probe.probe(url, follow=False)

    assert (status.status_code, status.status) == (200, "OK")
    assert site.requests == [("HEAD", "/ok", f"shop.test:{site.port}")]
    assert [name for name, _ in zone.queries] == ["shop.test", "shop.test"]  # A, AAAA: once


def test_loopback_is_refused_without_the_flag_and_nothing_is_requested(
    site: Site, dns: tuple[ZoneResolver, Address]
) -> None:
    probe = prober(dns)

    by_name = probe.probe(f"http://shop.test:{site.port}/ok", follow=False)
    by_address = probe.probe(f"http://127.0.0.1:{site.port}/ok", follow=False)
    mapped = probe.probe(f"http://[::ffff:127.0.0.1]:{site.port}/ok", follow=False)

    for status in (by_name, by_address, mapped):
        assert status.status_code == 451
        assert "loopback" in status.status and "--link-check-allow-private" in status.status
    assert site.requests == []


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("100.64.0.1", "shared (CGNAT)"),
        ("::1", "loopback"),
        ("fd00::1", "private"),
        ("fe80::1", "link-local"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_addresses_outside_the_public_internet_are_refused(address: str, kind: str) -> None:
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None and kind in reason


def test_public_addresses_pass_and_the_flag_allows_private_but_never_unspecified() -> None:
    assert refusal(ipaddress.ip_address("93.184.216.34")) is None
    assert refusal(ipaddress.ip_address("2606:4700::1111")) is None
    assert refusal(ipaddress.ip_address("10.0.0.1"), allow_private=True) is None
    assert refusal(ipaddress.ip_address("0.0.0.0"), allow_private=True) is not None
    assert refusal(ipaddress.ip_address("0.1.2.3"), allow_private=True) is not None
    assert refusal(ipaddress.ip_address("::ffff:0.0.0.1"), allow_private=True) is not None
    assert refusal(ipaddress.ip_address("ff02::1"), allow_private=True) is not None


def test_redirects_are_reported_or_followed_and_each_hop_is_vetted(
    site: Site, dns: tuple[ZoneResolver, Address]
) -> None:
    zone, _ = dns
    probe = prober(dns, allow_private=True)
    base = f"http://shop.test:{site.port}"

    assert probe.probe(f"{base}/moved", follow=False).status_code == 302
    assert probe.probe(f"{base}/moved", follow=True).status_code == 200
    elsewhere = probe.probe(f"{base}/to/http://cdn.test:{site.port}/ok", follow=True)
    assert elsewhere.status_code == 200
    assert site.requests[-1] == ("HEAD", "/ok", f"cdn.test:{site.port}")
    assert ("cdn.test", "A") in zone.queries  # the new host was resolved for its hop
    # A hop to an address the flag does not open, or to another scheme, is refused there.
    blocked = probe.probe(f"{base}/to/http://nowhere.test:{site.port}/ok", follow=True)
    assert blocked.status_code == 451 and "unspecified" in blocked.status
    assert probe.probe(f"{base}/to/file:///etc/passwd", follow=True).status_code == 0
    assert "more than 5 redirects" in probe.probe(f"{base}/loop", follow=True).status


def test_a_server_refusing_head_is_asked_with_get_and_a_body_is_read_only_to_the_cap(
    site: Site, dns: tuple[ZoneResolver, Address]
) -> None:
    probe = prober(dns, allow_private=True)
    base = f"http://shop.test:{site.port}"

    assert probe.probe(f"{base}/get-only", follow=False).status_code == 200
    assert [method for method, path, _ in site.requests if path == "/get-only"] == ["HEAD", "GET"]
    assert probe.probe(f"{base}/big", follow=False).status_code == 200
    assert site.big_done.wait(10)
    # The check hung up after MAX_BODY bytes: the rest did not fit the sockets' buffers.
    assert MAX_BODY <= site.sent < BIG // 2


def test_a_slow_server_times_out_and_a_missing_host_or_closed_port_is_an_error(
    site: Site, dns: tuple[ZoneResolver, Address]
) -> None:
    probe = prober(dns, allow_private=True, timeout=1.0)

    slow = probe.probe(f"http://shop.test:{site.port}/slow", follow=False)
    assert (slow.status_code, slow.status) == (0, "timed out")
    missing = probe.probe("http://missing.test/", follow=False)
    assert missing.status_code == 0 and "no such host" in missing.status
    closed = Site()
    port = closed.port
    closed.server_close()  # nothing listens there now
    refused = probe.probe(f"http://127.0.0.1:{port}/", follow=False)
    assert (refused.status_code, refused.status) == (0, "connection refused")


def test_links_come_from_anchors_images_style_sheets_and_the_text_without_repeats() -> None:
    html = (
        '<a href="https://shop.test/a">a</a><img src="http://cdn.test/i.png">'
        '<link rel="stylesheet" href="https://cdn.test/s.css"><link rel="icon" href="http://x/i">'
        '<a href="mailto:a@b">m</a><a href="#top">t</a><a href="https://shop.test/a">again</a>'
    )
    text = "Visit https://shop.test/b. Or <http://shop.test/c>, or ftp://x/y"

    assert extract_links(html, text) == [
        "https://shop.test/a",
        "http://cdn.test/i.png",
        "https://cdn.test/s.css",
        "https://shop.test/b",
        "http://shop.test/c",
    ]
    assert len(extract_links("", " ".join(f"http://h/{n}" for n in range(500)))) == 100


def test_the_link_check_api_answers_mailpits_shape_and_follows_on_request(
    make_server: Callable[..., Server], site: Site, dns: tuple[ZoneResolver, Address]
) -> None:
    server = make_server(dns=dns[1], link_check_allow_private=True)
    base = f"http://shop.test:{site.port}"
    html = f'<a href="{base}/ok">ok</a> <a href="{base}/gone">gone</a> <a href="{base}/moved">m</a>'
    raw = f"Subject: links\r\nContent-Type: text/html\r\n\r\n{html}\r\n".encode()
    message_id = send(server, raw)
    api = Api(server)

    plain = api.ok("GET", f"/api/v1/message/{message_id}/link-check")
    followed = api.ok("GET", f"/api/v1/message/{message_id}/link-check", follow="true")

    assert plain == {
        "Errors": 1,
        "Links": [
            {"URL": f"{base}/ok", "StatusCode": 200, "Status": "OK"},
            {"URL": f"{base}/gone", "StatusCode": 404, "Status": "Not Found"},
            {"URL": f"{base}/moved", "StatusCode": 302, "Status": "Found"},
        ],
    }
    assert [link["StatusCode"] for link in followed["Links"]] == [200, 404, 200]
    asked = len(site.requests)
    assert api.ok("GET", f"/api/v1/message/{message_id}/link-check") == plain  # cached
    assert len(site.requests) == asked
    api.ok("GET", f"/api/v1/message/{message_id}/link-check", refresh="1")
    assert len(site.requests) > asked


def test_without_the_flag_the_api_refuses_loopback_links_and_no_foreign_page_starts_a_check(
    make_server: Callable[..., Server], site: Site, dns: tuple[ZoneResolver, Address]
) -> None:
    server = make_server(dns=dns[1])
    raw = f"Subject: l\r\n\r\nhttp://shop.test:{site.port}/ok\r\n".encode()
    message_id = send(server, raw)
    api = Api(server)

    result = api.ok("GET", f"/api/v1/message/{message_id}/link-check")
    assert result["Errors"] == 1 and result["Links"][0]["StatusCode"] == 451
    assert site.requests == []
    request = urllib.request.Request(
        f"{api.base}/api/v1/message/{message_id}/link-check?refresh=1",
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    with refused.value as error:
        assert error.code == 403
        assert "another site" in error.read().decode()
