"""The ``mailtrap`` command line: serve, dump, ingest."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from mailtrap import __version__
from mailtrap.config import (
    Config,
    GeneratedCertificate,
    normalize_webroot,
    parse_address,
    parse_duration,
    parse_list,
    parse_optional_address,
    parse_size,
    parse_tls_file,
)
from mailtrap.errors import ConfigError, MailtrapError
from mailtrap.ingest import Problem, dump, find_sources, load
from mailtrap.live_ingest import notify
from mailtrap.ops import logs
from mailtrap.server import Server
from mailtrap.store import Store
from mailtrap.tags.rules import parse_rule

IN_FLIGHT = 256  # imported messages queued to the writer at once (group commit)
POP3_MIN_IDLE_TIMEOUT = 600.0  # RFC 1939 3: an autologout timer of at least 10 minutes


class _Parsed(click.ParamType):
    """A click type that parses with one of mailtrap.config's parsers."""

    def __init__(self, name: str, parse: Callable[[str], Any]):
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._parse(value)
        except MailtrapError as error:
            self.fail(str(error), param, ctx)


ADDRESS = _Parsed("[HOST:]PORT", parse_address)
OPTIONAL_ADDRESS = _Parsed("[HOST:]PORT|off", parse_optional_address)
WEBROOT = _Parsed("PATH", normalize_webroot)
LIST = _Parsed("LIST", parse_list)
SIZE = _Parsed("SIZE", parse_size)
DURATION = _Parsed("DURATION", parse_duration)
FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


class _TagRuleType(_Parsed):
    # A search holds spaces: from the environment, one rule a line.
    envvar_list_splitter = "\n"


TAG_RULE = _TagRuleType("TAG[,TAG...]=SEARCH", parse_rule)


def _tls_file(text: str) -> Path | GeneratedCertificate:
    value = parse_tls_file(text)
    if isinstance(value, Path) and not value.is_file():
        raise ConfigError(f"file not found: {value}")
    return value


TLS_FILE = _Parsed("FILE|sans:NAME,...", _tls_file)


