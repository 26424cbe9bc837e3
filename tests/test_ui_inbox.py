"""The inbox people keep open all day (issue 11), in Debian's Chromium.

Selection and bulk actions, tags, the views of a message, phones and
accessibility (axe-core from npm, run in the page), feedback (undo, offline,
badge, notifications) and paging. Each test covers one point with as few page
loads as it can: browser tests are the slow part of the suite.
"""

from __future__ import annotations

import io
import json
import re
import smtplib
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import pytest
from PIL import Image
from test_ui import (
    Browser,
    Page,
    _wait_for,
    browser,  # noqa: F401  (the module's browser)
    expect,
    open_message,
    page,  # noqa: F401  (the inbox page)
    pytestmark,  # noqa: F401  (skipped without Debian's chromium)
    row,
    rows,
    send,
    watch_errors,
)

from mailtrap import Server
from mailtrap.config import Address
from mailtrap.rows import IncomingMessage

AXE = Path(__file__).parent / "js" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture
def server(emptied_module_server: Server) -> Server:
    return emptied_module_server


def store_messages(server: Server, subjects: list[str], **headers: str) -> None:
    """Messages straight into the store (faster than SMTP when many are needed)."""
    extra = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    head = "From: a@example.com\r\nTo: b@example.com\r\n"
    futures = [
        server.store.add(
            IncomingMessage(
                f"{head}Subject: {subject}\r\n{extra}\r\nbody\r\n".encode(),
                "a@example.com",
                ["b@example.com"],
            )
        )
        for subject in subjects
    ]
    for future in futures:
        future.result(timeout=10)


def by_subject(server: Server) -> dict[str, dict]:
    rows_ = [server.store.get(i) for i in server.store.ids()]
    return {
        r["subject"]: {"read": bool(r["read"]), "tags": json.loads(r["tags"] or "[]")}
        for r in rows_
    }


def checkbox(page: Page, subject: str):
    return row(page, subject).locator(".select")


# -- 1. selection and bulk actions -----------------------------------------------------


def test_selection_ranges_and_bulk_actions_act_on_the_selection_or_the_results(
    page: Page, server: Server
):
    store_messages(server, [f"Other {n}" for n in range(5)] + [f"Invoice {n}" for n in range(30)])
    page.reload()
    page.select_option("#page-size", "25")
    expect(rows(page)).to_have_count(25)

    # A click on a box, a Shift-click for the range, Ctrl-click to add and take away.
    checkbox(page, "Invoice 29").click()
    row(page, "Invoice 26").click(modifiers=["Shift"])
    expect(page.locator("#bulk-count")).to_have_text("4 selected")
    row(page, "Invoice 20").click(modifiers=["Control"])
    expect(page.locator("#bulk-count")).to_have_text("5 selected")
    row(page, "Invoice 20").click(modifiers=["Control"])
    expect(page.locator("#bulk-count")).to_have_text("4 selected")
    expect(page.locator(".message-subject")).to_have_count(0)  # selecting opened nothing
    page.get_by_role("button", name="Mark 4 messages read").click()
    _wait_for(lambda: sum(m["read"] for m in by_subject(server).values()) == 4)
    assert {s for s, m in by_subject(server).items() if m["read"]} == {
        f"Invoice {n}" for n in (26, 27, 28, 29)
    }
    page.get_by_role("button", name="Clear the selection").click()
    expect(page.locator("#bulk")).to_be_hidden()

    # During a search, "all" means every result, and every action says how many.
    page.locator("#search").fill("invoice")
    page.keyboard.press("Enter")
    expect(page.locator("#count")).to_have_text("30 results")
    expect(page.locator("#mark-all-read .label")).to_have_text("Mark 26 read")
    expect(page.locator("#delete-all .label")).to_have_text("Delete 30 results")
    page.locator("#select-page").check()
    expect(page.locator("#select-all-bar")).to_contain_text("All 25 on this page are selected")
    page.get_by_role("button", name="Select all 30 results").click()
    expect(page.locator("#bulk-count")).to_have_text("All 30 selected")

    page.get_by_role("button", name="Tag or untag 30 messages").click()
    page.locator("#tag-input").fill("billing")
    page.get_by_role("button", name="Add tag").click()
    _wait_for(lambda: sum("billing" in m["tags"] for m in by_subject(server).values()) == 30)
    assert all(not m["tags"] for s, m in by_subject(server).items() if s.startswith("Other"))

    page.get_by_role("button", name="Mark 30 messages unread").click()
    _wait_for(lambda: not any(m["read"] for m in by_subject(server).values()))

    page.get_by_role("button", name="Delete 30 messages").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Delete 30").click()
    _wait_for(lambda: server.store.count() == 5)
    assert set(by_subject(server)) == {f"Other {n}" for n in range(5)}


