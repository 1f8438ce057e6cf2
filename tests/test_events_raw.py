"""Prophesee RAW (EVT 2.0, 2.1, 3.0): cross-checks with faery, round trips, EVT 2.1 byte orders, seeking, damage."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from edgesnn.errors import EventFileError
from edgesnn.events import _wordstream
from edgesnn.events._dtype import make_events
from edgesnn.events.evt2 import encode_evt2, open_evt2, write_evt2
from edgesnn.events.evt3 import encode_evt3, open_evt3, write_evt3
from edgesnn.events.evt21 import open_evt21
from edgesnn.events.io import open_events, read_events

PATHS = [pytest.param(True, id="native"), pytest.param(False, id="numpy")]
OPEN = {"evt2": open_evt2, "evt3": open_evt3}
WRITE = {"evt2": write_evt2, "evt3": write_evt3}


def random_events(rng, n, *, width=640, height=480, span_us=3_000_000, t0=0):
    """Time-sorted events; a third share (t, y, p) runs of neighbouring x, as sensors produce."""
    t = np.sort(rng.integers(t0, t0 + span_us, n))
    x = rng.integers(0, width - 4, n)
    y = rng.integers(0, height, n)
    p = rng.integers(0, 2, n)
    run = rng.random(n) < 0.3
    run[0] = False
    for i in np.flatnonzero(run):  # a neighbour of the previous event at the same time and row
        t[i], y[i], p[i], x[i] = t[i - 1], y[i - 1], p[i - 1], min(x[i - 1] + 1, width - 1)
    order = np.lexsort((x, y, t))
    return make_events(x[order], y[order], p[order], t[order])


def faery_events(ev):
    out = np.zeros(len(ev), [("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("on", "?")])
    out["t"], out["x"], out["y"], out["on"] = ev["t"], ev["x"], ev["y"], ev["p"]
    return out


def faery_decode(path):
    fe = pytest.importorskip("faery.extension", reason="faery is not installed (pip install faery)")
    with fe.evt.Decoder(path, None, None) as d:
        parts = [q["events"] for q in d if "events" in q]
    a = np.concatenate(parts) if parts else np.zeros(0, faery_events(make_events([], [], [], [])).dtype)
    return make_events(a["x"], a["y"], a["on"].astype(np.int8), a["t"].astype(np.int64))


@pytest.mark.parametrize("fmt", ["evt2", "evt3"])
@pytest.mark.parametrize("seed", [0, 1])
def test_files_written_by_faery_decode_to_what_faery_decodes(tmp_path, fmt, seed):
    fe = pytest.importorskip("faery.extension", reason="faery is not installed (pip install faery)")
    ev = random_events(np.random.default_rng(seed), 3000)
    path = tmp_path / f"faery.{fmt}.raw"
    with fe.evt.Encoder(path, fmt, False, (640, 480), True) as enc:
        enc.write({"events": faery_events(ev)})
    expected = faery_decode(path)
    for native in (True, False):
        with open_events(path) as r:
            assert r.format == fmt and r.geometry == (640, 480)
        got = OPEN[fmt](path, native=native).read_all()
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(expected, ev)


@pytest.mark.parametrize("fmt", ["evt2", "evt3"])
def test_faery_decodes_our_writers_output(tmp_path, fmt):
    ev = random_events(np.random.default_rng(7), 3000)
    path = tmp_path / "ours.raw"
    WRITE[fmt](path, ev, geometry=(640, 480))
    np.testing.assert_array_equal(faery_decode(path), ev)


@pytest.mark.parametrize("native", PATHS)
@pytest.mark.parametrize("fmt", ["evt2", "evt3"])
def test_round_trip_is_exact_across_wraps_and_gaps(tmp_path, fmt, native):
    rng = np.random.default_rng(3)
    # Starts past the 24-bit EVT3 base, spans several of its wraps and has a 40 s silence.
    a = random_events(rng, 2000, t0=20_000_000, span_us=60_000_000)
    b = random_events(rng, 500, t0=a["t"][-1] + 40_000_000, span_us=1_000_000)
    ev = np.concatenate([a, b])
    path = tmp_path / "rt.raw"
    WRITE[fmt](path, ev)
    got = OPEN[fmt](path, native=native, chunk_events=333).read_all()
    np.testing.assert_array_equal(got, ev)


def test_evt2_round_trip_past_its_34_bit_time_range(tmp_path):
    t = np.array([5, (1 << 34) + 100, (1 << 35) + 7, (1 << 35) + 8 + (1 << 33)])
    ev = make_events([1, 2, 3, 4], [0, 1, 2, 3], [1, 0, 1, 1], t)
    write_evt2(tmp_path / "long.raw", ev, geometry=(8, 8))
    np.testing.assert_array_equal(read_events(tmp_path / "long.raw"), ev)


def test_evt3_writer_uses_vectors_for_runs_on_a_row():
    x = np.arange(100, 140)
    words = encode_evt3(x, np.full(40, 5), np.ones(40, np.int64), np.full(40, 1000))
    types = words >> 12
    assert (types == 0x3).sum() == 1 and (types == 0x2).sum() == 0
    assert (types == 0x4).sum() + (types == 0x5).sum() == 4  # 40 pixels in 12+12+12+4
    assert len(words) == 1 + 1 + 1 + 1 + 4  # time high, time low, row, vector base, 4 vectors
    lone = encode_evt3(np.array([3, 50]), np.array([5, 5]), np.array([1, 1]), np.array([7, 7]))
    assert ((lone >> 12) == 0x2).sum() == 2  # isolated pixels stay EVT_ADDR_X


def test_evt2_words_follow_the_documented_layout():
    words = encode_evt2(np.array([5]), np.array([9]), np.array([1]), np.array([(3 << 6) | 17]))
    assert words.tolist() == [(0x8 << 28) | 3, (1 << 28) | (17 << 22) | (5 << 11) | 9]


@pytest.mark.parametrize("native", PATHS)
@pytest.mark.parametrize("fmt", ["evt2", "evt3"])
def test_small_blocks_and_chunks_give_the_same_events(tmp_path, monkeypatch, fmt, native):
    ev = random_events(np.random.default_rng(11), 5000)
    path = tmp_path / "e.raw"
    WRITE[fmt](path, ev)
    monkeypatch.setattr(_wordstream, "BLOCK_BYTES", 56)  # state must survive every block boundary
    with OPEN[fmt](path, native=native, chunk_events=97) as r:
        chunks = list(r.chunks())
    assert all(1 <= len(c) <= 97 for c in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), ev)


@pytest.mark.parametrize("native", PATHS)
@pytest.mark.parametrize("fmt", ["evt2", "evt3"])
def test_seek_time_starts_at_the_first_event_at_or_after_the_time(tmp_path, monkeypatch, fmt, native):
    ev = random_events(np.random.default_rng(5), 4000, span_us=40_000_000)
    path = tmp_path / "s.raw"
    WRITE[fmt](path, ev)
    monkeypatch.setattr(_wordstream, "BLOCK_BYTES", 1024)
    with OPEN[fmt](path, native=native, chunk_events=500) as r:
        head = next(r.chunks())  # leaves checkpoints behind
        assert 1 <= len(head) <= 500
        for target in [int(ev["t"][2500]), 0, int(ev["t"][100]) + 1, int(ev["t"][-1]), int(ev["t"][-1]) + 1, 33]:
            r.seek_time(target)
            got = r.read_all()
            np.testing.assert_array_equal(got, ev[ev["t"] >= target], err_msg=f"seek to {target}")


def test_time_shift_subtracts_the_first_time_high_as_openeb(tmp_path):
    ev = make_events([1, 2], [3, 3], [1, 0], [2734 * 4096 + 5, 2734 * 4096 + 900])
    # time high 2734, row 3, time low 5, ON at x=1, time low 900, OFF at x=2 (the first TH of faery's evt3.raw)
    raw_file(tmp_path / "a.raw", "3.0", [0x8000 | 2734, 0x0003, 0x6005, 0x2801, 0x6000 | 900, 0x2002], "<u2")
    shifted = open_evt3(tmp_path / "a.raw", time_shift=True).read_all()
    assert shifted["t"].tolist() == [4096 + 5, 4096 + 900]
    assert open_evt3(tmp_path / "a.raw").read_all()["t"].tolist() == ev["t"].tolist()
    write_evt2(tmp_path / "b.raw", ev)
    th = (2734 * 4096 + 5) >> 6
    assert open_evt2(tmp_path / "b.raw", time_shift=True).read_all()["t"].tolist() == [
        int(t) - (th << 6) for t in ev["t"]
    ]


# ------------------------------------------------------------------------------------------- EVT 2.1


def evt21_word(kind, ts6=0, x=0, y=0, mask=0, th=0):
    """A logical EVT 2.1 word (see ecosystem notes 2.3)."""
    if kind == "th":
        return (0x8 << 60) | (th << 32)
    return (kind << 60) | (ts6 << 54) | (x << 43) | (y << 32) | mask


def evt21_file(path, words, *, legacy, geometry=(320, 320)):
    w, h = geometry
    fmt = f"EVT21;height={h};width={w}" + (";endianness=legacy" if legacy else "")
    logical = np.array(words, np.uint64)
    if legacy:  # IMX636: two little-endian u32 halves, high half first
        halves = np.stack([logical >> np.uint64(32), logical & np.uint64(0xFFFFFFFF)], axis=1).astype("<u4")
        payload = halves.tobytes()
    else:  # GenX320: one little-endian u64
        payload = logical.astype("<u8").tobytes()
    path.write_bytes(f"% evt 2.1\n% format {fmt}\n% end\n".encode() + payload)


@pytest.mark.parametrize("native", PATHS)
@pytest.mark.parametrize("legacy", [False, True], ids=["genx320-u64", "imx636-legacy"])
def test_evt21_hand_built_streams_in_both_byte_orders(tmp_path, legacy, native):
    words = [
        evt21_word("th", th=10),
        evt21_word(1, ts6=3, x=32, y=7, mask=0b1011),  # (32,7),(33,7),(35,7) ON at 643
        evt21_word(0, ts6=4, x=64, y=8, mask=1 << 31),  # (95,8) OFF at 644
        evt21_word("th", th=11),
        evt21_word(1, ts6=0, x=0, y=300, mask=0b1),  # (0,300) ON at 704
    ]
    path = tmp_path / "e21.raw"
    evt21_file(path, words, legacy=legacy)
    with open_events(path) as r:
        assert r.format == "evt21" and r.metadata["endianness"] == ("legacy" if legacy else "little")
    got = open_evt21(path, native=native).read_all()
    expected = make_events([32, 33, 35, 95, 0], [7, 7, 7, 8, 300], [1, 1, 1, 0, 1], [643, 643, 643, 644, 704])
    np.testing.assert_array_equal(got, expected)
    # Read with the other byte order, the same bytes are not these events.
    other = open_evt21(path, legacy=not legacy, lenient=True, native=native).read_all()
    assert not np.array_equal(other, expected)


def test_evt21_time_high_wrap_adds_2_to_the_34(tmp_path):
    words = [
        evt21_word("th", th=(1 << 28) - 1),
        evt21_word(1, ts6=1, x=0, y=0, mask=1),
        evt21_word("th", th=0),
        evt21_word(1, ts6=2, x=0, y=0, mask=1),
    ]
    evt21_file(tmp_path / "w.raw", words, legacy=False)
    got = read_events(tmp_path / "w.raw")
    assert got["t"].tolist() == [(((1 << 28) - 1) << 6) + 1, (1 << 34) + 2]


# ------------------------------------------------------------------------------------------- damage


def raw_file(path, evt, words, dtype, geometry="640x480"):
    header = f"% evt {evt}\n" + (f"% geometry {geometry}\n" if geometry else "") + "% end\n"
    path.write_bytes(header.encode() + np.asarray(words, dtype).tobytes())
    return len(header)


EVT3_DAMAGE = {
    "unknown_word_type": [0x8001, 0x0005, 0x9000, 0x2003],
    "continued_without_leader": [0x8001, 0x0005, 0xF123, 0x2003],
    "event_before_addr_y": [0x8001, 0x3000, 0x4007, 0x0005, 0x2003],
    "vector_before_vect_base_x": [0x8001, 0x0005, 0x4007, 0x2003],
    "event_before_time_high": [0x0005, 0x2003, 0x8001, 0x2003],
    "time_backwards": [0x8010, 0x0005, 0x8008, 0x2003],
    "outside_geometry": [0x8001, 0x0005, 0x2700, 0x2003],
}


@pytest.mark.parametrize("native", PATHS)
@pytest.mark.parametrize("kind", sorted(EVT3_DAMAGE))
def test_evt3_damage_raises_naming_file_and_offset_or_is_skipped_and_counted(tmp_path, caplog, kind, native):
    words = EVT3_DAMAGE[kind]
    path = tmp_path / "bad.raw"
    header_len = raw_file(path, "3.0", words, "<u2")
    with pytest.raises(EventFileError) as info:
        open_evt3(path, native=native).read_all()
    bad_word = next(i for i in range(len(words)) if _evt3_prefix_ok(path, words[: i + 1], native) is False)
    assert str(path) in str(info.value) and f"byte offset {header_len + 2 * bad_word}" in str(info.value)
    with caplog.at_level(logging.WARNING, logger="edgesnn.events"):
        r = open_evt3(path, lenient=True, native=native)
        got = r.read_all()
    assert r.skipped == {kind: 1}
    assert got.tolist()[-1][:3] == (3, 5, 0)  # decoding resumed after the damage
    assert len([rec for rec in caplog.records if rec.name == "edgesnn.events"]) == 1  # logged once per kind


def _evt3_prefix_ok(path, words, native):
    p = path.with_name("prefix.raw")
    raw_file(p, "3.0", words, "<u2")
    try:
        open_evt3(p, native=native).read_all()
        return True
    except EventFileError:
        return False


@pytest.mark.parametrize("native", PATHS)
def test_truncated_file_raises_or_counts_the_partial_word(tmp_path, native):
    ev = random_events(np.random.default_rng(2), 100)
    path = tmp_path / "t.raw"
    write_evt2(path, ev)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(EventFileError, match="truncated"):
        open_evt2(path, native=native).read_all()
    r = open_evt2(path, native=native, lenient=True)
    np.testing.assert_array_equal(r.read_all(), ev[:-1])
    assert r.skipped == {"truncated_word": 1}


def test_evt2_backwards_time_high_and_out_of_geometry(tmp_path):
    cd = (1 << 28) | (700 << 11) | 5  # x=700 is outside 640x480
    path = tmp_path / "g.raw"
    raw_file(path, "2.0", [0x8000_0002, cd, 0x8000_0001, (1 << 28) | (3 << 11) | 4], "<u4")
    with pytest.raises(EventFileError, match="outside the sensor geometry"):
        read_events(path)
    r = open_evt2(path, lenient=True)
    got = r.read_all()
    assert r.skipped == {"outside_geometry": 1, "time_backwards": 1}
    assert got.tolist() == [(3, 4, 1, 2 << 6)]


def test_geometry_fallbacks(tmp_path):
    ev = make_events([700], [500], [1], [10])
    words = encode_evt2(*(ev[f].astype(np.int64) for f in ("x", "y", "p", "t")))
    raw_file(tmp_path / "g2.raw", "2.0", words, "<u4", geometry=None)
    r = open_evt2(tmp_path / "g2.raw")
    assert r.geometry == (640, 480) and r.metadata["geometry_source"] == "gen3-default"
    r.read_all()  # beyond Gen3: widened from the data, not an error
    assert r.geometry == (701, 501) and r.metadata["geometry_source"] == "inferred"
    r = open_evt2(tmp_path / "g2.raw", geometry=(1280, 720))
    assert r.geometry == (1280, 720) and r.metadata["geometry_source"] == "argument"
    raw_file(tmp_path / "g3.raw", "3.0", [0x8000, 0x0009, 0x2804], "<u2", geometry=None)
    r = open_evt3(tmp_path / "g3.raw")
    assert r.geometry is None
    r.read_all()
    assert r.geometry == (5, 10)


def test_header_errors_name_the_key(tmp_path):
    p = tmp_path / "h.raw"
    p.write_bytes(b"% evt 3.0\n% format EVT2;width=4;height=4\n% end\n")
    with pytest.raises(EventFileError, match="disagree"):
        open_evt3(p)
    p.write_bytes(b"% geometry 12by4\n% evt 3.0\n")
    with pytest.raises(EventFileError, match="geometry"):
        open_events(p)
    p.write_bytes(b"% date today\n\x00\x80")
    with pytest.raises(EventFileError, match="names no EVT version"):
        open_events(p)
