"""Any bytes sent over SMTP come back exactly: from the store and from ``mailtrap dump``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st
from serve_process import run_mailtrap
from smtp_wire import WireClient, queued_id, send_message

from mailtrap import Server

# Pieces that are hard on an SMTP implementation: dots at line starts, line
# ends of every kind, the end-of-data marker inside content, NUL, 8-bit.
TRICKY_PIECES = [
    b".",
    b"..",
    b"\r\n",
    b"\r",
    b"\n",
    b"\r\n.",
    b"\r\n..",
    b".\r\n",
    b"\r\n.\r\n",
    b"\n.\r\n",
    b"\r.\r\n",
    b"\n.\n",
    b"\x00",
    b"\xff\xfe",
    b"\xc3\xa9",
    b"\xc3",
    b"From ",
    b"Subject: x\r\n",
    b"\r\n\r\n",
]

bodies = st.one_of(
    st.binary(max_size=3000),
    st.lists(st.one_of(st.sampled_from(TRICKY_PIECES), st.binary(max_size=40)), max_size=60).map(
        b"".join
    ),
)


def smtp_data(content: bytes) -> tuple[bytes, bytes]:
    """What the server must keep, and the DATA section that carries it (RFC 5321 4.5.2).

    Lines are delimited by CRLF only; a line starting with "." gets one more;
    content must end with CRLF (one is added if it does not), then ".\\r\\n".
    """
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    lines = content.split(b"\r\n")
    stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
    return content, stuffed + b".\r\n"


def test_smtp_data_stuffs_dots_at_crlf_line_starts_only() -> None:
    assert smtp_data(b"") == (b"\r\n", b"\r\n.\r\n")
    assert smtp_data(b".a\r\nb\n.c\r.d\r\n..e") == (
        b".a\r\nb\n.c\r.d\r\n..e\r\n",
        b"..a\r\nb\n.c\r.d\r\n...e\r\n.\r\n",
    )


def test_any_bytes_come_back_exactly(make_server: Callable[..., Server], tmp_path: Path) -> None:
    server = make_server()
    sent: dict[str, bytes] = {}

    @settings(max_examples=100, deadline=None, database=None)
    @given(body=bodies)
    @example(body=b"\x00" * 150_000)  # longer than one read of the DATA buffer
    @example(body=b".\r\n")
    @example(body=b"\r\n.\r\n.\r\n")
    def a_message_is_stored_byte_exact(body: bytes) -> None:
        expected, data = smtp_data(body)
        with WireClient(server.smtp_address, timeout=10) as client:
            client.ehlo()
            message_id = queued_id(send_message(client, data))
            client.command("QUIT")
        sent[message_id] = expected
        assert server.store.raw(message_id) == expected

    a_message_is_stored_byte_exact()

    folder = tmp_path / "dump"
    result = run_mailtrap("dump", "--db", server.config.db_path, folder)
    assert result.returncode == 0, result.stderr
    assert len(sent) >= 100
    for message_id, expected in sent.items():
        assert (folder / f"{message_id}.eml").read_bytes() == expected