# -- 2. tags ------------------------------------------------------------------------------


def test_tags_are_added_removed_renamed_and_counted(page: Page, server: Server):
    for subject in ("Welcome", "Receipt", "Digest"):
        send(server, subject)
    expect(rows(page)).to_have_count(3)
    expect(page.locator("#tag-bar")).to_be_hidden()

    open_message(page, "Welcome")
    page.locator(".message-tags").get_by_role("button", name="Add tag").click()
    page.locator("#tag-input").fill("signup flow")
    page.keyboard.press("Enter")
    expect(page.locator(".message-tags .tag-name")).to_have_text(["signup flow"])
    expect(row(page, "Welcome").locator(".tag")).to_have_text("signup flow")
    bar_chip = page.locator("#tag-bar .tag", has_text="signup flow")
    expect(bar_chip).to_have_text("signup flow1")

    # A selection gets the same tag; the count follows.
    checkbox(page, "Receipt").click()
    checkbox(page, "Digest").click()
    page.get_by_role("button", name="Tag or untag 2 messages").click()
    page.locator("#tag-input").fill("signup flow")
    page.get_by_role("button", name="Add tag").click()
    expect(bar_chip).to_have_text("signup flow3")

    # The same tag has the same colour wherever it is shown.
    colours = page.evaluate(
        """() => [...document.querySelectorAll('.tag')]
              .filter((e) => e.textContent.startsWith('signup flow'))
              .map((e) => getComputedStyle(e).backgroundColor)"""
    )
    assert len(colours) >= 5 and len(set(colours)) == 1

    # The tag bar filters on a click (and a second click leaves the filter).
    bar_chip.click()
    expect(page.locator("#search")).to_have_value('tag:"signup flow"')
    expect(page.locator("#count")).to_have_text("3 results")
    bar_chip.click()
    expect(page.locator("#search")).to_have_value("")

    page.get_by_role("button", name="Remove tag signup flow").click()
    _wait_for(lambda: by_subject(server)["Welcome"]["tags"] == [])
    expect(bar_chip).to_have_text("signup flow2")

    page.locator("#manage-tags").click()
    dialog = page.locator("#tags-dialog")
    dialog.get_by_role("button", name="Rename signup flow").click()
    dialog.get_by_label("New name for signup flow").fill("onboarding")
    page.keyboard.press("Enter")
    _wait_for(lambda: by_subject(server)["Receipt"]["tags"] == ["onboarding"])
    dialog.get_by_role("button", name="Delete tag onboarding").click()
    _wait_for(lambda: all(not m["tags"] for m in by_subject(server).values()))
    expect(dialog.locator(".tags-empty")).to_be_visible()
    dialog.get_by_role("button", name="Close").click()
    expect(page.locator("#tag-bar")).to_be_hidden()


# -- 3. views of a message ---------------------------------------------------------------

INVITE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
    "SUMMARY:Quarterly planning\\, room 4\r\nDTSTART:20250310T140000Z\r\nDTEND:20250310T150000Z\r\n"
    'ORGANIZER;CN="Lee, Dana":mailto:dana@example.com\r\n'
    "ATTENDEE;CN=Ann;PARTSTAT=ACCEPTED:mailto:ann@example.com\r\n"
    "ATTENDEE;CN=Bob:mailto:bob@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
LONG_NAME = "quarterly-report-with-a-very-long-file-name-that-goes-on-and-on-2025.pdf"


def png(width: int, height: int, colour: str = "red") -> bytes:
    output = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(output, "PNG")
    return output.getvalue()


