"""The relay's settings, read from a TOML file (``--relay-config``) with :mod:`tomllib`.

Relay is off unless a file is given. Every key is checked when the server
starts; a bad file stops it with a message naming the key (or, for TOML
syntax, the line). The README's "Relay" section has the full reference.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailtrap.config import parse_duration
from mailtrap.errors import ConfigError
from mailtrap.relay.addresses import normalize_domain, parse_mailbox
from mailtrap.search import Search, SearchSyntaxError, parse

MODES = ("mx", "smarthost")
SMARTHOST_TLS = ("starttls", "tls", "none")
AUTH_MECHANISMS = ("plain", "login")
MAX_DURATION = 365 * 86400.0  # longer is a typo, and overflows a socket timeout near inf
SECRET_KEYS = {"password"}  # never echoed in an error message


class RelayConfigError(ConfigError):
    """The relay configuration file cannot be used."""


def normalize_address(address: str) -> str:
    """``Local@Domain`` as compared: both parts lower case, the domain in IDNA (ASCII) form.

    Raises ValueError for anything that is not one plain ``local@domain``
    (:func:`mailtrap.relay.addresses.parse_mailbox`).
    """
    return parse_mailbox(address.strip()).key


@dataclass(frozen=True)
class RecipientPolicy:
    """Who may receive relayed mail: exact addresses and whole domains, never patterns."""

    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    blocked_addresses: frozenset[str] = frozenset()
    blocked_domains: frozenset[str] = frozenset()
    allow_any: bool = False

    def refusal(self, address: str) -> str | None:
        """Why ``address`` may not be relayed to, or None if it may."""
        try:
            mailbox = parse_mailbox(address)
        except ValueError as error:
            return str(error).partition(":")[0]
        normalized, domain = mailbox.key, mailbox.domain
        if normalized in self.blocked_addresses or domain in self.blocked_domains:
            return "on the blocklist"
        if self.allow_any or normalized in self.addresses or domain in self.domains:
            return None
        return "not on the allowlist"


@dataclass(frozen=True)
class Smarthost:
    host: str
    port: int
    tls: str = "starttls"  # starttls (required), tls (implicit, port 465) or none
    tls_verify: bool = True
    ca_file: Path | None = None
    auth: str | None = None  # plain or login
    username: str = ""
    password: str = field(default="", repr=False)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Retry:
    first_delay: float = 60.0
    max_delay: float = 3600.0
    lifetime: float = 5 * 86400.0  # Postfix's maximal_queue_lifetime


@dataclass(frozen=True)
class Rule:
    """Auto-relay or forwarding: which new messages (``search`` None: all), and forward to whom."""

    query: str = ""
    search: Search | None = None
    to: tuple[str, ...] = ()


@dataclass(frozen=True)
class RelaySettings:
    mode: str = "mx"
    recipients: RecipientPolicy = RecipientPolicy()
    mx_port: int = 25
    allow_private_targets: bool = False
    smarthost: Smarthost | None = None
    sender: str | None = None  # the envelope sender for every relayed message
    keep_message_id: bool = False
    helo: str | None = None  # the name in EHLO; None: the server's --hostname
    timeout: float = 60.0  # seconds for one SMTP command's reply
    dns_timeout: float = 5.0  # seconds for one DNS lookup, retries included
    concurrency: int = 4  # transactions at once
    retry: Retry = Retry()
    auto_relay: tuple[Rule, ...] = ()
    forward: tuple[Rule, ...] = ()

    @property
    def server_description(self) -> str:
        """What Mailpit's ``SMTPServer`` shows: the smarthost, or that MX hosts are looked up."""
        return (
            str(self.smarthost)
            if self.smarthost
            else f"MX hosts of each domain, port {self.mx_port}"
        )


