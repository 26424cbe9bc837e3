"""The writer's socket from asyncio: the framing of :class:`multiprocessing.connection.Connection`.

The writer process reads and writes its socket with ``Connection``; the server
reads and writes the other end on its event loop, so that a message's ``250``
needs no hop through another thread. The frames are ``Connection``'s own: a
4-byte big-endian signed length, or -1 and an 8-byte length for payloads of
2 GiB and more, then the payload.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import struct
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_SHORT = struct.Struct("!i")
_LONG = struct.Struct("!Q")
_LONG_MARK = -1


def frame(payload: bytes) -> list[bytes]:
    """The header and payload of one frame, as ``Connection.send_bytes`` writes them."""
    if len(payload) > 0x7FFFFFFF:
        return [_SHORT.pack(_LONG_MARK) + _LONG.pack(len(payload)), payload]
    return [_SHORT.pack(len(payload)), payload]


class FrameReader(asyncio.Protocol):
    """Unpickles each frame that arrives and hands it to ``on_object``.

    ``on_lost`` is called once, when the other end closes or the socket fails.
    """

    def __init__(
        self, on_object: Callable[[Any], None], on_lost: Callable[[Exception | None], None]
    ):
        self.on_object = on_object
        self.on_lost = on_lost
        self.transport: asyncio.WriteTransport | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (payload := self._next_payload()) is not None:
            try:
                self.on_object(pickle.loads(payload))
            except Exception:  # one bad answer must not stop the answers after it
                log.exception("handling an answer of the writer failed")

    def _next_payload(self) -> bytes | None:
        buffer = self._buffer
        if len(buffer) < _SHORT.size:
            return None
        (size,) = _SHORT.unpack_from(buffer)
        start = _SHORT.size
        if size == _LONG_MARK:
            if len(buffer) < start + _LONG.size:
                return None
            (size,) = _LONG.unpack_from(buffer, start)
            start += _LONG.size
        if len(buffer) < start + size:
            return None
        payload = bytes(buffer[start : start + size])
        del buffer[: start + size]
        return payload

    def eof_received(self) -> bool:
        return False  # close our end too: the writer is gone

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_lost(exc)
