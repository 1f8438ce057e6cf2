"""Frames of the board link: magic, length, msgpack payload, CRC32; a reader that resynchronises.

A frame is ``A5 5A | length (u32 LE) | payload (msgpack map) | crc32 (u32 LE)``, the
CRC over the length and the payload. Every payload carries ``seq``, the request's
sequence number, which the board echoes. The reader drops bytes until the next
magic, refuses a declared length above :data:`MAX_FRAME_BYTES` before reading it,
and on a CRC mismatch skips that magic and scans on, so one corrupted or lost frame
costs that frame only.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

import msgpack

MAGIC = b"\xa5\x5a"
#: The largest frame either side accepts (bytes of payload); a longer declared length is a corrupt header.
MAX_FRAME_BYTES = 16 << 20
_HEADER = struct.Struct("<2sI")
_CRC = struct.Struct("<I")


class FrameError(Exception):
    """A frame failed its checks: ``kind`` is "crc", "length" or "payload"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class FrameTimeout(Exception):
    """No complete frame arrived before the deadline."""


def encode(payload: dict[str, Any]) -> bytes:
    """The frame of ``payload`` (a msgpack map)."""
    body = msgpack.packb(payload, use_bin_type=True)
    if len(body) > MAX_FRAME_BYTES:
        raise FrameError("length", f"a payload of {len(body)} bytes exceeds the link's {MAX_FRAME_BYTES}")
    head = _HEADER.pack(MAGIC, len(body))
    return head + body + _CRC.pack(zlib.crc32(head[2:] + body))


class FrameReader:
    """Frames out of a byte stream; ``read(n)`` returns up to n bytes (b"" when none came in its timeout)."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._buf = bytearray()
        #: Bytes dropped while looking for a frame (noise, or the rest of a corrupted one).
        self.skipped = 0

    def clear(self) -> None:
        """Forget buffered bytes (after a reset of the link)."""
        self._buf.clear()

    def _drop(self, n: int) -> None:
        del self._buf[:n]
        self.skipped += n

    def _fill(self, need: int, deadline: float) -> None:
        while len(self._buf) < need:
            if time.monotonic() >= deadline:
                raise FrameTimeout(f"{len(self._buf)} of {need} bytes arrived before the deadline")
            chunk = self._read(max(need - len(self._buf), 1))
            if chunk:
                self._buf += chunk

    def next(self, deadline: float) -> dict[str, Any]:
        """The next valid frame's payload before ``deadline`` (time.monotonic); FrameError for a bad one."""
        while True:
            at = self._buf.find(MAGIC)
            if at < 0:
                self._drop(max(len(self._buf) - 1, 0))  # keep a last byte: it may be half of a magic
                self._fill(len(self._buf) + 1, deadline)
                continue
            self._drop(at)
            self._fill(_HEADER.size, deadline)
            _, length = _HEADER.unpack_from(self._buf)
            if length > MAX_FRAME_BYTES:
                self._drop(len(MAGIC))
                raise FrameError("length", f"a frame declares {length} bytes, more than the link's {MAX_FRAME_BYTES}")
            total = _HEADER.size + length + _CRC.size
            self._fill(total, deadline)
            frame = bytes(self._buf[:total])
            (crc,) = _CRC.unpack_from(frame, total - _CRC.size)
            if zlib.crc32(frame[2 : total - _CRC.size]) != crc:
                self._drop(len(MAGIC))  # the length may be the damaged part: rescan from the next byte
                raise FrameError("crc", f"a frame of {length} bytes failed its CRC32 check")
            del self._buf[:total]
            try:
                payload = msgpack.unpackb(frame[_HEADER.size : total - _CRC.size], raw=False)
            except Exception as exc:  # msgpack raises several unrelated types for bad input
                raise FrameError("payload", f"a frame's payload is not msgpack: {exc}") from exc
            if not isinstance(payload, dict) or not isinstance(payload.get("seq"), int):
                raise FrameError("payload", "a frame's payload is not a map with an integer seq")
            return payload


__all__ = ["MAGIC", "MAX_FRAME_BYTES", "FrameError", "FrameReader", "FrameTimeout", "encode"]
