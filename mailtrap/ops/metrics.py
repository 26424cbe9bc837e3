"""``/metrics``: a running server's counters in Prometheus' text format.

Values are read when Prometheus scrapes, from :class:`~mailtrap.ops.stats.ServerStats`,
the store, the login throttle and the webhook; nothing is counted twice.
Each server has its own registry, so servers in one process (tests) keep
their numbers apart. Another part of the server adds its own families
through ``Server.metric_sources``: callables that return prometheus_client
metric families.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from mailtrap.server import Server

MetricSource = Callable[[], Iterable[Metric]]

# Every reason the SMTP listener gives for a refusal, so each series exists from the start.
REJECT_REASONS = (
    "authentication-required",
    "chaos-recipient",
    "chaos-sender",
    "message-too-big",
    "storage-failure",
    "too-many-recipients",
)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class ServerCollector(Collector):
    """The metric families of one :class:`mailtrap.Server`."""

    def __init__(self, server: Server):
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        stats = server.stats
        store = server.store
        yield _gauge("mailtrap_uptime_seconds", "Seconds since the server started.", stats.uptime)
        total, unread = store.counts()
        yield _gauge("mailtrap_messages", "Messages stored.", total)
        yield _gauge("mailtrap_messages_unread", "Stored messages not yet read.", unread)
        yield _gauge(
            "mailtrap_database_size_bytes",
            "Size of the database file and its write-ahead log.",
            store.database_size(),
        )
        yield _counter(
            "mailtrap_messages_deleted", "Messages deleted or pruned by retention.", store.deleted
        )
        yield _counter(
            "mailtrap_smtp_accepted", "SMTP messages accepted (250).", stats.smtp_accepted
        )
        yield _counter(
            "mailtrap_smtp_accepted_bytes",
            "Bytes of the SMTP messages accepted.",
            stats.smtp_accepted_bytes,
        )
        rejected = CounterMetricFamily(
            "mailtrap_smtp_rejected", "SMTP messages or envelope steps refused.", labels=["reason"]
        )
        counts = dict.fromkeys(REJECT_REASONS, 0) | dict(stats.smtp_rejected)
        for reason, count in sorted(counts.items()):
            rejected.add_metric([reason], count)
        yield rejected
        yield _counter("mailtrap_pop3_sessions", "POP3 sessions started.", stats.pop3_sessions)
        yield _gauge(
            "mailtrap_websocket_clients",
            "Websocket clients connected now.",
            stats.websocket_clients,
        )
        yield from self._throttle()
        yield from self._webhook()
        yield from self._relay()
        for source in list(server.metric_sources):
            yield from source()

    def _throttle(self) -> Iterator[Metric]:
        throttle = self.server.auth_throttle
        yield _counter(
            "mailtrap_auth_failures", "Failed logins (SMTP, POP3, web).", throttle.failures
        )
        yield _counter(
            "mailtrap_auth_lockouts",
            "Client addresses locked out for failed logins.",
            throttle.lockouts,
        )
        yield _gauge(
            "mailtrap_auth_locked_addresses",
            "Client addresses locked out now.",
            throttle.locked_addresses,
        )

    def _relay(self) -> Iterator[Metric]:
        if self.server.relay is None:
            return
        counts = self.server.relay_counts()
        waiting = ("pending", "deferred", "sending")
        yield _gauge(
            "mailtrap_relay_queue_length",
            "Relay deliveries not finished yet (pending, deferred or being sent).",
            sum(counts.get(state, 0) for state in waiting),
        )
        recipients = GaugeMetricFamily(
            "mailtrap_relay_recipients",
            "Relay deliveries (one per recipient of a message) by state.",
            labels=["state"],
        )
        for state in (*waiting, "delivered", "failed"):
            recipients.add_metric([state], counts.get(state, 0))
        yield recipients

    def _webhook(self) -> Iterator[Metric]:
        webhook = self.server.webhook
        if webhook is None:
            return
        outcomes = CounterMetricFamily(
            "mailtrap_webhook_requests", "Webhook deliveries by outcome.", labels=["outcome"]
        )
        for outcome in ("delivered", "failed", "dropped"):
            outcomes.add_metric([outcome], webhook.outcomes[outcome])
        yield outcomes


def registry(server: Server) -> CollectorRegistry:
    """A registry of ``server``'s metrics alone."""
    own = CollectorRegistry(auto_describe=False)
    own.register(ServerCollector(server))
    return own


def exposition(registry: CollectorRegistry) -> bytes:
    """The text format Prometheus scrapes."""
    return generate_latest(registry)
