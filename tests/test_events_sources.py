"""File, serial (through a real pty pair and a writer process) and simulator event sources."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from edgesnn.errors import EventStreamError, OptionError
from edgesnn.events._dtype import EVENT_DTYPE, empty_events, make_events
from edgesnn.events.arrays import open_array_file, write_npz
from edgesnn.events.sources import FileSource, SerialSource, SimulatorSource

pytest.importorskip("serial", reason="pyserial is not installed (edgesnn[events])")


def random_stream(rng, n, span=200_000, t0=1_000, w=320, h=240):
    t = t0 + np.sort(rng.integers(0, span, n))
    return make_events(rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n), t)


# --------------------------------------------------------------------------- FileSource


def test_file_source_replays_every_event_as_fast_as_possible(tmp_path):
    ev = random_stream(np.random.default_rng(0), 10_000)
    write_npz(tmp_path / "rec.npz", ev, geometry=(320, 240))
    with FileSource(tmp_path / "rec.npz", chunk_events=1_000) as src:
        chunks = list(src)
        assert src.geometry == (320, 240)
    assert max(len(c) for c in chunks) == 1_000
    np.testing.assert_array_equal(np.concatenate(chunks), ev)


class FakeClock:
    """A monotonic clock that only moves when the source sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("speed", [1.0, 4.0, 0.5])
def test_realtime_pacing_releases_each_slice_when_its_last_event_is_due(tmp_path, speed):
    ev = random_stream(np.random.default_rng(1), 5_000, span=2_000_000)
    write_npz(tmp_path / "rec.npz", ev)
    clock = FakeClock()
    reader = open_array_file(tmp_path / "rec.npz", chunk_events=700)
    src = FileSource(reader, realtime=True, speed=speed, slice_us=50_000, clock=clock, sleep=clock.sleep)
    t_first = int(ev["t"][0])
    got = []
    for part in src:
        elapsed = clock.now - 100.0
        due = (int(part["t"][-1]) - t_first) / 1e6 / speed
        assert elapsed == pytest.approx(due, abs=1e-9)
        assert int(part["t"][-1]) - int(part["t"][0]) < 50_000  # never more than one slice of recording
        got.append(part)
    np.testing.assert_array_equal(np.concatenate(got), ev)
    assert clock.now - 100.0 == pytest.approx((int(ev["t"][-1]) - t_first) / 1e6 / speed)


def test_realtime_pacing_on_the_wall_clock(tmp_path):
    ev = random_stream(np.random.default_rng(2), 2_000, span=300_000)
    write_npz(tmp_path / "rec.npz", ev)
    start = time.monotonic()
    n = sum(len(c) for c in FileSource(tmp_path / "rec.npz", realtime=True, speed=2.0))
    elapsed = time.monotonic() - start
    duration = (int(ev["t"][-1]) - int(ev["t"][0])) / 1e6 / 2.0
    assert n == len(ev)
    assert duration <= elapsed < duration + 0.5


def test_file_source_refuses_bad_speed(tmp_path):
    write_npz(tmp_path / "rec.npz", empty_events())
    with pytest.raises(OptionError, match="speed"):
        FileSource(tmp_path / "rec.npz", speed=0)


# --------------------------------------------------------------------------- serial through a pty

