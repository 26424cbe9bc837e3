"""Credentials from an htpasswd file (bcrypt, apr1-md5, sha1, crypt), and the login gate
that checks them off the event loop behind the server's failure throttle."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from passlib.apache import HtpasswdFile

from mailtrap.errors import ConfigError
from mailtrap.throttle import AuthThrottle, client_key

CHECK_WORKERS = 2  # bcrypt checks at once: an attack costs at most this many cores


class Credentials:
    """The users of one htpasswd file; ``check`` verifies a user name and password."""

    def __init__(self, path: Path):
        try:
            self._file = HtpasswdFile(str(path))
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot read htpasswd file {path}: {error}") from error
        self._verified: dict[tuple[str, bytes], bool] = {}
        if not self._file.users():
            raise ConfigError(f"htpasswd file {path} has no users")

    def check(self, user: str, password: str) -> bool:
        # bcrypt takes a quarter of a second by design, and a mail client logs
        # in on every poll: each pair is verified once.
        known = self.known(user, password)
        if known is not None:
            return known
        if len(self._verified) >= 1024:  # bounded, whatever a client tries
            self._verified.clear()
        try:
            verified = bool(self._file.check_password(user, password))
        except ValueError:  # a hash format passlib cannot verify
            verified = False
        self._verified[_pair(user, password)] = verified
        return verified

    def known(self, user: str, password: str) -> bool | None:
        """The answer for a pair verified before, without hashing; None if it was not."""
        return self._verified.get(_pair(user, password))


def _pair(user: str, password: str) -> tuple[str, bytes]:
    return user, hashlib.sha256(password.encode()).digest()


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"  # wrong credentials; the throttle's delay has passed
    LOCKED_OUT = "locked out"  # too many failures from this address: nothing was checked


class LoginGate:
    """Checks logins for every listener of one server against one :class:`AuthThrottle`.

    A locked-out address is refused before any hash is computed; a failure
    waits the throttle's delay before it is answered. SMTP and POP3 check in a
    small thread pool, so the event loop serving everybody else never runs
    bcrypt. The pool is shared fairly: one client address has one check (or
    delay) under way at a time, so its parallel connections cannot take every
    worker, and addresses with recent failures wait behind those without, so
    the right password gets the next free worker during an attack from many
    addresses. HTTP checks in its request thread.
    """

    def __init__(self, throttle: AuthThrottle):
        self.throttle = throttle
        self._executor = ThreadPoolExecutor(CHECK_WORKERS, thread_name_prefix="mailtrap-auth")
        # Used on the event loop only:
        self._lanes: dict[str, _Lane] = {}
        self._workers = _Workers(CHECK_WORKERS)

    async def check(self, credentials: Credentials, host: str, user: str, password: str) -> Outcome:
        """For the event loop: the check in a worker thread, the delay as an ``asyncio.sleep``."""
        key = client_key(host)
        lane = self._lanes.setdefault(key, _Lane())
        lane.users += 1
        try:
            async with lane.lock:
                if self.throttle.retry_after(host):
                    return Outcome.LOCKED_OUT
                good = credentials.known(user, password)
                if good is None:
                    good = await self._hash(credentials, host, user, password)
                if good:
                    self.throttle.succeeded(host)
                    return Outcome.ACCEPTED
                await asyncio.sleep(self.throttle.failed(host))
                return Outcome.REFUSED
        finally:
            lane.users -= 1
            if not lane.users:
                del self._lanes[key]

    async def _hash(self, credentials: Credentials, host: str, user: str, password: str) -> bool:
        await self._workers.acquire(suspect=self.throttle.recent_failures(host) > 0)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, credentials.check, user, password)
        # The worker is busy until the hash is done, even if this client leaves.
        future.add_done_callback(lambda _: self._workers.release())
        return await asyncio.shield(future)

    def check_in_thread(
        self, credentials: Credentials, host: str, user: str, password: str
    ) -> Outcome:
        """For a request thread: the same, waiting in the calling thread."""
        if self.throttle.retry_after(host):
            return Outcome.LOCKED_OUT
        if credentials.check(user, password):
            self.throttle.succeeded(host)
            return Outcome.ACCEPTED
        time.sleep(self.throttle.failed(host))
        return Outcome.REFUSED

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class _Workers:
    """A count of free pool workers, handed to clients in good standing first."""

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiting: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())

    async def acquire(self, *, suspect: bool) -> None:
        if self._free and not any(self._waiting):
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        queue = self._waiting[suspect]
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over just as the client left: pass it on
            elif waiter in queue:
                queue.remove(waiter)
            raise

    def release(self) -> None:
        for queue in self._waiting:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1


class _Lane:
    """The checks of one client address, one at a time."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
