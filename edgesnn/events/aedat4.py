"""iniVation AEDAT 4.0 files: the container checked here, the packets decoded by ``aedat`` (MIT, Rust).

Why ``aedat``: it decodes the LZ4/Zstd-compressed flatbuffer packets packet by packet from the
file, so memory stays bounded by one packet, and its arrays match dv-processing's and faery's
decoders exactly (cross-checked in the tests). It trusts the file, though (see
:mod:`edgesnn.events._aedat4_container`): so the header, the XML description and every packet's
framing are checked first, in one pass over the packet headers at open, and aedat only ever
reads packets that passed.

What edgesnn exposes:

- ``reader.chunks()``: the events of one event stream (the first ``EVTS`` stream, or
  ``stream_id=``) as EVENT_DTYPE chunks of at most ``chunk_events``; small packets are joined.
- ``reader.frames()``, ``reader.imus()``, ``reader.triggers()``: the other stream types, each
  from its own pass over the file (so they never buffer alongside the events). Frames come as
  :class:`Aedat4Frame`; IMU samples and triggers as aedat's structured arrays, one per packet.
  ``chunks()`` skips them.
- ``geometry``: the event stream's ``sizeX``/``sizeY`` from the file's stream info, unless
  ``geometry=`` overrides it; ``metadata["geometry_source"]`` says which ("header", "argument",
  "inferred").
- ``metadata``: ``streams`` (id -> type, size, source camera, compression, from the XML).

Damage. A bad magic, IOHeader or XML description raises :class:`~edgesnn.errors.EventFileError`
at open in both modes (aedat cannot decode a file whose description it cannot read), naming the
byte offset or the XML field. So does, in strict mode, an event stream whose ``sizeX`` or
``sizeY`` is 0 (no geometry to check coordinates against) unless ``geometry=`` is given;
lenient mode then logs a warning, checks coordinates only against the 16-bit field and infers the
geometry from the events ("inferred"). A packet whose header or framing fails raises at open in
strict mode (EventFileError naming the packet's index and byte offset; a declared size over
``limits.packet_bytes`` raises :class:`~edgesnn.errors.LimitError`); lenient mode skips it,
counted in ``reader.skipped`` as ``bad_packet``, ``over_limit`` or ``truncated`` (a broken
packet header is skipped by searching for the next plausible packet). A packet aedat fails to
decode (corrupt compressed data, a bad flatbuffer) raises while reading, or is skipped and
counted as ``damaged_packet``. Lenient files with a gap are decoded from a repaired copy in the
temporary directory (header and intact packets, removed on ``close``), since aedat reads only
whole files in order. Timestamps going backwards and coordinates outside the geometry raise, or
are dropped and counted when lenient: lenient output is always time-sorted, inside the geometry,
with polarity 0 or 1.

``seek_time`` restarts decoding and skips packets that end before the target (aedat exposes
no packet index), so it costs a scan of the skipped part.
"""

from __future__ import annotations

import logging
import os
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgesnn import limits
from edgesnn.errors import EventFileError, LimitError, MissingDependencyError, OptionError
from edgesnn.events import _aedat4_container as box
from edgesnn.events._dtype import EVENT_DTYPE, empty_events
from edgesnn.events.io import EventReader

log = logging.getLogger("edgesnn.events.aedat4")

MAGIC = box.MAGIC
_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max
#: Flatbuffer coordinates are int16; aedat hands them out as uint16, so 32768 and up were negative.
_FIELD_LIMIT = (1 << 15, 1 << 15)


@dataclass(frozen=True)
class Aedat4Frame:
    """One APS/RGB frame: ``pixels`` (H, W) or (H, W, C), format 'L', 'I;16', 'RGB' or 'RGBA'; times in µs."""

    stream_id: int
    t: int
    begin_t: int
    end_t: int
    exposure_begin_t: int
    exposure_end_t: int
    format: str
    offset_x: int
    offset_y: int
    pixels: np.ndarray