def rich_message() -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "Rich"
    message["List-Unsubscribe"] = "<mailto:leave@example.com>, <https://example.com/leave?u=1>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content("Plain café body\n")
    # Quoted-printable on the wire (=3D, soft breaks): the source tab shows it decoded.
    html = (
        '<html><body><p class="lead">Café '
        + "long line " * 20
        + '</p><img src="cid:logo@x"></body></html>'
    )
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    message.get_payload()[1].add_related(png(4, 4), maintype="image", subtype="png", cid="<logo@x>")  # type: ignore[index]
    message.add_attachment(png(400, 300), maintype="image", subtype="png", filename="photo.png")
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename=LONG_NAME)
    message.add_attachment(
        INVITE.encode(), maintype="text", subtype="calendar", params={"method": "REQUEST"}
    )
    return message


def test_views_of_a_message_source_downloads_thumbnails_invites_and_unsubscribe(
    page: Page, server: Server
):
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        client.send_message(rich_message())
    open_message(page, "Rich")
    message_id = server.store.ids()[0]

    # List-Unsubscribe, checked: both links, and RFC 8058 one-click holds.
    unsubscribe = page.locator(".unsubscribe")
    expect(unsubscribe.locator("a")).to_have_text(
        ["mailto:leave@example.com", "https://example.com/leave?u=1"]
    )
    expect(unsubscribe.locator(".pill.ok")).to_have_text("one-click (RFC 8058)")

    # The invitation's card.
    invite = page.locator(".invite")
    expect(invite.locator(".invite-title")).to_have_text("Quarterly planning, room 4")
    expect(invite).to_contain_text("Organiser: Lee, Dana <dana@example.com>")
    expect(invite).to_contain_text("2 attendees: Ann, Bob")

    # HTML source: decoded (no quoted-printable) and highlighted.
    page.get_by_role("tab", name="HTML source").click()
    source = page.locator(".html-source")
    expect(source).to_contain_text('<p class="lead">Café long line')
    assert "=3D" not in source.inner_text()
    expect(source.locator(".hl-tag", has_text="<p").first).to_be_visible()
    expect(source.locator(".hl-attr", has_text="class")).to_have_count(1)
    expect(source.locator(".hl-value", has_text='"lead"')).to_have_count(1)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download .html").click()
    assert download.value.suggested_filename == f"{message_id}.html"
    assert "Café" in Path(download.value.path()).read_text()
    page.get_by_role("tab", name="Text", exact=True).click()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download .txt").click()
    assert Path(download.value.path()).read_text() == "Plain café body\n"

    # Attachments: a thumbnail made by the server, the whole file name, an
    # unnamed inline image labelled as what it is, not by its Content-ID.
    page.get_by_role("tab", name=re.compile("Attachments")).click()
    photo = page.locator(".part", has_text="photo.png")
    _wait_for(lambda: photo.locator("img.thumb").evaluate("i => i.naturalWidth") == 180)
    assert photo.locator("img.thumb").evaluate("i => i.naturalHeight") == 120
    name = page.locator(".part-name", has_text="quarterly-report")
    expect(name).to_have_text(LONG_NAME)
    box = name.bounding_box()
    assert box is not None and name.evaluate("e => e.scrollWidth <= e.clientWidth")
    expect(page.locator(".part-name", has_text="Inline image")).to_have_text("Inline image (PNG)")
    expect(page.locator(".part-name", has_text="logo@x")).to_have_count(0)


# -- 4. phones and accessibility ---------------------------------------------------------


def axe_violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "(tags) => axe.run(document, { runOnly: { type: 'tag', values: tags } })", WCAG_AA
    )
    return [
        f"{v['id']}: {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
        for v in result["violations"]
    ]


