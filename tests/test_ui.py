"""The web inbox in a real browser: Debian's headless Chromium driven by Playwright.

Mail goes in over SMTP with smtplib, and every check is on what the page shows.
One browser per module, a fresh page (and browser context) per test; any uncaught
error or console error of the inbox page fails the test.
"""

from __future__ import annotations

import base64
import json
import re
import smtplib
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mailtrap import Server
from mailtrap.rows import IncomingMessage

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed: apt-get install chromium"
)
playwright_sync = pytest.importorskip("playwright.sync_api")
Browser = playwright_sync.Browser
Page = playwright_sync.Page
Locator = playwright_sync.Locator
expect = playwright_sync.expect

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
# Scripts that mark the page (or the frame's parent) if they ever run.
PWN = "window.__pwned=1;parent.__pwned=1"


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
def page(browser: Browser, server: Server) -> Iterator[Page]:
    """The inbox of ``server``, loaded and live (its websocket is connected)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors = watch_errors(page)
    page.set_default_timeout(5000)
    page.goto(server.http_url)
    expect(page.locator("#status")).to_have_attribute("data-status", "live")
    yield page
    context.close()
    assert errors == [], "the inbox page reported errors"


def watch_errors(page: Page) -> list[str]:
    """The uncaught errors and console errors of the inbox page, as they happen."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))

    def on_console(message: playwright_sync.ConsoleMessage) -> None:
        # The mail frame logs the scripts its sandbox blocks: that is the point.
        if message.type == "error" and "/view/" not in message.location.get("url", ""):
            errors.append(f"console: {message.text}")

    page.on("console", on_console)
    return errors


def send(
    server: Server,
    subject: str = "Hello",
    *,
    sender: str = "App <app@example.com>",
    to: str = "ann@example.com",
    text: str = "Plain text body.",
    html: str | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    if attachment is not None:
        filename, data = attachment
        message.add_attachment(data, maintype="application", subtype="pdf", filename=filename)
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        client.send_message(message)


def rows(page: Page) -> Locator:
    return page.locator("#list .row")


def row(page: Page, subject: str) -> Locator:
    return rows(page).filter(has=page.locator(".subject-text", has_text=subject))


def open_message(page: Page, subject: str) -> None:
    row(page, subject).click()
    expect(page.locator(".message-subject")).to_have_text(subject)


def ids_by_subject(server: Server) -> dict[str, str]:
    return {server.store.get(i)["subject"]: i for i in server.store.ids()}


# -- the page itself ------------------------------------------------------------


def test_the_page_is_served_with_a_strict_content_security_policy(server: Server):
    with urllib.request.urlopen(server.http_url, timeout=10) as response:
        policy = response.headers["Content-Security-Policy"]
        body = response.read().decode()
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if " " in d.strip())
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert "unsafe" not in policy
    assert directives["frame-ancestors"] == "'none'"
    assert re.search(r'<script type="module" src="static/[0-9a-f]{12}/js/app.js">', body)
    assert "<script>" not in body and "style=" not in body  # nothing inline for the CSP to allow


def test_webui_configuration_has_mailpits_fields_and_the_smtp_address(server: Server):
    with urllib.request.urlopen(server.http_url + "api/v1/webui", timeout=10) as response:
        config = json.load(response)
    for field in ("Label", "MessageRelay", "SpamAssassin", "ChaosEnabled", "DuplicatesIgnored"):
        assert field in config
    assert config["MessageRelay"]["Enabled"] is False
    smtp = server.smtp_address
    assert config["SMTP"] == {
        "Host": smtp.host,
        "Port": smtp.port,
        "STARTTLS": False,
        "RequireTLS": False,
        "Auth": False,
    }


def test_the_empty_inbox_shows_where_to_send_mail(page: Page, server: Server):
    welcome = page.locator("#welcome")
    expect(welcome).to_be_visible()
    expect(page.locator("#smtp-host")).to_have_text(server.smtp_address.host)
    expect(page.locator("#smtp-port")).to_have_text(str(server.smtp_address.port))
    expect(page.locator("#smtp-example")).to_contain_text(f":{server.smtp_address.port} ")
    expect(page).to_have_title("Mailtrap")


# -- live list, read state, title -----------------------------------------------------


