"""Relay in the web inbox, in Debian's Chromium: the Release dialog and the live delivery state.

A loopback dnslib zone sends example.test to an aiosmtpd "MX" on 127.0.0.2;
mail goes in over SMTP, is released from the dialog, and must arrive there.
Every check of the page is on what it shows; the state changes come only over
the websocket (the page is never reloaded).
"""

from __future__ import annotations

import re
import smtplib
import threading
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import pytest
import test_ui
from api_client import Api
from dns_server import ZoneResolver
from relay_helpers import mx_config, start_relay
from smtp_receiver import Receiver
from test_ui import playwright_sync, pytestmark, watch_errors  # noqa: F401

from mailtrap import Server
from mailtrap.config import Address

browser = test_ui.browser  # the inbox tests' fixture: one Chromium per module
Browser, Page, expect = playwright_sync.Browser, playwright_sync.Page, playwright_sync.expect


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(
        "127.0.0.2",
        replies={"later@example.test": "451 4.2.0 try later", "never@example.test": "550 5.1.1 no"},
    ).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def relay_server(make_server, tmp_path, dns_zone: tuple[ZoneResolver, Address], receiver) -> Server:
    return start_relay(make_server, tmp_path, dns_zone[1], mx_config(receiver.port))


def open_inbox(browser: Browser, server: Server) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = watch_errors(page)
    page.set_default_timeout(10000)
    page.goto(server.http_url)
    expect(page.locator("#status")).to_have_attribute("data-status", "live")
    return page, errors


def send(server: Server, subject: str) -> None:
    message = EmailMessage()
    message["From"], message["Subject"] = "App <app@example.com>", subject
    message["To"], message["Cc"] = "Ann <ann@example.test>", "bob@other.test"
    message.set_content("Please really deliver me.")
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        client.send_message(message)


def open_message(page: Page, subject: str) -> None:
    page.locator("#list .row", has_text=subject).click()
    expect(page.locator(".message-subject")).to_have_text(subject)


def delivery(page: Page, recipient: str):  # -> Locator
    return page.locator(f'.relay-delivery[data-recipient="{recipient}"]')


def test_release_from_the_dialog_delivers_and_the_state_turns_to_sent_live(
    browser: Browser, relay_server: Server, receiver: Receiver
):
    page, errors = open_inbox(browser, relay_server)
    send(relay_server, "Release me")
    open_message(page, "Release me")
    expect(page.locator(".relay")).to_have_attribute("data-relay", "on")
    expect(page.locator(".relay-none")).to_have_text("Not relayed to anyone yet.")

    page.get_by_role("button", name="Release…").click()
    dialog = page.get_by_role("dialog", name="Release message")
    field = dialog.get_by_label("Recipients")
    # Prefilled from the message: To, then Cc.
    expect(field).to_have_value("ann@example.test, bob@other.test")

    # An address outside the allowlist: the server's refusal, naming it, in the dialog.
    field.fill("ann@example.test, x@evil.test")
    dialog.get_by_role("button", name="Release", exact=True).click()
    expect(dialog.get_by_role("alert")).to_have_text(
        "Failed: address refused: x@evil.test (not on the allowlist)"
    )
    expect(dialog).to_be_visible()
    message_id = Api(relay_server).messages()["messages"][0]["ID"]
    assert relay_server.relay is not None and relay_server.relay.deliveries(message_id) == []

    # Allowed addresses: the dialog closes, and each state comes over the websocket.
    receiver.hold = threading.Event()  # the MX holds its reply to the final "."
    field.fill("ann@example.test\nlater@example.test, never@example.test")
    dialog.get_by_role("button", name="Release", exact=True).click()
    expect(dialog).to_be_hidden()
    ann = delivery(page, "ann@example.test")
    expect(ann).to_have_attribute("data-state", "sending")
    expect(ann.locator(".relay-state")).to_have_text("Sending")
    receiver.hold.set()

    expect(ann).to_have_attribute("data-state", "sent")
    expect(ann.locator(".relay-detail")).to_have_text(
        "mx.example.test [127.0.0.2]: 250 2.0.0 queued as R1"
    )
    expect(ann.locator(".relay-reason")).to_have_text("released")
    never = delivery(page, "never@example.test")
    expect(never).to_have_attribute("data-state", "failed")
    expect(never.locator(".relay-detail")).to_have_text(
        "1 attempt; mx.example.test [127.0.0.2]: 550 5.1.1 no"
    )
    later = delivery(page, "later@example.test")
    expect(later.locator(".relay-detail")).to_have_text(
        re.compile(r"^[2-9]\d* attempts, next try .+; last error: 451 4\.2\.0 try later$")
    )
    expect(later.locator(".relay-state")).to_have_text("Retrying")
    # The deferring server mends; the next try gets through, and the page says so unasked.
    receiver.replies.pop("later@example.test")
    expect(later).to_have_attribute("data-state", "sent")

    delivered = receiver.wait_for(2)
    assert [m.rcpt_tos for m in delivered] == [["ann@example.test"], ["later@example.test"]]
    assert b"Subject: Release me" in delivered[0].data
    page.close()
    # Chromium logs the refused release's 400 itself: that refusal was the point.
    refusal = "the server responded with a status of 400"
    assert [e for e in errors if refusal not in e] == [], "the inbox page reported errors"
    assert len(errors) == 1


def test_without_relay_there_is_no_release_button(
    browser: Browser, make_server: Callable[..., Server]
):
    server = make_server()
    page, errors = open_inbox(browser, server)
    send(server, "Stay here")
    open_message(page, "Stay here")
    # Once the page knows relay is off (from /api/v1/webui), it offers no release.
    expect(page.locator(".relay")).to_have_attribute("data-relay", "off")

    expect(page.get_by_role("button", name="Release…")).to_have_count(0)
    expect(page.locator(".relay")).to_be_hidden()
    page.close()
    assert errors == [], "the inbox page reported errors"
