"""Fuzzing every event decoder with hypothesis: no crash, no hang, bounded output, C == numpy.

Per Prophesee decoder (EVT 2.0, EVT 2.1, EVT 3.0, DAT) 10,000 inputs run in all: 4,800 examples
of the decode step in memory, each run strict and lenient (9,600 inputs; C kernel and numpy
reference on the same bytes, state and options, compared field by field), and 400 whole files
through ``open_events``, strict and lenient. AEDAT4 (uncompressed, LZ4 and Zstd recordings
written by faery) gets 5,000 structure-aware mutations, each opened strict and lenient (10,000
inputs): IOHeader and XML bytes, ``sizeX``/``sizeY``, packet headers (sizes of 0-16 bytes, 2-4 GB,
off by a few, the stream id), flatbuffer and compressed bytes, truncation, inserted and deleted
bytes. CSV and .npy files get 5,000 each, strict and lenient.

Every output, strict or lenient, keeps the promise of the readers: timestamps non-decreasing,
coordinates inside the stated geometry, polarity 0 or 1; strict mode raises nothing but
EventFileError or LimitError, and never a panic or an abort (a process abort would end the run).

``EDGESNN_FUZZ_EXAMPLES`` scales every count (default 10000 inputs per target): for a long run,
``EDGESNN_FUZZ_EXAMPLES=200000 pytest tests/test_events_fuzz.py``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgesnn.errors import EventFileError
from edgesnn.events import _npdecoders, _wordstream
from edgesnn.events._dtype import EVENT_DTYPE
from edgesnn.events._kinds import (
    DAT,
    EVT2,
    EVT3,
    EVT21,
    MAX_EVENTS_PER_WORD,
    N_CODES,
    N_STATE,
    P_DAT_V1,
    P_EXTENT,
    P_LENIENT,
    WORD_SIZE,
)
from edgesnn.events.io import open_events

KINDS = [pytest.param(k, id=n) for k, n in ((EVT2, "evt2"), (EVT21, "evt21"), (EVT3, "evt3"), (DAT, "dat"))]
#: Inputs per target; each example below is two inputs (strict and lenient).
INPUTS = int(os.environ.get("EDGESNN_FUZZ_EXAMPLES", "10000"))


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=max(1, examples),
        deadline=timedelta(seconds=2),
        database=None,
        suppress_health_check=list(HealthCheck),
    )


IN_MEMORY = fuzz_settings(INPUTS * 48 // 100)
AS_FILES = fuzz_settings(INPUTS * 4 // 100)
NO_TARGET = (1 << 63) - 1


_TYPES = {
    EVT2: np.array([0x0, 0x1, 0x8, 0xA, 0xE, 0xF], np.uint8),
    EVT21: np.array([0x0, 0x1, 0x8, 0xA, 0xE, 0xF], np.uint8),
    EVT3: np.array([0x0, 0x2, 0x3, 0x4, 0x5, 0x6, 0x8, 0xE, 0xF, 0x7, 0xA], np.uint8),
}


def _typed(kind, raw: bytes, seed: int) -> bytes:
    """Give most words of ``raw`` a valid type nibble, so decoding gets past the first word."""
    ws = WORD_SIZE[kind]
    buf = np.frombuffer(raw, np.uint8)[: len(raw) // ws * ws].copy().reshape(-1, ws)
    if kind == DAT or not len(buf):
        if kind == DAT and len(buf) and seed & 1:  # mostly rising timestamps
            t = np.cumsum(buf[:, 0].astype(np.uint32) << (seed >> 1) % 16).astype("<u4")
            buf[:, :4] = t.view(np.uint8).reshape(-1, 4)
        return buf.tobytes()
    rng = np.random.default_rng(seed)
    valid = rng.random(len(buf)) < 0.85
    types = rng.choice(_TYPES[kind], len(buf))
    top = ws - 1  # the type nibble sits in the word's last byte (EVT 2.1: of the high half)
    buf[valid, top] = (buf[valid, top] & 0x0F) | (types[valid] << 4)
    return buf.tobytes()


def words(kind):
    """Word streams mixing raw bytes with words of valid types."""
    return st.builds(_typed, st.just(kind), st.binary(max_size=48 * WORD_SIZE[kind]), st.integers(0, 1 << 30))


def options(kind, seed: int):
    """Flags, geometry, seek target and starting state (values a decoder can reach), from one seed.

    One drawn integer instead of a dozen keeps hypothesis's own cost per example low.
    """
    rng = np.random.default_rng(seed)
    flags = int(rng.integers(0, 16)) & (~0 if kind == DAT else ~P_DAT_V1)
    flags |= P_EXTENT if rng.random() < 0.5 else 0
    geometry = (0, 0) if rng.random() < 0.4 else (int(rng.integers(1, 2049)), int(rng.integers(1, 2049)))
    target = NO_TARGET if rng.random() < 0.6 else int(rng.integers(0, 1 << 26))
    state = None
    if rng.random() < 0.3:  # th, tl, loop, y, x base, polarity, flags, shift, previous DAT time, last EVT2 time
        highs = (4096, 4096, 4, 2048, 4096, 2, 64, 1, 1 << 32, 1 << 20)
        state = [int(rng.integers(0, h)) for h in highs]
    return flags, geometry, target, state


def check_promise(events: np.ndarray, geometry) -> None:
    """Sorted t, coordinates inside a stated geometry ((0, 0): none), polarity 0 or 1."""
    assert (np.diff(events["t"]) >= 0).all(), "timestamps go backwards"
    if len(events) and geometry[0]:
        assert int(events["x"].max()) < geometry[0] and int(events["y"].max()) < geometry[1]
    assert ((events["p"] == 0) | (events["p"] == 1)).all()


def run_both(kind, data, flags, geometry, target, state0):
    st_np = np.zeros(N_STATE, np.int64)
    if state0 is not None:
        st_np[: len(state0)] = state0
    st_c, c_np, c_c = st_np.copy(), np.zeros(N_CODES, np.int64), np.zeros(N_CODES, np.int64)
    events, used, err, stopped = _npdecoders.decode(kind, data, st_np, c_np, *geometry, flags, target)
    check_promise(events, geometry)
    n_words = len(data) // WORD_SIZE[kind]
    assert len(events) <= n_words * MAX_EVENTS_PER_WORD[kind]
    assert 0 <= used <= n_words
    assert err == 0 or not flags & P_LENIENT
    if _wordstream.NATIVE:
        out = np.empty(n_words * MAX_EVENTS_PER_WORD[kind] + 64, EVENT_DTYPE)
        n, used_c, err_c, stopped_c = _wordstream._C.decode(kind, data, 0, out, 0, st_c, c_c, *geometry, flags, target)
        np.testing.assert_array_equal(out[:n], events)
        assert (used_c, err_c, stopped_c) == (used, err, stopped)
        np.testing.assert_array_equal(st_c, st_np)
        np.testing.assert_array_equal(c_c, c_np)


@pytest.mark.parametrize("kind", KINDS)
def test_decode_step_never_crashes_and_c_matches_numpy(kind):
    @IN_MEMORY
    @given(data=words(kind), seed=st.integers(0, (1 << 32) - 1))
    def check(data, seed):
        flags, geometry, target, state = options(kind, seed)
        # Each example is two decoder inputs: the same bytes strict and lenient.
        run_both(kind, data, flags & ~P_LENIENT, geometry, target, state)
        run_both(kind, data, flags | P_LENIENT, geometry, target, state)

    check()


HEADERS = {
    EVT2: b"% evt 2.0\n% format EVT2;width=640;height=480\n% end\n",
    EVT21: b"% evt 2.1\n% format EVT21;width=320;height=320\n% end\n",
    EVT3: b"% evt 3.0\n% format EVT3;width=1280;height=720\n% end\n",
    DAT: b"% Version 2\n% Width 1280\n% Height 720\n\x0c\x08",
}


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_files_raise_event_file_error_or_are_skipped(kind, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")

    @AS_FILES
    @given(data=words(kind), tail=st.binary(max_size=WORD_SIZE[kind] - 1), chunk=st.integers(1, 40))
    def check(data, tail, chunk):
        path = folder / ("f.dat" if kind == DAT else "f.raw")
        path.write_bytes(HEADERS[kind] + data + tail)
        bound = len(data) // WORD_SIZE[kind] * MAX_EVENTS_PER_WORD[kind]
        try:
            with open_events(path, chunk_events=chunk) as r:
                strict = r.read_all()
            assert len(strict) <= bound
            check_promise(strict, r.geometry)
        except EventFileError as e:
            assert str(path) in str(e)
        with open_events(path, lenient=True, chunk_events=chunk) as r:
            chunks = list(r.chunks())
        assert all(len(c) <= chunk for c in chunks)
        assert sum(len(c) for c in chunks) <= bound
        assert (len(tail) > 0) == ("truncated_word" in r.skipped)
        if chunks:
            check_promise(np.concatenate(chunks), r.geometry)

    check()


# ---------------------------------------------------------------------------------------------- AEDAT4

AEDAT4_COMPRESSIONS = {"none": None, "lz4": ("lz4", 1), "zstd": ("zstd", 3)}


@pytest.fixture(scope="module")
def aedat4_seeds(tmp_path_factory):
    """Recordings of 9,000 events in three packets, one per compression, and their packet offsets."""
    pytest.importorskip("aedat", reason="aedat is not installed (edgesnn[events])")
    faery = pytest.importorskip("faery", reason="faery writes the AEDAT4 seed recordings")
    from edgesnn.events import _aedat4_container as box

    rng = np.random.default_rng(4)
    n = 9_000
    arr = np.zeros(n, dtype=faery.events_stream.EVENTS_DTYPE)
    arr["t"] = 1_000 + np.sort(rng.integers(0, 2_000_000, n))
    arr["x"], arr["y"], arr["on"] = rng.integers(0, 346, n), rng.integers(0, 260, n), rng.integers(0, 2, n)
    folder = tmp_path_factory.mktemp("aedat4_seeds")
    seeds = {}
    for name, compression in AEDAT4_COMPRESSIONS.items():
        path = folder / f"{name}.aedat4"
        faery.events_stream_from_array(arr, (346, 260)).to_file(str(path), compression=compression)
        fd = os.open(path, os.O_RDONLY)
        try:
            c = box.read_container(fd, os.fstat(fd).st_size, str(path), lenient=False)
            offsets = [p.offset for p in box.walk(fd, c, str(path), lenient=False)]
        finally:
            os.close(fd)
        data = path.read_bytes()
        seeds[name] = (data, offsets, data.index(b"<dv"), c.data_start)
    return seeds


def _poke(d: bytearray, i: int, value: int) -> None:
    if 0 <= i < len(d):
        d[i] = value


def mutate_aedat4(data: bytes, offsets: list[int], xml_at: int, data_start: int, seed: int) -> bytes:
    """One to three structure-aware mutations of an AEDAT4 recording, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    d = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        op = int(rng.integers(0, 9))
        pkt = offsets[int(rng.integers(0, len(offsets)))]
        if op == 0:  # a packet size: tiny, 2-4 GB, off by a few, anything
            sizes = [int(rng.integers(0, 17)), int(rng.integers(1 << 31, 1 << 32)), int(rng.integers(0, 1 << 32))]
            sizes.append(max(0, int.from_bytes(d[pkt + 4 : pkt + 8], "little") + int(rng.integers(-16, 17))))
            d[pkt + 4 : pkt + 8] = (sizes[int(rng.integers(0, 4))] & 0xFFFFFFFF).to_bytes(4, "little")
        elif op == 1:  # a stream id
            d[pkt : pkt + 4] = int(rng.integers(-2, 4)).to_bytes(4, "little", signed=True)
        elif op == 2:  # flatbuffer or compressed-frame bytes at the start of a payload
            for _ in range(int(rng.integers(1, 5))):
                _poke(d, pkt + 8 + int(rng.integers(0, 32)), int(rng.integers(0, 256)))
        elif op == 3:  # bytes anywhere in a payload
            for _ in range(int(rng.integers(1, 9))):
                _poke(d, int(rng.integers(data_start, max(len(d), data_start + 1))), int(rng.integers(0, 256)))
        elif op == 4:  # the XML description
            i = xml_at + int(rng.integers(0, max(1, data_start - xml_at)))
            choices = [ord("<"), ord(">"), ord("/"), ord("0"), ord("x"), 0xFF, 0, int(rng.integers(0, 256))]
            _poke(d, i, int(rng.choice(choices)))
        elif op == 5:  # sizeX / sizeY
            key = b'"sizeX" type="int">' if rng.random() < 0.5 else b'"sizeY" type="int">'
            i = d.find(key)
            if i < 0:
                continue
            i += len(key)
            d[i : i + 3] = [b"000", b"001", b"999", b"65a", b"-10"][int(rng.integers(0, 5))]
        elif op == 6:  # the IOHeader flatbuffer (length, root offset, vtable, fields)
            _poke(d, 14 + int(rng.integers(0, 40)), int(rng.integers(0, 256)))
        elif op == 7:  # truncation
            d = d[: int(rng.integers(0, len(d) + 1))]
        else:  # inserted or deleted bytes
            i = int(rng.integers(data_start, max(data_start + 1, len(d))))
            if rng.random() < 0.5:
                del d[i : i + int(rng.integers(1, 9))]
            else:
                d[i:i] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
        if not d:
            break
    return bytes(d)