WRITER = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    fd, path, seed, hold = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    data = open(path, "rb").read()
    rng = np.random.default_rng(seed)
    pos = 0
    while pos < len(data):
        k = int(rng.integers(1, 3000))  # pieces of any size: words split across writes
        pos += os.write(fd, data[pos:pos + k])
        if rng.random() < 0.1:
            time.sleep(0.002)
    time.sleep(hold)  # let the reader drain the pty before hanging up
    os.close(fd)
    """
)


def evt2_words(events: np.ndarray) -> bytes:
    """Hand-built EVT 2.0 stream: a TIME_HIGH word whenever t >> 6 changes, then one CD word per event."""
    words = []
    high = None
    for e in events:
        t = int(e["t"])
        if t >> 6 != high:
            high = t >> 6
            words.append((0x8 << 28) | (high & 0x0FFFFFFF))
        words.append((int(e["p"]) << 28) | ((t & 0x3F) << 22) | (int(e["x"]) << 11) | int(e["y"]))
    return np.asarray(words, dtype="<u4").tobytes()


def faery_evt3(tmp_path, events: np.ndarray) -> tuple[bytes, np.ndarray]:
    """EVT 3.0 payload written by faery, and faery's own decoding of it."""
    faery = pytest.importorskip("faery", reason="faery is not installed (dev dependency for cross-checks)")
    arr = np.zeros(len(events), dtype=[("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("on", "?")])
    arr["t"], arr["x"], arr["y"], arr["on"] = events["t"], events["x"], events["y"], events["p"]
    path = tmp_path / "faery.raw"
    with faery.evt.Encoder(str(path), "evt3", False, (320, 240), True) as enc:
        enc.write({"events": arr})
    decoded = []
    with faery.evt.Decoder(str(path), None, None) as dec:
        decoded = [packet["events"] for packet in dec if "events" in packet]
    ref = np.concatenate(decoded)
    data = path.read_bytes()
    body = data.index(b"\n", data.index(b"% geometry")) + 1
    return data[body:], make_events(ref["x"], ref["y"], ref["on"], ref["t"])


class PtyWriter:
    """A pty pair: SerialSource opens the slave by name, a child process writes into the master."""

    def __init__(self, tmp_path, payload: bytes, *, seed: int = 0, hold: float = 0.3) -> None:
        self.master, self.slave = os.openpty()
        self.name = os.ttyname(self.slave)
        self.payload_path = tmp_path / "payload.bin"
        self.payload_path.write_bytes(payload)
        self.seed, self.hold = seed, hold
        self.proc = None

    def start(self) -> None:
        """Start writing; call after SerialSource has opened (and set raw mode on) the slave."""
        os.close(self.slave)  # the source holds its own descriptor
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(self.master), str(self.payload_path), str(self.seed), str(self.hold)],
            pass_fds=(self.master,),
        )
        os.close(self.master)  # only the writer holds the master now: its exit is the hang-up

    def wait(self) -> None:
        assert self.proc.wait(timeout=30) == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_serial_evt3_from_a_writer_process_matches_faery_then_reports_the_hang_up(tmp_path, seed):
    ev = random_stream(np.random.default_rng(seed), 20_000, span=30_000_000, t0=5_000_000)
    payload, reference = faery_evt3(tmp_path, ev)
    pty = PtyWriter(tmp_path, payload + payload[:1], seed=seed)  # ends inside a word
    src = SerialSource(pty.name, format="evt3", geometry=(320, 240), timeout=0.05)
    pty.start()
    got = []
    with pytest.raises(EventStreamError, match=r"link lost after \d+ bytes, leaving 1 byte\(s\) of an incomplete word"):
        for chunk in src:
            got.append(chunk)
    src.close()
    pty.wait()
    assert src.bytes_read == len(payload) + 1
    got = np.concatenate(got)
    np.testing.assert_array_equal(got, ev)  # exactly what faery was given to write
    # faery's own decoder agrees until the 24-bit EVT3 time base first wraps (16.78 s); past it,
    # faery 0.7.1 clamps some streams' timestamps at 2**24 - 1, so it is not the oracle there.
    early = ev["t"] < 1 << 24
    np.testing.assert_array_equal(got[early], reference[early])


def test_serial_evt2_hand_built_words_end_cleanly_when_the_link_goes_quiet(tmp_path):
    ev = random_stream(np.random.default_rng(5), 5_000, span=10_000_000)
    pty = PtyWriter(tmp_path, evt2_words(ev), hold=8.0)  # stays connected, silent, long after the data
    # the idle limit leaves a loaded machine time to start the writer; the hold outlasts it
    src = SerialSource(pty.name, format="evt2", geometry=(320, 240), timeout=0.02, idle_timeout_s=2.0)
    pty.start()
    try:
        got = np.concatenate(list(src))
    finally:
        src.close()
        pty.proc.kill()
        pty.proc.wait()
    np.testing.assert_array_equal(got, ev)


class Link:
    """A pyserial-like object serving fixed reads."""

    def __init__(self, blocks):
        self.blocks = list(blocks)

    def read(self, n):
        if not self.blocks:
            import serial

            raise serial.SerialException("device disconnected")
        return self.blocks.pop(0)

    def close(self):
        pass


def test_joining_a_stream_mid_way_needs_lenient_mode():
    ev = random_stream(np.random.default_rng(6), 200, span=100_000, w=64, h=64)
    words = evt2_words(ev)
    cut = words[4:]  # joins after the first TIME_HIGH word: CD words with no time base yet
    with pytest.raises(EventStreamError, match="byte 0 of the stream: event before any time-high word"):
        list(SerialSource(link=Link([cut]), format="evt2"))
    src = SerialSource(link=Link([cut, b""]), format="evt2", lenient=True, idle_timeout_s=0.0)
    got = np.concatenate(list(src))
    types = np.frombuffer(cut, dtype="<u4") >> 28
    orphans = int(np.argmax(types == 0x8))  # CD words before the next TIME_HIGH
    assert orphans > 0 and src.skipped == {"event_before_time_high": orphans}
    np.testing.assert_array_equal(got, ev[orphans:])


def test_serial_source_option_errors():
    with pytest.raises(OptionError, match="'evt2' or 'evt3'"):
        SerialSource(link=Link([]), format="dat")
    with pytest.raises(OptionError, match="exactly one"):
        SerialSource()
    with pytest.raises(EventStreamError, match="cannot open serial port"):
        SerialSource("/dev/does-not-exist-edgesnn")


# --------------------------------------------------------------------------- simulator


class RampSimulator:
    """Stand-in with EventSimulator's interface: one ON event per pixel whose intensity rose."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.reset()

    def reset(self) -> None:
        self.previous = None
        self.resets = getattr(self, "resets", 0) + 1

    def step(self, frame: np.ndarray, t_us: int) -> np.ndarray:
        if self.previous is None:
            self.previous = frame
            return empty_events()
        ys, xs = np.nonzero(frame > self.previous)
        self.previous = frame
        return make_events(xs, ys, np.ones(len(xs)), np.full(len(xs), t_us))


def test_simulator_source_yields_each_steps_events():
    sim = RampSimulator(4, 3)
    frames = [(np.full((3, 4), v / 10), 1_000 * (k + 1)) for k, v in enumerate([1, 1, 2, 2, 5])]
    src = SimulatorSource(sim, frames)
    chunks = list(src)
    assert src.geometry == (4, 3) and sim.resets == 2
    assert [int(c["t"][0]) for c in chunks] == [3_000, 5_000]
    assert all(len(c) == 12 and c.dtype == EVENT_DTYPE for c in chunks)


def test_simulator_source_refuses_time_going_backwards_and_non_simulators():
    sim = RampSimulator(2, 2)
    with pytest.raises(EventStreamError, match="frame 1 at t=5"):
        list(SimulatorSource(sim, [(np.zeros((2, 2)), 10), (np.ones((2, 2)), 5)]))
    with pytest.raises(OptionError, match="step"):
        SimulatorSource(object(), [])


def test_simulator_source_with_the_real_simulator():
    simulator = pytest.importorskip("edgesnn.events.simulator", reason="edgesnn.events.simulator not written yet")
    sim = simulator.EventSimulator(8, 6, simulator.SimulatorConfig(), rng=np.random.default_rng(0))
    xs = np.arange(8)[None, :]
    frames = [(np.clip(0.2 + 0.1 * np.sin(xs / 2 + k / 3) * np.ones((6, 1)), 0, 1), 1_000 * k) for k in range(1, 30)]
    chunks = list(SimulatorSource(sim, frames))
    assert chunks and all(c.dtype == EVENT_DTYPE for c in chunks)
    t = np.concatenate(chunks)["t"]
    assert np.all(np.diff(t) >= 0) and t[0] > 1_000 and t[-1] <= 29_000
