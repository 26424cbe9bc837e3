"""Link check: every link and image URL of a message, and what requesting it answers.

:func:`extract_links` is pure (lxml for the HTML, a linear scan for the
text); :func:`link_check` asks a prober (:class:`mailtrap.checks.http_probe.Prober`)
about each, a few at a time, and answers in the shape of Mailpit's
``GET /api/v1/message/{ID}/link-check``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import lxml.html
from lxml import etree

from mailtrap.checks.http_probe import NOT_CHECKED, LinkStatus
from mailtrap.ip_targets import IPAddress

MAX_LINKS = 100  # distinct URLs checked per message (Mailpit's number)
WORKERS = 8
# The whole check, every link included: a message of 100 links to servers that answer
# just before their 10 s timeout would otherwise keep its request busy for two minutes.
CHECK_SECONDS = 30.0
# The attributes that name what a mail client fetches or a reader follows.
URL_ATTRIBUTES = (("a", "href"), ("area", "href"), ("img", "src"), ("link", "href"))
# A URL in plain text ends at white space, quotes or angle brackets; no backtracking.
TEXT_URL = re.compile(r"""https?://[^\s<>"'`]+""", re.IGNORECASE)
TRAILING_PUNCTUATION = ".,;:!?)]}'\""


def extract_links(html: str, text: str, limit: int = MAX_LINKS) -> list[str]:
    """The http(s) URLs of the HTML's links, images and style sheets, then the text's,
    in order, without repeats, at most ``limit``."""
    found: dict[str, None] = {}
    for url in _html_urls(html):
        if len(found) >= limit:
            return list(found)
        found.setdefault(url)
    for match in TEXT_URL.finditer(text):
        if len(found) >= limit:
            break
        found.setdefault(match.group(0).rstrip(TRAILING_PUNCTUATION))
    return list(found)


def _html_urls(html: str) -> list[str]:
    if not html.strip():
        return []
    try:
        document = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return []
    urls = []
    for element in document.iter("a", "area", "img", "link"):
        for tag, attribute in URL_ATTRIBUTES:
            if element.tag != tag:
                continue
            if tag == "link" and "stylesheet" not in element.get("rel", "").lower():
                continue
            value = (element.get(attribute) or "").strip()
            if value[:7].lower() == "http://" or value[:8].lower() == "https://":
                urls.append(value)
    return urls


Probe = Callable[[str, bool, Callable[[str], list[IPAddress]], float], LinkStatus]


def link_check(
    urls: list[str],
    probe: Probe,
    resolve: Callable[[str, float], list[IPAddress]],
    follow: bool = False,
    seconds: float = CHECK_SECONDS,
) -> dict[str, Any]:
    """Mailpit's LinkCheckResponse: each URL's status, and how many are broken (0 or >= 400).

    Each host is resolved once for the whole check (``resolve`` is memoized here).
    Links not done within ``seconds`` are broken, with a status that says why.
    """
    deadline = time.monotonic() + seconds
    once = _Memo(lambda host: resolve(host, deadline))

    def status(url: str) -> LinkStatus:
        if time.monotonic() >= deadline:
            return LinkStatus(url, 0, NOT_CHECKED)
        return probe(url, follow, once, deadline)

    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="mailtrap-links") as pool:
        statuses = list(pool.map(status, urls))
    return {
        "Errors": sum(1 for status in statuses if is_broken(status)),
        "Links": [status.as_json() for status in statuses],
    }


def is_broken(status: LinkStatus) -> bool:
    return status.status_code == 0 or status.status_code >= 400


class _Memo:
    """A resolver that asks once per host, also when several links ask at the same time."""

    def __init__(self, resolve: Callable[[str], list[IPAddress]]):
        self._resolve = resolve
        self._lock = threading.Lock()
        self._hosts: dict[str, threading.Lock] = {}
        self._answers: dict[str, list[IPAddress] | BaseException] = {}

    def __call__(self, host: str) -> list[IPAddress]:
        key = host.lower()
        with self._lock:
            host_lock = self._hosts.setdefault(key, threading.Lock())
        with host_lock:
            if key not in self._answers:
                try:
                    self._answers[key] = self._resolve(host)
                except Exception as error:  # the same refusal for every link to this host
                    self._answers[key] = error
            answer = self._answers[key]
        if isinstance(answer, BaseException):
            raise answer
        return answer
