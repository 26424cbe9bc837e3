"""Commands for running Mailtrap as a service and for other tools: healthcheck, sendmail."""

from __future__ import annotations

import smtplib
import sqlite3
import sys
from pathlib import Path

import click

from mailtrap.cli import ADDRESS, OPTIONAL_ADDRESS, SIZE, WEBROOT, db_option, option
from mailtrap.config import Address, Config
from mailtrap.ops.healthcheck import problems, reachable
from mailtrap.sendmail import MessageTooLarge, prepare, read_message

EX_DATAERR = 65  # sendmail's exit codes (sysexits.h): the message was refused
EX_TEMPFAIL = 75  # try again later: the server is away or answered 4xx


@click.command("healthcheck")
@option("--smtp", type=ADDRESS, default="127.0.0.1:1025", help="SMTP address of the server.")
@option(
    "--http",
    type=OPTIONAL_ADDRESS,
    default="127.0.0.1:8025",
    help="HTTP address of the server; 'off' checks the database file instead.",
)
@option("--webroot", type=WEBROOT, default="/", help="The server's --webroot.")
@db_option
@option("--check-timeout", type=click.FloatRange(min=0.1), default=5.0, help="Seconds per check.")
def healthcheck(
    smtp: Address, http: Address | None, webroot: str, db: Path | None, check_timeout: float
) -> None:
    """Exit 0 if the server's SMTP, HTTP and database answer (Docker's HEALTHCHECK)."""
    found = problems(smtp, http, webroot=webroot, timeout=check_timeout)
    if http is None:
        found += _database_problem(db if db is not None else Config().db_path)
    for problem in found:
        click.echo(f"unhealthy: {problem}", err=True)
    if found:
        sys.exit(1)
    click.echo("healthy")


def _database_problem(path: Path) -> list[str]:
    """With no HTTP to ask, the database is read directly (read-only, creating nothing)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            conn.execute("SELECT count(*) FROM messages").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as error:
        return [f"database {path}: {error}"]
    return []


@click.command(
    "sendmail",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True},
)
@option("--smtp", type=ADDRESS, default="127.0.0.1:1025", help="SMTP address of the server.")
@option("-t", "--read-recipients", is_flag=True, help="Recipients from To, Cc and Bcc as well.")
@option("-f", "--sender", default=None, help="Envelope sender (default: the From address).")
@option("-i", "--ignore-dots", is_flag=True, help="A lone '.' line does not end the message.")
@option("-o", "--sendmail-option", multiple=True, help="sendmail's -oX options; -oi is -i.")
@option("-F", "--full-name", default=None, help="sendmail's sender name; ignored.")
@option("--max-message-size", type=SIZE, default="50MiB", help="Largest message read.")
@click.argument("recipients", nargs=-1)
def sendmail(
    smtp: Address,
    read_recipients: bool,
    sender: str | None,
    ignore_dots: bool,
    sendmail_option: tuple[str, ...],
    full_name: str | None,
    max_message_size: int,
    recipients: tuple[str, ...],
) -> None:
    """Read a message on stdin and send it to Mailtrap, as /usr/sbin/sendmail would."""
    ignore_dots = ignore_dots or "i" in sendmail_option
    addresses = [item for item in recipients if not item.startswith("-")]
    try:
        data = read_message(sys.stdin.buffer, dot_ends=not ignore_dots, limit=max_message_size)
    except MessageTooLarge as error:
        click.echo(f"sendmail: {error}", err=True)
        sys.exit(EX_DATAERR)
    outgoing = prepare(data, addresses, from_header=read_recipients, sender=sender)
    if not outgoing.rcpt_tos:
        click.echo("sendmail: no recipients (name them, or use -t)", err=True)
        sys.exit(EX_DATAERR)
    target = reachable(smtp)
    try:
        with smtplib.SMTP(target.host, target.port, timeout=30) as client:
            refused = client.sendmail(outgoing.mail_from, outgoing.rcpt_tos, outgoing.data)
    except smtplib.SMTPResponseException as error:
        click.echo(
            f"sendmail: {error.smtp_code} {error.smtp_error.decode(errors='replace')}", err=True
        )
        sys.exit(EX_TEMPFAIL if 400 <= error.smtp_code < 500 else EX_DATAERR)
    except smtplib.SMTPRecipientsRefused as error:
        click.echo(f"sendmail: every recipient was refused: {error.recipients}", err=True)
        sys.exit(EX_DATAERR)
    except (OSError, smtplib.SMTPException) as error:
        click.echo(f"sendmail: cannot send to {target}: {error}", err=True)
        sys.exit(EX_TEMPFAIL)
    for address, (code, reply) in refused.items():
        click.echo(
            f"sendmail: {address} refused: {code} {reply.decode(errors='replace')}", err=True
        )


def register(group: click.Group) -> None:
    group.add_command(healthcheck)
    group.add_command(sendmail)
