"""Stored message bytes as a POP3 multi-line reply: CRLF line ends, dot-stuffing, TOP.

No I/O: :class:`MessageEncoder` takes the stored bytes chunk by chunk and gives
the bytes to send, so a message of any size streams through a bounded buffer.
:func:`wire_size` counts the octets RETR sends, which is what LIST and STAT
report (RFC 1939 asks for the size with CRLF line ends, before dot-stuffing).
"""

from __future__ import annotations

from collections.abc import Iterable

CRLF = b"\r\n"
END = b".\r\n"


def normalize(data: bytes) -> bytes:
    """Bare LF becomes CRLF; CRLF and any lone CR stay as they are."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def wire_size(chunks: Iterable[bytes]) -> int:
    """The octets :class:`MessageEncoder` sends for these bytes, without dot-stuffing.

    Each bare LF gains a CR, and a message that does not end with a line end
    gains a CRLF before the terminating dot line.
    """
    size = 0
    after_cr = False  # the previous chunk ended with CR
    last = b"\n"  # an empty message needs no CRLF of its own
    for chunk in chunks:
        if not chunk:
            continue
        crlf = chunk.count(b"\r\n") + (after_cr and chunk.startswith(b"\n"))
        size += len(chunk) + chunk.count(b"\n") - crlf
        after_cr = chunk.endswith(b"\r")
        last = chunk[-1:]
    return size + (2 if last != b"\n" else 0)


class MessageEncoder:
    """Encodes one stored message as the body of a RETR (or TOP) reply.

    ``feed`` each chunk of the stored bytes in order and send what it returns;
    once :attr:`done` is true (TOP has all its lines) stop feeding; ``finish``
    gives the rest, the terminating ``.CRLF`` included. ``body_lines`` is TOP's
    second argument: the header, the blank line, then that many body lines;
    None sends the whole message. ``crlf_only``: the stored bytes are known to
    have no bare LF (their :func:`wire_size` is their length), so none is looked for.
    """

    def __init__(self, body_lines: int | None = None, *, crlf_only: bool = False):
        self.done = False
        self._crlf_only = crlf_only
        self._held_cr = False  # a chunk ended with CR: the next may start with its LF
        self._line_start = True
        self._in_header = True
        self._lines_left = body_lines

    def feed(self, chunk: bytes) -> bytes:
        if self.done:
            return b""
        data = b"\r" + chunk if self._held_cr else chunk
        self._held_cr = data.endswith(b"\r")
        if self._held_cr:
            data = data[:-1]
        # Counting is cheaper than copying: most stored mail has no bare LF.
        if not self._crlf_only and data.count(b"\n") != data.count(b"\r\n"):
            data = normalize(data)
        if self._lines_left is not None:
            data = self._cut(data)
        return self._stuff(data)

    def finish(self) -> bytes:
        tail = b""
        if self._held_cr and not self.done:
            tail = self._stuff(b"\r")
        if not self._line_start:
            tail += CRLF
        return tail + END

    def _stuff(self, data: bytes) -> bytes:
        """Double the dot that starts a line (RFC 1939 3), so no line reads as the end."""
        if not data:
            return data
        stuffed = data.replace(b"\r\n.", b"\r\n..") if b"\r\n." in data else data
        if self._line_start and data.startswith(b"."):
            stuffed = b"." + stuffed
        self._line_start = data.endswith(b"\n")
        return stuffed

    def _cut(self, data: bytes) -> bytes:
        """TOP: keep the header, the blank line after it, and ``_lines_left`` lines more."""
        assert self._lines_left is not None
        position = 0
        line_start = self._line_start
        while self._in_header and position < len(data):
            if line_start and data.startswith(b"\r\n", position):
                self._in_header = False  # the blank line goes out with the header
            end = data.find(b"\n", position)
            if end < 0:
                return data
            position, line_start = end + 1, True
        if self._in_header:
            return data
        # The body: count whole lines in bulk, and look for the last one only when it is here.
        if data.count(b"\n", position) < self._lines_left:
            self._lines_left -= data.count(b"\n", position)
            return data
        while self._lines_left > 0:
            position = data.index(b"\n", position) + 1
            self._lines_left -= 1
        self.done = True
        self._held_cr = False
        return data[:position]