def _import_aedat():
    try:
        import aedat
    except ImportError as exc:
        raise MissingDependencyError(
            "reading AEDAT4 files needs the aedat package: pip install 'edgesnn[events]'"
        ) from exc
    return aedat


def read_description(path) -> dict[int, dict]:
    """Per-stream attributes from the file's XML description (typeIdentifier, originalOutputName, compression, ...)."""
    with _opened(path) as (fd, size):
        container = box.read_container(fd, size, str(path), lenient=True)
    return {sid: dict(s["attrs"]) for sid, s in container.streams.items()}


class _opened:
    """An OS-level read handle and the file size, closed on exit (os.pread needs no shared position)."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __enter__(self) -> tuple[int, int]:
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:
            raise EventFileError(f"cannot read: {e.strerror or e}", path=self.path) from e
        return self.fd, os.fstat(self.fd).st_size

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


@dataclass(frozen=True)
class _Plan:
    """The outcome of the packet walk: how many packets aedat may read, and which byte ranges hold them."""

    packets: int
    ranges: tuple[tuple[int, int], ...]  # [start, end) of runs of consecutive intact packets
    damages: tuple[box.Damage, ...]


def _plan(fd: int, container: box.Container, path: str, lenient: bool) -> _Plan:
    """Walk every packet header; strict mode raises at the first damage."""
    packets, ranges, damages = 0, [], []
    for item in box.walk(fd, container, path, lenient=lenient):
        if isinstance(item, box.Damage):
            if not lenient:
                box.raise_for(item, path)
            damages.append(item)
            continue
        packets += 1
        end = item.offset + 8 + item.size
        if ranges and ranges[-1][1] == item.offset:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((item.offset, end))
    return _Plan(packets, tuple(ranges), tuple(damages))


def _repaired_copy(path: str, container: box.Container, ranges) -> str:
    """A temporary file holding the header and the intact packets only, for aedat to read in order."""
    fd, tmp = tempfile.mkstemp(prefix="edgesnn-", suffix=".aedat4")
    try:
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            out.write(container.header)
            for start, end in ranges:
                src.seek(start)
                _copy_range(src, out, end - start)
    except OSError as e:
        os.unlink(tmp)
        raise EventFileError(f"cannot write a repaired copy to the temporary directory: {e}", path=path) from e
    return tmp


def _copy_range(src, out, n: int) -> None:
    while n > 0:
        block = src.read(min(n, 1 << 20))
        if not block:
            raise OSError("the file shrank while being read")
        out.write(block)
        n -= len(block)


def _is_decoder_failure(exc: BaseException) -> bool:
    """Exceptions aedat raises for a bad packet, including pyo3's PanicException (a BaseException)."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


