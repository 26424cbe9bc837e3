"""What a foreign page or a message opened on its own can do, in Debian's Chromium.

Mailtrap listens on 127.0.0.1; the "foreign" pages and the tracker are tiny
HTTP servers addressed as ``localhost``: another host name, so another site to
the browser. The recorder logs every request it gets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

# test_ui skips itself (and so this module) when Playwright is missing.
from test_ui import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Browser,
    expect,
    open_message,
    playwright_sync,
    send,
    watch_errors,
)

from mailtrap import Server

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
SETTLE = 1.0  # seconds for a refresh of delay 0 or a load to happen, if it ever will


class Site:
    """An HTTP server on an ephemeral port that serves ``page`` and records every request."""

    def __init__(self, page: bytes = b"<p>tracker</p>"):
        self.requests: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://localhost:{self._server.server_port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    return emptied_module_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def tracker() -> Iterator[Site]:
    site = Site()
    yield site
    site.close()


def is_read(server: Server, subject: str) -> bool:
    [message_id] = [i for i in server.store.ids() if server.store.get(i)["subject"] == subject]
    return bool(server.store.get(message_id)["read"])


def test_a_cross_site_image_does_not_mark_mail_read(browser: Browser, server: Server) -> None:
    send(server, "Secret")
    latest = f"{server.http_url.rstrip('/')}/api/v1/message/latest"
    foreign = Site(f'<img id="probe" src="{latest}">'.encode())
    context = browser.new_context()
    try:
        page = context.new_page()
        with page.expect_request(latest):  # the browser did ask Mailtrap
            page.goto(foreign.url)
        # Done (an error: JSON is no image); the server had answered before.
        page.wait_for_function("document.getElementById('probe').complete")
        assert not is_read(server, "Secret")

        # The inbox itself, same origin, still marks what it opens read.
        errors = watch_errors(page)
        page.goto(server.http_url)
        expect(page.locator("#status")).to_have_attribute("data-status", "live")
        open_message(page, "Secret")
        deadline = time.monotonic() + 5
        while not is_read(server, "Secret") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert is_read(server, "Secret")
        assert errors == []
    finally:
        context.close()
        foreign.close()


def hostile_html(tracker: Site) -> str:
    return (
        "<html><head>"
        f'<meta http-equiv="refresh" content="0;url={tracker.url}/refresh">'
        f'<link rel="stylesheet" href="{tracker.url}/style.css">'
        f'<script src="{tracker.url}/script.js"></script>'
        f"<script>document.title = 'ran'; location = '{tracker.url}/script-navigation'</script>"
        "</head><body>"
        f'<h1>Offer</h1><img src="{tracker.url}/pixel.gif">'
        f'<form id="f" action="{tracker.url}/form"><input name="q"></form>'
        f'<a id="top" href="{tracker.url}/top" target="_top">link</a>'
        "</body></html>"
    )


def test_a_message_opened_on_its_own_cannot_navigate_or_load_remote_content(
    browser: Browser, server: Server, tracker: Site
) -> None:
    send(server, "Offer", html=hostile_html(tracker))
    [message_id] = server.store.ids()
    view = f"{server.http_url.rstrip('/')}/view/{message_id}.html"
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(view)
        expect(page.locator("h1")).to_have_text("Offer")
        time.sleep(SETTLE)
        assert page.url == view
        assert page.title() != "ran"
        assert tracker.requests == []

        # ?remote=1 is the explicit choice for images, and for nothing else.
        page.goto(f"{view}?remote=1")
        expect(page.locator("h1")).to_have_text("Offer")
        deadline = time.monotonic() + 5
        while "/pixel.gif" not in tracker.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(SETTLE)
        assert page.url == f"{view}?remote=1"
        assert tracker.requests == ["/pixel.gif"]
    finally:
        context.close()
