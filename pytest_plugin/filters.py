"""The filters of ``wait_for``, ``assert_sent`` and ``assert_no_message``.

Each filter takes a string, a compiled regular expression or a callable.
Addresses compare exactly (ignoring case); text compares by substring; a
regular expression is searched; a callable gets the value and says yes or no.
Filters also say how close a message came, so failures can list the nearest
misses first.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mailtrap.pytest_plugin.message import Attachment, Mail

Matcher = str | re.Pattern[str] | Callable[[Any], bool]

ADDRESS_FIELDS = ("to", "cc", "bcc", "from_", "reply_to")
TEXT_FIELDS = ("subject", "text", "html", "body")
FILTER_NAMES = (*ADDRESS_FIELDS, *TEXT_FIELDS, "header", "attachment")


@dataclass(frozen=True)
class Check:
    """How one message fared against one filter."""

    matched: bool
    closeness: float  # 1.0 when matched; 0..1 how near a miss came
    actual: str  # what the message had, for the explanation


class Filter:
    """One condition on a message, built from a keyword of ``wait_for``."""

    def __init__(self, name: str, matcher: Matcher):
        if not (isinstance(matcher, str | re.Pattern) or callable(matcher)):
            raise TypeError(
                f"filter {name}= takes a string, a compiled regex or a callable, "
                f"not {type(matcher).__name__}"
            )
        self.name = name
        self.matcher = matcher

    def values(self, mail: Mail) -> Sequence[Any]:
        """The values of the message this filter looks at (any one may match)."""
        raise NotImplementedError

    def compare_string(self, expected: str, value: Any) -> bool:
        raise NotImplementedError

    def show(self, value: Any) -> str:
        return repr(value)

    def matches(self, mail: Mail) -> bool:
        return any(self._matches(value) for value in self.values(mail))

    def check(self, mail: Mail) -> Check:
        """Whether the message matches, and if not, how close it came and what it had."""
        values = self.values(mail)
        if any(self._matches(value) for value in values):
            return Check(True, 1.0, "")
        return Check(False, self._closeness(values), self._show_all(values))

    def _matches(self, value: Any) -> bool:
        matcher = self.matcher
        if isinstance(matcher, str):
            return self.compare_string(matcher, value)
        if isinstance(matcher, re.Pattern):
            return matcher.search(_as_text(value)) is not None
        return bool(matcher(value))

    def _closeness(self, values: Sequence[Any]) -> float:
        # Only a plain string says what was wanted well enough to measure a miss.
        if not isinstance(self.matcher, str) or not values:
            return 0.0
        expected = self.matcher.lower()
        best = max(
            difflib.SequenceMatcher(None, expected, _as_text(value).lower()[:2000]).ratio()
            for value in values
        )
        return 0.99 * best

    def _show_all(self, values: Sequence[Any]) -> str:
        if not values:
            return "nothing"
        return ", ".join(self.show(value) for value in values[:5]) + (
            f" (+{len(values) - 5} more)" if len(values) > 5 else ""
        )

    label = "{name}"  # how describe() names the field
    string_wording = "={value!r}"  # how describe() words a plain-string matcher

    def describe(self) -> str:
        """What this filter wants, in words: ``to='bob@example.com'``."""
        matcher = self.matcher
        if isinstance(matcher, str):
            wants = self.string_wording.format(value=matcher)
        elif isinstance(matcher, re.Pattern):
            wants = f" matching /{matcher.pattern}/"
        else:
            wants = f" satisfying {getattr(matcher, '__name__', repr(matcher))}"
        return self.label.format(name=self.name) + wants


class AddressFilter(Filter):
    """``to``, ``cc``, ``bcc``, ``from_``, ``reply_to``: any address equal, ignoring case."""

    def values(self, mail: Mail) -> Sequence[str]:
        if self.name == "from_":
            return [mail.from_] if mail.from_ else []
        return list(getattr(mail, self.name))

    def compare_string(self, expected: str, value: Any) -> bool:
        return expected.strip().lower() == str(value).lower()


class TextFilter(Filter):
    """``subject``, ``text``, ``html``, ``body`` (text or HTML): by substring."""

    def values(self, mail: Mail) -> Sequence[str]:
        if self.name == "body":
            return [body for body in (mail.text, mail.html) if body]
        return [getattr(mail, self.name)]

    def compare_string(self, expected: str, value: Any) -> bool:
        return expected in str(value)

    string_wording = " containing {value!r}"

    def show(self, value: Any) -> str:
        return _excerpt(str(value))


class HeaderFilter(Filter):
    """``header=(name, value)``: a header of that name whose value contains ``value``
    (or matches the regex, or satisfies the callable); ``header=name``: it is present."""

    string_wording = " containing {value!r}"

    def __init__(self, name: str, matcher: Any):
        if isinstance(matcher, str):
            self.header, wanted = matcher, None
        elif isinstance(matcher, tuple) and len(matcher) == 2 and isinstance(matcher[0], str):
            self.header, wanted = matcher
        else:
            raise TypeError("filter header= takes a header name or a (name, value) pair")
        self.presence_only = wanted is None
        super().__init__(name, _present if wanted is None else wanted)
        self.label = f"header {self.header}"

    def values(self, mail: Mail) -> Sequence[str]:
        return mail.headers.get_all(self.header)

    def compare_string(self, expected: str, value: Any) -> bool:
        return expected in str(value)

    def describe(self) -> str:
        return f"a {self.header} header" if self.presence_only else super().describe()


def _present(value: Any) -> bool:
    return True


class AttachmentFilter(Filter):
    """``attachment``: a file name (exact), a regex on the name, or a callable given
    the :class:`Attachment`."""

    def values(self, mail: Mail) -> Sequence[Attachment]:
        return mail.attachments

    def compare_string(self, expected: str, value: Any) -> bool:
        return bool(expected == value.name)

    def _matches(self, value: Any) -> bool:
        if isinstance(self.matcher, re.Pattern):
            return self.matcher.search(value.name) is not None
        return super()._matches(value)

    def show(self, value: Any) -> str:
        return repr(value.name)

    def _closeness(self, values: Sequence[Any]) -> float:
        return super()._closeness([value.name for value in values])


def _filter_class(name: str) -> type[Filter]:
    if name in ADDRESS_FIELDS:
        return AddressFilter
    if name in TEXT_FIELDS:
        return TextFilter
    if name == "header":
        return HeaderFilter
    return AttachmentFilter


class Filters:
    """Every filter of one call; a message must satisfy all of them."""

    def __init__(self, filters: Iterable[Filter]):
        self.filters = list(filters)

    @classmethod
    def from_keywords(cls, keywords: dict[str, Any]) -> Filters:
        """Build from ``wait_for``'s keyword arguments; unknown names raise TypeError."""
        for name in keywords:
            if name not in FILTER_NAMES:
                close = difflib.get_close_matches(name, FILTER_NAMES, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise TypeError(
                    f"unknown mail filter {name!r}{hint} (filters: {', '.join(FILTER_NAMES)})"
                )
        return cls(_filter_class(name)(name, value) for name, value in keywords.items())

    def matches(self, mail: Mail) -> bool:
        return all(condition.matches(mail) for condition in self.filters)

    def select(self, mails: Iterable[Mail]) -> list[Mail]:
        return [mail for mail in mails if self.matches(mail)]

    def describe(self) -> str:
        if not self.filters:
            return "any message"
        return ", ".join(condition.describe() for condition in self.filters)

    def closest_first(self, mails: Sequence[Mail]) -> list[tuple[Mail, list[tuple[Filter, Check]]]]:
        """Each message with its checks, the nearest misses (most filters met) first."""
        scored = []
        for position, mail in enumerate(mails):
            checks = [(condition, condition.check(mail)) for condition in self.filters]
            score = sum(check.closeness for _, check in checks)
            scored.append((-score, position, mail, checks))
        scored.sort(key=lambda entry: (entry[0], entry[1]))
        return [(mail, checks) for _, _, mail, checks in scored]


def _as_text(value: Any) -> str:
    return value.name if isinstance(value, Attachment) else str(value)


def _excerpt(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")
