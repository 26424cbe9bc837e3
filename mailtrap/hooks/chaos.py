"""Chaos: SMTP errors on purpose, so an application's retry logic can be tested.

Mailpit's triggers and JSON shape (``GET/PUT /api/v1/chaos``): ``Sender`` fails
MAIL FROM, ``Recipient`` fails RCPT TO and ``Authentication`` fails AUTH, each
with an ``ErrorCode`` (400-599) and a ``Probability`` in percent (0-100).
Pure logic: the SMTP handler asks :meth:`Chaos.fires` at each step.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from mailtrap.errors import MailtrapError

TRIGGERS = {"Sender": 451, "Recipient": 451, "Authentication": 535}  # name -> default code
_ALIASES = {"sender": "Sender", "recipient": "Recipient", "recipients": "Recipient"}
_ALIASES |= {"auth": "Authentication", "authentication": "Authentication"}


class ChaosError(MailtrapError):
    """A chaos setting that cannot be used; its message says why."""


@dataclass(frozen=True)
class Trigger:
    error_code: int
    probability: int = 0  # percent

    @classmethod
    def from_json(cls, name: str, value: Any) -> Trigger:
        if value is None:
            return cls(TRIGGERS[name])
        if not isinstance(value, dict):
            raise ChaosError(f"{name} must be an object with ErrorCode and Probability")
        code = value.get("ErrorCode", 0) or TRIGGERS[name]
        probability = value.get("Probability", 0)
        for field, number in (("ErrorCode", code), ("Probability", probability)):
            if not isinstance(number, int) or isinstance(number, bool):
                raise ChaosError(f"{name}.{field} must be an integer")
        if not 400 <= code <= 599:
            raise ChaosError("error code must be between 400 and 599")
        if not 0 <= probability <= 100:
            raise ChaosError("probability must be between 0 and 100")
        return cls(code, probability)

    def to_json(self) -> dict[str, int]:
        return {"ErrorCode": self.error_code, "Probability": self.probability}


def trigger_name(key: str) -> str:
    """The trigger a key names (``sender``, ``recipient``, ``auth``...)."""
    try:
        return _ALIASES[key.lower()]
    except KeyError:
        raise ChaosError(f"unknown chaos trigger {key!r}") from None


class Chaos:
    """The triggers of one server; ``enabled`` says whether the API may change them."""

    def __init__(self, enabled: bool = False, rng: random.Random | None = None):
        self.enabled = enabled
        self._rng = rng or random.SystemRandom()
        self._lock = threading.Lock()
        self._triggers = {name: Trigger(code) for name, code in TRIGGERS.items()}

    def to_json(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {name: trigger.to_json() for name, trigger in self._triggers.items()}

    def set_from_json(self, body: Any) -> None:
        """Set every trigger from Mailpit's JSON; one left out is reset (probability 0)."""
        if not isinstance(body, dict):
            raise ChaosError("the body must be a JSON object of triggers")
        unknown = set(body) - set(TRIGGERS)
        if unknown:
            raise ChaosError(f"unknown chaos trigger {sorted(unknown)[0]!r}")
        triggers = {name: Trigger.from_json(name, body.get(name)) for name in TRIGGERS}
        with self._lock:
            self._triggers = triggers

    def fires(self, name: str) -> int | None:
        """The error code to answer with if the trigger ``name`` fires now, else None."""
        with self._lock:
            trigger = self._triggers[name]
        if trigger.probability and self._rng.randrange(100) < trigger.probability:
            return trigger.error_code
        return None


def reply(code: int, name: str) -> str:
    """The SMTP reply of a fired trigger, with an enhanced status code of its class."""
    return f"{code} {code // 100}.0.0 Chaos: {name.lower()} error on purpose"
