"""One SMTP transaction to a remote server, with :mod:`smtplib`, in a worker thread.

It walks the hosts of a route (each host's addresses in turn) until one
takes the transaction: a refused connection, a 4xx greeting or a failed
handshake moves on to the next. STARTTLS is used whenever the server offers
it (opportunistic, unverified, as MTAs do between MX hosts) and required
for a smarthost configured so. Right before the final "." of DATA it calls
``commit_point``, which records the recipients as being sent: from then on a
lost reply means "maybe delivered", never "send again".
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailtrap.relay.addresses import is_plain_mailbox, is_sendable_sender
from mailtrap.relay.config import Smarthost
from mailtrap.relay.mx import Host
from mailtrap.relay.plan import (
    FAIL,
    IN_DOUBT,
    RETRY,
    SENT,
    Delivery,
    Outcome,
    after_rcpt,
    describe_reply,
    reply_state,
    stuff_dots,
)

CommitPoint = Callable[[list[int]], list[int]]  # delivery IDs -> those still to send


class _NextHost(Exception):
    """This host cannot take the transaction now; another one may."""


@dataclass
class Connection:
    """How to reach the server(s) of one transaction."""

    hosts: Sequence[Host]
    port: int
    helo: str
    timeout: float
    smarthost: Smarthost | None = None


@dataclass
class Envelope:
    """What one transaction sends: ``data`` has CRLF line endings and is not yet dot-stuffed."""

    mail_from: str
    deliveries: Sequence[Delivery]
    data: bytes
    commit_point: CommitPoint


class Client:
    """Sends transactions; :meth:`abort` cuts every one in progress (on shutdown)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[smtplib.SMTP] = set()
        self.aborted = threading.Event()

    def abort(self) -> None:
        self.aborted.set()
        with self._lock:
            for smtp in self._open:
                if smtp.sock is not None:
                    with contextlib.suppress(OSError):
                        smtp.sock.shutdown(socket.SHUT_RDWR)

    def send(self, connection: Connection, envelope: Envelope) -> dict[int, Outcome]:
        """Deliver the envelope through the first host that takes it; an outcome per delivery."""
        errors: list[str] = []
        for host in connection.hosts:
            for address in host.addresses:
                if self.aborted.is_set():
                    return _all(envelope.deliveries, Outcome(RETRY, "stopped before delivery"))
                try:
                    return self._attempt(connection, host.name, address, envelope)
                except _NextHost as error:
                    errors.append(f"{host.name} [{address}]: {error}")
        detail = "; ".join(errors[-3:]) or "no host to try"
        return _all(envelope.deliveries, Outcome(RETRY, detail[:500]))

    def _attempt(
        self, connection: Connection, name: str, address: str, envelope: Envelope
    ) -> dict[int, Outcome]:
        smarthost = connection.smarthost
        implicit_tls = smarthost is not None and smarthost.tls == "tls"
        context = _tls_context(smarthost)
        try:
            if implicit_tls:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    local_hostname=connection.helo, timeout=connection.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(local_hostname=connection.helo, timeout=connection.timeout)
        except OSError as error:
            raise _NextHost(str(error)) from None
        # The name TLS checks the certificate against (and sends as SNI); smtplib
        # only learns it from a host given to its constructor, which would connect.
        smtp._host = name  # type: ignore[attr-defined]
        with self._lock:
            self._open.add(smtp)
        try:
            return _transaction(smtp, connection, f"{name} [{address}]", address, envelope, context)
        finally:
            with self._lock:
                self._open.discard(smtp)
            smtp.close()


def _transaction(
    smtp: smtplib.SMTP,
    connection: Connection,
    host: str,
    address: str,
    envelope: Envelope,
    context: ssl.SSLContext,
) -> dict[int, Outcome]:
    smarthost = connection.smarthost
    try:
        code, message = smtp.connect(address, connection.port)
        if code != 220:
            raise _NextHost(f"greeting {describe_reply(code, message)}")
        _greet(smtp)
        starttls = smarthost is None or smarthost.tls == "starttls"
        if starttls and smtp.has_extn("starttls"):
            code, message = smtp.starttls(context=context)
            if code != 220:
                raise _NextHost(f"STARTTLS {describe_reply(code, message)}")
            _greet(smtp)
        elif smarthost is not None and smarthost.tls == "starttls":
            raise _NextHost('the smarthost does not offer STARTTLS (tls = "starttls")')
        if smarthost is not None and smarthost.auth is not None:
            _login(smtp, smarthost)
        return _envelope_and_data(smtp, host, envelope)
    except _Refused as refused:
        return _all(envelope.deliveries, refused.outcome(host))
    except (smtplib.SMTPServerDisconnected, OSError, ssl.SSLError) as error:
        # Before the final ".": nothing was accepted yet; another host may do.
        raise _NextHost(f"{type(error).__name__}: {error}") from None
    except smtplib.SMTPException as error:
        raise _NextHost(str(error)) from None


