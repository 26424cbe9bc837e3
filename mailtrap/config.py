"""Settings of a Mailtrap server, and parsers for their textual forms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from mailtrap.errors import ConfigError
from mailtrap.tags.arrival import Tagging
from mailtrap.tags.rules import MAX_RULES, TagRule, load_rules

MiB = 1024 * 1024


@dataclass(frozen=True)
class Address:
    """A host and TCP port to listen on; port 0 means "pick a free one"."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str, default_host: str = "127.0.0.1") -> Address:
    """Parse ``[HOST:]PORT``; IPv6 hosts go in brackets (``[::1]:1025``)."""
    match = re.fullmatch(r"(?:\[(?P<v6>[^\]]+)\]:|(?P<host>[^:\[\]]*):)?(?P<port>\d{1,5})", text)
    if not match:
        raise ConfigError(f"invalid address {text!r}: expected [HOST:]PORT")
    port = int(match["port"])
    if port > 65535:
        raise ConfigError(f"invalid port {port} in {text!r}")
    host = match["v6"] or match["host"] or default_host
    return Address(host, port)


_SIZE_UNITS = {"": 1, "k": 1024, "m": MiB, "g": 1024 * MiB}


def parse_size(text: str) -> int:
    """Parse a byte count such as ``52428800``, ``50M``, ``50MiB`` or ``512k``."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmg]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not match:
        raise ConfigError(f"invalid size {text!r}: expected a number with an optional k/M/G")
    return int(match[1]) * _SIZE_UNITS[match[2].lower()]


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Parse a duration such as ``90``, ``45s``, ``30m``, ``12h``, ``7d`` into seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text, re.IGNORECASE)
    if not match:
        raise ConfigError(f"invalid duration {text!r}: expected a number with s/m/h/d/w")
    return float(match[1]) * _DURATION_UNITS[(match[2] or "s").lower()]


SANS_PREFIX = "sans:"


@dataclass(frozen=True)
class GeneratedCertificate:
    """Mailpit's ``sans:NAME,...``: a self-signed certificate made at start for these names."""

    names: tuple[str, ...]

    def __str__(self) -> str:
        return SANS_PREFIX + ",".join(self.names)


def parse_tls_file(text: str) -> Path | GeneratedCertificate:
    """A PEM file's path, or ``sans:NAME[,NAME...]`` (host names and IP addresses)."""
    if not text.lower().startswith(SANS_PREFIX):
        return Path(text)
    names = tuple(dict.fromkeys(n.strip().lower() for n in text[len(SANS_PREFIX) :].split(",")))
    names = tuple(name for name in names if name)
    if not names:
        raise ConfigError(f"{text!r} names no host: expected sans:NAME[,NAME...]")
    for name in names:
        if not re.fullmatch(r"[a-z0-9.:\-*_]+", name):
            raise ConfigError(f"invalid name {name!r} in {text!r}: a host name or IP address")
    return GeneratedCertificate(names)


def default_db_path() -> Path:
    """Where mail is kept unless ``--db`` says otherwise: the user's data directory."""
    return Path(platformdirs.user_data_dir("mailtrap", appauthor=False)) / "mailtrap.db"


