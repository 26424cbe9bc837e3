"""/metrics (read with prometheus_client's own parser), /api/v1/info counters, log lines."""

from __future__ import annotations

import json
import logging
import poplib
import smtplib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from api_client import Api, plain, send
from htpasswd import write_htpasswd
from metrics_client import scrape, value
from web_clients import events, next_frame, wait_until

from mailtrap import Server
from mailtrap.ops.logs import JsonFormatter


def refused_for_size(server: Server) -> None:
    address = server.smtp_address
    # smtplib announces SIZE=, so the refusal comes at MAIL FROM.
    with (
        smtplib.SMTP(address.host, address.port, timeout=10) as client,
        pytest.raises(smtplib.SMTPSenderRefused) as refused,
    ):
        client.sendmail("big@example.com", ["a@example.com"], b"x" * 3000)
    assert refused.value.smtp_code == 552


def test_metrics_count_what_the_server_did(make_server: Callable[..., Server]) -> None:
    server = make_server(max_message_size=2048, smtp_max_recipients=1)
    first = plain("one")
    send(server, first)
    send(server, plain("two"))
    refused_for_size(server)
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        refused = client.sendmail("a@example.com", ["b@example.com", "c@example.com"], plain("3"))
    assert set(refused) == {"c@example.com"}
    pop3 = poplib.POP3(server.pop3_address.host, server.pop3_address.port, timeout=10)
    pop3.user("anyone")
    pop3.pass_("any")
    pop3.quit()
    Api(server).ok("DELETE", "/api/v1/messages", {"IDs": [server.store.ids()[0]]})

    with events(server) as client:
        next_frame(client)  # the handshake's stats: the stream is running
        samples = scrape(server)
        assert value(samples, "mailtrap_websocket_clients") == 1
    assert value(samples, "mailtrap_smtp_accepted_total") == 3
    assert value(samples, "mailtrap_smtp_accepted_bytes_total") == 2 * len(first) + len(plain("3"))
    assert value(samples, "mailtrap_smtp_rejected_total", reason="message-too-big") == 1
    assert value(samples, "mailtrap_smtp_rejected_total", reason="too-many-recipients") == 1
    assert value(samples, "mailtrap_smtp_rejected_total", reason="chaos-sender") == 0
    assert value(samples, "mailtrap_pop3_sessions_total") == 1
    assert value(samples, "mailtrap_messages") == 2
    assert value(samples, "mailtrap_messages_unread") == 2
    assert value(samples, "mailtrap_messages_deleted_total") == 1
    assert value(samples, "mailtrap_database_size_bytes") == server.store.database_size()
    assert value(samples, "mailtrap_auth_failures_total") == 0
    assert wait_until(lambda: value(scrape(server), "mailtrap_websocket_clients") == 0)


def test_failed_logins_and_lockouts_show_in_metrics(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    users = write_htpasswd(tmp_path / "users", {"app": ("bcrypt", "secret")})
    server = make_server(
        smtp_auth_file=users, auth_failure_limit=2, auth_failure_delay=0.0, auth_lockout=600.0
    )
    address = server.smtp_address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        client.ehlo()
        client.user, client.password = "app", "wrong"
        for _ in range(2):  # one AUTH PLAIN each
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.auth("PLAIN", client.auth_plain)
    samples = scrape(server)
    assert value(samples, "mailtrap_auth_failures_total") == 2
    assert value(samples, "mailtrap_auth_lockouts_total") == 1
    assert value(samples, "mailtrap_auth_locked_addresses") == 1


def test_a_metric_source_adds_its_families(server: Server) -> None:
    from prometheus_client.core import GaugeMetricFamily

    server.metric_sources.append(
        lambda: [GaugeMetricFamily("mailtrap_relay_queue", "Messages waiting.", value=7)]
    )
    assert value(scrape(server), "mailtrap_relay_queue") == 7


def test_info_runtime_counters_are_integers_that_count(make_server: Callable[..., Server]) -> None:
    server = make_server(max_message_size=2048)
    message = plain("counted")
    send(server, message)
    refused_for_size(server)
    api = Api(server)
    api.ok("DELETE", "/api/v1/messages")

    stats = api.ok("GET", "/api/v1/info")["RuntimeStats"]
    assert stats["SMTPAccepted"] == 1
    assert stats["SMTPAcceptedSize"] == len(message)
    assert stats["SMTPRejected"] == 1
    assert stats["MessagesDeleted"] == 1
    assert stats["SMTPIgnored"] == 0
    for name, number in stats.items():
        assert type(number) is int, (name, number)


def test_each_accepted_and_refused_message_has_a_log_line(
    make_server: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(max_message_size=2048)
    caplog.set_level(logging.INFO, logger="mailtrap.messages")
    message_id = send(server, plain("logged"), rcpt_tos=("one@example.com", "two@example.com"))
    refused_for_size(server)

    accepted, rejected = (r for r in caplog.records if r.name == "mailtrap.messages")
    assert accepted.getMessage() == (
        f"accepted {message_id} from=<sender@example.com> "
        f"to=one@example.com,two@example.com size={len(plain('logged'))}"
    )
    # Refused at MAIL FROM for its SIZE=: no recipient yet.
    assert (
        rejected.getMessage()
        == "rejected from=<big@example.com> to= size=3000 reason=message-too-big"
    )
    entry = json.loads(JsonFormatter().format(accepted))
    assert entry["id"] == message_id
    assert entry["to"] == ["one@example.com", "two@example.com"]
    assert entry["event"] == "accepted" and entry["level"] == "info"


def test_serve_logs_json_lines_at_the_level_asked_for(start_serve: Callable[..., Any]) -> None:
    process = start_serve("--smtp", "127.0.0.1:0", "--log-format", "json", "--log-level", "info")
    address = process.address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        client.sendmail("a@example.com", ["b@example.com"], plain("json"))
    assert process.stop() == 0
    lines = [json.loads(line) for line in process.stderr.splitlines() if line.strip()]
    (accepted,) = [line for line in lines if line.get("event") == "accepted"]
    assert accepted["from"] == "a@example.com" and accepted["logger"] == "mailtrap.messages"

    quiet = start_serve("--smtp", "127.0.0.1:0", "--log-level", "warning")
    address = quiet.address
    with smtplib.SMTP(address.host, address.port, timeout=10) as client:
        client.sendmail("a@example.com", ["b@example.com"], plain("quiet"))
    assert quiet.stop() == 0
    assert "accepted" not in quiet.stderr
