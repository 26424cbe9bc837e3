"""A bound on heavy reads: requests that build a whole message's view in memory.

The message JSON and the ``/view`` bodies each hold up to two bodies of
:data:`mailtrap.message.MAX_BODY_BYTES` (and their JSON) at once; at most
MAX_HEAVY_READS of them run at a time. A request over the bound waits up to
HEAVY_READ_WAIT seconds for a slot, then gets ``503`` with ``Retry-After``.
Streamed routes (``/raw``, ``/part``) hold one chunk each and are not bound.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, current_app, jsonify

MAX_HEAVY_READS = 4
HEAVY_READ_WAIT = 2.0  # seconds a heavy read waits for a slot
RETRY_AFTER = 1  # seconds, as the 503 suggests

_EXTENSION = "mailtrap_heavy_reads"


def register(app: Flask, limit: int = MAX_HEAVY_READS) -> None:
    app.extensions[_EXTENSION] = threading.BoundedSemaphore(limit)


def slots(app: Flask) -> threading.BoundedSemaphore:
    """The app's slots (tests take them to fill the bound)."""
    return app.extensions[_EXTENSION]


class Busy(Exception):
    """No heavy-read slot freed up in time."""


@contextlib.contextmanager
def heavy_read_slot() -> Iterator[None]:
    """A heavy-read slot for part of a request (raises :class:`Busy` if none frees up)."""
    semaphore = slots(current_app)
    if not semaphore.acquire(timeout=HEAVY_READ_WAIT):
        raise Busy
    try:
        yield
    finally:
        semaphore.release()


def busy_response() -> Any:
    response = jsonify({"Error": "too many messages are being read at once; try again"})
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


def heavy_read(view: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``view`` in a heavy-read slot; 503 if none frees up in time."""

    @functools.wraps(view)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        try:
            with heavy_read_slot():
                return view(*args, **kwargs)
        except Busy:
            return busy_response()

    return bounded