def test_mail_sent_over_smtp_appears_without_a_reload(page: Page, server: Server):
    send(server, "Welcome aboard", sender="Acme <hello@acme.test>", text="Thanks for joining")

    first = rows(page).first
    expect(first.locator(".subject-text")).to_have_text("Welcome aboard")
    expect(first.locator(".from")).to_have_text("Acme")
    expect(first.locator(".snippet")).to_contain_text("Thanks for joining")
    expect(first).to_have_class(re.compile(r"\bunread\b"))
    expect(page.locator("#welcome")).to_be_hidden()

    send(server, "Second one")
    expect(rows(page)).to_have_count(2)
    expect(rows(page).first.locator(".subject-text")).to_have_text("Second one")  # newest first
    expect(page).to_have_title("(2) Mailtrap")


def test_opening_marks_read_and_r_toggles_it_back(page: Page, server: Server):
    send(server, "First")
    send(server, "Second")
    expect(page).to_have_title("(2) Mailtrap")

    open_message(page, "First")
    expect(row(page, "First")).not_to_have_class(re.compile(r"\bunread\b"))
    expect(page).to_have_title("(1) Mailtrap")
    first_id = ids_by_subject(server)["First"]
    _wait_for(lambda: server.store.get(first_id)["read"] == 1)

    page.get_by_role("button", name="Mark unread").click()
    expect(row(page, "First")).to_have_class(re.compile(r"\bunread\b"))
    expect(page).to_have_title("(2) Mailtrap")
    _wait_for(lambda: server.store.get(first_id)["read"] == 0)

    page.locator("#list").focus()
    page.keyboard.press("r")  # the cursor is on the open message
    expect(page).to_have_title("(1) Mailtrap")

    # A change made elsewhere (another tab, the API) shows up live.
    server.store.set_read(None, True).result(timeout=10)
    expect(page).to_have_title("Mailtrap")
    expect(page.locator("#list .row.unread")).to_have_count(0)


def test_paging_through_more_than_one_page(page: Page, server: Server):
    for number in range(60):
        raw = f"From: a@example.com\r\nSubject: Message {number}\r\n\r\nbody\r\n".encode()
        server.store.add(IncomingMessage(raw, "a@example.com", ["b@example.com"]))
    server.store.add(IncomingMessage(b"Subject: last\r\n\r\n", "a@x", ["b@x"])).result(timeout=10)
    page.reload()

    expect(rows(page)).to_have_count(50)
    expect(page.locator("#range")).to_have_text("1\N{EN DASH}50 of 61")
    page.locator("#next-page").click()
    expect(rows(page)).to_have_count(11)
    expect(rows(page).last.locator(".subject-text")).to_have_text("Message 0")
    page.locator("#list").focus()
    page.keyboard.press("[")
    expect(rows(page)).to_have_count(50)


# -- message view -------------------------------------------------------------------


def test_the_html_tab_renders_the_body_in_a_sandboxed_frame(page: Page, server: Server):
    # "Remote" is another origin; localhost keeps it on this machine.
    remote_image = f"http://localhost:{server.http_address.port}/static/favicon.svg?remote"
    html = (
        "<html><body><h1>Confirm your address</h1>"
        '<p><a href="https://app.example.test/confirm">Confirm</a></p>'
        f'<img src="{remote_image}" alt="">'
        "</body></html>"
    )
    fetched: list[str] = []  # URLs that got an answer (blocked ones get none)
    page.on("response", lambda response: fetched.append(response.url))
    send(server, "Confirm", html=html)
    open_message(page, "Confirm")

    frame_element = page.locator("iframe.html-frame")
    sandbox = frame_element.get_attribute("sandbox")
    assert sandbox is not None and "allow-scripts" not in sandbox
    assert "allow-same-origin" not in sandbox
    assert re.search(r"view/[^/]+\.html$", frame_element.get_attribute("src") or "")
    frame = page.frame_locator("iframe.html-frame")
    expect(frame.locator("h1")).to_have_text("Confirm your address")

    # The remote image stays blocked until asked for.
    assert remote_image not in fetched
    page.get_by_role("button", name="Load remote images").click()
    expect(frame_element).to_have_attribute("src", re.compile(r"\?remote=1$"))
    expect(frame.locator("h1")).to_have_text("Confirm your address")
    expect(page.get_by_role("button", name="Load remote images")).to_have_count(0)
    _wait_for(lambda: remote_image in fetched)

    page.get_by_role("button", name="Phone (375 px)").click()
    expect(page.locator(".preview")).to_have_class(re.compile("width-phone"))
    assert 360 <= frame_element.bounding_box()["width"] <= 380  # type: ignore[index]
    page.get_by_role("button", name="Desktop (full width)").click()
    assert frame_element.bounding_box()["width"] > 600  # type: ignore[index]

    page.get_by_role("tab", name="Text").click()
    expect(page.locator(".text-body")).to_have_text("Plain text body.\n")
    page.get_by_role("tab", name="Raw", exact=True).click()
    expect(page.locator(".source")).to_contain_text("Subject: Confirm")
    page.get_by_role("tab", name="Headers").click()
    expect(page.locator(".headers th", has_text="Subject")).to_be_visible()


