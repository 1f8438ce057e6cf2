"""iniVation AEDAT 4.0 files, decoded by the maintained ``aedat`` package (MIT, Rust).

Why ``aedat``: it decodes the LZ4/Zstd-compressed flatbuffer packets packet by packet from the
file, so memory stays bounded by one packet (measured: see tests/test_events_aedat4.py and the
report of issue 3), and its arrays match dv-processing's and faery's decoders exactly
(cross-checked in the tests). Writing an AEDAT4 decoder by hand would duplicate it.

What edgesnn exposes:

- ``reader.chunks()``: the events of one event stream (the first ``EVTS`` stream, or
  ``stream_id=``) as EVENT_DTYPE chunks of at most ``chunk_events``; small packets are joined.
- ``reader.frames()``, ``reader.imus()``, ``reader.triggers()``: the other stream types, each
  from its own pass over the file (so they never buffer alongside the events). Frames come as
  :class:`Aedat4Frame`; IMU samples and triggers as aedat's structured arrays, one per packet.
  ``chunks()`` skips them.
- ``geometry``: the event stream's ``sizeX``/``sizeY`` from the file's stream info.
- ``metadata``: ``streams`` (id -> type, size, source camera, compression, from the file's
  XML description).

Damage: a bad magic or header raises :class:`~edgesnn.errors.EventFileError` at open; a
truncated or corrupt packet raises it while reading, naming the file and the number of events
read before it. With ``lenient=True`` reading stops there instead, counting ``truncated``
in ``reader.skipped`` (aedat cannot resynchronise past a bad packet). Timestamps going
backwards and coordinates outside the geometry raise, or are dropped and counted when lenient.

``seek_time`` restarts decoding and skips packets that end before the target (aedat exposes
no packet index), so it costs a scan of the skipped part.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgesnn.errors import EventFileError, MissingDependencyError, OptionError
from edgesnn.events._dtype import EVENT_DTYPE, empty_events
from edgesnn.events.io import EventReader

log = logging.getLogger("edgesnn.events.aedat4")

MAGIC = b"#!AER-DAT4.0\r\n"
_INT64_MIN = np.iinfo(np.int64).min


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
    """Per-stream attributes from the file's XML description: type, originalOutputName, compression, source, size."""
    with open(path, "rb") as f:
        magic = f.read(len(MAGIC))
        if magic != MAGIC:
            raise EventFileError(
                f"not an AEDAT 4.0 file: starts with {magic[:16]!r}, expected {MAGIC!r}", path=str(path)
            )
        size = int.from_bytes(f.read(4), "little", signed=True)
        if size <= 0 or size > 1 << 26:
            raise EventFileError(f"bad IOHeader length {size} at byte {len(MAGIC)}", path=str(path))
        header = f.read(size)
    if len(header) != size:
        raise EventFileError(f"truncated IOHeader: {len(header)} of {size} bytes", path=str(path))
    start, end = header.find(b"<dv"), header.rfind(b"</dv>")
    streams: dict[int, dict] = {}
    if start < 0 or end < 0:
        return streams
    try:
        root = ET.fromstring(header[start : end + 5].decode("utf-8", errors="replace"))
    except ET.ParseError as exc:
        log.warning("%s: unreadable stream description (%s); using aedat's stream table only", path, exc)
        return streams
    for node in root.iter("node"):
        if not node.get("name", "").isdigit():
            continue
        attrs = {a.get("key"): a.text for a in node.findall("attr")}
        if "typeIdentifier" not in attrs:
            continue
        info = node.find("node[@name='info']")
        if info is not None:
            attrs.update({a.get("key"): a.text for a in info.findall("attr")})
        streams[int(node.get("name"))] = attrs
    return streams


