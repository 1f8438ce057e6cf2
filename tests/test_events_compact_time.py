"""Writers that keep time compact: epoch-stamped recordings put their time offset in the header.

A DAVIS346 AEDAT4 recording stamps events in microseconds since the Unix epoch (~1.589e15 µs).
The EVT 2.0, EVT 3.0 and DAT writers store the first event's time as ``% t0`` (faery's key) and
count the payload from there, instead of replaying time-high words from t = 0 (which once took
92 s and 380 MB for 78,830 events). edgesnn's readers add the offset back, so the round trip is
exact; files without the key read as they always did.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from edgesnn.cli import main
from edgesnn.errors import EventFileError, OptionError
from edgesnn.events import _wordstream
from edgesnn.events._dtype import make_events
from edgesnn.events._header import TIME_OFFSET_KEY, read_header
from edgesnn.events.dat import open_dat, write_dat
from edgesnn.events.evt2 import encode_evt2, open_evt2, write_evt2
from edgesnn.events.evt3 import encode_evt3, open_evt3, write_evt3
from edgesnn.events.evt21 import open_evt21
from edgesnn.events.io import open_events, read_events

PATHS = [pytest.param(True, id="native"), pytest.param(False, id="numpy")]
OPEN = {"evt2": open_evt2, "evt3": open_evt3, "dat": open_dat}
WRITE = {"evt2": write_evt2, "evt3": write_evt3, "dat": write_dat}

EPOCH_T0 = 1_589_000_000_000_000  # 2020-05-09, in µs since the Unix epoch
DAVIS346 = (346, 260)


def epoch_events(n=80_000, span_us=4_000_000, seed=0):
    """``n`` time-sorted DAVIS346 events over ``span_us`` starting at ``EPOCH_T0``."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(EPOCH_T0, EPOCH_T0 + span_us, n))
    return make_events(rng.integers(0, DAVIS346[0], n), rng.integers(0, DAVIS346[1], n), rng.integers(0, 2, n), t)