KNOWN_KEYS = {
    "": {
        "mode", "allowed_recipients", "allow_any_recipient", "blocked_recipients", "sender",
        "keep_message_id", "helo", "timeout", "dns_timeout", "concurrency", "mx", "smarthost",
        "retry", "auto_relay", "forward",
    },
    "mx": {"port", "allow_private_targets"},
    "smarthost": {
        "host", "port", "tls", "tls_verify", "ca_file", "auth", "username", "password",
        "password_env",
    },
    "retry": {"first_delay", "max_delay", "lifetime"},
    "auto_relay": {"query"},
    "forward": {"to", "query"},
}  # fmt: skip


def load(path: Path) -> RelaySettings:
    """Read and check a relay configuration file; RelayConfigError says what is wrong where."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise RelayConfigError(f"cannot read relay config {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise RelayConfigError(f"relay config {path}: {error}") from None
    try:
        return parse_settings(document)
    except RelayConfigError as error:
        raise RelayConfigError(f"relay config {path}: {error}") from None


def parse_settings(document: dict[str, Any]) -> RelaySettings:
    """The settings of a parsed TOML document (see :func:`load`)."""
    _check_keys(document, "")
    mode = _choice(document, "mode", MODES, "mx")
    mx = _table(document, "mx")
    retry_table = _table(document, "retry")
    retry = Retry(
        first_delay=_duration(retry_table, "retry.first_delay", Retry.first_delay),
        max_delay=_duration(retry_table, "retry.max_delay", Retry.max_delay),
        lifetime=_duration(retry_table, "retry.lifetime", Retry.lifetime),
    )
    if retry.max_delay < retry.first_delay:
        raise RelayConfigError("retry.max_delay must not be shorter than retry.first_delay")
    recipients = _recipient_policy(document)
    smarthost = _smarthost(document) if mode == "smarthost" else None
    if mode == "mx" and "smarthost" in document:
        raise RelayConfigError('[smarthost] is given but mode is "mx"; set mode = "smarthost"')
    sender = _optional_string(document, "sender")
    if sender is not None and sender != "":
        _address(sender, "sender")
    forward = tuple(
        _rule(item, f"forward[{n}]", needs_to=True) for n, item in _array(document, "forward")
    )
    for number, rule in enumerate(forward):
        for address in rule.to:
            reason = recipients.refusal(address)
            if reason is not None:
                raise RelayConfigError(f"forward[{number}].to: {address} is {reason}")
    return RelaySettings(
        mode=mode,
        recipients=recipients,
        mx_port=_port(mx, "mx.port", 25),
        allow_private_targets=_bool(mx, "mx.allow_private_targets", False),
        smarthost=smarthost,
        sender=sender,
        keep_message_id=_bool(document, "keep_message_id", False),
        helo=_helo(document),
        timeout=_duration(document, "timeout", 60.0),
        dns_timeout=_duration(document, "dns_timeout", 5.0),
        concurrency=_integer(document, "concurrency", 4, 1, 64),
        retry=retry,
        auto_relay=tuple(
            _rule(item, f"auto_relay[{n}]") for n, item in _array(document, "auto_relay")
        ),
        forward=forward,
    )


# -- sections ------------------------------------------------------------------


def _recipient_policy(document: dict[str, Any]) -> RecipientPolicy:
    allow_any = _bool(document, "allow_any_recipient", False)
    if "allowed_recipients" not in document and not allow_any:
        raise RelayConfigError(
            "allowed_recipients is required: a list of addresses and domains that may receive "
            "relayed mail (or allow_any_recipient = true, to allow every address)"
        )
    addresses, domains = _recipient_list(document, "allowed_recipients")
    blocked_addresses, blocked_domains = _recipient_list(document, "blocked_recipients")
    return RecipientPolicy(
        frozenset(addresses),
        frozenset(domains),
        frozenset(blocked_addresses),
        frozenset(blocked_domains),
        allow_any,
    )


def _recipient_list(document: dict[str, Any], key: str) -> tuple[set[str], set[str]]:
    """Entries with an ``@`` are exact addresses; the others whole domains (``@x`` too)."""
    addresses: set[str] = set()
    domains: set[str] = set()
    for number, entry in enumerate(_string_list(document, key)):
        where = f"{key}[{number}]"
        if "*" in entry or "?" in entry:
            raise RelayConfigError(
                f"{where}: {entry!r}: patterns are not supported; list addresses or domains"
            )
        if entry.startswith("@"):
            domains.add(_domain(entry[1:], where))
        elif "@" in entry:
            addresses.add(_address(entry, where))
        else:
            domains.add(_domain(entry, where))
    return addresses, domains


def _smarthost(document: dict[str, Any]) -> Smarthost:
    if "smarthost" not in document:
        raise RelayConfigError('mode = "smarthost" needs a [smarthost] table with host and port')
    table = _table(document, "smarthost")
    host = _optional_string(table, "smarthost.host", key="host")
    if not host:
        raise RelayConfigError("smarthost.host is required")
    tls = _choice(table, "tls", SMARTHOST_TLS, "starttls", where="smarthost.tls")
    auth = table.get("auth")
    if auth is not None:
        auth = _choice(table, "auth", AUTH_MECHANISMS, "plain", where="smarthost.auth")
    username = _optional_string(table, "smarthost.username", key="username") or ""
    password = _password(table)
    if auth is not None and not username:
        raise RelayConfigError("smarthost.auth needs smarthost.username")
    if auth is None and (username or password):
        raise RelayConfigError(
            'smarthost.username is given without smarthost.auth ("plain" or "login")'
        )
    if auth is not None and tls == "none":
        raise RelayConfigError(
            'smarthost.auth needs tls = "starttls" or "tls": no password in clear'
        )
    ca_file = _optional_string(table, "smarthost.ca_file", key="ca_file")
    if ca_file is not None and not Path(ca_file).is_file():
        raise RelayConfigError(f"smarthost.ca_file: file not found: {ca_file}")
    default_port = {"starttls": 587, "tls": 465, "none": 25}[tls]
    return Smarthost(
        host=host,
        port=_port(table, "smarthost.port", default_port, key="port"),
        tls=tls,
        tls_verify=_bool(table, "smarthost.tls_verify", True, key="tls_verify"),
        ca_file=Path(ca_file) if ca_file else None,
        auth=auth,
        username=username,
        password=password,
    )


def _helo(document: dict[str, Any]) -> str | None:
    """The EHLO name: a host name, since it goes into a command line and a header field."""
    helo = _optional_string(document, "helo")
    return None if helo is None else _checked(check_helo, helo, "helo")


def check_helo(name: str) -> str:
    """``name`` if it may be sent in EHLO and our ``Received:`` field; ValueError if not."""
    normalize_domain(name)
    if not name.isascii() or name.endswith("."):
        raise ValueError(f"not a host name: {name!r}")
    return name


def _password(table: dict[str, Any]) -> str:
    password = _optional_string(table, "smarthost.password", key="password")
    variable = _optional_string(table, "smarthost.password_env", key="password_env")
    if password is not None and variable is not None:
        raise RelayConfigError("give smarthost.password or smarthost.password_env, not both")
    if variable is not None:
        if variable not in os.environ:
            raise RelayConfigError(f"smarthost.password_env: ${variable} is not set")
        return os.environ[variable]
    return password or ""


def _rule(item: Any, where: str, *, needs_to: bool = False) -> Rule:
    if not isinstance(item, dict):
        raise RelayConfigError(f"{where} must be a table ([[{where.split('[')[0]}]])")
    _check_keys(item, where.split("[")[0], where)
    query = _optional_string(item, f"{where}.query", key="query") or ""
    try:
        search = parse(query) if query.strip() else None
    except SearchSyntaxError as error:
        raise RelayConfigError(f"{where}.query: {error}") from None
    if search is not None and search.matches_everything:
        search = None
    to: tuple[str, ...] = ()
    if needs_to:
        to = tuple(_address(a, f"{where}.to") for a in _string_list(item, "to", f"{where}.to"))
        if not to:
            raise RelayConfigError(f"{where}.to must name at least one address")
    return Rule(query=query, search=search, to=to)


# -- values --------------------------------------------------------------------


def _check_keys(table: dict[str, Any], section: str, where: str | None = None) -> None:
    unknown = sorted(set(table) - KNOWN_KEYS[section])
    if unknown:
        prefix = f"{where or section}." if (where or section) else ""
        raise RelayConfigError(f"unknown key {prefix}{unknown[0]}")


def _table(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise RelayConfigError(f"{key} must be a table ([{key}])")
    _check_keys(value, key)
    return value


def _array(document: dict[str, Any], key: str) -> list[tuple[int, Any]]:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise RelayConfigError(f"{key} must be an array of tables ([[{key}]])")
    return list(enumerate(value))


def _typed(table: dict[str, Any], where: str, key: str | None, kind: type, default: Any) -> Any:
    value = table.get(key or where, default)
    if value is not default and (
        not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
    ):
        shown = "something else" if (key or where) in SECRET_KEYS else repr(value)
        raise RelayConfigError(f"{where} must be {_KIND_NAMES[kind]}, not {shown}")
    return value


_KIND_NAMES = {bool: "true or false", int: "a whole number", str: "a string"}


def _bool(table: dict[str, Any], where: str, default: bool, key: str | None = None) -> bool:
    return _typed(table, where, key or where.rpartition(".")[2], bool, default)


def _optional_string(table: dict[str, Any], where: str, key: str | None = None) -> str | None:
    return _typed(table, where, key or where.rpartition(".")[2], str, None)


def _integer(table: dict[str, Any], where: str, default: int, low: int, high: int) -> int:
    value = _typed(table, where, where.rpartition(".")[2], int, default)
    if not low <= value <= high:
        raise RelayConfigError(f"{where} must be from {low} to {high}, not {value}")
    return value


def _port(table: dict[str, Any], where: str, default: int, key: str | None = None) -> int:
    value = _typed(table, where, key or where.rpartition(".")[2], int, default)
    if not 1 <= value <= 65535:
        raise RelayConfigError(f"{where} must be a port from 1 to 65535, not {value}")
    return value


def _choice(
    table: dict[str, Any],
    key: str,
    choices: tuple[str, ...],
    default: str,
    where: str | None = None,
) -> str:
    value = _typed(table, where or key, key, str, default)
    if value.lower() not in choices:
        raise RelayConfigError(f"{where or key} must be one of {', '.join(choices)}, not {value!r}")
    return value.lower()


def _duration(table: dict[str, Any], where: str, default: float) -> float:
    value = table.get(where.rpartition(".")[2], default)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RelayConfigError(f'{where} must be a duration such as "90s", "30m" or "5d"')
    try:
        seconds = parse_duration(value) if isinstance(value, str) else float(value)
    except ConfigError as error:
        raise RelayConfigError(f"{where}: {error}") from None
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_DURATION:
        # NaN passes "<= 0" and would store a NULL next attempt: a delivery never due again.
        raise RelayConfigError(f"{where} must be positive and at most 365 days")
    return seconds


def _string_list(table: dict[str, Any], key: str, where: str | None = None) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RelayConfigError(f"{where or key} must be an array of strings")
    return value


def _checked(convert: Callable[[str], str], value: str, where: str) -> str:
    try:
        return convert(value)
    except ValueError as error:
        raise RelayConfigError(f"{where}: {error}") from None


def _address(value: str, where: str) -> str:
    return _checked(normalize_address, value, where)


def _domain(value: str, where: str) -> str:
    return _checked(normalize_domain, value, where)
