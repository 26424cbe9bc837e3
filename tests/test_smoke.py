from __future__ import annotations

import smtplib

from mailtrap import Server


def test_a_message_sent_with_smtplib_is_stored_byte_exact(server: Server, smtp: smtplib.SMTP):
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Hello\r\n\r\nBody\r\n"
    smtp.ehlo()
    smtp.mail("a@example.com")
    smtp.rcpt("b@example.com")
    code, reply = smtp.data(raw)
    assert code == 250
    message_id = reply.decode().rsplit(" ", 1)[1]
    assert server.store.raw(message_id) == raw
