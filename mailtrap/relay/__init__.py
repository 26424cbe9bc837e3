"""Relay: deliver chosen messages for real, by MX lookup or through a smarthost.

``settings`` reads the TOML file, ``mx`` resolves a domain to the hosts to
try (RFC 5321 section 5.1), ``plan`` decides what to send and what a reply
means (no I/O), ``client`` speaks SMTP to one host, ``queue`` keeps the
deliveries in the database, and ``worker`` delivers them in the background.
"""
