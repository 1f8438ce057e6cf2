"""The streaming reader behind EVT 2.0, EVT 2.1, EVT 3.0 and DAT: blocks in, EVENT_DTYPE chunks out.

The payload is read in word-aligned blocks of ``BLOCK_BYTES`` and decoded by the C kernel
(``_evtkernels.decode``), or by the numpy decoders when the extension is not built; both carry
their state (time high, loop count, current row, vector base, ...) in one int64 array from block to
block, so a block boundary never changes the result and memory stays bounded by one block plus
one output chunk.

``seek_time`` restores the latest checkpoint (state + byte offset, recorded at every block start
as blocks go by) whose events are all earlier than the target, then advances the state without
writing events (the kernel's dry mode) until the first time word that reaches the target, and the
next chunk drops the few events of that period still earlier than it.

``time_offset`` (the header's ``% t0``, see _header.py) is added to every event as it
leaves the decoders, which work in the payload's own time; seek targets and checkpoint bounds are
converted between the two, so the decoders, C or numpy, never see the offset.
"""

from __future__ import annotations

import bisect
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgesnn.errors import EventFileError
from edgesnn.events import _npdecoders
from edgesnn.events._dtype import EVENT_DTYPE, empty_events
from edgesnn.events._kinds import (
    DAT,
    E_TRUNCATED,
    ERROR_NAMES,
    ERROR_TEXT,
    EVT3,
    F_HAVE_PREV,
    F_HAVE_TH,
    MAX_EVENTS_PER_WORD,
    N_CODES,
    N_STATE,
    P_EXTENT,
    P_LENIENT,
    S_FLAGS,
    S_LOOP,
    S_PREV,
    S_SHIFT,
    S_TH,
    S_TL,
    S_XEND,
    S_YEND,
    WORD_SIZE,
)
from edgesnn.events.io import EventReader

try:
    from edgesnn.events import _evtkernels as _C
except ImportError:  # built optionally (setup.py); the numpy decoders take over
    _C = None

log = logging.getLogger("edgesnn.events")

#: True when the C decoders are built and usable on this host (they write little-endian records).
NATIVE: bool = _C is not None and sys.byteorder == "little"

#: Bytes read and decoded per step: large enough that the per-call cost vanishes, small enough that
#: the reused block stays in cache between the read and the decode (8 MB blocks were 1.2x slower
#: end to end on the real recordings: page faults and a copy through memory).
BLOCK_BYTES = 1 << 20

_NO_TARGET = (1 << 63) - 1

#: Output sized for this many events per word up front (exact bounds for EVT2 and DAT, typical
#: for EVT3 and EVT2.1); read_all grows the array when a file holds more.
_EXPECTED_EVENTS_PER_WORD = {0: 1.0, 1: 4.0, 2: 1.0, 3: 1.0}

#: The Gen3 sensor size, assumed for EVT 2.0 files whose header gives none (see io.py).
GEN3_GEOMETRY = (640, 480)


def resolve_geometry(header_geometry, user_geometry, *, gen3_default: bool = False):
    """(geometry, source, check bounds) by the rule in io.py's docstring."""
    if header_geometry is not None:
        if user_geometry is not None and tuple(user_geometry) != tuple(header_geometry):
            log.warning("geometry argument %s ignored: the file header gives %s", user_geometry, header_geometry)
        return tuple(header_geometry), "header", True
    if user_geometry is not None:
        return tuple(user_geometry), "argument", True
    if gen3_default:
        return GEN3_GEOMETRY, "gen3-default", False
    return None, "inferred", False


