"""The POP3 protocol as a state machine without I/O.

RFC 1939 (POP3), RFC 2449 (CAPA), RFC 2595 (STLS), RFC 3206 (response codes)
and RFC 5034 (AUTH PLAIN). :class:`Pop3Session` takes one command line at a
time and returns :data:`Action` values for the connection to carry out: send a
reply, stream a stored message, check a login, start TLS, delete messages, close.
Everything that takes time or touches the network or the database happens in
:mod:`mailtrap.pop3.server`; this module decides what to say.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from mailtrap.pop3.maildrop import Entry

MAX_LINE = 1024  # octets in a command line, line end included: room for AUTH PLAIN's base64
LOCKED_OUT = "[AUTH] too many failed logins from your address, try again later"
MAX_ARGUMENT = 255  # characters in one argument: a long e-mail address fits
_NUMBER = re.compile(r"[0-9]{1,9}")
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")


def mailbox_recipient(user: str) -> str | None:
    """The envelope recipient whose mail ``user`` sees; None: every message.

    A user name that is an e-mail address sees the messages sent to it; any
    other name sees all of them.
    """
    return user if _ADDRESS.fullmatch(user) else None


class State(enum.Enum):
    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"
    UPDATE = "update"  # QUIT was given in TRANSACTION: no more commands


# -- what the connection is asked to do ---------------------------------------------


@dataclass(frozen=True)
class Reply:
    """Send these bytes: one or more complete lines."""

    data: bytes


@dataclass(frozen=True)
class SendMessage:
    """Stream a stored message as a multi-line reply.

    Send ``header`` first; if the message is gone since login, send only
    ``gone``. ``body_lines`` is TOP's line count (None: RETR, the whole message).
    """

    entry: Entry
    header: bytes
    gone: bytes
    body_lines: int | None = None
    mark_read: bool = False


@dataclass(frozen=True)
class CheckLogin:
    """Check the credentials and take the maildrop's snapshot, then call
    :meth:`Pop3Session.login_accepted`, ``login_refused`` or ``login_unavailable``."""

    user: str
    password: str
    recipient: str | None


@dataclass(frozen=True)
class StartTLS:
    """Drop whatever input is buffered, start TLS, then call :meth:`Pop3Session.tls_started`."""


@dataclass(frozen=True)
class DeleteMessages:
    """Delete these messages (IDs), then call :meth:`Pop3Session.deletion_done`."""

    ids: tuple[str, ...]


@dataclass(frozen=True)
class Close:
    """Close the connection once everything before it is sent."""


Action = Reply | SendMessage | CheckLogin | StartTLS | DeleteMessages | Close


def ok(text: str = "") -> Reply:
    return Reply(b"+OK" + (b" " + text.encode() if text else b"") + b"\r\n")


def error(text: str) -> Reply:
    return Reply(b"-ERR " + text.encode() + b"\r\n")


def multiline(first: str, lines: Sequence[str]) -> Reply:
    """A positive multi-line reply; no line here starts with a dot, so none needs stuffing."""
    return Reply(
        "".join([f"+OK {first}\r\n", *(f"{line}\r\n" for line in lines), ".\r\n"]).encode()
    )


_Handler = Callable[["Pop3Session", str], list[Action]]


class _Refused(Exception):
    """A command cannot be carried out; its text goes into the ``-ERR`` reply."""


def makes_progress(line: bytes, actions: Sequence[Action]) -> bool:
    """Whether a command puts off the idle timeout: neither a NOOP nor refused."""
    if line.strip().upper() == b"NOOP":
        return False
    return not (actions and isinstance(actions[0], Reply) and actions[0].data.startswith(b"-ERR"))


# -- the session ----------------------------------------------------------------------


class Pop3Session:
    """One POP3 conversation, from the greeting to QUIT.

    ``tls_available``: a certificate is configured, so STLS may be offered;
    ``tls_active``: the connection is already encrypted (POP3S, or after STLS).
    """

    def __init__(
        self, *, tls_available: bool, tls_active: bool = False, implementation: str = "Mailtrap"
    ):
        self.state = State.AUTHORIZATION
        self.user: str | None = None
        self.tls_active = tls_active
        self._tls_available = tls_available
        self._implementation = implementation
        self._pending_user: str | None = None  # given by USER, waiting for PASS
        self._awaiting_sasl = False  # AUTH PLAIN without initial response: next line is it
        self._checking: str | None = None  # the user of the CheckLogin under way
        self._messages: list[Entry] = []
        self._deleted: set[int] = set()  # indexes into _messages
        self._total_size = 0  # octets of every message in the maildrop
        self._live_size = 0  # octets of those not marked deleted

    def greeting(self) -> Reply:
        return ok("Mailtrap POP3 server ready")

    # -- input ---------------------------------------------------------------------

    def receive(self, line: bytes) -> list[Action]:
        """Handle one command line (its CRLF or LF already removed)."""
        if self.state is State.UPDATE:
            return []
        if self._awaiting_sasl:
            self._awaiting_sasl = False
            return self._plain_response(line.decode("ascii", "replace").strip())
        text = line.decode("utf-8", "replace")
        keyword, _, argument = text.partition(" ")
        keyword = keyword.upper()
        command = self._COMMANDS.get(keyword)
        if command is None:
            return [error("empty command" if not text.strip() else "unknown command")]
        states, handler = command
        if self.state not in states:
            when = "after login" if self.state is State.TRANSACTION else "before login"
            return [error(f"{keyword} is not valid {when}")]
        try:
            return handler(self, argument)
        except _Refused as refusal:
            return [error(str(refusal))]

    def line_too_long(self) -> list[Action]:
        """The client sent a line over :data:`MAX_LINE`; it was dropped."""
        self._awaiting_sasl = False
        return [error(f"line too long (the limit is {MAX_LINE} octets)")]

    # -- results of actions ------------------------------------------------------

    def login_accepted(self, messages: Sequence[Entry]) -> list[Action]:
        """The credentials of the last :class:`CheckLogin` hold; ``messages`` is the maildrop."""
        self.state = State.TRANSACTION
        self.user, self._checking = self._checking, None
        self._messages = list(messages)
        self._deleted.clear()
        self._total_size = self._live_size = sum(entry.size for entry in self._messages)
        count, size = self._totals()
        return [ok(f"maildrop has {count} messages ({size} octets)")]

    def login_refused(self) -> list[Action]:
        self._checking = None
        return [error("[AUTH] invalid user name or password")]

    def login_locked_out(self) -> list[Action]:
        """Too many failed logins from the client's address: nothing was checked."""
        self._checking = None
        return [error(LOCKED_OUT), Close()]

    def login_unavailable(self) -> list[Action]:
        self._checking = None
        return [error("[SYS/TEMP] cannot read the maildrop now, try again later")]

    def tls_started(self) -> None:
        # RFC 2595 4: the client forgets what it learnt before TLS; so do we.
        self.tls_active = True
        self._pending_user = None

    def deletion_done(self, succeeded: bool) -> list[Action]:
        if not succeeded:
            return [error("[SYS/TEMP] some deleted messages not removed"), Close()]
        return [ok(f"Mailtrap POP3 server signing off ({len(self._deleted)} deleted)"), Close()]

    # -- AUTHORIZATION ----------------------------------------------------------------

    def _capa(self, argument: str) -> list[Action]:
        _arguments(argument, 0, 0, "CAPA")
        capabilities = ["TOP", "USER", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        capabilities += ["SASL PLAIN"]
        if self.state is State.AUTHORIZATION and self._tls_available and not self.tls_active:
            capabilities.append("STLS")
        capabilities.append(f"IMPLEMENTATION {self._implementation}")
        return [multiline("capability list follows", capabilities)]

    def _user(self, argument: str) -> list[Action]:
        (self._pending_user,) = _arguments(argument, 1, 1, "USER name")
        return [ok("send PASS")]

    def _pass(self, argument: str) -> list[Action]:
        # The password is the rest of the line: it may contain spaces (RFC 1939 7).
        user, self._pending_user = self._pending_user, None
        if user is None:
            raise _Refused("send USER first")
        if len(argument) > MAX_ARGUMENT:
            raise _Refused(f"password too long (the limit is {MAX_ARGUMENT} characters)")
        return self._check_login(user, argument)

    def _auth(self, argument: str) -> list[Action]:
        arguments = _arguments(argument, 0, 2, "AUTH [mechanism [initial-response]]", MAX_LINE)
        if not arguments:  # the pre-RFC 5034 way some clients ask for the mechanisms
            return [multiline("SASL mechanisms follow", ["PLAIN"])]
        if arguments[0].upper() != "PLAIN":
            raise _Refused("unsupported mechanism; PLAIN is the one offered")
        if len(arguments) == 1:
            self._awaiting_sasl = True
            return [Reply(b"+ \r\n")]
        return self._plain_response(arguments[1])

    def _plain_response(self, response: str) -> list[Action]:
        """The client's answer to AUTH PLAIN (RFC 4616): authzid NUL user NUL password."""
        if response == "*":
            return [error("authentication cancelled")]
        try:
            # "=" is an empty initial response (RFC 5034 4), which PLAIN cannot use.
            decoded = base64.b64decode("" if response == "=" else response, validate=True)
        except (binascii.Error, ValueError):
            return [error("invalid base64 in the AUTH PLAIN response")]
        parts = [part.decode("utf-8", "replace") for part in decoded.split(b"\0")]
        if len(parts) != 3 or not parts[1]:
            return [error("AUTH PLAIN wants authzid NUL user NUL password")]
        identity, user, password = parts
        if identity and identity != user:
            return [error("[AUTH] the authorization identity must be empty or the user name")]
        if len(user) > MAX_ARGUMENT or len(password) > MAX_ARGUMENT:
            return [error(f"user name or password over {MAX_ARGUMENT} characters")]
        return self._check_login(user, password)

    def _check_login(self, user: str, password: str) -> list[Action]:
        self._checking = user
        return [CheckLogin(user, password, mailbox_recipient(user))]

    def _apop(self, argument: str) -> list[Action]:
        # APOP needs the password in the clear on the server; htpasswd keeps only hashes.
        raise _Refused("APOP is not supported: use USER and PASS, or AUTH PLAIN")

    def _stls(self, argument: str) -> list[Action]:
        _arguments(argument, 0, 0, "STLS")
        if self.tls_active:
            raise _Refused("TLS is already active")
        if not self._tls_available:
            raise _Refused("STLS is not available: the server has no certificate")
        return [ok("begin TLS negotiation"), StartTLS()]

    def _quit(self, argument: str) -> list[Action]:
        if self.state is State.AUTHORIZATION:
            return [ok("Mailtrap POP3 server signing off"), Close()]
        self.state = State.UPDATE
        ids = tuple(self._messages[index].id for index in sorted(self._deleted))
        if not ids:
            return self.deletion_done(True)
        return [DeleteMessages(ids)]

    # -- TRANSACTION ----------------------------------------------------------------

    def _stat(self, argument: str) -> list[Action]:
        _arguments(argument, 0, 0, "STAT")
        count, size = self._totals()
        return [ok(f"{count} {size}")]

    def _list(self, argument: str) -> list[Action]:
        if arguments := _arguments(argument, 0, 1, "LIST [msg]"):
            index = self._index(arguments[0])
            return [ok(f"{index + 1} {self._messages[index].size}")]
        count, size = self._totals()
        lines = [f"{number} {entry.size}" for number, entry in self._live()]
        return [multiline(f"{count} messages ({size} octets)", lines)]

    def _uidl(self, argument: str) -> list[Action]:
        if arguments := _arguments(argument, 0, 1, "UIDL [msg]"):
            index = self._index(arguments[0])
            return [ok(f"{index + 1} {self._messages[index].id}")]
        return [multiline("unique-id listing follows", [f"{n} {e.id}" for n, e in self._live()])]

    def _retr(self, argument: str) -> list[Action]:
        (number,) = _arguments(argument, 1, 1, "RETR msg")
        index = self._index(number)
        entry = self._messages[index]
        header = ok(f"{entry.size} octets").data
        return [SendMessage(entry, header, self._gone(index), mark_read=True)]

    def _top(self, argument: str) -> list[Action]:
        number, lines = _arguments(argument, 2, 2, "TOP msg n")
        index = self._index(number)
        if not _NUMBER.fullmatch(lines):
            raise _Refused("TOP wants a number of lines (0 or more)")
        header = ok("top of message follows").data
        return [SendMessage(self._messages[index], header, self._gone(index), int(lines))]

    def _dele(self, argument: str) -> list[Action]:
        (number,) = _arguments(argument, 1, 1, "DELE msg")
        index = self._index(number)
        self._deleted.add(index)
        self._live_size -= self._messages[index].size
        return [ok(f"message {index + 1} deleted")]

    def _noop(self, argument: str) -> list[Action]:
        _arguments(argument, 0, 0, "NOOP")
        return [ok()]

    def _rset(self, argument: str) -> list[Action]:
        _arguments(argument, 0, 0, "RSET")
        self._deleted.clear()
        self._live_size = self._total_size
        count, size = self._totals()
        return [ok(f"maildrop has {count} messages ({size} octets)")]

    # -- helpers ---------------------------------------------------------------------

    def _index(self, text: str) -> int:
        """The index of a message number that is in the maildrop and not deleted."""
        if not _NUMBER.fullmatch(text):
            raise _Refused("invalid message number")
        number = int(text)
        if not 1 <= number <= len(self._messages):
            raise _Refused(f"no such message, only {len(self._messages)} in maildrop")
        if number - 1 in self._deleted:
            raise _Refused(f"message {number} already deleted")
        return number - 1

    def _live(self) -> list[tuple[int, Entry]]:
        """(number, entry) of every message not marked deleted."""
        return [(i + 1, e) for i, e in enumerate(self._messages) if i not in self._deleted]

    def _totals(self) -> tuple[int, int]:
        """How many messages are not marked deleted, and their octets."""
        return len(self._messages) - len(self._deleted), self._live_size

    def _gone(self, index: int) -> bytes:
        return error(f"message {index + 1} no longer exists: it was deleted since login").data

    _AUTHORIZATION = frozenset({State.AUTHORIZATION})
    _TRANSACTION = frozenset({State.TRANSACTION})
    _EITHER = _AUTHORIZATION | _TRANSACTION
    _COMMANDS: ClassVar[Mapping[str, tuple[frozenset[State], _Handler]]] = {
        "CAPA": (_EITHER, _capa),
        "USER": (_AUTHORIZATION, _user),
        "PASS": (_AUTHORIZATION, _pass),
        "AUTH": (_AUTHORIZATION, _auth),
        "APOP": (_AUTHORIZATION, _apop),
        "STLS": (_AUTHORIZATION, _stls),
        "QUIT": (_EITHER, _quit),
        "STAT": (_TRANSACTION, _stat),
        "LIST": (_TRANSACTION, _list),
        "UIDL": (_TRANSACTION, _uidl),
        "RETR": (_TRANSACTION, _retr),
        "TOP": (_TRANSACTION, _top),
        "DELE": (_TRANSACTION, _dele),
        "NOOP": (_TRANSACTION, _noop),
        "RSET": (_TRANSACTION, _rset),
    }


def _arguments(
    text: str, least: int, most: int, syntax: str, limit: int = MAX_ARGUMENT
) -> list[str]:
    """Split ``text`` into between ``least`` and ``most`` arguments of at most ``limit``."""
    arguments = text.split()
    if not least <= len(arguments) <= most:
        raise _Refused(f"syntax: {syntax}")
    if any(len(argument) > limit for argument in arguments):
        raise _Refused(f"argument too long (the limit is {limit} characters)")
    return arguments
