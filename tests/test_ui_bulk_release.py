"""Releasing a selection from the inbox's bulk bar, in Debian's Chromium (issue 11, point 1).

As in test_ui_relay.py: a loopback dnslib zone sends example.test to an
aiosmtpd "MX" on 127.0.0.2, mail goes in over SMTP, and what the page shows
comes over the websocket. Each test checks what arrived at that receiver,
with which recipients, and that nothing else did.
"""

from __future__ import annotations

import re
import smtplib
import threading
from collections.abc import Callable
from email.message import EmailMessage

import test_ui
import test_ui_relay
from relay_helpers import settled, wait_relay
from smtp_receiver import Received, Receiver
from test_ui import pytestmark, row, rows  # noqa: F401
from test_ui_relay import open_inbox

from mailtrap import Server

browser = test_ui.browser  # one Chromium per module
receiver, relay_server = test_ui_relay.receiver, test_ui_relay.relay_server  # its MX and server
Browser, Page, expect = test_ui.Browser, test_ui.Page, test_ui.expect
REFUSAL_LOGGED = "the server responded with a status of 400"  # Chromium logs a refused request


def capture(server: Server, *subjects: str) -> dict[str, str]:
    """Send one message per subject over one SMTP connection; {subject: ID}."""
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        for subject in subjects:
            message = EmailMessage()
            message["From"], message["To"] = "App <app@example.com>", "ann@example.test"
            message["Subject"] = subject
            message.set_content("Deliver me for real.")
            client.send_message(message)
    server.store.settle()
    return {server.store.get(each)["subject"]: each for each in server.store.ids()}


def subject_of(received: Received) -> str:
    return re.search(rb"^Subject: (.*?)\r?$", received.data, re.M)[1].decode()  # type: ignore[index]


def delivery(message: test_ui.Locator, recipient: str) -> test_ui.Locator:
    return message.locator(f'.relay-delivery[data-recipient="{recipient}"]')


def nothing_queued(server: Server, message_ids: list[str]) -> bool:
    assert server.relay is not None
    return all(server.relay.deliveries(each) == [] for each in message_ids)


def test_a_shift_click_range_is_released_to_each_recipient_live_and_refusals_are_named(
    browser: Browser, relay_server: Server, receiver: Receiver
):
    page, errors = open_inbox(browser, relay_server)
    ids = capture(relay_server, *(f"Batch {n}" for n in range(1, 6)))
    expect(rows(page)).to_have_count(5)
    row(page, "Batch 4").locator(".select").click()
    row(page, "Batch 2").click(modifiers=["Shift"])
    expect(page.locator("#bulk-count")).to_have_text("3 selected")

    page.get_by_role("button", name="Release 3 messages").click()
    dialog = page.get_by_role("dialog", name="Release 3 messages")
    expect(dialog).to_contain_text("Delivers a copy of each of the 3 selected messages for real")
    field = dialog.get_by_label("Recipients")
    # Refused by the allowlist: named in the dialog, and nothing is queued.
    field.fill("carol@example.test, x@evil.test")
    dialog.get_by_role("button", name="Release 3").click()
    expect(dialog.get_by_role("alert")).to_have_text(
        "Failed: address refused: x@evil.test (not on the allowlist)"
    )
    assert nothing_queued(relay_server, list(ids.values()))

    # The MX holds its answer to the final ".": the dialog shows the release under way.
    receiver.hold = threading.Event()
    field.fill("carol@example.test\nnever@example.test")
    dialog.get_by_role("button", name="Release 3").click()
    summary = dialog.locator(".bulk-release-summary")
    expect(summary).to_have_text(
        re.compile(r"^Releasing 3 messages to 2 recipients: .*\b[1-9] sending\b")
    )
    expect(dialog.locator('.relay-delivery[data-state="sending"]').first).to_be_visible()
    receiver.hold.set()

    expect(summary).to_have_text("Released 3 messages to 2 recipients: 3 sent, 3 failed.")
    expect(dialog.locator(".bulk-release-refusal")).to_have_text(
        "never@example.test refused for 3 messages: 550 5.1.1 no"
    )
    messages = dialog.locator(".bulk-release-message")
    expect(messages).to_have_count(3)
    assert sorted(messages.locator(".bulk-release-subject").all_inner_texts()) == [
        "Batch 2", "Batch 3", "Batch 4",
    ]  # fmt: skip
    for each in messages.all():
        expect(delivery(each, "carol@example.test")).to_have_attribute("data-state", "sent")
        expect(delivery(each, "never@example.test")).to_have_attribute("data-state", "failed")

    selected = [ids[f"Batch {n}"] for n in (2, 3, 4)]
    for each in selected:
        wait_relay(relay_server, each, settled)
    arrived = receiver.wait_for(3)
    assert sorted((subject_of(m), m.rcpt_tos) for m in arrived) == [
        (f"Batch {n}", ["carol@example.test"]) for n in (2, 3, 4)
    ]
    assert nothing_queued(relay_server, [ids["Batch 1"], ids["Batch 5"]])
    assert len(receiver.received) == 3  # and the unselected never went out

    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    page.close()
    assert [e for e in errors if REFUSAL_LOGGED not in e] == [], "the inbox page reported errors"