def test_accessibility_in_both_themes_and_at_phone_width(browser: Browser, server: Server):
    assert AXE.exists(), "npm install --prefix tests/js (axe-core)"
    many = ", ".join(f"person{n}@example.com" for n in range(55))
    send(server, "Team update", to=many, html="<p>Hello team</p>")
    send(server, "Tagged")
    server.store.set_tags([server.store.ids()[-1]], ["urgent", "billing"]).result(timeout=10)
    # axe is injected as a script: the page's CSP (which allows none) is bypassed for it.
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    try:
        page = context.new_page()
        page.set_default_timeout(5000)
        errors = watch_errors(page)
        page.goto(server.http_url)
        open_message(page, "Team update")
        checkbox(page, "Tagged").click()  # the bulk bar is on screen too
        expect(page.locator(".recipients")).to_contain_text("+52 more")
        theme = page.locator("#theme-button")
        for name in ("light", "dark"):
            while page.evaluate("document.documentElement.dataset.theme || 'system'") != name:
                theme.click()
            assert axe_violations(page) == [], f"{name} theme"
        dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
        theme.click()  # back to the system's theme (light in this browser)...
        theme.click()  # ...then light by hand
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") != dark
        page.reload()
        assert page.evaluate("document.documentElement.dataset.theme") == "light"  # remembered

        # Keyboard focus shows.
        page.locator("#search").focus()
        page.keyboard.press("Tab")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline not in ("", "none")

        # 360 px: nothing wider than the screen; the recipients folded; every tab on screen.
        page.set_viewport_size({"width": 360, "height": 740})
        expect(page.locator(".message-subject")).to_have_text("Team update")  # open since before
        expect(page.locator(".recipients button.more")).to_have_text("+52 more")
        for tab in page.get_by_role("tab").all():
            tab_box = tab.bounding_box()
            assert (
                tab_box is not None and tab_box["x"] >= 0 and tab_box["x"] + tab_box["width"] <= 360
            )
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.locator(".recipients button.more").click()
        expect(page.locator(".recipients")).to_contain_text("person54@example.com")
        assert axe_violations(page) == [], "phone"

        server.store.delete_all().result(timeout=10)
        expect(page.locator("#welcome")).to_be_visible()
        card = page.locator(".welcome-card").bounding_box()
        assert card is not None and card["x"] >= 0 and card["x"] + card["width"] <= 360
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        assert axe_violations(page) == [], "empty inbox"
        assert errors == []
    finally:
        context.close()


# -- 5. feedback -------------------------------------------------------------------------------


def test_undo_a_delete_before_it_is_sent(page: Page, server: Server):
    for subject in ("Keep me", "Delete me"):
        send(server, subject)
    expect(rows(page)).to_have_count(2)
    open_message(page, "Keep me")
    page.locator(".message-toolbar").get_by_role("button", name="Delete").click()
    expect(row(page, "Keep me")).to_have_count(0)
    page.locator("#toast").get_by_role("button", name="Undo").click()
    expect(row(page, "Keep me")).to_have_count(1)
    page.wait_for_timeout(4500)  # past the undo window: nothing was sent
    assert server.store.count() == 2

    checkbox(page, "Delete me").click()
    page.get_by_role("button", name="Delete 1 message").click()
    expect(page.locator("#toast")).to_contain_text("Deleted 1 message")
    assert server.store.count() == 2  # not yet: Undo is still possible
    _wait_for(lambda: server.store.count() == 1, timeout=10)
    assert list(by_subject(server)) == ["Keep me"]


def test_offline_state_blocks_actions_and_recovers(browser: Browser, tmp_path: Path):
    def start(port: int = 0) -> Server:
        loopback = Address("127.0.0.1", 0)
        return Server(
            db=tmp_path / "mail.db", smtp=loopback, http=Address("127.0.0.1", port), pop3=loopback
        ).start()

    server = start()
    port = server.http_address.port
    send(server, "First")
    send(server, "While away")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(server.http_url)
        expect(rows(page)).to_have_count(2)
        expect(page).to_have_title("(2) Mailtrap")
        icon = page.locator('link[rel="icon"]')
        expect(icon).to_have_attribute("data-unread", "2")
        assert (icon.get_attribute("href") or "").startswith("data:image/svg+xml")

        server.stop()
        expect(page.locator("#offline-banner")).to_be_visible()
        expect(page.locator("#delete-all")).to_be_disabled()
        row(page, "While away").click()
        expect(page.locator(".offline-note")).to_contain_text("cannot be reached")
        expect(row(page, "While away")).to_have_class(re.compile(r"\bunread\b"))  # not faked
        expect(page).to_have_title("(2) Mailtrap")
        page.locator("#retry-now").click()  # still away: the banner stays
        expect(page.locator("#offline-banner")).to_be_visible()

        server = start(port)  # back, on the same address: the page's retries find it
        expect(page.locator("#offline-banner")).to_be_hidden(timeout=20000)
        expect(page.locator(".message-subject")).to_have_text("While away")
        expect(page.locator(".tab-panel")).not_to_contain_text("cannot be reached")
        expect(row(page, "While away")).not_to_have_class(re.compile(r"\bunread\b"))
        expect(icon).to_have_attribute("data-unread", "1")
    finally:
        context.close()
        server.stop()


