"""The relay service: takes releases, applies auto-relay and forwarding, and works the queue.

One scheduler thread decides what is due and hands each transaction to a
small pool of threads that speak SMTP (:mod:`mailtrap.relay.client`), so the
SMTP listener's event loop never waits for a remote server. Every change of
a delivery's state is written through the store's writer before anything
depends on it; the scheduler sleeps until the next delivery is due or it is
woken (a release, a new message, a finished transaction). Nothing polls.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from mailtrap.errors import MailtrapError, MessageNotFound
from mailtrap.relay import queue
from mailtrap.relay.addresses import Mailbox, parse_mailbox
from mailtrap.relay.client import Client, Connection, Envelope
from mailtrap.relay.config import RelayConfigError, RelaySettings, Rule, check_helo
from mailtrap.relay.mx import Host, Lookup, dns_lookup, route
from mailtrap.relay.plan import (
    FAIL,
    LOOP_CHECK_BYTES,
    RETRY,
    Outcome,
    Transaction,
    new_message_id,
    next_attempt,
    received_field,
    relayed_by_us,
    relayed_message,
    transactions,
)

if TYPE_CHECKING:
    import dns.resolver

    from mailtrap.store import Store

log = logging.getLogger(__name__)

WRITE_TIMEOUT = 30.0  # seconds to wait for the writer to commit a queue change
SCAN_BATCH = 500  # new messages looked at per auto-relay pass
DUE_BATCH = 200  # deliveries taken from the queue per scheduler pass
HOLD_AFTER_ERROR = 30.0  # seconds a delivery rests after an error of ours (not the remote's)


def delivery_addresses(addresses: Iterable[str]) -> list[str]:
    """The addresses to send to (checked already), each mailbox once: the local part as
    given, the domain in IDNA form; ``A@x`` and ``a@x`` are one recipient, as compared."""
    first: dict[str, Mailbox] = {}
    for address in addresses:
        mailbox = parse_mailbox(address)
        first.setdefault(mailbox.key, mailbox)
    return [str(mailbox) for mailbox in first.values()]


class RelayService:
    """The relay of one server; :meth:`start` and :meth:`stop` it with the store open."""

    def __init__(
        self,
        store: Store,
        settings: RelaySettings,
        resolver: dns.resolver.Resolver,
        hostname: str,
        *,
        lookup: Lookup | None = None,
    ):
        self.store = store
        self.settings = settings
        self.helo = settings.helo or hostname
        try:
            check_helo(self.helo)
        except ValueError:
            raise RelayConfigError(
                f"--hostname {hostname!r} is no host name to greet remote servers with; "
                'set helo = "..." in the relay config'
            ) from None
        self._lookup = lookup or dns_lookup(resolver)
        self._rng = random.Random()
        self._client = Client()
        self._pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="mailtrap-relay")
        self._wake = threading.Condition()
        self._woken = False
        self._scan_wanted = True
        self._stopping = False
        self._busy: set[int] = set()  # deliveries in a transaction now
        self._held: dict[int, float] = {}  # deliveries resting after an error of ours
        self._running = 0  # transactions handed to the pool and not finished
        # Of those, per domain; one domain gets half the slots at most, so a slow
        # or stalling one cannot hold up every other (Postfix's per-destination limit).
        self._per_domain: Counter[str] = Counter()
        self._domain_cap = max(1, settings.concurrency // 2)
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> RelayService:
        touched = self._write("recover", time.time())
        if touched:
            log.warning(
                "relay: %d message(s) were cut off mid-delivery; not sent again", len(touched)
            )
        self._write("start_rules", bool(self.settings.auto_relay or self.settings.forward))
        self.store.add_parsed_listener(self._on_parsed)
        self._thread = threading.Thread(target=self._run, name="mailtrap-relay-queue", daemon=True)
        self._thread.start()
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Stop taking work; transactions in flight get ``grace`` seconds, then are cut off.

        A transaction cut off before its final "." stays queued for the next start.
        """
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        deadline = time.monotonic() + grace
        with self._wake:
            while self._running and time.monotonic() < deadline:
                self._wake.wait(deadline - time.monotonic())
        self._client.abort()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- what others call -----------------------------------------------------------

    def refusals(self, recipients: Iterable[str]) -> dict[str, str]:
        """Recipients that may not be relayed to, with the reason for each."""
        found: dict[str, str] = {}
        for recipient in recipients:
            reason = self.settings.recipients.refusal(recipient)
            if reason is not None:
                found[recipient] = reason
        return found

    def release(self, message_id: str, recipients: list[str]) -> list[int]:
        """Queue ``message_id`` for ``recipients`` (already checked); returns the row IDs."""
        addresses = delivery_addresses(recipients)
        ids = self._write(
            "enqueue", [(message_id, addresses, "release")], self.settings.sender, time.time()
        )
        self._announce([message_id])
        self._nudge()
        return ids

    def release_many(self, message_ids: list[str], recipients: list[str]) -> list[str]:
        """Queue each of ``message_ids`` for ``recipients`` (already checked) in one write;
        returns the IDs queued, which leaves out any message deleted meanwhile."""
        addresses = delivery_addresses(recipients)
        queued = self._write("release", message_ids, addresses, self.settings.sender, time.time())
        self._announce(queued)
        self._nudge()
        return queued

    def wake(self) -> None:
        """Look at the queue now: for rows written there by another path than :meth:`release`."""
        self._nudge()

    def deliveries(self, message_id: str) -> list[dict[str, Any]]:
        """The message's deliveries as its JSON shows them (``Relay``)."""
        return queue.of_message(self.store.reader, message_id)

    def counts(self) -> dict[str, int]:
        """The queue's numbers: pending, deferred, delivered, failed (and sending)."""
        return queue.counts(self.store.reader)

    # -- the scheduler ------------------------------------------------------------------

    def _on_parsed(self, ids: list[str]) -> None:
        # Without rules a new message starts no delivery: waking the scheduler
        # for every group of summaries would cost the SMTP process a query each time.
        if not (self.settings.auto_relay or self.settings.forward):
            return
        with self._wake:
            self._scan_wanted = True
        self._nudge()

    def _nudge(self) -> None:
        with self._wake:
            self._woken = True
            self._wake.notify_all()

    def _run(self) -> None:
        while True:
            timeout = None
            try:
                with self._wake:
                    scan, self._scan_wanted = self._scan_wanted, False
                if scan and (self.settings.auto_relay or self.settings.forward):
                    self._scan()
                timeout = self._dispatch()
            except MailtrapError as error:  # the store is away for a moment: try again soon
                log.error("relay queue: %s", error)
                timeout = HOLD_AFTER_ERROR
            with self._wake:
                if not self._woken and not self._stopping:
                    self._wake.wait(timeout)
                self._woken = False
                if self._stopping:
                    return

    def _dispatch(self) -> float | None:
        """Hand due transactions to the pool; returns seconds until the next is due."""
        now = time.time()
        with self._wake:
            self._held = {key: until for key, until in self._held.items() if until > now}
            resting = self._busy | set(self._held)
            free = self.settings.concurrency * 2 - self._running
            full = self._full_domains()
        if free > 0:
            due = queue.due(self.store.reader, now, DUE_BATCH, resting, full)
            by_domain = self.settings.smarthost is None
            for transaction in transactions(due, by_domain=by_domain):
                with self._wake:
                    if free <= 0:
                        break
                    if transaction.domain in self._full_domains():
                        continue  # one slow domain must not take every slot
                    self._busy.update(d.id for d in transaction.deliveries)
                    self._running += 1
                    if transaction.domain is not None:
                        self._per_domain[transaction.domain] += 1
                    free -= 1
                self._pool.submit(self._deliver, transaction)
        if free <= 0:
            return None  # a finished transaction wakes the scheduler
        with self._wake:
            resting = self._busy | set(self._held)
            upcoming = list(self._held.values())
            full = self._full_domains()
        when = queue.next_due(self.store.reader, resting, full)
        if when is not None:
            upcoming.append(when)
        return max(min(upcoming) - time.time(), 0.0) if upcoming else None

    def _full_domains(self) -> set[str]:
        """Domains with as many transactions at once as one domain may have (under the lock)."""
        return {domain for domain, count in self._per_domain.items() if count >= self._domain_cap}

    # -- one transaction -----------------------------------------------------------------

    def _deliver(self, transaction: Transaction) -> None:
        ids = [delivery.id for delivery in transaction.deliveries]
        try:
            outcomes = self._attempt(transaction)
            self._record(transaction, outcomes)
        except Exception as error:
            log.exception("relay of %s failed", transaction.message_id)
            # An attempt like any other: counted, retried with backoff, given up
            # after the lifetime, rather than tried every 30 s for ever.
            reason = f"error in Mailtrap: {type(error).__name__}: {error}"[:500]
            try:
                broken = dict.fromkeys(ids, Outcome(RETRY, reason))
                self._record(transaction, broken, unsent_only=True)
            except Exception:
                log.exception("relay of %s: cannot record the failure", transaction.message_id)
                with self._wake:
                    self._held.update(dict.fromkeys(ids, time.time() + HOLD_AFTER_ERROR))
        finally:
            with self._wake:
                self._busy.difference_update(ids)
                self._running -= 1
                if transaction.domain is not None:
                    self._per_domain[transaction.domain] -= 1
                    if not self._per_domain[transaction.domain]:
                        del self._per_domain[transaction.domain]
                self._woken = True
                self._wake.notify_all()

    def _attempt(self, transaction: Transaction) -> dict[int, Outcome]:
        deliveries = transaction.deliveries
        try:
            raw = self.store.raw(transaction.message_id)
        except MessageNotFound:  # deleted meanwhile: its rows went with it
            return {}
        settings = self.settings
        if settings.smarthost is not None:
            hosts: tuple[Host, ...] = (Host(settings.smarthost.host, (settings.smarthost.host,)),)
            port = settings.smarthost.port
        else:
            assert transaction.domain is not None
            found = route(
                transaction.domain,
                self._lookup,
                allow_private=settings.allow_private_targets,
                rng=self._rng,
            )
            if not found.hosts:
                outcome = Outcome(FAIL if found.permanent else RETRY, found.error)
                return {delivery.id: outcome for delivery in deliveries}
            hosts, port = found.hosts, settings.mx_port
        data = relayed_message(
            raw,
            received=received_field(self.helo, transaction.message_id),
            new_message_id=None if settings.keep_message_id else new_message_id(self.helo),
        )
        connection = Connection(hosts, port, self.helo, settings.timeout, settings.smarthost)
        envelope = Envelope(
            transaction.mail_from,
            deliveries,
            data,
            lambda ids: self._commit_point(transaction.message_id, ids),
        )
        return self._client.send(connection, envelope)

    def _commit_point(self, message_id: str, ids: list[int]) -> list[int]:
        if self._client.aborted.is_set():
            return []
        started = self._write("start_sending", ids, time.time())
        if started:
            self._announce([message_id])  # "sending": live clients see it before the reply
        return started

    def _record(
        self, transaction: Transaction, outcomes: dict[int, Outcome], unsent_only: bool = False
    ) -> None:
        now = time.time()
        rows = []
        for delivery in transaction.deliveries:
            outcome = outcomes.get(delivery.id)
            if outcome is None:
                continue
            when = None
            if outcome.state == RETRY:
                when = next_attempt(
                    delivery.attempts + 1, delivery.created, now, self.settings.retry
                )
            rows.append((delivery.id, outcome.state, outcome.reply, outcome.host, when))
            log.info(
                "relay %s to %s: %s %s", transaction.message_id, delivery.recipient,
                outcome.state, outcome.reply,
            )  # fmt: skip
        if rows:
            self._announce(self._write("record", rows, now, unsent_only))

    # -- auto-relay and forwarding ------------------------------------------------------------

    def _cursor(self) -> int | None:
        return queue.cursor(self.store.reader)

    def _scan(self) -> None:
        """Queue what the rules choose among messages that came since the last look."""
        while True:
            start = self._cursor() or 0
            rows = self.store.reader.execute(
                "SELECT seq, id, rcpt_tos, parsed FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
                [start, SCAN_BATCH],
            ).fetchall()
            entries: list[tuple[str, list[str], str]] = []
            last = start
            for seq, message_id, rcpt_tos, parsed in rows:
                if not parsed:
                    break  # its summary (and search index) is not in yet: look again then
                entries += self._chosen(seq, message_id, json.loads(rcpt_tos or "[]"))
                last = seq
            if last == start:
                return
            self._write("scanned", start, last, entries, self.settings.sender, time.time())
            self._announce(sorted({entry[0] for entry in entries}))
            if len(rows) < SCAN_BATCH:
                return

    def _chosen(
        self, seq: int, message_id: str, rcpt_tos: list[str]
    ) -> list[tuple[str, list[str], str]]:
        chosen: list[tuple[str, list[str], str]] = []
        if self._came_back(seq):
            log.warning(
                "relay: %s carries our own Received field (it was relayed here by this "
                "server): auto-relay and forwarding skip it, or they would loop",
                message_id,
            )
            return chosen
        relayed: list[str] = []
        if any(self._matches(rule, seq) for rule in self.settings.auto_relay):
            refused = self.refusals(rcpt_tos)
            relayed = delivery_addresses(r for r in rcpt_tos if r not in refused)
            for recipient, reason in refused.items():
                log.info("auto-relay of %s skips %s: %s", message_id, recipient, reason)
            if relayed:
                chosen.append((message_id, relayed, "auto"))
        relayed_keys = {parse_mailbox(address).key for address in relayed}
        forwarded = [
            address  # in compared form already (the config normalised it)
            for rule in self.settings.forward
            if self._matches(rule, seq)
            for address in rule.to
            if address not in relayed_keys
        ]
        if forwarded:
            chosen.append((message_id, list(dict.fromkeys(forwarded)), "forward"))
        return chosen

    def _came_back(self, seq: int) -> bool:
        row = self.store.reader.execute(
            "SELECT substr(data, 1, ?) FROM raw WHERE seq = ?", [LOOP_CHECK_BYTES, seq]
        ).fetchone()
        return row is not None and relayed_by_us(bytes(row[0]), self.helo)

    def _matches(self, rule: Rule, seq: int) -> bool:
        if rule.search is None:
            return True
        sql = f"SELECT 1 FROM messages WHERE seq = ? AND ({rule.search.where})"
        return self.store.reader.execute(sql, [seq, *rule.search.params]).fetchone() is not None

    # -- helpers -----------------------------------------------------------------------

    def _write(self, name: str, *args: Any) -> Any:
        return self.store.relay_write(name, *args).result(timeout=WRITE_TIMEOUT)

    def _announce(self, message_ids: list[str]) -> None:
        """Tell live clients (websocket, waits) the relay state of these messages."""
        hub = self.store.hub
        if not hub.has_subscribers:
            return
        for message_id in message_ids:
            hub.publish("relay", {"ID": message_id, "Relay": self.deliveries(message_id)})