def test_inline_cid_images_show_in_the_html_tab(page: Page, server: Server):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "Logo"
    message.set_content("text")
    message.add_alternative('<p><img id="logo" src="cid:logo@acme"></p>', subtype="html")
    html_part = message.get_payload()[1]  # type: ignore[index]
    html_part.add_related(PIXEL_PNG, maintype="image", subtype="png", cid="<logo@acme>")
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        client.send_message(message)

    open_message(page, "Logo")
    expect(page.frame_locator("iframe.html-frame").locator("#logo")).to_be_attached()
    frame = page.locator("iframe.html-frame").element_handle().content_frame()
    assert frame is not None
    _wait_for(lambda: frame.evaluate("document.getElementById('logo').naturalWidth") == 1)


def test_attachments_download_from_the_part_route(page: Page, server: Server):
    send(server, "Invoice", attachment=("invoice-42.pdf", b"%PDF-1.4 fake"))
    expect(row(page, "Invoice").locator(".clip")).to_be_visible()
    open_message(page, "Invoice")

    page.get_by_role("tab", name=re.compile("Attachments")).click()
    link = page.get_by_role("link", name="Download invoice-42.pdf", exact=True)
    assert link.get_attribute("download") == "invoice-42.pdf"
    href = link.get_attribute("href") or ""
    assert re.fullmatch(r"api/v1/message/[^/]+/part/[\d.]+", href)
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "invoice-42.pdf"


# -- search and delete ---------------------------------------------------------------


def test_search_narrows_the_list(page: Page, server: Server):
    send(server, "Your invoice is ready")
    send(server, "Reset your password")
    send(server, "Welcome")
    expect(rows(page)).to_have_count(3)

    page.keyboard.press("/")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.type("invoice")
    page.keyboard.press("Enter")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first.locator(".subject-text")).to_have_text("Your invoice is ready")
    expect(page.locator("#count")).to_have_text("1 result")
    assert "q=invoice" in page.url

    page.locator("#search").fill("nothing-matches-this")
    page.keyboard.press("Enter")
    expect(page.locator("#no-results")).to_contain_text("nothing-matches-this")

    page.keyboard.press("Escape")  # leaves and clears the search
    expect(rows(page)).to_have_count(3)


def test_delete_one_then_all(page: Page, server: Server):
    for subject in ("One", "Two", "Three", "Four"):
        send(server, subject)
    expect(rows(page)).to_have_count(4)

    open_message(page, "Two")
    page.locator(".message-toolbar").get_by_role("button", name="Delete").click()
    expect(row(page, "Two")).to_have_count(0)
    expect(page.locator(".placeholder")).to_be_visible()
    _wait_for(lambda: server.store.count() == 3)

    # Deleted elsewhere: gone from the page too.
    server.store.delete([ids_by_subject(server)["Three"]]).result(timeout=10)
    expect(rows(page)).to_have_count(2)

    page.locator("#delete-all").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(rows(page)).to_have_count(2)
    page.locator("#delete-all").click()
    dialog.get_by_role("button", name="Delete all").click()
    expect(page.locator("#welcome")).to_be_visible()
    assert server.store.count() == 0
    expect(page).to_have_title("Mailtrap")


