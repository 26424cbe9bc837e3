"""The backend of an already running Mailtrap, through its Mailpit-compatible HTTP API.

Messages come from ``GET /api/v1/messages`` (newest first) and their raw
source from ``/api/v1/message/{ID}/raw``; waiting uses the long-poll search
``GET /api/v1/search?query=after:T&wait=S``, which answers as soon as a
message newer than T exists. Only the standard library is used.
"""

from __future__ import annotations

import base64
import datetime
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from mailtrap.config import Address, parse_address
from mailtrap.errors import ConfigError, MailtrapError
from mailtrap.pytest_plugin.checks import HttpChecks
from mailtrap.pytest_plugin.message import Envelope, Mail

DEFAULT_SMTP_PORT = 1025
REQUEST_TIMEOUT = 10.0
LONGEST_POLL = 30.0  # seconds one long-poll request may wait on the server
PAGE_SIZE = 100
ONE_MS = datetime.timedelta(milliseconds=1)
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]", "*"}


class MailtrapUnreachable(MailtrapError):
    """The external server named by ``--mailtrap-url`` does not answer."""


class ApiError(MailtrapError):
    """The external server answered a request with an error."""


class ApiClient:
    """Minimal JSON client of one server; ``user:password@`` in the URL becomes basic auth."""

    def __init__(self, url: str, timeout: float = REQUEST_TIMEOUT):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--mailtrap-url must be an http(s) URL, not {url!r}")
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port:
            netloc += f":{parts.port}"
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        self.base_url = urllib.parse.urlunsplit((parts.scheme, netloc, path, "", ""))
        self.host = parts.hostname
        self.timeout = timeout
        self._headers = {"Accept": "application/json"}
        if parts.username is not None:
            credentials = f"{urllib.parse.unquote(parts.username)}:"
            credentials += urllib.parse.unquote(parts.password or "")
            self._headers["Authorization"] = "Basic " + base64.b64encode(
                credentials.encode()
            ).decode("ascii")
        # No proxies from the environment: a test server is reached directly.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(self, path: str, timeout: float | None = None, **params: Any) -> bytes:
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(url, headers=self._headers)
        try:
            with self._opener.open(request, timeout=timeout or self.timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read()[:300].decode("utf-8", "replace")
            raise ApiError(f"GET {url} answered {error.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise MailtrapUnreachable(f"cannot reach {self.base_url}: {reason}") from None

    def get_json(self, path: str, timeout: float | None = None, **params: Any) -> Any:
        body = self.get(path, timeout, **params)
        try:
            return json.loads(body)
        except ValueError:
            raise ApiError(f"GET {self.base_url}{path} did not answer JSON") from None


@dataclass(frozen=True)
class HttpMark:
    """The newest message when the mark was taken (None: the server was empty)."""

    id: str | None
    created: datetime.datetime | None


class HttpBackend:
    """An external Mailtrap server reached through its HTTP API."""

    def __init__(self, url: str, smtp: Address | None = None):
        self.api = ApiClient(url)
        self.api.get_json("api/v1/info")  # fails here, once, if the server is not there
        self._smtp = smtp or self._advertised_smtp() or Address(self.api.host, DEFAULT_SMTP_PORT)

    @property
    def smtp_host(self) -> str:
        return self._smtp.host

    @property
    def smtp_port(self) -> int:
        return self._smtp.port

    @property
    def http_url(self) -> str:
        return self.api.base_url

    def _advertised_smtp(self) -> Address | None:
        """Where the server says SMTP listens, from a top-level ``SMTP...`` field of
        ``/api/v1/webui`` or ``/api/v1/info`` (a ``HOST:PORT`` string or ``{Host, Port}``)."""
        for path in ("api/v1/webui", "api/v1/info"):
            try:
                document = self.api.get_json(path)
            except ApiError:
                continue
            for key, value in document.items() if isinstance(document, dict) else ():
                address = _address_in(value) if "smtp" in key.lower() else None
                if address is not None:
                    host = self.api.host if address.host in WILDCARD_HOSTS else address.host
                    return Address(host, address.port)
        return None

    def mark(self) -> HttpMark:
        page = self.api.get_json("api/v1/messages", start=0, limit=1)
        newest = (page.get("messages") or [None])[0]
        if newest is None:
            return HttpMark(None, None)
        return HttpMark(newest["ID"], _timestamp(newest["Created"]))

    def messages_after(self, mark: HttpMark, known: dict[str, Mail]) -> list[Mail]:
        newer: dict[str, dict[str, Any]] = {}
        start = 0
        while True:
            page = self.api.get_json("api/v1/messages", start=start, limit=PAGE_SIZE)
            summaries = page.get("messages") or []
            reached_mark = False
            for summary in summaries:
                reached_mark = _is_at_or_before(summary, mark)
                if reached_mark:
                    break
                newer.setdefault(summary["ID"], summary)  # paging while mail arrives repeats some
            if reached_mark or len(summaries) < PAGE_SIZE:
                return [self._mail(s, known) for s in reversed(newer.values())]
            start += PAGE_SIZE

    def _mail(self, summary: dict[str, Any], known: dict[str, Mail]) -> Mail:
        cached = known.get(summary["ID"])
        if cached is None:
            raw = self.api.get(f"api/v1/message/{urllib.parse.quote(summary['ID'])}/raw")
            # The API does not expose the envelope; the recipients are the best it
            # tells (Bcc holds the envelope recipients the headers do not name).
            recipients = [
                person["Address"]
                for field in ("To", "Cc", "Bcc")
                for person in summary.get(field) or []
                if person.get("Address")
            ]
            envelope = Envelope(
                mail_from=None,
                rcpt_tos=tuple(recipients),
                tls=None,
                auth_user=summary.get("Username") or None,
            )
            received = _timestamp(summary["Created"])
            checks = HttpChecks(self.api)
            cached = known[summary["ID"]] = Mail(
                summary["ID"], raw, envelope, received, checks, relay_source=self
            )
        return cached

    def watch(self, mark: HttpMark) -> LongPollWatch:
        return LongPollWatch(self.api, mark)

    # -- relay state (a RelaySource), from GET /api/v1/message/{ID}/relay ---------

    def relay_state(self, message_id: str) -> tuple[list[dict[str, Any]], str]:
        answer = self.api.get_json(f"api/v1/message/{urllib.parse.quote(message_id)}/relay")
        return answer.get("Relay") or [], str(answer.get("Version", ""))

    def wait_relay(
        self, message_id: str, version: str, timeout: float
    ) -> tuple[list[dict[str, Any]], str]:
        """One long poll (at most LONGEST_POLL s): the server answers when the state changes."""
        wait = min(timeout, LONGEST_POLL)
        answer = self.api.get_json(
            f"api/v1/message/{urllib.parse.quote(message_id)}/relay",
            timeout=wait + REQUEST_TIMEOUT,
            wait=f"{wait:.3f}",
            changed=version,
        )
        return answer.get("Relay") or [], str(answer.get("Version", ""))


class LongPollWatch:
    """Waits with the server's long-poll search for a message newer than those seen.

    The query is about time, not about this connection, so a message that
    arrived between the caller's look and this request answers it at once.
    """

    SUSPICIOUS_LIMIT = 3

    def __init__(self, api: ApiClient, mark: HttpMark):
        self.api = api
        self.mark = mark
        self._suspicious = 0

    def wait(self, timeout: float, seen: list[Mail]) -> None:
        times = [mail.received for mail in seen if mail.received is not None]
        newest = max([*times, self.mark.created] if self.mark.created else times, default=None)
        # Mailpit's after: is inclusive, to the millisecond; an empty server had nothing old.
        query = f"after:{_rfc3339(newest + ONE_MS if newest else EPOCH)}"
        wait = min(timeout, LONGEST_POLL)
        started = time.monotonic()
        answer = self.api.get_json(
            "api/v1/search",
            timeout=wait + REQUEST_TIMEOUT,
            query=query,
            limit=1,
            wait=f"{wait:.3f}",
        )
        found = answer.get("messages") or []
        quick = time.monotonic() - started < min(wait, 1.0) / 2
        stale = newest is not None and all(_timestamp(m["Created"]) <= newest for m in found)
        # A server that ignored wait= or after: would answer at once, every time.
        if quick and (not found or stale):
            self._suspicious += 1
            if self._suspicious >= self.SUSPICIOUS_LIMIT:
                raise MailtrapError(
                    f"{self.api.base_url} answers /api/v1/search?wait= at once: it does not "
                    "support Mailtrap's long-poll search"
                )
        else:
            self._suspicious = 0

    def __enter__(self) -> LongPollWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def _is_at_or_before(summary: dict[str, Any], mark: HttpMark) -> bool:
    if mark.id is None:
        return False
    if summary["ID"] == mark.id:
        return True
    assert mark.created is not None
    return _timestamp(summary["Created"]) < mark.created


def _timestamp(text: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _rfc3339(moment: datetime.datetime) -> str:
    utc = moment.astimezone(datetime.UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _address_in(value: Any) -> Address | None:
    if isinstance(value, str):
        try:
            return parse_address(value.strip().removeprefix("smtp://"), default_host="")
        except ConfigError:
            return None
    if isinstance(value, dict):
        fields = {key.lower(): item for key, item in value.items()}
        if isinstance(fields.get("port"), int):
            return Address(str(fields.get("host") or ""), fields["port"])
        for item in fields.values():
            if isinstance(item, str) and (address := _address_in(item)):
                return address
    return None
