"""The pytest plugin: assert on the mail your application sends.

Installed with Mailtrap and loaded automatically (a ``pytest11`` entry point).
A test asks for the ``mailtrap`` fixture, points its application at
``mailtrap.smtp_host`` and ``mailtrap.smtp_port``, and waits for the mail::

    def test_signup_sends_a_confirmation(mailtrap):
        signup("bob@example.com", smtp=(mailtrap.smtp_host, mailtrap.smtp_port))
        mail = mailtrap.wait_for(to="bob@example.com", subject="Confirm")
        assert mail.link(contains="/confirm/")

The fixtures live in :mod:`mailtrap.pytest_plugin.plugin`; the README lists
them with their scope, type and default.
"""

from __future__ import annotations

from mailtrap.pytest_plugin.capture import Inbox, MailAssertionError
from mailtrap.pytest_plugin.message import Attachment, Envelope, Headers, Mail
from mailtrap.pytest_plugin.relay import Delivery

__all__ = ["Attachment", "Delivery", "Envelope", "Headers", "Inbox", "Mail", "MailAssertionError"]