def test_keyboard_navigation(page: Page, server: Server):
    for subject in ("Oldest", "Middle", "Newest"):
        send(server, subject)
    expect(rows(page)).to_have_count(3)
    page.locator("#list").focus()

    cursor = page.locator("#list .row.cursor .subject-text")
    expect(cursor).to_have_text("Newest")
    page.keyboard.press("j")
    expect(cursor).to_have_text("Middle")
    page.keyboard.press("ArrowDown")
    expect(cursor).to_have_text("Oldest")
    page.keyboard.press("k")
    expect(cursor).to_have_text("Middle")

    page.keyboard.press("Enter")
    expect(page.locator(".message-subject")).to_have_text("Middle")
    page.keyboard.press("2")  # the Text tab
    expect(page.get_by_role("tab", name="Text")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Escape")
    expect(page.locator(".placeholder")).to_be_visible()

    page.keyboard.press("r")
    expect(row(page, "Middle")).to_have_class(re.compile(r"\bunread\b"))
    page.keyboard.press("Delete")
    expect(rows(page)).to_have_count(2)
    expect(cursor).to_have_text("Oldest")  # the cursor stays in place
    _wait_for(lambda: server.store.count() == 2)

    page.keyboard.press("?")
    expect(page.locator("#shortcuts-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#shortcuts-dialog")).to_be_hidden()


# -- phones and sub-paths ------------------------------------------------------------------


def test_a_phone_gets_one_pane_at_a_time(page: Page, server: Server):
    send(server, "Small screen")
    page.set_viewport_size({"width": 390, "height": 800})
    expect(page.locator("#view")).to_be_hidden()

    open_message(page, "Small screen")
    expect(page.locator(".list-pane")).to_be_hidden()
    page.get_by_role("button", name="Inbox").click()
    expect(page.locator(".list-pane")).to_be_visible()
    expect(page.locator("#view")).to_be_hidden()


def test_the_inbox_works_under_a_webroot(browser: Browser, make_server: Callable[..., Server]):
    server = make_server(webroot="/mail/")
    assert server.http_url.endswith("/mail/")
    context = browser.new_context()
    try:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(server.http_url)
        expect(page.locator("#status")).to_have_attribute("data-status", "live")
        send(server, "Under a prefix", html="<h1>Prefixed</h1>")
        open_message(page, "Under a prefix")
        expect(page.frame_locator("iframe.html-frame").locator("h1")).to_have_text("Prefixed")
        page.get_by_role("tab", name="Raw", exact=True).click()
        expect(page.locator(".source")).to_contain_text("Subject: Under a prefix")
        assert errors == []
    finally:
        context.close()


# -- nothing from a message ever runs --------------------------------------------------


def test_script_in_subject_name_filename_or_html_never_runs(page: Page, server: Server):
    # Images that fail without a network request: onerror would fire at once.
    bad_image = f'<img src="data:image/png;base64,AAAA" onerror="{PWN}">'
    subject = f"<script>{PWN}</script>{bad_image}"
    name = f"<svg onload='{PWN}'>Mallory"
    filename = f"{bad_image}.pdf"
    html = (
        f"<html><body><h1>Hi</h1><script>{PWN}</script>{bad_image}"
        f'<a id="js" href="javascript:{PWN}">click</a>'
        f'<form action="javascript:{PWN}"><button id="go">go</button></form></body></html>'
    )
    send(
        server,
        subject,
        sender=f'"{name}" <mallory@evil.test>',
        html=html,
        attachment=(filename, b"%PDF-1.4"),
    )

    first = rows(page).first
    expect(first.locator(".subject-text")).to_have_text(subject)  # shown literally
    expect(first.locator(".from")).to_have_text(name)
    first.click()
    expect(page.locator(".message-subject")).to_have_text(subject)
    expect(page.locator(".from-name")).to_have_text(name)
    frame = page.frame_locator("iframe.html-frame")
    expect(frame.locator("h1")).to_have_text("Hi")
    frame.locator("#js").click()
    frame.locator("#go").click()

    page.get_by_role("tab", name=re.compile("Attachments")).click()
    expect(page.locator(".part-name")).to_have_text(filename)
    page.get_by_role("tab", name="Headers").click()
    expect(page.locator(".headers td", has_text="Mallory").first).to_be_visible()
    page.get_by_role("tab", name="Raw", exact=True).click()
    expect(page.locator(".source")).to_contain_text("mallory@evil.test")

    page.wait_for_timeout(200)  # time for anything that would run to have run
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("#layout [onerror], #layout [onload], #layout script").count() == 0
    for child in page.main_frame.child_frames:
        assert child.evaluate("typeof window.__pwned") == "undefined"


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll a server-side condition that follows an asynchronous UI action."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# -- foreign pages, and a message opened on its own ------------------------------------
# Mailtrap listens on 127.0.0.1; the foreign pages and the tracker are tiny HTTP
# servers addressed as localhost: another host name, so another site to the browser.

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
        _wait_for(lambda: is_read(server, "Secret"))
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
        _wait_for(lambda: "/pixel.gif" in tracker.requests)
        time.sleep(SETTLE)
        assert page.url == f"{view}?remote=1"
        assert tracker.requests == ["/pixel.gif"]
    finally:
        context.close()