def test_select_all_results_of_a_search_releases_the_results_only(
    browser: Browser, relay_server: Server, receiver: Receiver
):
    page, errors = open_inbox(browser, relay_server)
    invoices = [f"Invoice {n:02}" for n in range(27)]
    ids = capture(relay_server, "Newsletter A", *invoices, "Newsletter B")
    page.select_option("#page-size", "25")
    page.locator("#search").fill("subject:invoice")
    page.keyboard.press("Enter")
    expect(page.locator("#count")).to_have_text("27 results")
    page.locator("#select-page").check()
    page.get_by_role("button", name="Select all 27 results").click()
    expect(page.locator("#bulk-count")).to_have_text("All 27 selected")

    page.get_by_role("button", name="Release 27 messages").click()
    dialog = page.get_by_role("dialog", name="Release 27 messages")
    expect(dialog).to_contain_text(
        "Delivers a copy of each of the 27 results of “subject:invoice” for real"
    )
    dialog.get_by_label("Recipients").fill("carol@example.test")
    dialog.get_by_role("button", name="Release 27").click()
    expect(dialog.locator(".bulk-release-summary")).to_have_text(
        "Released 27 messages to 1 recipient: 27 sent."
    )
    expect(dialog.locator(".bulk-release-message")).to_have_count(27)  # two not on the page
    expect(dialog.locator(".bulk-release-refusals")).to_be_hidden()

    for subject in invoices:
        wait_relay(relay_server, ids[subject], settled)
    arrived = receiver.wait_for(27)
    assert sorted(subject_of(m) for m in arrived) == invoices
    assert {tuple(m.rcpt_tos) for m in arrived} == {("carol@example.test",)}
    assert nothing_queued(relay_server, [ids["Newsletter A"], ids["Newsletter B"]])
    assert len(receiver.received) == 27
    page.close()
    assert errors == [], "the inbox page reported errors"


def test_without_relay_the_bulk_bar_offers_no_release(
    browser: Browser, make_server: Callable[..., Server]
):
    server = make_server()
    page, errors = open_inbox(browser, server)
    capture(server, "Stay here")
    row(page, "Stay here").locator(".select").click()
    expect(page.locator("#bulk-count")).to_have_text("1 selected")
    expect(page.get_by_role("button", name="Mark 1 message read")).to_be_visible()
    # Once the page knows relay is off (from /api/v1/webui), the bar offers no release.
    expect(page.locator("#bulk")).to_have_attribute("data-relay", "off")
    expect(page.locator("#bulk-release")).to_be_hidden()
    page.close()
    assert errors == [], "the inbox page reported errors"
