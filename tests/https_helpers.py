"""A test certificate for the HTTPS tests, and clients that trust it (and only it)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from mailtrap import Server
from mailtrap.tls import self_signed_pem


def write_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key, as PEM files."""
    cert_pem, key_pem = self_signed_pem("localhost", ["127.0.0.1"])
    cert, key = folder / "https-cert.pem", folder / "https-key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    return cert, key


def trusting(cert: Path) -> ssl.SSLContext:
    """A client context that verifies the server against ``cert`` as its only CA."""
    return ssl.create_default_context(cafile=str(cert))


def tls_connect(
    server: Server, cert: Path, source: str = "127.0.0.1", timeout: float = 10.0
) -> ssl.SSLSocket:
    """A verified TLS connection to the server's HTTPS port, from ``source``."""
    address = server.http_address
    raw = socket.create_connection(
        (address.host, address.port), timeout=timeout, source_address=(source, 0)
    )
    try:
        return trusting(cert).wrap_socket(raw, server_hostname=address.host)
    except BaseException:
        raw.close()
        raise
