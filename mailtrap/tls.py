"""TLS server contexts: from a certificate file, or self-signed on request."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailtrap.errors import ConfigError

LOOPBACK_NAMES = ("localhost", "127.0.0.1")


class _PassphraseNeeded(Exception):
    """The key file is encrypted; OpenSSL would otherwise ask for its passphrase on the TTY."""


def _no_passphrase() -> bytes:
    raise _PassphraseNeeded()


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context for ``cert`` and ``key``; :class:`ConfigError` saying why it cannot be."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except _PassphraseNeeded:
        raise ConfigError(
            f"TLS key {key} is encrypted with a passphrase: give an unencrypted key"
        ) from None
    except (OSError, ssl.SSLError) as error:
        reason = _unreadable_pem(cert, key) or _ssl_reason(error)
        raise ConfigError(f"cannot load TLS certificate {cert} / key {key}: {reason}") from None
    return context


def _unreadable_pem(cert: Path, key: Path) -> str | None:
    """Which file is not what it should be, when OpenSSL's error does not say so plainly."""
    try:
        cert_data, key_data = cert.read_bytes(), key.read_bytes()
    except OSError as error:
        return f"cannot read {error.filename}: {error.strerror}"
    if b"-----BEGIN CERTIFICATE-----" not in cert_data:
        return f"{cert} holds no PEM certificate"
    if not any(f"-----BEGIN {kind}".encode() in key_data for kind in _KEY_KINDS):
        return f"{key} holds no PEM private key"
    return None


_KEY_KINDS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY")


def _ssl_reason(error: OSError) -> str:
    if isinstance(error, ssl.SSLError) and error.reason == "KEY_VALUES_MISMATCH":
        return "the key does not belong to the certificate"
    return str(getattr(error, "reason", None) or error)


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def self_signed_pem(hostname: str, names: Sequence[str] = LOOPBACK_NAMES) -> tuple[bytes, bytes]:
    """A new self-signed certificate and key (PEM) for ``hostname`` and ``names``.

    Names that are IP addresses go in as addresses, the rest as DNS names.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    alt_names = x509.SubjectAlternativeName(
        [_alt_name(each) for each in dict.fromkeys([hostname, *names])]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(alt_names, critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def self_signed_context(hostname: str, names: Sequence[str] = LOOPBACK_NAMES) -> ssl.SSLContext:
    cert_pem, key_pem = self_signed_pem(hostname, names)
    # load_cert_chain only reads files; they live just long enough to be read.
    with tempfile.TemporaryDirectory(prefix="mailtrap-tls-") as folder:
        cert, key = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert.write_bytes(cert_pem)
        key.write_bytes(key_pem)
        return server_context(cert, key)
