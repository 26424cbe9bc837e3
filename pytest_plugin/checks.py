"""Message checks as a test sees them: results with assertion helpers that say what failed.

``mail.html_check()``, ``mail.link_check()``, ``mail.spam_check()`` and
``mail.auth_check()`` ask the server that captured the message (in-process,
or an external one over its API) and return these objects::

    assert mail.auth_check().dkim == "pass"
    mail.link_check().assert_ok()
    mail.spam_check().assert_not_spam(max_score=2)
    mail.html_check().assert_supported(min_score=80)
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from mailtrap.checks.service import Checks
    from mailtrap.pytest_plugin.remote import ApiClient


class CheckSource(Protocol):
    """Where a message's check results come from."""

    def check(self, message_id: str, name: str, **options: Any) -> Any: ...


class LocalChecks:
    """The checks of an in-process server."""

    def __init__(self, checks: Checks):
        self._checks = checks

    def check(self, message_id: str, name: str, **options: Any) -> Any:
        run = {
            "html": self._checks.html,
            "links": self._checks.links,
            "spam": self._checks.spam,
            "auth": self._checks.auth,
        }[name]
        return run(message_id, **options)


class HttpChecks:
    """The checks of an external server, through its API."""

    ROUTES: ClassVar[dict[str, str]] = {
        "html": "html-check",
        "links": "link-check",
        "spam": "sa-check",
        "auth": "auth-check",
    }

    def __init__(self, api: ApiClient):
        self._api = api

    def check(self, message_id: str, name: str, **options: Any) -> Any:
        params = {key: "1" for key, value in options.items() if value}
        path = f"api/v1/message/{urllib.parse.quote(message_id)}/{self.ROUTES[name]}"
        return self._api.get_json(path, timeout=60, **params)


class CheckFailed(AssertionError):
    """A check's assertion failed; the message says which feature, link or rule."""


class HtmlCheck:
    """Which HTML and CSS features the message uses and how well clients support them."""

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.score: float = data["Total"]["Supported"]
        self.warnings: list[dict[str, Any]] = data["Warnings"]

    @property
    def features(self) -> list[str]:
        """The caniemail slugs of the features used, worst supported first."""
        return [warning["Slug"] for warning in self.warnings]

    def unsupported_in(self, family: str, platform: str | None = None) -> list[str]:
        """Features a client (``"outlook"``, ``"gmail"``...) does not support, or only partly."""
        found = []
        for warning in self.warnings:
            for result in warning["Results"]:
                client = result["Family"] == family and platform in (None, result["Platform"])
                if client and result["Support"] != "yes":
                    found.append(f"{warning['Slug']} ({result['Name']}: {result['Support']})")
        return found

    def assert_supported(self, min_score: float = 90.0) -> None:
        __tracebackhide__ = True
        if self.score < min_score:
            worst = ", ".join(
                f"{w['Slug']} ({w['Score']['Unsupported']:.0f}% of clients lack it)"
                for w in self.warnings[:5]
            )
            raise CheckFailed(f"HTML support {self.score:.1f}% < {min_score}%; worst: {worst}")

    def assert_works_in(self, family: str, platform: str | None = None) -> None:
        __tracebackhide__ = True
        missing = self.unsupported_in(family, platform)
        if missing:
            raise CheckFailed(f"not fully supported in {family}: {'; '.join(missing)}")


class LinkCheck:
    """The status of every link and image URL of the message."""

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.links: list[dict[str, Any]] = data["Links"]

    @property
    def broken(self) -> list[dict[str, Any]]:
        return [link for link in self.links if not 0 < link["StatusCode"] < 400]

    def status(self, url: str) -> int:
        for link in self.links:
            if link["URL"] == url:
                return int(link["StatusCode"])
        raise KeyError(url)

    def assert_ok(self) -> None:
        __tracebackhide__ = True
        if self.broken:
            listed = "; ".join(
                f"{link['URL']} -> {link['StatusCode']} {link['Status']}" for link in self.broken
            )
            raise CheckFailed(f"{len(self.broken)} of {len(self.links)} links broken: {listed}")


class SpamCheck:
    """SpamAssassin's verdict: the score and every rule that fired."""

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.error: str = data["Error"]
        self.score: float = data["Score"]
        self.is_spam: bool = data["IsSpam"]
        self.rules: dict[str, float] = {rule["Name"]: rule["Score"] for rule in data["Rules"]}

    def assert_not_spam(self, max_score: float | None = None) -> None:
        __tracebackhide__ = True
        if self.error:
            raise CheckFailed(f"SpamAssassin could not check the message: {self.error}")
        over = max_score is not None and self.score > max_score
        if self.is_spam or over:
            fired = ", ".join(
                f"{rule['Name']} {rule['Score']:+.1f} ({rule['Description']})"
                for rule in sorted(self.data["Rules"], key=lambda rule: -rule["Score"])
                if rule["Score"]
            )
            limit = f" > {max_score}" if over else " (spam)"
            raise CheckFailed(f"spam score {self.score}{limit}; rules: {fired}")


class AuthCheck:
    """DKIM, SPF, DMARC and ARC results, as a receiving MX would find them."""

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.dkim: str = data["DKIM"]["Result"]
        self.spf: str = data["SPF"]["Result"]
        self.dmarc: str = data["DMARC"]["Result"]
        self.arc: str = data["ARC"]["Result"]
        self.authentication_results: str = data["AuthenticationResults"]

    def reason(self, check: str) -> str:
        return str(self.data[check.upper()]["Reason"])

    def assert_passes(self, *checks: str) -> None:
        """Each of ``checks`` (default dkim, spf, dmarc) passed; else which did not, and why."""
        __tracebackhide__ = True
        failing = [
            f"{check}={getattr(self, check)} ({self.reason(check)})"
            for check in checks or ("dkim", "spf", "dmarc")
            if getattr(self, check) != "pass"
        ]
        if failing:
            raise CheckFailed("authentication failed: " + "; ".join(failing))
