"""Requests for the link check, to addresses it has vetted itself.

Each host is resolved once, through the shared resolver; every address it
resolves to is vetted (:mod:`mailtrap.ip_targets`) and the connection
goes to that address, so no second lookup (which DNS rebinding could answer
differently) ever happens. A redirect is a new hop, vetted the same way.
Every request has a deadline, and a body is read only up to a cap.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import quote, urljoin, urlsplit

import dns.exception
import dns.name
import dns.resolver

from mailtrap import __version__
from mailtrap.ip_targets import IPAddress, refusal

TIMEOUT = 10.0  # seconds for one link, every hop and lookup included
MAX_REDIRECTS = 5
MAX_REQUESTS = 8  # links requested at once, by all link checks together
NOT_CHECKED = "not checked: the link check ran out of time"
MAX_BODY = 64 * 1024  # bytes of a GET answer read before the connection is closed
REDIRECTS = {301, 302, 303, 307, 308}
BLOCKED = 451  # Mailpit's status for a link to an address it will not connect to
CACHE_SECONDS = 300.0
MAX_CACHED = 10_000
USER_AGENT = f"Mailtrap-LinkCheck/{__version__}"


@dataclass(frozen=True)
class LinkStatus:
    """Mailpit's Link: the URL, the HTTP status (0: no answer) and what it means."""

    url: str
    status_code: int
    status: str

    def as_json(self) -> dict[str, object]:
        return {"URL": self.url, "StatusCode": self.status_code, "Status": self.status}


class Refused(Exception):
    """A hop the link check will not make: a bad URL or an address it must not reach."""

    def __init__(self, reason: str, status_code: int = 0):
        super().__init__(reason)
        self.status_code = status_code


Resolve = Callable[[str], list[IPAddress]]


