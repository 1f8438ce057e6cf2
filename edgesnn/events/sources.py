"""Event sources: iterables of EVENT_DTYPE chunks from a file, a serial link or a simulator.

- :class:`FileSource` replays any file :func:`~edgesnn.events.io.open_events` reads, as fast as
  possible or paced by its timestamps (``realtime=True``, ``speed`` times faster).
- :class:`SerialSource` reads EVT 2.0 / EVT 3.0 words from a serial or USB-CDC link (pyserial)
  and decodes them as they arrive.
- :class:`SimulatorSource` turns rendered frames into events through an event-camera simulator.

Each is iterated for chunks, has a ``geometry`` ((width, height) or None) and closes as a
context manager. Feed the chunks to a :class:`~edgesnn.events.functional.slicing.TimeSlicer`
to get fixed windows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from edgesnn.errors import EventStreamError, MissingDependencyError, OptionError
from edgesnn.events._dtype import EVENT_DTYPE
from edgesnn.events.io import EventReader, open_events

log = logging.getLogger("edgesnn.events.sources")


class FileSource:
    """Chunks of an event file, as fast as possible or paced in real time.

    With ``realtime=True`` the first event's time is pinned to the moment iteration starts, and
    an event with timestamp ``t`` is handed out no earlier than ``(t - t_first) / speed`` seconds
    later (``time.monotonic``; the source sleeps until then). Chunks are then cut into slices of
    ``slice_us`` of recording time, each released once its last event is due, so a consumer sees
    the stream arrive as a live camera would deliver it. ``clock`` and ``sleep`` can be replaced
    (tests use a fake clock).
    """

    def __init__(
        self,
        path_or_reader: str | Path | EventReader,
        *,
        realtime: bool = False,
        speed: float = 1.0,
        slice_us: int = 10_000,
        chunk_events: int = 1 << 16,
        format: str | None = None,  # noqa: A002 - same name as open_events
        lenient: bool = False,
        geometry: tuple[int, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (isinstance(speed, int | float) and not isinstance(speed, bool) and speed > 0):
            raise OptionError(f"must be a positive number, got {speed!r}", path="speed")
        if isinstance(slice_us, bool) or not isinstance(slice_us, int) or slice_us <= 0:
            raise OptionError(f"must be a positive integer, got {slice_us!r}", path="slice_us")
        if isinstance(path_or_reader, EventReader):
            self.reader, self._owns = path_or_reader, False
        else:
            self.reader = open_events(
                path_or_reader, format=format, lenient=lenient, geometry=geometry, chunk_events=chunk_events
            )
            self._owns = True
        self.realtime, self.speed, self.slice_us = realtime, float(speed), slice_us
        self._clock, self._sleep = clock, sleep

    @property
    def geometry(self) -> tuple[int, int] | None:
        """(width, height) of the underlying file, when known."""
        return self.reader.geometry

    def __iter__(self) -> Iterator[np.ndarray]:
        if not self.realtime:
            yield from self.reader.chunks()
            return
        origin: tuple[int, float] | None = None  # (first event time, wall clock at start)
        for chunk in self.reader.chunks():
            if origin is None:
                origin = (int(chunk["t"][0]), self._clock())
            t = chunk["t"]
            # Cut at slice boundaries (aligned to the first event) so pacing is smooth within big chunks.
            first_slice = (int(t[0]) - origin[0]) // self.slice_us
            last_slice = (int(t[-1]) - origin[0]) // self.slice_us
            bounds = origin[0] + self.slice_us * np.arange(first_slice + 1, last_slice + 1, dtype=np.int64)
            cuts = np.searchsorted(t, bounds, side="left")
            for part in np.split(chunk, cuts):
                if len(part):
                    self._wait_until(origin, int(part["t"][-1]))
                    yield part

    def _wait_until(self, origin: tuple[int, float], t_us: int) -> None:
        due = origin[1] + (t_us - origin[0]) / 1e6 / self.speed
        while (delay := due - self._clock()) > 0:
            self._sleep(delay)

    def close(self) -> None:
        """Close the file if this source opened it."""
        if self._owns:
            self.reader.close()

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- serial links


class _WordDecoder:
    """Incremental EVT 2.0 / 3.0 decoder: the file readers' state machine fed from a byte stream.

    Holds the decoder state (time base, current row, vector base, flags) between blocks and the
    bytes of an incomplete trailing word, so a block boundary may fall anywhere, even inside a
    word. Decodes with the C kernel when it is built, else with its numpy twin (same state array).
    """

    def __init__(self, fmt: str, geometry: tuple[int, int] | None, lenient: bool) -> None:
        from edgesnn.events import _kinds as K
        from edgesnn.events import _npdecoders
        from edgesnn.events._wordstream import NATIVE

        kinds = {"evt2": K.EVT2, "evt3": K.EVT3}
        if fmt not in kinds:
            raise OptionError(f"must be 'evt2' or 'evt3', got {fmt!r}", path="format")
        self._K, self._decode_np = K, _npdecoders.decode
        self._native = NATIVE
        self.kind = kinds[fmt]
        self.word = K.WORD_SIZE[self.kind]
        self.width, self.height = geometry if geometry is not None else (0, 0)
        self.flags = K.P_LENIENT if lenient else 0
        self.state = np.zeros(K.N_STATE, dtype=np.int64)
        self.counts = np.zeros(K.N_CODES, dtype=np.int64)
        self.carry = b""
        self.offset = 0  # stream byte offset of self.carry[0]

    def _decode(self, words: bytes) -> tuple[np.ndarray, int, int]:
        """Decode whole words; returns (events, words consumed, error code or 0)."""
        if not self._native:
            events, consumed, err, _ = self._decode_np(
                self.kind, words, self.state, self.counts, self.width, self.height, self.flags, 1 << 62
            )
            return np.asarray(events, dtype=EVENT_DTYPE), consumed, err
        from edgesnn.events import _evtkernels

        out = np.empty(len(words) // self.word * self._K.MAX_EVENTS_PER_WORD[self.kind], EVENT_DTYPE)
        n, consumed, err, _ = _evtkernels.decode(
            self.kind, words, 0, out, 0, self.state, self.counts, self.width, self.height, self.flags, (1 << 63) - 1
        )
        return out[:n], consumed, err

    def feed(self, data: bytes) -> tuple[np.ndarray, tuple[int, str] | None]:
        """Decode what ``data`` completes; returns (events, None) or (events so far, (byte offset, error text))."""
        buf = self.carry + data
        usable = len(buf) - len(buf) % self.word
        events, consumed, err = self._decode(buf[:usable])
        failure = None
        if err:
            failure = (self.offset + consumed * self.word, self._K.ERROR_TEXT.get(err, f"error {err}"))
        self.carry = buf[consumed * self.word :] if not err else b""
        self.offset += consumed * self.word
        return events, failure

    def skipped(self) -> dict[str, int]:
        return {name: int(self.counts[code]) for code, name in self._K.ERROR_NAMES.items() if self.counts[code]}


class SerialSource:
    """EVT 2.0 or EVT 3.0 words from a serial / USB-CDC port, decoded as they arrive.

    ``port`` is a device path or pyserial URL (``/dev/ttyACM0``, ``loop://``); ``link`` instead
    takes an already open pyserial-like object (anything with ``read(n)`` and ``close()``).
    Reads up to ``read_size`` bytes at a time (waiting at most ``timeout`` s for each) and
    yields the events each read completes; a word split across reads is carried over.

    Ends: cleanly (iteration stops) after ``idle_timeout_s`` seconds without a byte, if set;
    on a lost link (the device disappears or the other end hangs up) it raises
    :class:`~edgesnn.errors.EventStreamError` naming the port, the bytes received and any
    incomplete word left, after every complete word's events were yielded. An invalid word
    raises it too, naming the byte offset, unless ``lenient`` (then it is counted in
    ``skipped``). A link joined mid-stream starts before any time-high word: use
    ``lenient=True`` to drop those first events.
    """

    def __init__(
        self,
        port: str | None = None,
        *,
        baudrate: int = 115_200,
        format: str = "evt3",  # noqa: A002 - the EVT encoding on the wire
        geometry: tuple[int, int] | None = None,
        timeout: float = 0.05,
        idle_timeout_s: float | None = None,
        read_size: int = 1 << 14,
        lenient: bool = False,
        link=None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (port is None) == (link is None):
            raise OptionError("give exactly one of port= or link=", path="port")
        self.port = port if port is not None else repr(link)
        self.format = format
        self.geometry = None if geometry is None else (int(geometry[0]), int(geometry[1]))
        self.idle_timeout_s = idle_timeout_s
        self.read_size = read_size
        self._decoder = _WordDecoder(format, self.geometry, lenient)
        self._clock = clock
        self.bytes_read = 0
        if link is None:
            serial = _import_serial()
            try:
                link = serial.serial_for_url(port, baudrate=baudrate, timeout=timeout)
            except (serial.SerialException, ValueError, OSError) as exc:
                raise EventStreamError(f"cannot open serial port: {exc}", path=str(port)) from exc
        self.link = link

    @property
    def skipped(self) -> dict[str, int]:
        """Counts of invalid words dropped in lenient mode, by kind."""
        return self._decoder.skipped()

    def _read(self) -> bytes:
        serial = _import_serial()
        try:
            return self.link.read(self.read_size)
        except (serial.SerialException, OSError) as exc:
            partial = len(self._decoder.carry)
            tail = f", leaving {partial} byte(s) of an incomplete word" if partial else ""
            raise EventStreamError(
                f"link lost after {self.bytes_read} bytes{tail}: {exc}", path=str(self.port)
            ) from exc

    def __iter__(self) -> Iterator[np.ndarray]:
        last_data = self._clock()
        while True:
            data = self._read()
            if not data:
                if self.idle_timeout_s is not None and self._clock() - last_data >= self.idle_timeout_s:
                    return
                continue
            last_data = self._clock()
            self.bytes_read += len(data)
            events, failure = self._decoder.feed(data)
            if len(events):
                yield events
            if failure is not None:
                offset, text = failure
                raise EventStreamError(f"byte {offset} of the stream: {text}", path=str(self.port))

    def close(self) -> None:
        """Close the link."""
        self.link.close()

    def __enter__(self) -> SerialSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _import_serial():
    try:
        import serial
    except ImportError as exc:
        raise MissingDependencyError("serial event sources need pyserial: pip install 'edgesnn[events]'") from exc
    return serial


# --------------------------------------------------------------------------- simulator


class SimulatorSource:
    """Events an event-camera simulator produces from ``frames``, an iterable of ``(frame, t_us)``.

    ``simulator`` is an :class:`edgesnn.events.simulator.EventSimulator` (or anything with
    ``step(frame, t_us) -> events`` and ``reset()``); frames are (H, W) intensities in [0, 1] at
    increasing times. Each non-empty step's events come out as one chunk. ``reset=True``
    resets the simulator before the first frame.
    """

    def __init__(self, simulator, frames: Iterable[tuple[np.ndarray, int]], *, reset: bool = True) -> None:
        for method in ("step", "reset"):
            if not callable(getattr(simulator, method, None)):
                raise OptionError(f"needs a {method}() method, got {type(simulator).__name__}", path="simulator")
        self.simulator, self.frames, self._reset = simulator, frames, reset
        w, h = getattr(simulator, "width", None), getattr(simulator, "height", None)
        self.geometry = (int(w), int(h)) if w is not None and h is not None else None

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._reset:
            self.simulator.reset()
        last_t = None
        for k, (frame, t_us) in enumerate(self.frames):
            if last_t is not None and t_us <= last_t:
                raise EventStreamError(
                    f"frame {k} at t={t_us} µs is not after the previous frame's t={last_t}", path="frames"
                )
            last_t = t_us
            events = self.simulator.step(frame, t_us)
            if events.dtype != EVENT_DTYPE:
                raise EventStreamError(
                    f"simulator returned dtype {events.dtype}, expected EVENT_DTYPE", path="simulator"
                )
            if len(events):
                yield events

    def close(self) -> None:
        """Nothing to release; present so every source closes alike."""

    def __enter__(self) -> SimulatorSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