class _Refused(Exception):
    """The server answered the whole transaction (MAIL, DATA or AUTH) with a refusal."""

    def __init__(self, step: str, code: int, message: bytes | str):
        super().__init__(step)
        self.step, self.code, self.message = step, code, message

    def outcome(self, host: str) -> Outcome:
        state = reply_state(self.code)
        return Outcome(
            state if state != SENT else RETRY,
            f"{self.step}: {describe_reply(self.code, self.message)}",
            host,
        )


def _greet(smtp: smtplib.SMTP) -> None:
    code, message = smtp.ehlo()
    if code != 250:
        code, message = smtp.helo()
        if code != 250:
            raise _NextHost(f"EHLO {describe_reply(code, message)}")


def _login(smtp: smtplib.SMTP, smarthost: Smarthost) -> None:
    smtp.user, smtp.password = smarthost.username, smarthost.password
    mechanism = "auth_plain" if smarthost.auth == "plain" else "auth_login"
    try:
        code, message = smtp.auth(smarthost.auth.upper(), getattr(smtp, mechanism))  # type: ignore[union-attr]
    except smtplib.SMTPAuthenticationError as error:
        raise _Refused("AUTH", error.smtp_code, error.smtp_error) from None
    except smtplib.SMTPNotSupportedError:
        raise _Refused("AUTH", 530, b"the smarthost does not offer AUTH") from None
    if code not in (235, 503):
        raise _Refused("AUTH", code, message)


def _envelope_and_data(smtp: smtplib.SMTP, host: str, envelope: Envelope) -> dict[int, Outcome]:
    mail_from, data = envelope.mail_from, envelope.data
    unsendable = [d for d in envelope.deliveries if not is_plain_mailbox(d.recipient)]
    outcomes = _all(unsendable, Outcome(FAIL, "not a plain address: never sent", host))
    deliveries = [d for d in envelope.deliveries if d.id not in outcomes]
    if not deliveries:
        return outcomes
    if not is_sendable_sender(mail_from):
        reason = 'the envelope sender cannot be sent as it is; set "sender" in the relay config'
        return outcomes | _all(deliveries, Outcome(FAIL, reason, host))
    addresses = [mail_from, *(d.recipient for d in deliveries)]
    options: list[str] = []
    if not all(address.isascii() for address in addresses):
        if not smtp.has_extn("smtputf8"):
            reason = "the address needs SMTPUTF8, which the server lacks"
            return outcomes | _all(deliveries, Outcome(FAIL, reason, host))
        options.append("SMTPUTF8")
        smtp.command_encoding = "utf-8"
    if not data.isascii() and smtp.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    # The addresses go out exactly as checked: smtplib's mail() and rcpt() would
    # parse them again with email.utils, which can read another mailbox out of one.
    code, message = smtp.docmd("MAIL", " ".join([f"FROM:<{mail_from}>", *options]))
    if code != 250:
        raise _Refused("MAIL FROM", code, message)
    replies = []
    for delivery in deliveries:
        code, message = smtp.docmd("RCPT", f"TO:<{delivery.recipient}>")
        replies.append((delivery, code, describe_reply(code, message)))
    outcomes |= {key: Outcome(o.state, o.reply, host) for key, o in after_rcpt(replies).items()}
    accepted = [delivery for delivery in deliveries if delivery.id not in outcomes]
    if not accepted:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()
        return outcomes
    smtp.putcmd("data")
    code, message = smtp.getreply()
    if code != 354:
        raise _Refused("DATA", code, message)
    smtp.send(stuff_dots(data))
    # The point of no return: only a recipient still wanted is let through.
    wanted = set(envelope.commit_point([delivery.id for delivery in accepted]))
    if not wanted:
        smtp.close()  # without the final ".", the server drops what it has
        return outcomes | _all(accepted, Outcome(FAIL, "cancelled before sending", host))
    try:
        smtp.send(b".\r\n")
        code, message = smtp.getreply()
    except (smtplib.SMTPServerDisconnected, OSError) as error:
        doubt = Outcome(IN_DOUBT, f"no reply to the end of DATA ({error}); not sent again", host)
        return outcomes | _all(accepted, doubt)
    reply = describe_reply(code, message)
    state = reply_state(code)
    outcomes |= _all(accepted, Outcome(state, reply, host))
    with contextlib.suppress(smtplib.SMTPException, OSError):
        smtp.quit()  # the message is through; a lost QUIT changes nothing
    return outcomes


def _all(deliveries: Sequence[Delivery], outcome: Outcome) -> dict[int, Outcome]:
    return {delivery.id: outcome for delivery in deliveries}


def _tls_context(smarthost: Smarthost | None) -> ssl.SSLContext:
    if smarthost is not None and smarthost.tls_verify:
        context = ssl.create_default_context(cafile=smarthost.ca_file)
        return context
    # Between MX hosts TLS is opportunistic: an unverified channel still beats plain text.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
