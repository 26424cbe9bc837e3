"""Placeholder for web/ui.py (being built: see issue 3)."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Add this module's routes and hooks to ``app``."""