# Records each notification the page shows (the real constructor still runs).
RECORD_NOTIFICATIONS = """
window.__notifications = [];
const Real = window.Notification;
window.Notification = class extends Real {
  constructor(title, options) { super(title, options); window.__notifications.push(title); }
};
"""


def test_notifications_for_new_mail_are_opt_in(browser: Browser, server: Server):
    context = browser.new_context(permissions=["notifications"])
    try:
        page = context.new_page()
        page.add_init_script(RECORD_NOTIFICATIONS)
        page.goto(server.http_url)
        expect(page.locator("#status")).to_have_attribute("data-status", "live")
        send(server, "Before opting in")
        expect(rows(page)).to_have_count(1)
        bell = page.locator("#notify-button")
        expect(bell).to_have_attribute("aria-pressed", "false")
        bell.click()
        expect(bell).to_have_attribute("aria-pressed", "true")
        send(server, "Your code is 1234")
        page.wait_for_function("() => window.__notifications.length > 0")
        assert page.evaluate("window.__notifications") == ["Your code is 1234"]
    finally:
        context.close()


# -- 6. paging and navigation ------------------------------------------------------------------


def test_page_size_is_remembered_page_jump_and_j_opens_the_next(page: Page, server: Server):
    store_messages(server, [f"Message {n}" for n in range(60)])
    page.reload()
    expect(rows(page)).to_have_count(50)
    page.select_option("#page-size", "25")
    expect(rows(page)).to_have_count(25)
    page.reload()
    expect(rows(page)).to_have_count(25)  # remembered (and preloaded at that size)
    expect(page.locator("#page-count")).to_have_text("of 3")
    page.locator("#page-number").fill("3")
    page.keyboard.press("Enter")
    expect(rows(page)).to_have_count(10)
    expect(page.locator("#range")).to_have_text("51\N{EN DASH}60 of 60")

    open_message(page, "Message 9")
    page.locator("#list").focus()
    page.keyboard.press("j")
    expect(page.locator(".message-subject")).to_have_text("Message 8")
    page.keyboard.press("k")
    expect(page.locator(".message-subject")).to_have_text("Message 9")
    page.keyboard.press("k")  # past the top of the page: the last of the one before
    expect(page.locator(".message-subject")).to_have_text("Message 10")
    expect(page.locator("#page-number")).to_have_value("2")


# -- 7. the page's files (no timing here: bench/ui_render.py measures) ------------------------