@dataclass(frozen=True)
class Config:
    """Everything a :class:`mailtrap.Server` needs; the defaults match ``mailtrap serve``."""

    smtp: Address = Address("127.0.0.1", 1025)
    http: Address | None = Address("127.0.0.1", 8025)  # None: no web inbox or API
    db: Path | None = None
    max_message_size: int = 50 * MiB
    max_messages: int = 10_000
    max_age: float | None = None
    sync: str = "normal"  # SQLite's synchronous setting for acknowledged writes: full or normal
    smtp_tls_cert: Path | None = None
    smtp_tls_key: Path | None = None
    smtp_tls_self_signed: bool = False
    smtp_require_tls: bool = False
    smtp_auth_file: Path | None = None
    smtp_max_recipients: int = 100
    smtp_max_connections: int = 100
    smtp_max_connections_per_ip: int = 20  # IPv6: per /64
    smtp_idle_timeout: float = 300.0
    smtp_junk_command_limit: int = 100  # Postfix's smtpd_junk_command_limit
    pop3: Address | None = Address("127.0.0.1", 1110)  # None: no POP3
    pop3s: Address | None = None  # POP3 over implicit TLS; needs a certificate
    pop3_auth_file: Path | None = None
    pop3_max_connections: int = 100
    pop3_max_connections_per_ip: int = 20
    pop3_idle_timeout: float = 600.0  # RFC 1939 asks for at least 10 minutes
    auth_failure_limit: int = 10  # failed logins from one address before a lockout
    auth_lockout: float = 600.0
    auth_failure_delay: float = 1.0  # the first delay; it doubles with each failure
    hostname: str = "mailtrap"
    webroot: str = "/"
    ui_tls_cert: Path | GeneratedCertificate | None = None  # set: HTTPS instead of HTTP
    ui_tls_key: Path | GeneratedCertificate | None = None
    ui_auth_file: Path | None = None
    api_cors: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    http_header_timeout: float = 10.0
    http_body_timeout: float = 30.0
    http_max_connections: int = 1000
    http_max_connections_per_ip: int = 100
    http_workers: int = 8
    http_max_streams: int = 100
    dns: Address | None = None  # None: the system's resolver (relay and checks)
    tag: tuple[TagRule, ...] = ()  # --tag rules
    tags_config: Path | None = None  # a TOML file of more rules
    tags_disable: tuple[str, ...] = ()  # "plus-addresses", "x-tags"
    tags_title_case: bool = False
    tags_username: bool = False

    def tagging(self) -> Tagging:
        """How arriving mail is tagged; reads ``tags_config`` (ConfigError if it is bad)."""
        rules = self.tag + (load_rules(self.tags_config) if self.tags_config else ())
        if len(rules) > MAX_RULES:
            raise ConfigError(f"at most {MAX_RULES} tag rules, not {len(rules)}")
        disabled = {_TAGS_DISABLE[name.strip().lower()] for name in self.tags_disable}
        return Tagging(
            rules=rules,
            plus_addresses="plus-addresses" not in disabled,
            x_tags="x-tags" not in disabled,
            title_case=self.tags_title_case,
            username=self.tags_username,
        )

    relay_config: Path | None = None  # a TOML file; None: relay is off
    spamassassin: Address | None = None  # spamd for the spam check; None: not configured
    link_check_allow_private: bool = False  # let the link check reach loopback and private nets
    dkim_key: tuple[str, ...] = ()  # DOMAIN:SELECTOR=FILE, used instead of DNS for that key
    # Operations and hooks for other tools (mailtrap.ops, mailtrap.hooks).
    webhook_url: str | None = None  # POSTed the summary of each new message
    webhook_limit: float = 5.0  # webhook requests per second at most; 0 = no limit
    webhook_timeout: float = 5.0
    enable_chaos: bool = False  # lets PUT /api/v1/chaos set SMTP errors on purpose
    archive: Path | None = None  # messages retention deletes are written here first
    archive_format: str = "maildir"  # or "mbox"

    @property
    def db_path(self) -> Path:
        return self.db if self.db is not None else default_db_path()

    @property
    def smtp_tls_enabled(self) -> bool:
        return self.smtp_tls_self_signed or self.smtp_tls_cert is not None

    @property
    def ui_tls_enabled(self) -> bool:
        return self.ui_tls_cert is not None

    def validate(self) -> None:
        """Raise :class:`ConfigError` for settings that cannot work together."""
        self._validate_ui_tls()
        if (self.smtp_tls_cert is None) != (self.smtp_tls_key is None):
            raise ConfigError("--smtp-tls-cert and --smtp-tls-key must be given together")
        if self.smtp_tls_cert is not None and self.smtp_tls_self_signed:
            raise ConfigError("--smtp-tls-self-signed conflicts with --smtp-tls-cert")
        if self.smtp_require_tls and not self.smtp_tls_enabled:
            raise ConfigError("--smtp-require-tls needs a certificate or --smtp-tls-self-signed")
        if self.max_message_size <= 0:
            raise ConfigError("--max-message-size must be positive")
        if self.sync not in ("full", "normal"):
            raise ConfigError(f"--sync must be full or normal, not {self.sync!r}")
        if self.max_messages < 0:
            raise ConfigError("--max-messages must be 0 (unlimited) or more")
        if self.smtp_max_recipients < 1 or self.smtp_max_connections < 1:
            raise ConfigError("recipient and connection limits must be at least 1")
        if self.pop3s is not None and not self.smtp_tls_enabled:
            raise ConfigError(
                "--pop3s needs a certificate: --smtp-tls-cert and --smtp-tls-key, "
                "or --smtp-tls-self-signed"
            )
        if self.pop3_max_connections < 1:
            raise ConfigError("--pop3-max-connections must be at least 1")
        if min(self.smtp_max_connections_per_ip, self.pop3_max_connections_per_ip) < 1:
            raise ConfigError("per-address connection limits must be at least 1")
        if self.smtp_junk_command_limit < 1:
            raise ConfigError("--smtp-junk-command-limit must be at least 1")
        if self.auth_failure_limit < 1:
            raise ConfigError("--auth-failure-limit must be at least 1")
        if self.auth_lockout <= 0 or self.auth_failure_delay < 0:
            raise ConfigError("--auth-lockout must be positive, --auth-failure-delay not negative")
        if self.pop3_idle_timeout <= 0:
            raise ConfigError("--pop3-idle-timeout must be positive")
        if self.http_header_timeout <= 0 or self.http_body_timeout <= 0:
            raise ConfigError("--http-header-timeout and --http-body-timeout must be positive")
        http_limits = (
            self.http_max_connections,
            self.http_max_connections_per_ip,
            self.http_workers,
            self.http_max_streams,
        )
        if min(http_limits) < 1:
            raise ConfigError("HTTP connection, worker and stream limits must be at least 1")
        if not self.webroot.startswith("/"):
            raise ConfigError(f"--webroot must start with '/': {self.webroot!r}")
        self._validate_ops()
        files = (
            self.smtp_tls_cert,
            self.smtp_tls_key,
            self.smtp_auth_file,
            self.ui_auth_file,
            self.pop3_auth_file,
            self.relay_config,
        )
        for path in files:
            if path is not None and not path.is_file():
                raise ConfigError(f"file not found: {path}")
        for name in self.tags_disable:
            if name.strip().lower() not in _TAGS_DISABLE:
                raise ConfigError(
                    f"--tags-disable {name!r}: expected plus-addresses or x-tags (comma-separated)"
                )

    def _validate_ui_tls(self) -> None:
        cert, key = self.ui_tls_cert, self.ui_tls_key
        if (cert is None) != (key is None):
            raise ConfigError("--ui-tls-cert and --ui-tls-key must be given together")
        generated = [isinstance(value, GeneratedCertificate) for value in (cert, key)]
        if any(generated) and cert != key:
            raise ConfigError(
                "--ui-tls-cert and --ui-tls-key: sans: makes the certificate and its key, "
                f"so both must be the same sans: list (got {cert} and {key})"
            )
        for flag, value in (("--ui-tls-cert", cert), ("--ui-tls-key", key)):
            if isinstance(value, Path) and not value.is_file():
                raise ConfigError(f"{flag}: file not found: {value}")

    def _validate_ops(self) -> None:
        if self.webhook_url is not None and not re.match(r"https?://[^/\s]+", self.webhook_url):
            raise ConfigError(
                f"--webhook-url must be an http:// or https:// URL: {self.webhook_url!r}"
            )
        if self.webhook_limit < 0 or self.webhook_timeout <= 0:
            raise ConfigError("--webhook-limit must not be negative, --webhook-timeout positive")
        if self.archive_format not in ("maildir", "mbox"):
            raise ConfigError(
                f"--archive-format must be maildir or mbox, not {self.archive_format!r}"
            )


# Mailpit's --tags-disable names, and the spellings it also takes.
_TAGS_DISABLE = {
    "plus-addresses": "plus-addresses",
    "plus-addressing": "plus-addresses",
    "x-tags": "x-tags",
    "xtags": "x-tags",
}


def parse_optional_address(text: str) -> Address | None:
    """``[HOST:]PORT``, or ``off`` to turn a listener off."""
    return None if text.strip().lower() == "off" else parse_address(text)


def parse_list(text: str) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def normalize_webroot(text: str) -> str:
    """``/``, or a path prefix such as ``/mail/`` (leading and trailing slash)."""
    stripped = text.strip().strip("/")
    return f"/{stripped}/" if stripped else "/"