@pytest.mark.parametrize("compression", list(AEDAT4_COMPRESSIONS))
def test_aedat4_mutations_raise_edgesnn_errors_or_keep_the_promise(compression, aedat4_seeds, tmp_path_factory):
    from edgesnn.errors import LimitError

    data, offsets, xml_at, data_start = aedat4_seeds[compression]
    folder = tmp_path_factory.mktemp("fuzz_aedat4")
    path = folder / "f.aedat4"

    # A third of the inputs per compression; the three together are 10,000 inputs.
    @fuzz_settings(INPUTS // 6 + 1)
    @given(seed=st.integers(0, (1 << 63) - 1))
    def check(seed):
        path.write_bytes(mutate_aedat4(data, offsets, xml_at, data_start, seed))
        for lenient in (False, True):
            try:
                with open_events(path, lenient=lenient, format="aedat4") as r:
                    got = r.read_all()
            except (EventFileError, LimitError) as e:
                assert str(path) in str(e)
                continue
            assert len(got) <= 9_000 * 2
            check_promise(got, r.geometry)

    check()


# ---------------------------------------------------------------------------------------------- arrays


def _csv_text(rows: list[tuple], seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    lines = ["t,x,y,p"] if seed & 1 else []
    for r in rows:
        fields = [str(v) for v in r]
        if rng.random() < 0.05:
            fields[int(rng.integers(0, 4))] = ["", "nan", "1e400", "x", "-1", "3.5"][int(rng.integers(0, 6))]
        lines.append(",".join(fields))
    return ("\n".join(lines) + "\n").encode()


ROWS = st.lists(
    st.tuples(st.integers(-5, 1 << 40), st.integers(-2, 70_000), st.integers(-2, 70_000), st.integers(-2, 2)),
    max_size=24,
)


def test_csv_and_npy_files_raise_event_file_errors_or_keep_the_promise(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz_arrays")

    @fuzz_settings(INPUTS // 2)
    @given(rows=ROWS, seed=st.integers(0, (1 << 32) - 1), chunk=st.integers(1, 8))
    def check(rows, seed, chunk):
        rows = sorted(rows) if seed & 2 else rows  # mostly ordered, sometimes not
        csv = folder / "f.csv"
        csv.write_bytes(_csv_text(rows, seed))
        npy = folder / "f.npy"
        table = np.array(rows, dtype=np.int64).reshape(-1, 4)
        rec = np.zeros(len(table), [("t", "<i8"), ("x", "<i4"), ("y", "<i4"), ("p", "<i2")])
        for j, name in enumerate(("t", "x", "y", "p")):
            rec[name] = table[:, j]
        np.save(npy, rec)
        for path in (csv, npy):
            for lenient in (False, True):
                try:
                    with open_events(path, lenient=lenient, chunk_events=chunk) as r:
                        got = r.read_all()
                except EventFileError as e:
                    # Lenient drops bad rows; only a first line that is neither data nor a header is refused.
                    assert str(path) in str(e) and (not lenient or "header line" in str(e)), e
                    continue
                check_promise(got, r.geometry or (0, 0))

    check()
