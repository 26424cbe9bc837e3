"""Take the README's screenshots of the web inbox (run by hand, not by the tests).

    .venv/bin/python docs/screenshots.py

Starts a server on ephemeral ports with a throwaway database, fills it with a
few realistic messages, and saves ``docs/inbox-{light,dark}.png`` and
``docs/message-{light,dark}.png`` (1400x900) and ``docs/phone-{light,dark}.png``
(390x844) with Debian's headless Chromium.
"""

from __future__ import annotations

import base64
import smtplib
import struct
import sys
import tempfile
import time
import zlib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from mailtrap import Server
from mailtrap.config import Address
from mailtrap.writer import IncomingMessage

DOCS = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}
MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR


# -- content -------------------------------------------------------------------


def png(width: int, height: int, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> bytes:
    """A vertical gradient as a PNG, built by hand so the images need no files."""
    rows = []
    for y in range(height):
        t = y / max(1, height - 1)
        pixel = bytes(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        rows.append(b"\x00" + pixel * width)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def data_uri(image: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(image).decode()


def minimal_pdf(title: str) -> bytes:
    """A small valid one-page PDF."""
    text = f"BT /F1 18 Tf 72 720 Td ({title}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


BUTTON = (
    "display:inline-block;background:#5b5bd6;color:#ffffff;text-decoration:none;"
    "font-weight:600;padding:12px 28px;border-radius:8px"
)
CARD = (
    "max-width:520px;margin:40px auto;background:#ffffff;border:1px solid #e6e8ee;"
    "border-radius:12px;padding:40px;font-family:Helvetica,Arial,sans-serif;color:#1d2230"
)
PAGE = "margin:0;background:#f4f5f9;padding:1px 16px"


def transactional(heading: str, body: str, button: str, link: str, footer: str) -> str:
    return f"""<!doctype html><html><body style="{PAGE}">
<div style="{CARD}">
  <div style="font-weight:700;font-size:20px;color:#5b5bd6;margin-bottom:28px">&#9673; acme</div>
  <h1 style="font-size:24px;margin:0 0 12px">{heading}</h1>
  <p style="font-size:15px;line-height:1.6;color:#4a5163;margin:0 0 28px">{body}</p>
  <p style="margin:0 0 28px"><a href="{link}" style="{BUTTON}">{button}</a></p>
  <p style="font-size:13px;line-height:1.6;color:#8a90a0;margin:0">{footer}</p>
</div></body></html>"""


def signup() -> EmailMessage:
    link = "https://app.acme.test/confirm?token=8f3a1c0e9b"
    message = EmailMessage()
    message["From"] = "Acme <no-reply@acme.test>"
    message["To"] = "Ann Lee <ann@example.com>"
    message["Subject"] = "Confirm your email address"
    message["X-Tags"] = "signup"
    message.set_content(
        f"Hi Ann,\n\nThanks for signing up for Acme! Confirm your email address to "
        f"activate your account:\n\n{link}\n\nThe link is valid for 24 hours.\n\n— The Acme team\n"
    )
    message.add_alternative(
        transactional(
            "Welcome aboard, Ann!",
            "Thanks for signing up for Acme. Please confirm your email address so we "
            "know it's really you — then you're all set.",
            "Confirm email address",
            link,
            "This link expires in 24 hours. If you didn't create an Acme account, "
            "you can safely ignore this message.",
        ),
        subtype="html",
    )
    return message


def password_reset() -> EmailMessage:
    link = "https://app.acme.test/reset?token=c41d7e"
    message = EmailMessage()
    message["From"] = "Acme Security <security@acme.test>"
    message["To"] = "bob@example.com"
    message["Subject"] = "Reset your password"
    message.set_content(
        f"Someone asked to reset the password of your Acme account.\n\n"
        f"Choose a new password: {link}\n\nIf it wasn't you, ignore this message.\n"
    )
    message.add_alternative(
        transactional(
            "Reset your password",
            "Someone (hopefully you) asked to reset the password of the Acme account "
            "<b>bob@example.com</b>. Choose a new one below.",
            "Choose a new password",
            link,
            "Didn't ask for this? Ignore this message: your password stays the same.",
        ),
        subtype="html",
    )
    return message


def invoice() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Acme Billing <billing@acme.test>"
    message["To"] = "Finance <finance@example.com>"
    message["Cc"] = "ann@example.com"
    message["Subject"] = "Your invoice INV-2024-0042 is ready"
    message["X-Tags"] = "billing"
    message.set_content(
        "Hello,\n\nyour invoice INV-2024-0042 for March (EUR 249.00) is attached.\n"
        "It will be charged to the card ending in 4242 on 1 April.\n\nAcme Billing\n"
    )
    message.add_attachment(
        minimal_pdf("Invoice INV-2024-0042"),
        maintype="application",
        subtype="pdf",
        filename="INV-2024-0042.pdf",
    )
    return message


def newsletter() -> EmailMessage:
    banner = data_uri(png(560, 180, (91, 91, 214), (146, 94, 230)))
    thumb_a = data_uri(png(120, 90, (42, 157, 143), (38, 70, 83)))
    thumb_b = data_uri(png(120, 90, (244, 162, 97), (231, 111, 81)))
    item = (
        '<tr><td style="padding:0 0 20px;width:132px;vertical-align:top">'
        '<img src="{img}" width="120" height="90" style="border-radius:8px;display:block" alt="">'
        '</td><td style="padding:0 0 20px;vertical-align:top"><h3 style="margin:0 0 6px;'
        'font-size:16px">{title}</h3><p style="margin:0;font-size:14px;line-height:1.55;'
        'color:#4a5163">{text}</p></td></tr>'
    )
    kicker = "font-size:12px;letter-spacing:.08em;text-transform:uppercase;color:#8a90a0"
    items = item.format(
        img=thumb_a,
        title="Dark mode everywhere",
        text="Every page now follows your system theme. Easier on the eyes at 2 a.m.",
    ) + item.format(
        img=thumb_b,
        title="Search, 10&times; faster",
        text="A new index answers in milliseconds, even with years of history.",
    )
    html = f"""<!doctype html><html><body style="{PAGE}">
<div style="{CARD};padding:0;overflow:hidden">
  <img src="{banner}" width="560" height="180" style="display:block;width:100%;height:auto" alt="">
  <div style="padding:32px 36px 12px">
    <p style="{kicker};margin:0 0 8px">The Acme Digest &middot; March</p>
    <h1 style="font-size:24px;margin:0 0 16px">Dark mode, faster search and more</h1>
    <p style="font-size:15px;line-height:1.6;color:#4a5163;margin:0 0 24px">Here is what
      shipped this month, and what we are working on next.</p>
    <table role="presentation" cellspacing="0" cellpadding="0" style="width:100%">{items}</table>
  </div>
</div></body></html>"""
    message = EmailMessage()
    message["From"] = "The Acme Digest <news@acme.test>"
    message["To"] = "subscribers@example.com"
    message["Subject"] = "What's new in March: dark mode, faster search and more"
    message["X-Tags"] = "newsletter"
    message.set_content(
        "The Acme Digest, March\n\nDark mode everywhere: every page now follows your "
        "system theme.\nSearch, 10x faster: a new index answers in milliseconds.\n"
    )
    message.add_alternative(html, subtype="html")
    return message


def plain(sender: str, to: str, subject: str, text: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message.set_content(text)
    return message


def older_messages() -> list[tuple[float, EmailMessage]]:
    """(age in seconds, message): mail from earlier, so the list shows real times."""
    calendar = plain(
        "Acme Calendar <calendar@acme.test>",
        "team@example.com",
        "Invitation: Sprint review @ Thu 14:00 \N{EN DASH} 15:00",
        "You have been invited to the sprint review on Thursday at 14:00.\n",
    )
    calendar.add_attachment(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
        b"SUMMARY:Sprint review\r\nDTSTART:20250313T130000Z\r\nDTEND:20250313T140000Z\r\n"
        b"LOCATION:Room 4 / video call\r\nORGANIZER;CN=Dana Lee:mailto:dana@acme.test\r\n"
        b"ATTENDEE;CN=Ann:mailto:ann@example.com\r\nATTENDEE;CN=Bob:mailto:bob@example.com\r\n"
        b"ATTENDEE;CN=Carol:mailto:carol@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        maintype="text",
        subtype="calendar",
        filename="invite.ics",
    )
    return [
        (
            26 * MINUTE,
            plain(
                "Acme Orders <orders@acme.test>",
                "dave@example.com",
                "Order #10293 has shipped",
                "Good news, Dave! Your order #10293 is on its way. Track it at "
                "https://app.acme.test/orders/10293\n",
            ),
        ),
        (
            3 * HOUR,
            plain(
                "CI <ci@builds.acme.test>",
                "dev@example.com",
                "Build #1287 passed on main",
                "All 1,284 tests passed in 3 min 12 s.\n",
            ),
        ),
        (DAY + 2 * HOUR, calendar),
        (
            2 * DAY,
            plain(
                "Acme <no-reply@acme.test>",
                "Carol Diaz <carol@example.com>",
                "Welcome to Acme, Carol!",
                "Your account is ready. Here are three things to try first...\n",
            ),
        ),
    ]


# -- taking the pictures ------------------------------------------------------


def fill(server: Server) -> list[str]:
    """Store the messages; the IDs of those that came over SMTP (the unread ones)."""
    now = time.time()
    for age, message in sorted(older_messages(), key=lambda pair: -pair[0]):
        message["Date"] = formatdate(now - age, localtime=True)
        message["Message-ID"] = make_msgid(domain="acme.test")
        raw = bytes(message)
        recipients = [address.strip() for address in message["To"].split(",")]
        # Straight into the store, backdated: SMTP would stamp them all "just now".
        server.store.add(
            IncomingMessage(raw, "bounce@acme.test", recipients, received=now - age)
        ).result(timeout=10)
    older = server.store.ids()
    server.store.set_read(older, True).result(timeout=10)  # seen earlier
    smtp = server.smtp_address
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        for message in (newsletter(), password_reset(), invoice(), signup()):
            client.send_message(message)
            time.sleep(0.05)  # distinct arrival times, in this order
    return [message_id for message_id in server.store.ids() if message_id not in older]


def open_message(page: Page, subject: str) -> None:
    page.get_by_role("option").filter(has_text=subject).click()
    page.locator(".message-subject", has_text=subject).wait_for()


def shoot(base_url: str, scheme: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=VIEWPORT, color_scheme=scheme)  # type: ignore[arg-type]
        page = context.new_page()
        page.goto(base_url)
        page.get_by_role("option").first.wait_for()
        page.locator("#status[data-status=live]").wait_for()

        # The inbox: the list, with the newsletter open.
        open_message(page, "What's new in March")
        frame = page.frame_locator(".html-frame")
        frame.locator("h1").wait_for()
        page.locator("#list").focus()
        page.wait_for_timeout(2200)  # past the "just arrived" highlight
        page.screenshot(path=DOCS / f"inbox-{scheme}.png")

        # A message: the signup confirmation at phone width.
        open_message(page, "Confirm your email address")
        page.get_by_role("button", name="Phone (375 px)").click()
        frame.locator("h1").wait_for()
        page.mouse.move(0, 0)
        page.wait_for_timeout(300)
        page.screenshot(path=DOCS / f"message-{scheme}.png")
        context.close()

        # A phone: the invitation, its card and folded recipients.
        context = browser.new_context(viewport=PHONE, color_scheme=scheme)  # type: ignore[arg-type]
        page = context.new_page()
        page.goto(base_url)
        page.locator("#status[data-status=live]").wait_for()
        open_message(page, "Invitation: Sprint review")
        page.locator(".invite").wait_for()
        page.wait_for_timeout(300)
        page.screenshot(path=DOCS / f"phone-{scheme}.png")
        browser.close()


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        local = Address("127.0.0.1", 0)
        with Server(db=Path(folder) / "mail.db", smtp=local, http=local) as server:
            unread = fill(server)
            for scheme in ("light", "dark"):
                server.store.set_read(unread, False).result(timeout=10)  # as they arrived
                shoot(server.http_url, scheme)
    for name in ("inbox", "message", "phone"):
        for scheme in ("light", "dark"):
            print(DOCS / f"{name}-{scheme}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