class Prober:
    """Requests links (HEAD, else a capped GET), resolving through ``resolver``."""

    def __init__(
        self,
        resolver: dns.resolver.Resolver,
        *,
        allow_private: bool = False,
        timeout: float = TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self.resolver = resolver
        self.allow_private = allow_private
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        self._cache: dict[tuple[str, bool], tuple[float, LinkStatus]] = {}
        self._lock = threading.Lock()
        self._requests = threading.BoundedSemaphore(MAX_REQUESTS)

    def probe(
        self,
        url: str,
        follow: bool,
        resolve: Resolve | None = None,
        deadline: float | None = None,
    ) -> LinkStatus:
        """The status of ``url`` (the last hop's, with ``follow``), from this run's cache
        if it was asked for in the last CACHE_SECONDS.

        ``deadline`` (a ``time.monotonic()`` value) is the whole check's: the link gets
        what is left of it if that is less than its own timeout. At most MAX_REQUESTS
        links are requested at a time, however many checks run.
        """
        key = (url, follow)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > now:
                return cached[1]
        own = now + self.timeout
        limit = own if deadline is None else min(own, deadline)
        if not self._requests.acquire(timeout=max(limit - now, 0)):
            return LinkStatus(url, 0, NOT_CHECKED)
        try:
            result = self._probe(url, follow, resolve or self.resolve, limit)
        finally:
            self._requests.release()
        if result.status_code == 0 and limit < own:
            return result  # cut short by the check's deadline, not the link's own: not kept
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
            self._cache[key] = (now + CACHE_SECONDS, result)
        return result

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()

    def _probe(self, url: str, follow: bool, resolve: Resolve, deadline: float) -> LinkStatus:
        current = url
        try:
            for _ in range(MAX_REDIRECTS + 1):
                code, reason, location = self._request(current, resolve, deadline)
                if code not in REDIRECTS or not follow:
                    return LinkStatus(url, code, reason)
                if not location:
                    return LinkStatus(url, code, f"{reason} without a Location")
                current = urljoin(current, location)
            return LinkStatus(url, 0, f"more than {MAX_REDIRECTS} redirects")
        except Refused as refused:
            return LinkStatus(url, refused.status_code, str(refused))
        except TimeoutError:
            return LinkStatus(url, 0, "timed out")
        except ssl.SSLError as error:
            return LinkStatus(url, 0, f"TLS failed: {error.reason or error}")
        except (OSError, http.client.HTTPException) as error:
            return LinkStatus(url, 0, _describe(error))

    def _request(self, url: str, resolve: Resolve, deadline: float) -> tuple[int, str, str]:
        """One hop: (status, reason, Location). HEAD first; GET if HEAD is not allowed."""
        target = Target.of(url)
        address = self._vetted_address(target, resolve)
        code, reason, location = self._send("HEAD", target, address, deadline)
        if code in (405, 501):
            code, reason, location = self._send("GET", target, address, deadline)
        return code, reason, location

    def _vetted_address(self, target: Target, resolve: Resolve) -> IPAddress:
        addresses = target.addresses() or resolve(target.host)
        for address in addresses:
            reason = refusal(address, self.allow_private)
            if reason is not None:
                hint = "" if self.allow_private else "; --link-check-allow-private allows it"
                raise Refused(f"Blocked: {target.host} is {reason}{hint}", BLOCKED)
        return addresses[0]

    def _send(
        self, method: str, target: Target, address: IPAddress, deadline: float
    ) -> tuple[int, str, str]:
        sock = socket.create_connection((str(address), target.port), _left(deadline))
        # Timeouts bound each read; this bounds them all, however slowly a server trickles.
        watchdog = threading.Timer(_left(deadline), _cut, [sock.fileno(), sock.family])
        watchdog.daemon = True
        watchdog.start()
        connection = http.client.HTTPConnection(target.host, target.port)
        try:
            if target.scheme == "https":
                sock.settimeout(_left(deadline))
                sock = self.ssl_context.wrap_socket(sock, server_hostname=target.host)
            connection.sock = sock  # connected to the vetted address: no lookup of its own
            sock.settimeout(_left(deadline))
            headers = {"Host": target.host_header, "User-Agent": USER_AGENT, "Accept": "*/*"}
            connection.request(method, target.path, headers=headers)
            with connection.getresponse() as response:
                if method == "GET":
                    response.read(MAX_BODY)  # enough to see that the answer starts; not all
                _left(deadline)
                reason = _reason(response.status, response.reason)
                return response.status, reason, response.getheader("Location", "") or ""
        except (OSError, http.client.HTTPException):
            _left(deadline)  # cut by the watchdog: a timeout, not a broken server
            raise
        finally:
            watchdog.cancel()
            watchdog.join()  # before the descriptor is closed and could be reused
            connection.close()
            sock.close()

    def resolve(self, host: str, deadline: float | None = None) -> list[IPAddress]:
        """Every IPv4 and IPv6 address of ``host``, from one lookup of each type,
        both done by ``deadline`` (a ``time.monotonic()`` value) if one is given."""
        found: list[IPAddress] = []
        missing = 0
        for kind in ("A", "AAAA"):
            lifetime = self.resolver.lifetime
            if deadline is not None:
                lifetime = min(lifetime, _left(deadline))
            try:
                answer = self.resolver.resolve(host, kind, search=False, lifetime=lifetime)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                missing += 1
                continue
            except dns.exception.Timeout:
                raise Refused(f"no answer from DNS for {host}") from None
            except dns.exception.DNSException as error:
                raise Refused(f"cannot resolve {host}: {error}") from None
            found += [ipaddress.ip_address(record.address) for record in answer]
        if not found:
            raise Refused(f"no such host: {host}")
        return found


@dataclass(frozen=True)
class Target:
    """The parts of an http(s) URL a request needs."""

    scheme: str
    host: str
    port: int
    path: str
    host_header: str

    @classmethod
    def of(cls, url: str) -> Target:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise Refused(f"not a valid URL: {error}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise Refused(f"only http and https links are checked, not {scheme or 'this'}:")
        host = _ascii_host((parts.hostname or "").rstrip("."))
        default = 443 if scheme == "https" else 80
        port = port or default
        name = f"[{host}]" if ":" in host else host
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if any(ord(character) < 33 for character in path):
            raise Refused("the URL has white space or control characters in its path")
        try:
            # As a browser sends it: http.client puts only ASCII on the request line.
            path = quote(path, safe=string.punctuation)
        except UnicodeError:  # a lone surrogate
            raise Refused("the URL's path is not valid text") from None
        return cls(scheme, host, port, path, name if port == default else f"{name}:{port}")

    def addresses(self) -> list[IPAddress]:
        """The address, when the host is one (no lookup)."""
        try:
            return [ipaddress.ip_address(self.host)]
        except ValueError:
            return []


def _ascii_host(host: str) -> str:
    """The host as DNS, the Host header and TLS name it: an IDNA name in its xn-- form."""
    if not host:
        raise Refused("the URL has no host")
    if host.isascii():
        return host
    try:
        return dns.name.from_text(host).to_text(omit_final_dot=True)
    except (dns.exception.DNSException, UnicodeError):
        raise Refused(f"{host} is not a valid host name") from None


def _cut(fd: int, family: int) -> None:
    """Shut the connection down under a reader blocked on it (also under TLS)."""
    try:
        with socket.fromfd(fd, family, socket.SOCK_STREAM) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _reason(code: int, given: str) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return given or f"status {code}"


def _describe(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, http.client.HTTPException):
        return f"not a valid HTTP answer ({type(error).__name__})"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