def test_static_files_are_versioned_cached_and_compressed(server: Server):
    with urllib.request.urlopen(server.http_url, timeout=10) as response:
        page_html = response.read().decode()
    version = re.search(r'src="static/([0-9a-f]{12})/js/app.js"', page_html)
    assert version, "the page's script is under a versioned path"
    modules = re.findall(r'<link rel="modulepreload" href="(static/[^"]+)"', page_html)
    assert "static/" + version[1] + "/js/list.js" in modules  # fetched at once, not by import
    assert (
        'rel="preload" as="fetch"' in page_html
        and "api/v1/messages?start=0&amp;limit=50" in page_html
    )

    url = f"{server.http_url}static/{version[1]}/js/app.js"
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert "immutable" in response.headers["Cache-Control"]
        assert response.headers["Content-Encoding"] == "gzip"
        etag = response.headers["ETag"]
    again = urllib.request.Request(url, headers={"If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as not_modified:
        urllib.request.urlopen(again, timeout=10)
    assert not_modified.value.code == 304
    not_modified.value.close()
    with urllib.request.urlopen(f"{server.http_url}static/js/app.js", timeout=10) as response:
        assert response.headers["Cache-Control"] == "no-cache"  # unversioned: revalidated


# The message pane, the bulk release and what only they use: not needed for the list.
DEFERRED = (
    "view.js",
    "details.js",
    "highlight.js",
    "checks.js",
    "release.js",
    "bulk_release.js",
    "welcome.js",
)
STATIC_IMPORT = re.compile(r'\bfrom\s*"\./([\w.-]+\.js)"')


def test_the_first_paint_preloads_the_lists_modules_and_none_of_the_panes(server: Server):
    with urllib.request.urlopen(server.http_url, timeout=10) as response:
        page_html = response.read().decode()
    version = re.search(r'src="static/([0-9a-f]{12})/js/app.js"', page_html)[1]
    link = rf'<link rel="modulepreload" href="static/{version}/js/([^"]+)"'
    preloaded = re.findall(link, page_html)
    assert {"api.js", "dom.js", "format.js", "list.js"} <= set(preloaded)
    assert not set(preloaded) & set(DEFERRED)
    assert "checks.css" not in page_html and "release.css" not in page_html

    def source(name: str) -> str:
        url = f"{server.http_url}static/{version}/js/{name}"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert "immutable" in response.headers["Cache-Control"]
            return response.read().decode()

    # What the first paint runs imports nothing statically that is not preloaded:
    # no module is found import by import, and none of the pane's is among them.
    for name in ["app.js", *preloaded]:
        assert set(STATIC_IMPORT.findall(source(name))) <= set(preloaded), name
    assert "MessageView" in source("view.js")  # still served, for the import after the rows


FIRST_ROW_SEEN = """
new MutationObserver((changes, observer) => {
  if (!document.querySelector("#list .row")) return;
  observer.disconnect();
  window.__firstRowAt = performance.now();
}).observe(document, { childList: true, subtree: true });
"""
PANE_REQUESTS = """() => Object.fromEntries(performance.getEntriesByType("resource")
  .filter((entry) => /\\/(js\\/view\\.js|checks\\.css|release\\.css)$/.test(entry.name))
  .map((entry) => [entry.name.split("/").pop(), entry.startTime]))"""


def test_the_message_pane_loads_after_the_first_rows_on_demand_and_after_a_failure(
    browser: Browser, server: Server
):
    send(server, "Deferred", html="<p>Hello</p>")
    message_id = next(iter(server.store.ids()))
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        errors = watch_errors(page)
        page.add_init_script(FIRST_ROW_SEEN)
        page.goto(server.http_url)
        expect(rows(page)).to_have_count(1)
        expect(page.locator(".placeholder-title")).to_have_text("No message selected")
        # Nothing asked for it: the pane's code and styles come once the rows are in.
        page.wait_for_function(f"() => Object.keys(({PANE_REQUESTS})()).length === 3")
        first_row = page.evaluate("window.__firstRowAt")
        requested = page.evaluate(PANE_REQUESTS)
        assert all(start > first_row for start in requested.values()), (first_row, requested)
        open_message(page, "Deferred")
        page.get_by_role("tab", name="Checks").click()
        expect(page.locator(".checks")).to_have_css("display", "grid")  # checks.css applies

        # A link to the message: it opens before the code would have come on its own.
        linked = context.new_page()
        errors += watch_errors(linked)
        linked.goto(f"{server.http_url}?id={message_id}")
        expect(linked.locator(".message-subject")).to_have_text("Deferred")
        expect(linked.locator(".message-head .relay")).to_have_count(1)  # release.js ran

        # The code could not be fetched (the server away for that moment): the
        # pane says so, and the next open fetches it again.
        failing = context.new_page()
        failing.route("**/js/view.js", lambda route: route.abort())
        failing.goto(server.http_url)
        row(failing, "Deferred").click()
        expect(failing.locator(".offline-note")).to_contain_text("cannot be reached")
        failing.unroute("**/js/view.js")
        row(failing, "Deferred").click()
        expect(failing.locator(".message-subject")).to_have_text("Deferred")
    finally:
        context.close()
    assert errors == [], "the inbox page reported errors"
