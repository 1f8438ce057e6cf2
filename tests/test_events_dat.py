"""Prophesee DAT: cross-checks with faery (v1 and v2), round trips, header and damage handling."""

from __future__ import annotations

import numpy as np
import pytest

from edgesnn.errors import EventFileError, InputError, OptionError
from edgesnn.events._dtype import make_events
from edgesnn.events.dat import open_dat, write_dat
from edgesnn.events.io import open_events, read_events

PATHS = [pytest.param(True, id="native"), pytest.param(False, id="numpy")]


def random_events(rng, n, width, height):
    t = np.sort(rng.integers(0, 5_000_000, n))
    return make_events(rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n), t)


def faery_array(ev):
    a = np.zeros(len(ev), [("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("payload", "u1")])
    a["t"], a["x"], a["y"], a["payload"] = ev["t"], ev["x"], ev["y"], ev["p"]
    return a


@pytest.mark.parametrize("version,geometry", [("dat2", (1280, 720)), ("dat1", (320, 240))])
def test_files_written_by_faery_decode_to_what_faery_decodes(tmp_path, version, geometry):
    fe = pytest.importorskip("faery.extension", reason="faery is not installed (pip install faery)")
    ev = random_events(np.random.default_rng(0), 4000, *geometry)
    path = tmp_path / "f.dat"
    with fe.dat.Encoder(path, version, "cd", False, geometry) as enc:
        enc.write(faery_array(ev))
    with fe.dat.Decoder(path, None, None) as d:
        fa = np.concatenate(list(d))
    expected = make_events(fa["x"], fa["y"], np.minimum(fa["payload"], 1), fa["t"].astype(np.int64))
    for native in (True, False):
        r = open_dat(path, native=native)
        assert r.geometry == geometry and r.metadata["version"] == int(version[-1])
        np.testing.assert_array_equal(r.read_all(), expected)
    np.testing.assert_array_equal(expected, ev)


@pytest.mark.parametrize("version", [1, 2])
def test_faery_decodes_our_writer_and_round_trip_is_exact(tmp_path, version):
    geometry = (1280, 720) if version == 2 else (320, 240)
    ev = random_events(np.random.default_rng(1), 3000, *geometry)
    path = tmp_path / "o.dat"
    write_dat(path, ev, geometry=geometry, version=version)
    np.testing.assert_array_equal(read_events(path), ev)
    fe = pytest.importorskip("faery.extension", reason="faery is not installed (pip install faery)")
    with fe.dat.Decoder(path, None, None) as d:
        fa = np.concatenate(list(d))
    assert np.array_equal(fa["t"], ev["t"]) and np.array_equal(fa["x"], ev["x"]) and np.array_equal(fa["y"], ev["y"])
    assert np.array_equal(fa["payload"], ev["p"])


@pytest.mark.parametrize("native", PATHS)
def test_32_bit_timestamp_wrap_and_seek(tmp_path, native):
    t = np.array([10, 1 << 31, (1 << 32) - 1, (1 << 32) + 5, (1 << 32) + (1 << 30)])
    ev = make_events(np.arange(5), np.arange(5), [1, 0, 1, 0, 1], t)
    write_dat(tmp_path / "w.dat", ev, geometry=(8, 8))
    r = open_dat(tmp_path / "w.dat", native=native)
    np.testing.assert_array_equal(r.read_all(), ev)
    r.seek_time((1 << 32) + 1)
    np.testing.assert_array_equal(r.read_all(), ev[3:])


def test_writer_refuses_what_dat_cannot_hold(tmp_path):
    # A gap of 2^31 µs or more in a span past 2^32 µs would read back as a wrap (a first time past
    # 2^32 alone is no longer refused: it goes to the header's time_offset_us, test_events_compact_time.py).
    with pytest.raises(OptionError, match=r"a\.dat: DAT stores 32-bit µs timestamps: the events span 4294967301 µs"):
        write_dat(tmp_path / "a.dat", make_events([0, 1], [0, 0], [1, 1], [0, (1 << 32) + 5]), geometry=(4, 4))
    assert not (tmp_path / "a.dat").exists()
    with pytest.raises(InputError, match="events/x"):
        write_dat(tmp_path / "a.dat", make_events([600], [0], [1], [1]), geometry=(512, 256), version=1)
    with pytest.raises(InputError, match="must not decrease"):
        write_dat(tmp_path / "a.dat", make_events([0, 0], [0, 0], [1, 1], [5, 4]), geometry=(4, 4))


@pytest.mark.parametrize("native", PATHS)
def test_damage_raises_with_offset_or_is_counted(tmp_path, native):
    ev = make_events([1, 2, 3], [1, 2, 3], [1, 1, 0], [100, 50, 200])  # the second goes backwards
    rec = np.zeros((3, 2), "<u4")
    rec[:, 0] = ev["t"]
    rec[:, 1] = ev["x"] | (ev["y"].astype(np.uint32) << 14) | (ev["p"].astype(np.uint32) << 28)
    header = b"% Version 2\n% Width 8\n% Height 8\n\x0c\x08"
    path = tmp_path / "d.dat"
    path.write_bytes(header + rec.tobytes() + b"\x01\x02")
    with pytest.raises(EventFileError, match=f"byte offset {len(header) + 8}"):
        open_dat(path, native=native).read_all()
    r = open_dat(path, native=native, lenient=True)
    np.testing.assert_array_equal(r.read_all(), ev[[0, 2]])
    assert r.skipped == {"time_backwards": 1, "truncated_word": 1}


def test_bad_event_type_and_missing_type_bytes(tmp_path):
    p = tmp_path / "x.dat"
    p.write_bytes(b"% Version 2\n\x0e\x08" + bytes(8))
    with pytest.raises(EventFileError, match="event type 0x0E"):
        open_events(p)
    p.write_bytes(b"% Version 2\n")
    with pytest.raises(EventFileError, match="before the event type"):
        open_events(p)
    p.write_bytes(b"% Version 7\n\x0c\x08")
    with pytest.raises(EventFileError, match="Version"):
        open_events(p)
