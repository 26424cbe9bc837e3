"""The parsers behind every textual setting: addresses, sizes, durations."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailtrap.config import (
    Address,
    Config,
    default_db_path,
    parse_address,
    parse_duration,
    parse_size,
)
from mailtrap.errors import ConfigError

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1025", Address("127.0.0.1", 1025)),
        ("0", Address("127.0.0.1", 0)),
        ("65535", Address("127.0.0.1", 65535)),
        ("0.0.0.0:25", Address("0.0.0.0", 25)),
        ("localhost:2525", Address("localhost", 2525)),
        ("127.0.0.1:0", Address("127.0.0.1", 0)),
        ("[::1]:25", Address("::1", 25)),
        ("[::]:0", Address("::", 0)),
        ("[fe80::1%eth0]:1025", Address("fe80::1%eth0", 1025)),
    ],
)
def test_parse_address_accepts_port_host_and_bracketed_ipv6(text: str, expected: Address) -> None:
    assert parse_address(text) == expected


def test_parse_address_uses_the_given_default_host() -> None:
    assert parse_address("1025", default_host="0.0.0.0") == Address("0.0.0.0", 1025)


@pytest.mark.parametrize(
    "text",
    ["", "nonsense", "host:", "::1:25", "[::1]", "[::1]25", "65536", "host:99999", "-1", "1025x"],
)
def test_parse_address_rejects_what_is_not_host_and_port(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid"):
        parse_address(text)


def test_an_address_prints_ipv6_hosts_in_brackets_so_it_parses_back() -> None:
    assert str(Address("::1", 25)) == "[::1]:25"
    assert str(Address("127.0.0.1", 25)) == "127.0.0.1:25"


@given(
    host=st.sampled_from(["127.0.0.1", "0.0.0.0", "localhost", "::1", "::", "2001:db8::5"]),
    port=st.integers(0, 65535),
)
def test_an_address_round_trips_through_its_text(host: str, port: int) -> None:
    address = Address(host, port)
    assert parse_address(str(address)) == address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("52428800", 52428800),
        ("0", 0),
        ("512k", 512 * 1024),
        ("512K", 512 * 1024),
        ("1kb", 1024),
        ("1KiB", 1024),
        ("50M", 50 * MiB),
        ("50MiB", 50 * MiB),
        ("50 MB", 50 * MiB),
        ("2G", 2 * 1024 * MiB),
        ("100b", 100),
        (" 7m ", 7 * MiB),
    ],
)
def test_parse_size_reads_bytes_with_binary_suffixes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "M", "-1", "1.5M", "1T", "10 MBs", "k1"])
def test_parse_size_rejects_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", 90.0),
        ("45s", 45.0),
        ("30m", 1800.0),
        ("12h", 43200.0),
        ("7d", 7 * 86400.0),
        ("7D", 7 * 86400.0),
        ("2w", 14 * 86400.0),
        ("1.5h", 5400.0),
        ("5 m", 300.0),
    ],
)
def test_parse_duration_reads_seconds_with_unit_suffixes(text: str, expected: float) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7x", "h", "-5", "1h30m", "5 minutes", "1e3"])
def test_parse_duration_rejects_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid duration"):
        parse_duration(text)


def test_the_default_database_lives_in_the_users_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_db_path() == tmp_path / "data" / "mailtrap" / "mailtrap.db"
    assert Config().db_path == default_db_path()
    assert Config(db=tmp_path / "x.db").db_path == tmp_path / "x.db"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_message_size": 0}, "--max-message-size"),
        ({"smtp_require_tls": True}, "--smtp-require-tls"),
        ({"smtp_tls_cert": Path("cert.pem")}, "together"),
        ({"smtp_auth_file": Path("/nonexistent/htpasswd")}, "file not found"),
    ],
)
def test_settings_that_cannot_work_are_refused_with_the_flag_named(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(**settings).validate()  # type: ignore[arg-type]