class Aedat4Reader(EventReader):
    """Chunked reader of the event stream of an AEDAT4 file (see the module doc)."""

    def __init__(self, path, *, lenient: bool, geometry, chunk_events: int, stream_id: int | None) -> None:
        self.path = Path(path)
        self.format = "aedat4"
        self.lenient = lenient
        self.chunk_events = chunk_events
        self.skipped: dict[str, int] = {}
        description = read_description(self.path)
        table = self._open_decoder().id_to_stream()
        streams = {}
        for sid, info in sorted(table.items()):
            extra = description.get(sid, {})
            streams[sid] = {
                "type": info.get("type"),
                "width": info.get("width"),
                "height": info.get("height"),
                "name": extra.get("originalOutputName"),
                "source": extra.get("source"),
                "compression": extra.get("compression"),
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
        self.metadata = {"streams": streams, "stream_id": stream_id}
        if geometry is not None:
            self.geometry = (int(geometry[0]), int(geometry[1]))
        elif stream_id is not None and streams[stream_id]["width"]:
            self.geometry = (int(streams[stream_id]["width"]), int(streams[stream_id]["height"]))
        else:
            self.geometry = None
        self._packets: Iterator | None = None
        self._pending: list[np.ndarray] = []
        self._seek_t: int | None = None
        self._last_t: int | None = None
        self._done = False
        self._read = 0  # events handed out or dropped so far, for error messages

    def _open_decoder(self):
        aedat = _import_aedat()
        try:
            return aedat.Decoder(str(self.path))
        except (RuntimeError, OSError, ValueError) as exc:
            raise EventFileError(f"cannot open AEDAT4 stream: {exc}", path=str(self.path)) from exc

    def _packets_of(self, key: str, stream_id: int | None = None) -> Iterator[tuple[int, object]]:
        """(stream id, payload) for each packet of type ``key``; damage raises or, lenient, ends the pass."""
        decoder = self._open_decoder()
        packets = 0
        while True:
            try:
                packet = next(decoder)
            except StopIteration:
                return
            except (RuntimeError, OSError, ValueError) as exc:
                message = f"damaged packet after {packets} packets ({self._read} events read): {exc}"
                if not self.lenient:
                    raise EventFileError(message, path=str(self.path)) from exc
                self.skipped["truncated"] = self.skipped.get("truncated", 0) + 1
                log.warning("%s: %s; stopping there", self.path, message)
                return
            packets += 1
            if key in packet and (stream_id is None or packet["stream_id"] == stream_id):
                yield packet["stream_id"], packet[key]

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
        """Drop the decoder (aedat closes the file when its decoder is released)."""
        self._packets = None
        self._done = True

    def __enter__(self) -> Aedat4Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _drop(self, kind: str, bad: np.ndarray, message: str) -> None:
        if not self.lenient:
            raise EventFileError(message, path=str(self.path))
        count = int(bad.sum())
        self.skipped[kind] = self.skipped.get(kind, 0) + count
        log.warning("%s: dropped %d events (%s); first: %s", self.path, count, kind, message)

    def _convert(self, raw: np.ndarray) -> np.ndarray:
        n = len(raw)
        t = raw["t"]
        if n and int(t.max()) > np.iinfo(np.int64).max:
            raise EventFileError(
                f"event {self._read}: timestamp {int(t.max())} does not fit int64 µs", path=str(self.path)
            )
        t = t.astype(np.int64)
        # Fast path, the normal case: in order and inside the geometry, so nothing to drop.
        inside = (
            self.geometry is None or not n or (raw["x"].max() < self.geometry[0] and raw["y"].max() < self.geometry[1])
        )
        ordered = not n or ((self._last_t is None or t[0] >= self._last_t) and bool((t[1:] >= t[:-1]).all()))
        if inside and ordered:
            if n:
                self._last_t = int(t[-1])
            self._read += n
            out = np.empty(n, dtype=EVENT_DTYPE)
            out["x"], out["y"], out["t"], out["p"] = raw["x"], raw["y"], t, raw["on"]
            return out
        keep = np.ones(n, dtype=bool)
        if self.geometry is not None:
            w, h = self.geometry
            bad = (raw["x"] >= w) | (raw["y"] >= h)
            if bad.any():
                i = int(np.argmax(bad))
                self._drop(
                    "out_of_geometry",
                    bad,
                    f"event {self._read + i} at (x={int(raw['x'][i])}, y={int(raw['y'][i])}) lies outside {w}x{h}",
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
        return out

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
