"""The test's view of captured mail: only what arrived since the test started.

:class:`Inbox` is what the ``mailtrap`` fixture gives a test. Waiting is
event-driven: it starts listening before it looks, so a message that arrives
between the look and the wait still wakes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, overload

from mailtrap.pytest_plugin.backends import Backend
from mailtrap.pytest_plugin.filters import Filters
from mailtrap.pytest_plugin.message import Mail

if TYPE_CHECKING:
    from mailtrap.server import Server

SHOWN_IN_FAILURES = 10  # messages listed in a failure, closest first


class MailAssertionError(AssertionError):
    """An expectation about captured mail did not hold; the message says what arrived."""

    __module__ = "mailtrap.pytest_plugin"  # as failures name it: where users import it from


class Inbox:
    """Mail received since the test started, with ways to wait for it and assert on it.

    ``smtp_host`` and ``smtp_port`` are where the application under test
    should send mail.
    """

    def __init__(self, backend: Backend):
        self.backend = backend
        self._mark = backend.mark()
        self._known: dict[str, Mail] = {}  # parsed once, and the same object every time

    @property
    def smtp_host(self) -> str:
        return self.backend.smtp_host

    @property
    def smtp_port(self) -> int:
        return self.backend.smtp_port

    @property
    def url(self) -> str | None:
        """The web inbox of the server, if it serves one."""
        return self.backend.http_url

    @property
    def server(self) -> Server | None:
        """The in-process :class:`mailtrap.Server`, or None for an external server."""
        return getattr(self.backend, "server", None)

    @property
    def messages(self) -> list[Mail]:
        """Every message received since the test started (or :meth:`clear`), oldest first."""
        return self.backend.messages_after(self._mark, self._known)

    def __len__(self) -> int:
        return len(self.messages)

    def __iter__(self) -> Iterator[Mail]:
        return iter(self.messages)

    def clear(self) -> None:
        """Start the view afresh: earlier messages are no longer seen (the server keeps them)."""
        self._mark = self.backend.mark()
        self._known.clear()

    def filter(self, **filters: Any) -> list[Mail]:
        """The messages so far that match every filter (see :meth:`wait_for`), without waiting."""
        return Filters.from_keywords(filters).select(self.messages)

    # -- waiting and asserting ----------------------------------------------------

    @overload
    def wait_for(self, timeout: float = 5.0, count: Literal[1] = 1, **filters: Any) -> Mail: ...

    @overload
    def wait_for(self, timeout: float = 5.0, count: int = 1, **filters: Any) -> list[Mail]: ...

    def wait_for(self, timeout: float = 5.0, count: int = 1, **filters: Any) -> Mail | list[Mail]:
        """Wait until ``count`` messages match every filter; return them (one: the message).

        Filters: ``to``, ``cc``, ``bcc``, ``from_``, ``reply_to`` (an address,
        exact and ignoring case), ``subject``, ``text``, ``html``, ``body``
        (text or HTML; by substring), ``header=(name, value)`` (value by
        substring) or ``header=name``, ``attachment`` (a file name). Each also
        takes a compiled regex (searched) or a callable (given the value; for
        ``attachment``, the :class:`Attachment`).

        Fails with :class:`MailAssertionError` after ``timeout`` seconds,
        listing the messages that did arrive, closest first.
        """
        __tracebackhide__ = True
        wanted = Filters.from_keywords(filters)
        matched, seen = self._wait(wanted, count, timeout)
        if len(matched) < count:
            raise MailAssertionError(
                explain(
                    f"Timed out after {timeout:g} s waiting for {_count(count)} matching: "
                    f"{wanted.describe()}",
                    wanted,
                    seen,
                    matched,
                )
            )
        return matched[0] if count == 1 else matched[:count]

    @overload
    def assert_sent(self, count: Literal[1] = 1, **filters: Any) -> Mail: ...

    @overload
    def assert_sent(self, count: int = 1, **filters: Any) -> list[Mail]: ...

    def assert_sent(self, count: int = 1, **filters: Any) -> Mail | list[Mail]:
        """Assert that exactly ``count`` messages so far match the filters; return them.

        It does not wait: mail sent with ``smtplib`` (or Django, Flask-Mail...)
        is stored before the send returns. For mail sent in the background,
        use :meth:`wait_for`.
        """
        __tracebackhide__ = True
        wanted = Filters.from_keywords(filters)
        seen = self.messages
        matched = wanted.select(seen)
        if len(matched) != count:
            raise MailAssertionError(
                explain(
                    f"Expected {_count(count)} matching {wanted.describe()}, found {len(matched)}",
                    wanted,
                    seen,
                    matched,
                )
            )
        return matched[0] if count == 1 else matched

    def assert_no_message(self, within: float = 1.0, **filters: Any) -> None:
        """Assert that no message matching the filters arrives, now or within ``within`` s.

        Fails as soon as one does, so a passing check takes ``within`` seconds
        and a failing one no longer than it needs.
        """
        __tracebackhide__ = True
        wanted = Filters.from_keywords(filters)
        matched, seen = self._wait(wanted, 1, within)
        if matched:
            raise MailAssertionError(
                explain(
                    f"Expected no message matching {wanted.describe()}, but {len(matched)} arrived",
                    wanted,
                    seen,
                    matched,
                    show_matches=True,
                )
            )

    def _wait(self, wanted: Filters, count: int, timeout: float) -> tuple[list[Mail], list[Mail]]:
        """(matching, all) messages since the mark, once ``count`` match or time is up."""
        deadline = time.monotonic() + timeout
        with self.backend.watch(self._mark) as watch:
            while True:
                seen = self.backend.messages_after(self._mark, self._known)
                matched = wanted.select(seen)
                remaining = deadline - time.monotonic()
                if len(matched) >= count or remaining <= 0:
                    return matched, seen
                watch.wait(remaining, seen)

    def __repr__(self) -> str:
        return f"<Inbox smtp={self.smtp_host}:{self.smtp_port} messages={len(self)}>"


def _count(count: int) -> str:
    return f"{count} message" + ("" if count == 1 else "s")


def explain(
    headline: str,
    wanted: Filters,
    seen: list[Mail],
    matched: list[Mail],
    *,
    show_matches: bool = False,
) -> str:
    """A failure message: what was expected, then what arrived, nearest misses first."""
    lines = [headline + "."]
    if not seen:
        lines.append("No message arrived during this test.")
        return "\n".join(lines)
    if show_matches:
        lines.append(f"Matching ({len(matched)}):")
        lines += [f"  {number}. {mail.summary()}" for number, mail in enumerate(matched, 1)]
        return "\n".join(lines)
    lines.append(
        f"{len(seen)} message{'s' if len(seen) != 1 else ''} arrived during this test"
        f" ({len(matched)} matching); closest first:"
    )
    ranked = wanted.closest_first(seen)
    for number, (mail, checks) in enumerate(ranked[:SHOWN_IN_FAILURES], 1):
        lines.append(f"  {number}. {mail.summary()}")
        for condition, check in checks:
            if not check.matched:
                lines.append(f"       {condition.describe()}: got {check.actual}")
    if len(ranked) > SHOWN_IN_FAILURES:
        lines.append(f"  ... and {len(ranked) - SHOWN_IN_FAILURES} more")
    return "\n".join(lines)