class WordStreamReader(EventReader):
    """Reader of a fixed-word-size Prophesee payload (see the module docstring); built by the format openers."""

    def __init__(
        self,
        path,
        *,
        fmt: str,
        kind: int,
        data_offset: int,
        flags: int,
        geometry: tuple[int, int] | None,
        check_geometry: bool,
        metadata: dict,
        lenient: bool,
        chunk_events: int,
        native: bool | None = None,
        block_bytes: int | None = None,
        time_offset: int = 0,
    ) -> None:
        self.path = Path(path)
        self._offset = int(time_offset)
        self.format = fmt
        self.geometry = geometry
        self.metadata = metadata
        self.skipped: dict[str, int] = {}
        self.lenient = bool(lenient)
        self.chunk_events = int(chunk_events)
        self._kind = kind
        self._ws = WORD_SIZE[kind]
        self._data_offset = data_offset
        self._flags = flags | (P_LENIENT if lenient else 0)
        # The kernel checks bounds only against a geometry someone stated; 0 means "field width".
        self._bounds = geometry if (geometry is not None and check_geometry) else (0, 0)
        self._infer = not check_geometry
        if self._infer:
            self._flags |= P_EXTENT
        self._native = NATIVE if native is None else (bool(native) and NATIVE)
        block_bytes = BLOCK_BYTES if block_bytes is None else int(block_bytes)
        self._block = max(8, block_bytes - block_bytes % 8)
        self._state = np.zeros(N_STATE, np.int64)
        self._counts = np.zeros(N_CODES, np.int64)
        self._logged: set[int] = set()
        self._pos = 0  # payload bytes consumed
        self._buf: bytearray | None = None
        self._drop_before: int | None = None  # after a seek: drop events earlier than this
        # Checkpoints: payload offset -> (bound, state). "bound" exceeds every event before the offset.
        self._ckpt_pos: list[int] = [0]
        self._ckpt: dict[int, tuple[int | float, np.ndarray]] = {0: (-np.inf, self._state.copy())}
        # The file is opened for each pass (chunks, read_all, seek) and closed when it ends or its
        # iterator is dropped, so a reader that is never closed leaks no descriptor.
        self._file = None
        self._closed = False
        try:
            self._payload = self.path.stat().st_size - data_offset
        except OSError as e:
            raise EventFileError(f"cannot read: {e.strerror or e}", path=str(self.path)) from e

    # ------------------------------------------------------------------ EventReader API
    def chunks(self) -> Iterator[np.ndarray]:
        """Yield EVENT_DTYPE chunks of at most ``chunk_events`` events from the current position.

        A ``seek_time`` call invalidates iterators obtained before it.
        """
        with self._opened() as self._file:
            if self._native:
                yield from self._filtered(self._chunks_native())
            else:
                yield from self._filtered(self._chunks_numpy())

    def read_all(self) -> np.ndarray:
        """Every event from the current position to the end, as one array."""
        if self._native:
            with self._opened() as self._file:
                parts = list(self._filtered(iter([self._read_all_native()])))
        else:
            parts = list(self.chunks())
        if not parts:
            return empty_events()
        if len(parts) == 1:
            return parts[0]
        # numpy copies a packed 13-byte structured dtype field by field; bytes copy at memory speed.
        out = np.empty(sum(len(a) for a in parts), EVENT_DTYPE)
        np.concatenate([a.view(np.uint8) for a in parts], out=out.view(np.uint8))
        return out

    def _read_all_native(self) -> np.ndarray:
        """Decode the rest of the file into one array that grows as needed."""
        per_word = _EXPECTED_EVENTS_PER_WORD[self._kind]
        remaining = (self._payload - self._pos) // self._ws
        out = np.empty(int(remaining * per_word) + 64, EVENT_DTYPE)
        n = 0
        while self._pos < self._payload:
            block = self._read_block()
            n_words = len(block) // self._ws
            wpos = 0
            while wpos < n_words:
                n, wpos_new, err, stopped = _C.decode(
                    self._kind, block, wpos, out, n, self._state, self._counts, *self._bounds, self._flags, _NO_TARGET
                )
                self._pos += (wpos_new - wpos) * self._ws
                wpos = wpos_new
                self._note_skips()
                if err:
                    self._raise(err, self._pos)
                if stopped == 1:
                    left = (self._payload - self._pos) // self._ws
                    bigger = np.empty(len(out) + max(len(out) // 2, int(left * per_word) + 64), EVENT_DTYPE)
                    bigger.view(np.uint8)[: n * EVENT_DTYPE.itemsize] = out.view(np.uint8)[: n * EVENT_DTYPE.itemsize]
                    out = bigger
            if len(block) % self._ws:
                self._truncated(len(block) % self._ws)
        return out[:n]

    def seek_time(self, t_us: int) -> None:
        """Make the next chunk start at the first event with ``t >= t_us`` (timestamps in µs)."""
        target = int(t_us)
        k = bisect.bisect_right(self._ckpt_pos, self._payload) - 1
        while k > 0 and self._ckpt[self._ckpt_pos[k]][0] >= target:
            k -= 1
        pos = self._ckpt_pos[k]
        self._pos = pos
        self._state[:] = self._ckpt[pos][1]
        scratch = np.zeros(N_CODES, np.int64)  # damage met while skipping is not part of what is read
        with self._opened() as self._file:
            self._skip_to(target - self._offset, scratch)
        self._drop_before = target

    def _skip_to(self, target: int, scratch: np.ndarray) -> None:
        while self._pos < self._payload:
            block = self._read_block()
            n_words = len(block) // self._ws
            if n_words == 0:  # a truncated tail: chunks() reports it
                break
            if self._native:
                _, used, err, stopped = _C.decode(
                    self._kind, block, 0, None, 0, self._state, scratch, *self._bounds, self._flags, target
                )
            else:
                # Skipped events are not read: they widen no inferred geometry (the C dry mode tracks none).
                flags = self._flags & ~P_EXTENT
                _, used, err, stopped = _npdecoders.decode(
                    self._kind, block[: n_words * self._ws], self._state, scratch, *self._bounds, flags, target
                )
            if err:
                self._raise(err, self._pos + used * self._ws)
            self._pos += used * self._ws
            if stopped == 2 or used < n_words:
                break

    def close(self) -> None:
        """Release the read buffer; later reads raise."""
        self._closed = True
        self._buf = None

    def _opened(self):
        if self._closed:
            raise EventFileError("reader is closed", path=str(self.path))
        try:
            return open(self.path, "rb")  # noqa: SIM115 - callers use it in a with block
        except OSError as e:
            raise EventFileError(f"cannot read: {e.strerror or e}", path=str(self.path)) from e

    # ------------------------------------------------------------------ decoding
    def _read_block(self) -> memoryview:
        """The next block of whole words at ``self._pos``; records a checkpoint there.

        The block is read into one reused buffer (fresh 8 MB allocations cost page faults) and is
        valid until the next call.
        """
        self._checkpoint()
        if self._buf is None:
            self._buf = bytearray(min(self._block, max(self._payload, 8)))
        self._file.seek(self._data_offset + self._pos)
        view = memoryview(self._buf)[: min(self._block, self._payload - self._pos)]
        got = self._file.readinto(view)
        return view[:got]

    def _checkpoint(self) -> None:
        pos = self._pos
        if pos in self._ckpt:
            return
        bisect.insort(self._ckpt_pos, pos)
        self._ckpt[pos] = (self._time_bound(), self._state.copy())

    def _time_bound(self) -> int | float:
        """A time every event decoded so far is below (events are at most this late); -inf before any.

        Python ints, not floats: epoch-stamped times with an offset near 2^62 µs would round in a
        float and could pick a checkpoint past the seek target.
        """
        return self._payload_time_bound() + self._offset  # -inf stays -inf

    def _payload_time_bound(self) -> int | float:
        """``_time_bound`` in the payload's own time (before the offset)."""
        st = self._state
        fl = int(st[S_FLAGS])
        if self._kind == DAT:
            return (int(st[S_LOOP]) << 32) + int(st[S_PREV]) + 1 if fl & F_HAVE_PREV else -np.inf
        if not fl & F_HAVE_TH:
            return -np.inf
        if self._kind == EVT3:
            return (int(st[S_LOOP]) << 24) + (int(st[S_TH]) << 12) + int(st[S_TL]) - int(st[S_SHIFT]) + 1
        return (int(st[S_LOOP]) << 34) + (int(st[S_TH]) << 6) - int(st[S_SHIFT]) + 64

    def _chunks_native(self) -> Iterator[np.ndarray]:
        cap = max(self.chunk_events, 4 * MAX_EVENTS_PER_WORD[self._kind])
        out = np.empty(cap, EVENT_DTYPE)
        n = 0
        while self._pos < self._payload:
            block = self._read_block()
            n_words = len(block) // self._ws
            wpos = 0
            while wpos < n_words:
                n, wpos_new, err, stopped = _C.decode(
                    self._kind, block, wpos, out, n, self._state, self._counts, *self._bounds, self._flags, _NO_TARGET
                )
                self._pos += (wpos_new - wpos) * self._ws
                wpos = wpos_new
                self._note_skips()
                if err:
                    self._raise(err, self._pos)
                if stopped == 1:
                    yield from self._split(out[:n])
                    out = np.empty(cap, EVENT_DTYPE)
                    n = 0
            if len(block) % self._ws:
                self._truncated(len(block) % self._ws)
        if n:
            yield from self._split(out[:n])

    def _chunks_numpy(self) -> Iterator[np.ndarray]:
        while self._pos < self._payload:
            block = self._read_block()
            n_words = len(block) // self._ws
            events, used, err, _ = _npdecoders.decode(
                self._kind,
                block[: n_words * self._ws],
                self._state,
                self._counts,
                *self._bounds,
                self._flags,
                _NO_TARGET,
            )
            self._note_skips()
            if err:
                self._raise(err, self._pos + used * self._ws)
            self._pos += n_words * self._ws
            yield from self._split(events)
            if len(block) % self._ws:
                self._truncated(len(block) % self._ws)

    def _split(self, events: np.ndarray) -> Iterator[np.ndarray]:
        for a in range(0, len(events), self.chunk_events):
            yield events[a : a + self.chunk_events]

    def _filtered(self, chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Add the time offset, apply the post-seek cut and the geometry inference to the raw chunk stream."""
        for events in chunks:
            if self._offset:
                events["t"] += self._offset  # fresh decoder output, not yet seen by the caller
            if self._drop_before is not None:
                keep = events["t"] >= self._drop_before
                if not keep.any():
                    continue
                events = events[int(np.argmax(keep)) :]
                self._drop_before = None
            if self._infer and len(events):
                self._grow_geometry()
            if len(events):
                yield events

    def _grow_geometry(self) -> None:
        # Both decoders keep 1 + the largest coordinates they wrote in the state (no pass over the events).
        w, h = int(self._state[S_XEND]), int(self._state[S_YEND])
        gw, gh = self.geometry or (0, 0)
        if w > gw or h > gh:
            self.geometry = (max(w, gw), max(h, gh))
            self.metadata["geometry_source"] = "inferred"

    # ------------------------------------------------------------------ damage
    def _note_skips(self) -> None:
        if not self.lenient:
            return
        for code in np.flatnonzero(self._counts):
            name = ERROR_NAMES[int(code)]
            self.skipped[name] = int(self._counts[code])
            if code not in self._logged:
                self._logged.add(int(code))
                log.warning(
                    "%s: skipping %s (first near byte offset %d); further ones are counted in reader.skipped",
                    self.path,
                    ERROR_TEXT[int(code)],
                    self._data_offset + self._pos,
                )

    def _raise(self, code: int, payload_pos: int) -> None:
        raise EventFileError(
            f"{ERROR_TEXT[code]} at byte offset {self._data_offset + payload_pos} "
            f"(word {payload_pos // self._ws} of the payload)",
            path=str(self.path),
        )

    def _truncated(self, extra: int) -> None:
        if not self.lenient:
            raise EventFileError(
                f"{ERROR_TEXT[E_TRUNCATED]}: {extra} trailing bytes at byte offset {self._data_offset + self._pos}, "
                f"words are {self._ws} bytes",
                path=str(self.path),
            )
        self._counts[E_TRUNCATED] += 1
        self._note_skips()
        self._pos += extra