def faery_write_aedat4(path, ev):
    """Write ``ev`` as an AEDAT4 file with faery (as iniVation DV would), with faery's default compression."""
    faery = pytest.importorskip("faery", reason="faery is not installed (dev dependency for cross-checks)")
    arr = np.zeros(len(ev), dtype=faery.events_stream.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"]
    faery.events_stream_from_array(arr, DAVIS346).to_file(str(path))


@pytest.fixture(scope="module")
def epoch_aedat4(tmp_path_factory):
    """An epoch-stamped AEDAT4 recording and the events in it."""
    ev = epoch_events()
    path = tmp_path_factory.mktemp("epoch") / "rec.aedat4"
    faery_write_aedat4(path, ev)
    np.testing.assert_array_equal(read_events(path), ev)
    return path, ev


CONVERSIONS = [
    pytest.param("out.raw", [], "evt3", id="evt3"),
    pytest.param("out.raw", ["--format", "evt2"], "evt2", id="evt2"),
    pytest.param("out.dat", [], "dat", id="dat"),
]


@pytest.mark.parametrize("name,extra,fmt", CONVERSIONS)
def test_converting_an_epoch_stamped_aedat4_keeps_the_file_small_and_the_times_exact(
    tmp_path, epoch_aedat4, name, extra, fmt
):
    src, ev = epoch_aedat4
    out = tmp_path / name
    # A fraction of a second (it was 92 s for EVT3 when time highs were replayed from zero).
    assert main(["events", "convert", str(src), str(out), "--quiet", *extra]) == 0
    # (a) about as small as the compressed AEDAT4 input (the old EVT3 file was ~500x larger)
    assert os.path.getsize(out) <= 2 * os.path.getsize(src)
    # The header carries the first event's time; the payload counts from it.
    assert read_header(out).get(TIME_OFFSET_KEY) == str(int(ev["t"][0]))
    # (b) exact round trip through edgesnn's readers, C kernel and numpy fallback alike
    for native in (True, False):
        with OPEN[fmt](out, native=native) as r:
            assert r.format == fmt and r.metadata["time_offset_us"] == int(ev["t"][0])
            np.testing.assert_array_equal(r.read_all(), ev)
    with open_events(out) as r:
        assert r.format == fmt
        np.testing.assert_array_equal(np.concatenate(list(r.chunks())), ev)


@pytest.mark.parametrize("native", PATHS)
@pytest.mark.parametrize("fmt", ["evt2", "evt3", "dat"])
def test_seeking_an_offset_file_uses_absolute_times(tmp_path, monkeypatch, fmt, native):
    monkeypatch.setattr(_wordstream, "BLOCK_BYTES", 4096)  # many blocks: seeks restore mid-file checkpoints
    ev = epoch_events(n=20_000, seed=1)
    path = tmp_path / f"a.{fmt}"
    WRITE[fmt](path, ev, geometry=DAVIS346)
    r = OPEN[fmt](path, native=native, chunk_events=3_000)
    r.read_all()  # checkpoints at every block
    for target in [int(ev["t"][12_345]), int(ev["t"][0]), 0, int(ev["t"][-1]), int(ev["t"][-1]) + 1, EPOCH_T0 + 7]:
        r.seek_time(target)
        np.testing.assert_array_equal(r.read_all(), ev[ev["t"] >= target], err_msg=f"seek to {target}")


@pytest.mark.parametrize("native", PATHS)
@pytest.mark.parametrize(
    "fmt,span_us",
    [("evt2", 3 << 34), ("evt3", 5 << 24), ("dat", 5 << 30)],
    ids=["evt2-3-wraps-of-2^34", "evt3-5-wraps-of-2^24", "dat-past-2^32"],
)
def test_spans_past_the_formats_time_range_after_the_offset_wrap_exactly(tmp_path, fmt, span_us, native):
    # Events every span/64 (under 2^31 µs, so DAT can count its wraps), then a dense burst at the end.
    t = EPOCH_T0 + np.concatenate([np.arange(64) * (span_us // 64), span_us + np.arange(500)])
    n = len(t)
    ev = make_events(np.arange(n) % 300, (np.arange(n) * 7) % 200, np.arange(n) % 2, t)
    path = tmp_path / f"long.{fmt}"
    WRITE[fmt](path, ev, geometry=DAVIS346)
    assert os.path.getsize(path) < 16 * n + 400  # no filler words from t = 0
    np.testing.assert_array_equal(OPEN[fmt](path, native=native).read_all(), ev)


def test_dat_refuses_a_span_it_cannot_count_and_names_the_file(tmp_path):
    # After the offset the events run past 2^32 µs with a 2^31 µs silence, which reads as a wrap.
    t = EPOCH_T0 + np.array([0, 10, 10 + (1 << 31), (1 << 32) + 99])
    ev = make_events([1, 2, 3, 4], [1, 1, 1, 1], [1, 0, 1, 0], t)
    with pytest.raises(OptionError, match=r"gap\.dat: .*span 4294967395 µs .*2\^31 µs or more") as e:
        write_dat(tmp_path / "gap.dat", ev, geometry=(8, 8))
    assert "before event 2" in str(e.value)
    assert not (tmp_path / "gap.dat").exists()
    # EVT 2.0 and 3.0 step their time counters, so the same events write and read back exactly.
    for fmt in ("evt2", "evt3"):
        WRITE[fmt](tmp_path / f"gap.{fmt}", ev, geometry=(8, 8))
        np.testing.assert_array_equal(OPEN[fmt](tmp_path / f"gap.{fmt}").read_all(), ev)


@pytest.mark.parametrize("fmt,reach_us", [("evt2", 1 << 33), ("evt3", 1 << 23), ("dat", 1 << 32)])
def test_files_that_start_within_reach_are_written_as_before_without_the_key(tmp_path, fmt, reach_us):
    t = np.array([reach_us - 1, reach_us + 5, reach_us + 70_000])
    ev = make_events([1, 2, 3], [4, 4, 5], [1, 0, 1], t)
    path = tmp_path / f"near.{fmt}"
    WRITE[fmt](path, ev, geometry=(8, 8))
    assert TIME_OFFSET_KEY.encode() not in path.read_bytes()
    np.testing.assert_array_equal(OPEN[fmt](path).read_all(), ev)
    if fmt != "dat":
        x, y, p, tt = (ev[f].astype(np.int64) for f in ("x", "y", "p", "t"))
        words = (encode_evt2 if fmt == "evt2" else encode_evt3)(x, y, p, tt)
        assert path.read_bytes().endswith(words.tobytes())  # the payload counts from t = 0
    # One microsecond later, the first event is out of reach: the key appears, the times stay.
    WRITE[fmt](path, make_events(ev["x"], ev["y"], ev["p"], t + 1), geometry=(8, 8))
    assert read_header(path).get(TIME_OFFSET_KEY) == str(reach_us)
    np.testing.assert_array_equal(OPEN[fmt](path).read_all()["t"], t + 1)


@pytest.mark.parametrize("native", PATHS)
def test_files_from_other_writers_without_the_key_decode_as_before(tmp_path, native):
    # EVT 3.0 words by hand, as a camera writes them: time high 2734, row 3, two events.
    words = [0x8000 | 2734, 0x0003, 0x6005, 0x2801, 0x6000 | 900, 0x2002]
    path = tmp_path / "cam.raw"
    path.write_bytes(b"% evt 3.0\n% geometry 8x8\n% end\n" + np.asarray(words, "<u2").tobytes())
    r = open_evt3(path, native=native)
    assert r.read_all()["t"].tolist() == [2734 * 4096 + 5, 2734 * 4096 + 900]
    assert r.metadata["time_offset_us"] == 0
    # The same payload with the key reads shifted by exactly the offset.
    path.write_bytes(b"% evt 3.0\n% geometry 8x8\n% t0 1000\n% end\n" + np.asarray(words, "<u2").tobytes())
    assert open_evt3(path, native=native).read_all()["t"].tolist() == [2734 * 4096 + 1005, 2734 * 4096 + 1900]
    # time_shift=True gives OpenEB's times, which ignore the key (OpenEB does not know it).
    assert open_evt3(path, time_shift=True, native=native).read_all()["t"].tolist() == [4096 + 5, 4096 + 900]


@pytest.mark.parametrize("native", PATHS)
def test_evt21_reader_adds_the_offset_too(tmp_path, native):
    th = (0x8 << 60) | (10 << 32)  # time high 10: t = 640 + ts6
    cd = (1 << 60) | (3 << 54) | (32 << 43) | (7 << 32) | 0b101  # (32,7),(34,7) ON at 643
    payload = np.array([th, cd], np.uint64).astype("<u8").tobytes()
    head = f"% evt 2.1\n% format EVT21;height=64;width=64\n% {TIME_OFFSET_KEY} {EPOCH_T0}\n% end\n"
    (tmp_path / "e21.raw").write_bytes(head.encode() + payload)
    got = open_evt21(tmp_path / "e21.raw", native=native).read_all()
    np.testing.assert_array_equal(got, make_events([32, 34], [7, 7], [1, 1], [EPOCH_T0 + 643] * 2))


@pytest.mark.parametrize("value", ["-5", "1.5e15", "soon", str((1 << 62) + 1)])
def test_a_bad_offset_value_is_an_error_naming_the_key_and_the_file(tmp_path, value):
    path = tmp_path / "bad.raw"
    path.write_bytes(f"% evt 3.0\n% {TIME_OFFSET_KEY} {value}\n% end\n".encode() + bytes(4))
    with pytest.raises(EventFileError, match=r"bad\.raw: header key 't0': expected a whole number"):
        open_evt3(path)


@pytest.mark.parametrize("writer", [write_evt2, write_evt3, write_dat])
def test_faery_reads_absolute_times_from_these_files_and_edgesnn_from_faerys(tmp_path, writer):
    # The key is faery's: faery writes it by default and adds it back when reading, as edgesnn does.
    faery = pytest.importorskip("faery", reason="faery is not installed (dev dependency for cross-checks)")
    ev = epoch_events(n=5_000, seed=2)
    path = tmp_path / ("o.dat" if writer is write_dat else "o.raw")
    writer(path, ev, geometry=DAVIS346)
    back = np.concatenate(list(faery.events_stream_from_file(str(path))))
    np.testing.assert_array_equal(back["t"].astype(np.int64), ev["t"])
    np.testing.assert_array_equal(back["x"], ev["x"])
    arr = np.zeros(len(ev), dtype=faery.events_stream.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"] == 1
    faery.events_stream_from_array(arr, DAVIS346).to_file(str(tmp_path / "f.raw"), version="evt3")
    np.testing.assert_array_equal(read_events(tmp_path / "f.raw")["t"].astype(np.int64), ev["t"])


@pytest.mark.parametrize("writer", [write_evt2, write_evt3, write_dat])
def test_the_writers_docs_name_the_header_key(writer):
    assert f"% {TIME_OFFSET_KEY}" in writer.__doc__
    assert f"% {TIME_OFFSET_KEY} N" in __import__(writer.__module__, fromlist=["_"]).__doc__
