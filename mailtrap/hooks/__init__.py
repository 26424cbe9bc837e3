"""Hooks for other tools, as Mailpit has them: webhook, chaos, sendmail."""