def _at_least(minimum: float, ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A click callback refusing a number below ``minimum``."""
    if value is not None and value < minimum:
        raise click.BadParameter(f"must be at least {minimum:g} seconds", ctx, param)
    return value


def option(*names: str, **settings: Any) -> Callable[[Any], Any]:
    """A click option that also reads ``MAILTRAP_<FLAG>`` from the environment."""
    flag = next(name for name in names if name.startswith("--"))
    envvar = "MAILTRAP_" + flag[2:].upper().replace("-", "_")
    return click.option(*names, envvar=envvar, show_envvar=True, **settings)


db_option = option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite database file.  [default: mailtrap.db in the user's data directory]",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="mailtrap")
def main() -> None:
    """Mailtrap: capture the mail your application sends, for people and tests to look at."""


@main.command()
@option(
    "--smtp",
    type=ADDRESS,
    default="127.0.0.1:1025",
    help="SMTP listen address; port 0 picks a free port.",
)
@db_option
@option(
    "--max-message-size",
    type=SIZE,
    default="50MiB",
    help="Largest message accepted (k, M, G suffixes).",
)
@option(
    "--max-messages",
    type=click.IntRange(min=0),
    default=10_000,
    help="Keep at most this many messages, pruning the oldest; 0 = unlimited.",
)
@option(
    "--max-age",
    type=DURATION,
    default=None,
    help="Delete messages older than this (for example 12h, 7d); off by default.",
)
@option(
    "--sync",
    type=click.Choice(["full", "normal"], case_sensitive=False),
    default="normal",
    help="normal: each 250 follows a commit that survives a crash or kill of Mailtrap, "
    "not a power cut; full: each 250 also waits for an fsync (survives a power cut), "
    "which a client sending one message at a time feels.",
)
@option("--smtp-tls-cert", type=FILE, default=None, help="PEM certificate for STARTTLS.")
@option("--smtp-tls-key", type=FILE, default=None, help="PEM private key for STARTTLS.")
@option(
    "--smtp-tls-self-signed",
    is_flag=True,
    help="Offer STARTTLS with a self-signed certificate made at start.",
)
@option(
    "--smtp-require-tls", is_flag=True, help="Refuse mail until the client has issued STARTTLS."
)
@option(
    "--smtp-auth-file",
    type=FILE,
    default=None,
    help="htpasswd file: AUTH is required and checked (default: any login is accepted).",
)
@option(
    "--smtp-max-recipients",
    type=click.IntRange(min=1),
    default=100,
    help="Recipients per message; more get 452.",
)
@option(
    "--smtp-max-connections",
    type=click.IntRange(min=1),
    default=100,
    help="Simultaneous SMTP connections; more get 421.",
)
@option(
    "--smtp-max-connections-per-ip",
    type=click.IntRange(min=1),
    default=20,
    help="Simultaneous SMTP connections from one address (IPv6: one /64); more get 421.",
)
@option(
    "--smtp-idle-timeout",
    type=DURATION,
    default="5m",
    help="Close SMTP connections idle this long (421); junk commands do not count.",
)
@option(
    "--smtp-junk-command-limit",
    type=click.IntRange(min=1),
    default=100,
    help="NOOP/RSET/HELP/VRFY/EXPN or refused commands in a row before an SMTP 421.",
)
@option(
    "--auth-failure-limit",
    type=click.IntRange(min=1),
    default=10,
    help="Failed logins (SMTP, POP3, web) from one address before it is locked out.",
)
@option(
    "--auth-lockout",
    type=DURATION,
    default="10m",
    help="How long a locked-out address is refused (SMTP 454/421, POP3 -ERR, HTTP 429).",
)
@option(
    "--auth-failure-delay",
    type=DURATION,
    default="1s",
    help="Delay before answering a failed login, after the first two; doubles up to 8 times this.",
)
@option("--hostname", default="mailtrap", help="Name the server gives itself in SMTP greetings.")
@option(
    "--pop3",
    type=OPTIONAL_ADDRESS,
    default="127.0.0.1:1110",
    help="POP3 listen address; port 0 picks a free port; 'off' turns it off.",
)
@option(
    "--pop3s",
    type=OPTIONAL_ADDRESS,
    default=None,
    help="POP3 over implicit TLS (POP3S) on this address, with the --smtp-tls-* certificate.",
)
@option(
    "--pop3-auth-file",
    type=FILE,
    default=None,
    help="htpasswd file: only its users log in to POP3 (default: any login is accepted).",
)
@option(
    "--pop3-max-connections",
    type=click.IntRange(min=1),
    default=100,
    help="Simultaneous POP3 connections; more get -ERR and are closed.",
)
@option(
    "--pop3-max-connections-per-ip",
    type=click.IntRange(min=1),
    default=20,
    help="Simultaneous POP3 connections from one address (IPv6: one /64); more get -ERR.",
)
@option(
    "--pop3-idle-timeout",
    type=DURATION,
    default="10m",
    callback=lambda ctx, param, value: _at_least(POP3_MIN_IDLE_TIMEOUT, ctx, param, value),
    help="Close POP3 connections idle this long; at least 10m (RFC 1939).",
)
@option(
    "--http",
    type=OPTIONAL_ADDRESS,
    default="127.0.0.1:8025",
    help="Web inbox and API listen address; port 0 picks a free port; 'off' turns it off.",
)
@option(
    "--webroot",
    type=WEBROOT,
    default="/",
    help="Serve the web inbox and API under this path (behind a reverse proxy).",
)
@option(
    "--ui-tls-cert",
    type=TLS_FILE,
    default=None,
    metavar="FILE|sans:NAME,...",
    help="PEM certificate: serve the web inbox and API over HTTPS only "
    "(sans:NAME,... makes a self-signed one at start; needs --ui-tls-key).",
)
@option(
    "--ui-tls-key",
    type=TLS_FILE,
    default=None,
    metavar="FILE|sans:NAME,...",
    help="PEM private key of --ui-tls-cert (the same sans:NAME,... with a made one).",
)
@option(
    "--ui-auth-file",
    type=FILE,
    default=None,
    help="htpasswd file: basic auth for the web inbox, API and websocket.",
)
@option(
    "--api-cors",
    type=LIST,
    default="",
    help="Comma-separated origins allowed to call the API from a browser (CORS); none by default.",
)
@option(
    "--allowed-hosts",
    type=LIST,
    default="",
    help="More Host names to answer when bound to loopback (for a reverse proxy).",
)
@option(
    "--http-header-timeout",
    type=DURATION,
    default="10s",
    help="Close an HTTP connection whose request header is not whole within this (408).",
)
@option(
    "--http-body-timeout",
    type=DURATION,
    default="30s",
    help="Close an HTTP connection whose request body is not whole within this (408).",
)
@option(
    "--http-max-connections",
    type=click.IntRange(min=1),
    default=1000,
    help="Simultaneous HTTP connections; more get 503.",
)
@option(
    "--http-max-connections-per-ip",
    type=click.IntRange(min=1),
    default=100,
    help="Simultaneous HTTP connections from one client address; more get 503.",
)
@option(
    "--http-workers",
    type=click.IntRange(min=1),
    default=8,
    help="Threads answering ordinary HTTP requests at once.",
)
@option(
    "--http-max-streams",
    type=click.IntRange(min=1),
    default=100,
    help="Websockets and long-poll searches open at once; more get 503.",
)
@option(
    "--dns",
    "--relay-dns",
    "dns",
    type=ADDRESS,
    default=None,
    help="DNS server [HOST:]PORT that relay and message checks ask, instead of the system's.",
)
@option(
    "--relay-config",
    type=FILE,
    default=None,
    help="TOML file that turns relay on: mode, allowlist, smarthost, rules (README: Relay).",
)
@option(
    "--spamassassin",
    type=ADDRESS,
    default=None,
    help="SpamAssassin's spamd [HOST:]PORT for the spam check (off by default).",
)
@option(
    "--link-check-allow-private",
    is_flag=True,
    help="Let the link check request loopback, private, link-local and CGNAT addresses.",
)
@option(
    "--dkim-key",
    multiple=True,
    metavar="DOMAIN:SELECTOR=FILE",
    help="Verify DKIM signatures of DOMAIN with SELECTOR against this key (PEM or DKIM record) "
    "instead of DNS; repeatable (environment: space-separated).",
)
@option(
    "--log-level",
    type=click.Choice(logs.LEVELS, case_sensitive=False),
    default="info",
    help="Least important log lines shown (info: one line per message accepted or refused).",
)
@option(
    "--log-format",
    type=click.Choice(logs.FORMATS, case_sensitive=False),
    default="text",
    help="Log lines as text, or as one JSON object each (for log collectors).",
)
@option(
    "--webhook-url",
    default=None,
    help="POST the JSON summary of each new message to this URL, from a background worker.",
)
@option(
    "--webhook-limit",
    type=click.FloatRange(min=0),
    default=5.0,
    help="Webhook requests per second at most; 0 = no limit.",
)
@option(
    "--webhook-timeout",
    type=DURATION,
    default="5s",
    help="Give up on a webhook request after this long (it is tried 3 times).",
)
@option(
    "--enable-chaos",
    is_flag=True,
    help="Let PUT /api/v1/chaos make SMTP fail on purpose (Mailpit's chaos triggers).",
)
@option(
    "--archive",
    type=click.Path(path_type=Path),
    default=None,
    help="Before retention deletes messages, write them to this Maildir folder or mbox file.",
)
@option(
    "--archive-format",
    type=click.Choice(["maildir", "mbox"], case_sensitive=False),
    default="maildir",
    help="Format of --archive.",
)
@option(
    "--tag",
    type=TAG_RULE,
    multiple=True,
    help="Tag arriving messages a search finds: 'TAG[,TAG...]=SEARCH'; repeatable "
    "(MAILTRAP_TAG: one rule a line).",
)
@option(
    "--tags-config",
    type=FILE,
    default=None,
    help="TOML file of tag rules: [[filters]] tables with match and tags.",
)
@option(
    "--tags-disable",
    type=LIST,
    default="",
    help="Automatic tags to turn off, comma-separated: plus-addresses, x-tags.",
)
@option(
    "--tags-title-case",
    is_flag=True,
    default=False,
    help="Title-case the tags made from plus addresses and X-Tags.",
)
@option(
    "--tags-username",
    is_flag=True,
    default=False,
    help="Tag each message with the SMTP or HTTP login that sent it.",
)
def serve(log_level: str, log_format: str, **settings: Any) -> None:
    """Run the server until interrupted (Ctrl+C or SIGTERM)."""
    logs.configure(log_level.lower(), log_format.lower())
    # Before the banner: whoever waits for it may signal at once, and must get a clean stop.
    stop = _stop_on_signal()
    server = Server(Config(**settings))
    try:
        server.start()
    except ConfigError as error:
        # Settings that cannot work together are a usage error, like a single bad value.
        raise click.UsageError(str(error)) from error
    except MailtrapError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Mailtrap {__version__}")
    click.echo(f"SMTP listening on {server.smtp_address}")
    if server.config.pop3 is not None:
        click.echo(f"POP3 listening on {server.pop3_address}")
    if server.config.pop3s is not None:
        click.echo(f"POP3S listening on {server.pop3s_address} (implicit TLS)")
    if server.config.http is not None:
        click.echo(f"HTTP listening on {server.http_address} (web inbox: {server.http_url})")
    if server.relay is not None:
        click.echo(f"Relay: {server.relay.settings.server_description}")
    click.echo(f"Database: {server.config.db_path}")
    click.echo("Press Ctrl+C to stop.")
    sys.stdout.flush()
    while not stop.wait(1.0):  # a timed wait so signal handlers get their turn
        pass
    click.echo("Stopping: letting transactions in flight finish.")
    server.stop()
    click.echo("Stopped.")


def _stop_on_signal() -> threading.Event:
    """An event that SIGINT or SIGTERM sets."""
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    return stop


@main.command("dump")
@db_option
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def dump_command(db: Path | None, folder: Path) -> None:
    """Write every stored message to FOLDER/<ID>.eml, byte for byte as received."""
    with _open_store(db, must_exist=True) as store:
        count = dump(store, folder)
    click.echo(f"Wrote {count} messages to {folder}")


@main.command("ingest")
@db_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def ingest_command(db: Path | None, paths: tuple[Path, ...]) -> None:
    """Import .eml files, mbox files and Maildir folders (folders are searched)."""
    sources = list(find_sources(paths))
    problems = [item for item in sources if isinstance(item, Problem)]
    imported = 0
    with _open_store(db) as store:
        pending = []
        with click.progressbar(
            [s for s in sources if not isinstance(s, Problem)],
            label="Importing",
            file=sys.stderr,
            show_pos=True,
        ) as bar:
            for source in bar:
                try:
                    pending.append(store.add(load(source)))
                except (OSError, ValueError) as error:
                    problems.append(Problem(source.label, str(error)))
                if len(pending) >= IN_FLIGHT:
                    imported += _settle(pending, problems)
        imported += _settle(pending, problems)
    if imported and notify(store.path, store.receipt_prefix):
        click.echo("Told the server running on this database (it shows them and prunes).")
    for problem in problems:
        click.echo(f"error: {problem.label}: {problem.reason}", err=True)
    click.echo(f"Imported {imported} messages" + (f", {len(problems)} failed" if problems else ""))
    if problems:
        sys.exit(1)


def _settle(pending: list[Any], problems: list[Problem]) -> int:
    """Wait for queued imports to commit; returns how many did."""
    done = 0
    for future in pending:
        try:
            future.result()
            done += 1
        except MailtrapError as error:
            problems.append(Problem("(store)", str(error)))
    pending.clear()
    return done


@contextmanager
def _open_store(db: Path | None, *, must_exist: bool = False) -> Iterator[Store]:
    """The store of ``db``; ``must_exist`` for reading commands, which create nothing."""
    path = db if db is not None else Config().db_path
    if must_exist and not path.is_file():
        raise click.ClickException(f"no database at {path} (give the server's with --db)")
    store = Store(path)
    try:
        store.open()
    except MailtrapError as error:
        raise click.ClickException(str(error)) from error
    try:
        yield store
    finally:
        store.close()


# The commands of other modules (after `main` and `option` exist, which they use).
from mailtrap import cli_ops  # noqa: E402

cli_ops.register(main)
