"""The Mailpit-compatible JSON API (being built: see issue 3)."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Add the API routes to ``app``."""
