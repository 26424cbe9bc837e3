"""Content-Transfer-Encodings undone chunk by chunk, in bounded memory.

Each decoder gives, over any split of its input into chunks, the bytes the
standard ``email`` package's ``get_payload(decode=True)`` gives for the whole
of well-formed input (base64 stops at its padding as ``binascii`` does, and
ignores characters outside its alphabet). Anything but base64 and
quoted-printable passes through unchanged.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Iterator

MAX_LINE_CARRY = 64 * 1024  # bytes of an unfinished quoted-printable line held back

_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_NOT_BASE64 = bytes(byte for byte in range(256) if byte not in _BASE64_ALPHABET)


class Decoder:
    """Identity: 7bit, 8bit, binary and anything unknown."""

    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


class Base64Decoder(Decoder):
    def __init__(self) -> None:
        self._pending = b""  # fewer than 4 characters of the alphabet
        self._ended = False  # padding seen: the rest is ignored, as binascii does

    def feed(self, data: bytes) -> bytes:
        if self._ended:
            return b""
        data = data.translate(None, _NOT_BASE64)
        if b"=" in data:
            data = self._until_padding(data)
        data = self._pending + data
        whole = len(data) - len(data) % 4
        self._pending = data[whole:]
        return binascii.a2b_base64(data[:whole])

    def _until_padding(self, data: bytes) -> bytes:
        """Drop the ``=`` that cannot be padding; end at the first that is (2 or 3 into a quad)."""
        kept: list[bytes] = []
        count = len(self._pending)
        pieces = data.split(b"=")
        for piece in pieces[:-1]:
            kept.append(piece)
            count += len(piece)
            if count % 4 >= 2:
                self._ended = True
                return b"".join(kept)
        kept.append(pieces[-1])
        return b"".join(kept)

    def finish(self) -> bytes:
        rest, self._pending = self._pending, b""
        if len(rest) < 2:  # one character is no byte
            return b""
        return binascii.a2b_base64(rest + b"=" * (-len(rest) % 4))


class QuotedPrintableDecoder(Decoder):
    def __init__(self) -> None:
        self._pending = b""  # the unfinished last line

    def feed(self, data: bytes) -> bytes:
        data = self._pending + data
        # Every escape and soft line break ends by the end of its line.
        cut = data.rfind(b"\n") + 1
        if not cut and len(data) > MAX_LINE_CARRY:  # a line without end: cut outside an escape
            escape = data.find(b"=", len(data) - 2)
            cut = len(data) if escape == -1 else escape
        self._pending = data[cut:]
        return binascii.a2b_qp(data[:cut])

    def finish(self) -> bytes:
        rest, self._pending = self._pending, b""
        return binascii.a2b_qp(rest)


def decoder(encoding: str) -> Decoder:
    """The decoder of a Content-Transfer-Encoding (lower case)."""
    if encoding == "base64":
        return Base64Decoder()
    if encoding == "quoted-printable":
        return QuotedPrintableDecoder()
    return Decoder()


def decoded(chunks: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """The decoded content of encoded ``chunks``; no empty chunk."""
    state = decoder(encoding)
    for chunk in chunks:
        if out := state.feed(chunk):
            yield out
    if out := state.finish():
        yield out
