"""The checks of a running server: read a stored message, run a check, cache its result.

The API routes and the pytest plugin both call :class:`Checks`. Messages are
read through the part index with the bounds the message views have (bodies
cut at MAX_BODY_BYTES, the header block at MAX_HEADER_BLOCK); the raw bytes
are read whole only for spamd and DKIM, and only up to their own limits.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from mailtrap.checks import cache
from mailtrap.checks.authentication import Envelope, auth_check
from mailtrap.checks.caniemail import catalog
from mailtrap.checks.dns_records import Records
from mailtrap.checks.html import html_check
from mailtrap.checks.http_probe import CACHE_SECONDS, Prober
from mailtrap.checks.links import extract_links, link_check
from mailtrap.checks.signatures import MAX_AUTH_BYTES, parse_dkim_key
from mailtrap.checks.spam import MAX_SPAM_BYTES, Spamd, spam_result
from mailtrap.config import Config
from mailtrap.errors import CheckError, StorageError
from mailtrap.message import bodies
from mailtrap.part_index import header_block
from mailtrap.resolver import make_resolver

if TYPE_CHECKING:
    from mailtrap.store import Store

log = logging.getLogger(__name__)

VERSION = 1  # of the checks' code: a new version does not reuse old cached results
Bound = Callable[[], AbstractContextManager[Any]]


@contextlib.contextmanager
def _unbounded() -> Iterator[None]:
    yield


class Checks:
    """HTML, link, spam and authentication checks of the messages in ``store``."""

    def __init__(self, store: Store, config: Config):
        self.store = store
        self.config = config
        self.keys = dict(parse_dkim_key(spec) for spec in config.dkim_key)  # ConfigError early
        resolver = make_resolver(config.dns)
        self.records = Records(resolver)
        self.prober = Prober(resolver, allow_private=config.link_check_allow_private)
        self.spamd = Spamd(config.spamassassin) if config.spamassassin else None

    def html(self, message_id: str, refresh: bool = False, bound: Bound = _unbounded) -> Any:
        """Mailpit's HTMLCheckResponse; :class:`CheckError` if the message has no HTML."""
        key = cache.fingerprint(VERSION, catalog().updated)

        def compute() -> Any:
            with bound():
                _, source = self.store.source(message_id)
                html = bodies(source).html
                if not html:
                    raise CheckError("message does not contain HTML")
                return html_check(html)

        return self._cached(message_id, "html", key, compute, refresh)

    def links(
        self,
        message_id: str,
        follow: bool = False,
        refresh: bool = False,
        bound: Bound = _unbounded,
    ) -> Any:
        """Mailpit's LinkCheckResponse. Results are kept CACHE_SECONDS, then asked again."""
        key = cache.fingerprint(VERSION, self.config.link_check_allow_private, self.config.dns)

        def compute() -> Any:
            with bound():  # only the reading: requests hold no message in memory
                _, source = self.store.source(message_id)
                found = bodies(source)
                urls = extract_links(found.html, found.text)
            if refresh:
                self.prober.forget()
            return link_check(urls, self.prober.probe, self.prober.resolve, follow)

        name = "links-follow" if follow else "links"
        return self._cached(message_id, name, key, compute, refresh, max_age=CACHE_SECONDS)

    def spam(self, message_id: str, refresh: bool = False) -> Any:
        """Mailpit's SpamAssassinResponse; :class:`CheckError` without ``--spamassassin``."""
        if self.spamd is None:
            raise CheckError(
                "no SpamAssassin server is configured: start Mailtrap with --spamassassin HOST:PORT"
            )
        spamd = self.spamd
        key = cache.fingerprint(VERSION, str(self.config.spamassassin))

        def compute() -> Any:
            size, chunks = self.store.raw_chunks(message_id)
            raw = b"".join(chunks) if size <= MAX_SPAM_BYTES else b""
            return spam_result(raw, spamd, size=size)

        return self._cached(message_id, "spam", key, compute, refresh, cache_errors=False)

    def auth(self, message_id: str, refresh: bool = False, bound: Bound = _unbounded) -> Any:
        """DKIM, ARC, SPF and DMARC as a receiving MX would find them."""
        key = cache.fingerprint(VERSION, self.config.dns, sorted(self.keys.items()))

        def compute() -> Any:
            with bound():
                row, source = self.store.source(message_id)
                header = header_block(source)
                size, chunks = self.store.raw_chunks(message_id)
                raw = b"".join(chunks) if size <= MAX_AUTH_BYTES else b""
                envelope = Envelope(row["peer"] or "", row["helo"] or "", row["mail_from"] or "")
                return auth_check(raw, header, envelope, self.records, self.keys, size=size)

        return self._cached(message_id, "auth", key, compute, refresh)

    def _cached(
        self,
        message_id: str,
        name: str,
        key: str,
        compute: Callable[[], Any],
        refresh: bool,
        max_age: float | None = None,
        cache_errors: bool = True,
    ) -> Any:
        if not refresh:
            found = self.store.cached_check(message_id, name, key, max_age)
            if found is not None:
                return found
        result = compute()
        if cache_errors or not (isinstance(result, dict) and result.get("Error")):
            try:
                # Not waited for: the answer need not wait for the cache to be written.
                self.store.save_check(message_id, name, key, result)
            except StorageError:
                log.warning("could not cache the %s check of %s", name, message_id)
        return result
