"""The web inbox and JSON API."""