class Aedat4Reader(EventReader):
    """Chunked reader of the event stream of an AEDAT4 file (see the module doc)."""

    def __init__(self, path, *, lenient: bool, geometry, chunk_events: int, stream_id: int | None) -> None:
        self.path = Path(path)
        self.format = "aedat4"
        self.lenient = lenient
        self.chunk_events = chunk_events
        self.skipped: dict[str, int] = {}
        where = str(self.path)
        with _opened(self.path) as (fd, size):
            container = box.read_container(fd, size, where, lenient=lenient)
            self._plan = _plan(fd, container, where, lenient)
        self._container = container
        for d in self._plan.damages:
            self._count(d.kind)
            log.warning("%s: skipping %s", self.path, d.message)
        self._source = where
        self._copy = None
        if len(self._plan.ranges) > 1 or (self._plan.ranges and self._plan.ranges[0][0] != container.data_start):
            self._source = self._copy = _repaired_copy(where, container, self._plan.ranges)
            self._finalizer = weakref.finalize(self, _unlink, self._copy)
        self._open_decoder()  # aedat must accept the header too (it is checked here first)
        streams = {
            sid: {
                "type": s["type"],
                "width": s["width"],
                "height": s["height"],
                "name": s["attrs"].get("originalOutputName"),
                "source": s["attrs"].get("source"),
                "compression": s["attrs"].get("compression"),
            }
            for sid, s in sorted(container.streams.items())
        }
        event_ids = [sid for sid, s in streams.items() if s["type"] == "events"]
        if stream_id is None:
            if not event_ids:
                log.warning("%s: no event stream (streams: %s); chunks() yields nothing", self.path, streams)
            stream_id = event_ids[0] if event_ids else None
        elif stream_id not in event_ids:
            raise OptionError(
                f"stream {stream_id} is not an event stream of {self.path}; event streams: {event_ids}",
                path="stream_id",
            )
        self.stream_id = stream_id
        self.metadata = {
            "streams": streams,
            "stream_id": stream_id,
            "compression": box.COMPRESSIONS[container.compression],
        }
        self.geometry, self.metadata["geometry_source"] = self._geometry(geometry, streams.get(stream_id))
        # Coordinates are checked against a stated geometry; an inferred one grows, so only the field bounds them.
        self._bounds = self.geometry if self.geometry is not None else _FIELD_LIMIT
        self._packets: Iterator | None = None
        self._pending: list[np.ndarray] = []
        self._seek_t: int | None = None
        self._last_t: int | None = None
        self._done = False
        self._read = 0  # events handed out or dropped so far, for error messages

    def _geometry(self, geometry, stream: dict | None) -> tuple[tuple[int, int] | None, str]:
        """(geometry, source): the argument, else the stream's sizeX/sizeY; 0 is refused (strict) or inferred."""
        if geometry is not None:
            return (int(geometry[0]), int(geometry[1])), "argument"
        if stream is None:
            return None, "inferred"
        if stream["width"] and stream["height"]:
            return (int(stream["width"]), int(stream["height"])), "header"
        field = "sizeX" if not stream["width"] else "sizeY"
        message = (
            f"IOHeader description: outInfo/{self.metadata['stream_id']}/info/{field} = 0: the event stream states no"
            f" sensor size to check coordinates against; pass geometry=(width, height)"
        )
        if not self.lenient:
            raise EventFileError(message, path=str(self.path))
        log.warning("%s: %s (lenient: the geometry is inferred from the events)", self.path, message)
        return None, "inferred"

    def _open_decoder(self):
        aedat = _import_aedat()
        try:
            return aedat.Decoder(self._source)
        except BaseException as exc:
            if not _is_decoder_failure(exc):
                raise
            raise EventFileError(f"aedat cannot read the header: {exc}", path=str(self.path)) from exc

    def _packets_of(self, key: str, stream_id: int | None = None) -> Iterator[tuple[int, object]]:
        """(stream id, payload) for each packet of type ``key``; damage raises or, lenient, is skipped."""
        decoder = self._open_decoder()
        # Never ask for more packets than the walk checked: past them lie unchecked bytes.
        for k in range(self._plan.packets):
            try:
                packet = next(decoder)
            except StopIteration:
                return
            except BaseException as exc:
                if not _is_decoder_failure(exc):
                    raise
                self._damaged(k, exc)
                continue
            if key in packet and (stream_id is None or packet["stream_id"] == stream_id):
                payload = packet[key]
                if key == "frame" and payload["pixels"].nbytes > limits.current().packet_bytes:
                    self._damaged(k, None, nbytes=payload["pixels"].nbytes)
                    continue
                yield packet["stream_id"], payload

    def _damaged(self, k: int, exc: BaseException | None, nbytes: int = 0) -> None:
        """A packet aedat could not decode (or whose frame is over the limit): raise, or (lenient) count it."""
        index, offset = self._locate(k)
        where = f"packet {index} at byte {offset}"
        bound = limits.current().packet_bytes
        if exc is None or isinstance(exc, MemoryError):
            message = f"{where}: its frame needs {nbytes or 'more'} bytes, over the limit packet_bytes = {bound}"
            if not self.lenient:
                raise LimitError(message, limit="packet_bytes", value=nbytes, path=str(self.path)) from exc
            self._count("over_limit")
        else:
            message = f"{where} cannot be decoded ({self._read} events read before it): {str(exc).splitlines()[0]}"
            if not self.lenient:
                raise EventFileError(message, path=str(self.path)) from exc
            self._count("damaged_packet")
        log.warning("%s: skipping %s", self.path, message)

    def _locate(self, k: int) -> tuple[int, int]:
        """Index and byte offset in the file of the k-th intact packet (walks again: errors are rare)."""
        with _opened(self.path) as (fd, _):
            seen = 0
            for item in box.walk(fd, self._container, str(self.path), lenient=True):
                if isinstance(item, box.Packet):
                    if seen == k:
                        return item.index, item.offset
                    seen += 1
        return k, -1

    def _count(self, kind: str, n: int = 1) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + n

    # -- events
    def chunks(self) -> Iterator[np.ndarray]:
        """Yield EVENT_DTYPE chunks of the event stream from the current position."""
        if self.stream_id is None or self._done:
            return
        if self._packets is None:
            self._packets = self._packets_of("events", self.stream_id)
        # Events decoded but not yet handed out live on self, so a consumer that stops early loses none.
        pending, held = self._pending, sum(len(p) for p in self._pending)
        for _, raw in self._packets:
            events = self._convert(raw)
            if self._seek_t is not None:
                if not len(events) or events["t"][-1] < self._seek_t:
                    continue
                events = events[int(np.argmax(events["t"] >= self._seek_t)) :]
                self._seek_t = None
            if not len(events):
                continue
            pending.append(events)
            held += len(events)
            while held >= self.chunk_events:
                joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
                yield joined[: self.chunk_events]
                rest = joined[self.chunk_events :]
                pending[:] = [rest] if len(rest) else []
                held = len(rest)
        self._done = True
        if held:
            tail = np.concatenate(pending) if len(pending) > 1 else pending[0]
            pending.clear()
            yield tail

    def read_all(self) -> np.ndarray:
        """Every remaining event as one array."""
        parts = list(self.chunks())
        return np.concatenate(parts) if parts else empty_events()

    def seek_time(self, t_us: int) -> None:
        """Make the next chunk start at the first event with ``t >= t_us`` (restarts decoding and scans)."""
        self._packets = None
        self._pending = []
        self._done = False
        self._last_t = None
        self._read = 0
        self._seek_t = int(t_us)

    def close(self) -> None:
        """Drop the decoder and the repaired copy, if any (aedat closes the file when its decoder is released)."""
        self._packets = None
        self._done = True
        if self._copy is not None:
            self._finalizer()

    def __enter__(self) -> Aedat4Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _drop(self, kind: str, bad: np.ndarray, message: str) -> None:
        if not self.lenient:
            raise EventFileError(message, path=str(self.path))
        count = int(bad.sum())
        self._count(kind, count)
        log.warning("%s: dropped %d events (%s); first: %s", self.path, count, kind, message)

    def _convert(self, raw: np.ndarray) -> np.ndarray:
        n = len(raw)
        t = raw["t"]
        # Fast path, the normal case: in order and inside the geometry, so nothing to drop.
        bounds = self._bounds
        fits = not n or int(t.max()) <= _INT64_MAX
        t = t.astype(np.int64)
        inside = not n or (int(raw["x"].max()) < bounds[0] and int(raw["y"].max()) < bounds[1])
        ordered = not n or ((self._last_t is None or t[0] >= self._last_t) and bool((t[1:] >= t[:-1]).all()))
        if fits and inside and ordered:
            if n:
                self._last_t = int(t[-1])
                self._grow_geometry(raw)
            self._read += n
            out = np.empty(n, dtype=EVENT_DTYPE)
            out["x"], out["y"], out["t"], out["p"] = raw["x"], raw["y"], t, raw["on"]
            return out
        keep = np.ones(n, dtype=bool)
        if not fits:
            bad = raw["t"] > _INT64_MAX
            i = int(np.argmax(bad))
            self._drop(
                "bad_timestamp", bad, f"event {self._read + i}: timestamp {int(raw['t'][i])} does not fit int64 µs"
            )
            keep &= ~bad
        w, h = bounds
        bad = keep & ((raw["x"] >= w) | (raw["y"] >= h))
        if bad.any():
            i = int(np.argmax(bad))
            shape = f"{w}x{h}" if self._bounds is not _FIELD_LIMIT else "the 16-bit coordinate range"
            self._drop(
                "out_of_geometry",
                bad,
                f"event {self._read + i} at (x={int(raw['x'][i])}, y={int(raw['y'][i])}) lies outside {shape}",
            )
            keep &= ~bad
        running = np.maximum.accumulate(np.where(keep, t, _INT64_MIN))
        prev = np.empty(n, dtype=np.int64)
        prev[:1] = _INT64_MIN if self._last_t is None else self._last_t
        prev[1:] = np.maximum(running[:-1], prev[0])
        bad = keep & (t < prev)
        if bad.any():
            i = int(np.argmax(bad))
            self._drop(
                "time_backwards", bad, f"event {self._read + i}: t={int(t[i])} is before the previous t={int(prev[i])}"
            )
            keep &= ~bad
        if n:
            last = int(max(running[-1], prev[0]))
            self._last_t = last if last != _INT64_MIN else self._last_t
        self._read += n
        out = np.empty(int(keep.sum()), dtype=EVENT_DTYPE)
        out["x"], out["y"], out["t"] = raw["x"][keep], raw["y"][keep], t[keep]
        out["p"] = raw["on"][keep]
        self._grow_geometry(out)
        return out

    def _grow_geometry(self, events: np.ndarray) -> None:
        """Without a stated geometry, keep (max x + 1, max y + 1) of the events so far (as the Prophesee readers)."""
        if self.metadata["geometry_source"] != "inferred" or not len(events):
            return
        w, h = int(events["x"].max()) + 1, int(events["y"].max()) + 1
        gw, gh = self.geometry or (0, 0)
        if w > gw or h > gh:
            self.geometry = (max(w, gw), max(h, gh))

    # -- the other stream types
    def frames(self) -> Iterator[Aedat4Frame]:
        """Every frame of every frame stream, in file order (an independent pass over the file)."""
        for sid, f in self._packets_of("frame"):
            yield Aedat4Frame(
                stream_id=sid,
                t=int(f["t"]),
                begin_t=int(f["begin_t"]),
                end_t=int(f["end_t"]),
                exposure_begin_t=int(f["exposure_begin_t"]),
                exposure_end_t=int(f["exposure_end_t"]),
                format=str(f["format"]),
                offset_x=int(f["offset_x"]),
                offset_y=int(f["offset_y"]),
                pixels=f["pixels"],
            )

    def imus(self) -> Iterator[np.ndarray]:
        """IMU packets as structured arrays (t, temperature, accelerometer_*, gyroscope_*, magnetometer_*)."""
        for _, samples in self._packets_of("imus"):
            yield samples

    def triggers(self) -> Iterator[np.ndarray]:
        """Trigger packets as structured arrays (t, source)."""
        for _, samples in self._packets_of("triggers"):
            yield samples


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def open_aedat4(
    path,
    *,
    lenient: bool = False,
    geometry: tuple[int, int] | None = None,
    chunk_events: int = 1 << 20,
    stream_id: int | None = None,
) -> Aedat4Reader:
    """Open an AEDAT 4.0 file; events come from its first event stream unless ``stream_id`` is given."""
    if isinstance(chunk_events, bool) or not isinstance(chunk_events, int) or chunk_events <= 0:
        raise OptionError(f"must be a positive integer, got {chunk_events!r}", path="chunk_events")
    if not Path(path).is_file():
        raise EventFileError("no such file", path=str(path))
    return Aedat4Reader(path, lenient=lenient, geometry=geometry, chunk_events=chunk_events, stream_id=stream_id)
