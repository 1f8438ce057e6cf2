"""npy, npz, HDF5 and CSV event files: layouts, conversion, chunking, seeking, damage."""

from __future__ import annotations

import sys
import zipfile

import numpy as np
import pytest

from edgesnn.errors import EventFileError, MissingDependencyError, OptionError
from edgesnn.events._dtype import EVENT_DTYPE, make_events
from edgesnn.events.arrays import ArrayFileReader, open_array_file, write_npz
from edgesnn.events.io import open_events, read_events


@pytest.fixture
def ev() -> np.ndarray:
    rng = np.random.default_rng(0)
    n = 10_007
    return make_events(
        rng.integers(0, 640, n), rng.integers(0, 480, n), rng.integers(0, 2, n), np.sort(rng.integers(0, 10**7, n))
    )


def check_reader(path, ev, *, chunk=1_000, **kw) -> ArrayFileReader:
    """Chunks are bounded, join to ``ev``, and seek_time lands where searchsorted says."""
    with open_array_file(path, chunk_events=chunk, **kw) as r:
        chunks = list(r.chunks())
        assert all(0 < len(c) <= chunk and c.dtype == EVENT_DTYPE for c in chunks)
        np.testing.assert_array_equal(np.concatenate(chunks), ev)
        for t in (0, int(ev["t"][len(ev) // 2]), int(ev["t"][-1]) + 1):
            r.seek_time(t)
            np.testing.assert_array_equal(r.read_all(), ev[np.searchsorted(ev["t"], t) :])
        return r


def test_npy_structured_is_memory_mapped_and_chunked(tmp_path, ev):
    np.save(tmp_path / "a.npy", ev)
    r = check_reader(tmp_path / "a.npy", ev)
    assert r.format == "npy" and r.geometry is None
    np.testing.assert_array_equal(read_events(tmp_path / "a.npy"), ev)


def test_npy_with_other_names_and_widths_is_converted(tmp_path, ev):
    other = np.zeros(len(ev), dtype=[("timestamp", "<u8"), ("x", "<i4"), ("y", ">i2"), ("polarity", "?")])
    for a, b in (("timestamp", "t"), ("x", "x"), ("y", "y"), ("polarity", "p")):
        other[a] = ev[b]
    np.save(tmp_path / "b.npy", other)
    check_reader(tmp_path / "b.npy", ev, geometry=(640, 480))


def test_npy_two_dimensional_needs_columns(tmp_path, ev):
    table = np.stack([ev["t"], ev["x"], ev["y"], 2 * ev["p"].astype(np.int64) - 1], axis=1).astype(np.float64)
    np.save(tmp_path / "c.npy", table)
    with pytest.raises(EventFileError, match=r"pass columns="):
        open_array_file(tmp_path / "c.npy")
    check_reader(tmp_path / "c.npy", ev, columns=("t", "x", "y", "p"))  # -1/+1 polarity becomes 0/1


def test_write_npz_round_trip_with_geometry_and_from_chunks(tmp_path, ev):
    write_npz(tmp_path / "a.npz", ev, geometry=(640, 480))
    r = check_reader(tmp_path / "a.npz", ev)
    assert r.geometry == (640, 480)
    write_npz(tmp_path / "b.npz", iter(np.array_split(ev, 7)), geometry=(640, 480))
    np.testing.assert_array_equal(np.load(tmp_path / "b.npz")["events"], ev)
    with zipfile.ZipFile(tmp_path / "b.npz") as zf:
        assert zf.getinfo("events.npy").compress_type == zipfile.ZIP_STORED  # so it memory-maps
    write_npz(tmp_path / "c.npz", ev, compress=True)
    check_reader(tmp_path / "c.npz", ev)
    with pytest.raises(OptionError, match="EVENT_DTYPE"):
        write_npz(tmp_path / "d.npz", np.zeros(3))


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_separate_arrays_and_single_structured_member(tmp_path, ev, compressed):
    save = np.savez_compressed if compressed else np.savez
    save(
        tmp_path / "s.npz",
        x=ev["x"],
        y=ev["y"].astype(np.int32),
        p=ev["p"].astype(bool),
        t=ev["t"],
        sensor_size=[640, 480, 2],
    )
    assert check_reader(tmp_path / "s.npz", ev).geometry == (640, 480)
    save(tmp_path / "m.npz", recording=ev)
    check_reader(tmp_path / "m.npz", ev)
    save(tmp_path / "k.npz", a=ev, b=ev[:10])
    with pytest.raises(EventFileError, match="no 'events' member"):
        open_array_file(tmp_path / "k.npz")
    check_reader(tmp_path / "k.npz", ev, npz_key="a")


def test_hdf5_layouts(tmp_path, ev):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "rvt.h5", "w") as f:  # Prophesee/RVT: events/{x,y,p,t} plus width/height
        g = f.create_group("events")
        for k in "xypt":
            g.create_dataset(k, data=ev[k], chunks=(4096,), compression="gzip")
        g.create_dataset("width", data=640)
        g.create_dataset("height", data=480)
    assert check_reader(tmp_path / "rvt.h5", ev).geometry == (640, 480)
    with h5py.File(tmp_path / "cd.h5", "w") as f:  # Metavision style: compound CD/events, attributes
        d = f.create_dataset(
            "CD/events", data=ev[["x", "y", "p", "t"]].astype([("x", "<u2"), ("y", "<u2"), ("p", "<i2"), ("t", "<i8")])
        )
        d.attrs["width"], d.attrs["height"] = 640, 480
    assert check_reader(tmp_path / "cd.h5", ev).geometry == (640, 480)
    with h5py.File(tmp_path / "root.hdf5", "w") as f:
        for k, name in (("x", "x"), ("y", "y"), ("p", "polarity"), ("t", "ts")):
            f.create_dataset(name, data=ev[k])
    r = check_reader(tmp_path / "root.hdf5", ev)
    assert r.geometry is None and r.metadata["key"] == "/"
    with h5py.File(tmp_path / "none.h5", "w") as f:
        f.create_dataset("frames", data=np.zeros((2, 2)))
    with pytest.raises(EventFileError, match="pass hdf5_key="):
        open_array_file(tmp_path / "none.h5")


def test_hdf5_without_h5py_names_the_extra(tmp_path, ev, monkeypatch):
    (tmp_path / "x.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(MissingDependencyError, match=r"edgesnn\[events\]"):
        open_array_file(tmp_path / "x.h5")


def write_csv(path, ev, *, header="t,x,y,p", sep=",", order=("t", "x", "y", "p"), pol=str):
    lines = [header] if header else []
    lines += [sep.join(str(e[c]) if c != "p" else pol(e[c]) for c in order) for e in ev]
    path.write_text("# recorded by a test\n" + "\n".join(lines) + "\n")


def test_csv_header_order_delimiters_and_bool_polarity(tmp_path, ev):
    write_csv(tmp_path / "a.csv", ev)
    assert check_reader(tmp_path / "a.csv", ev).metadata["header"] is True
    write_csv(tmp_path / "b.csv", ev, header="x;y;polarity;timestamp", sep=";", order=("x", "y", "p", "t"))
    check_reader(tmp_path / "b.csv", ev)
    write_csv(tmp_path / "c.txt", ev, header=None, sep=" ", order=("x", "y", "t", "p"), pol=lambda v: str(bool(v)))
    check_reader(tmp_path / "c.txt", ev, columns=("x", "y", "t", "p"))
    write_csv(tmp_path / "d.csv", ev[:10], header=None)
    check_reader(tmp_path / "d.csv", ev[:10], chunk=3)


def test_csv_bad_line_names_the_line_or_is_skipped(tmp_path, ev):
    write_csv(tmp_path / "a.csv", ev[:100])
    text = (tmp_path / "a.csv").read_text().splitlines()
    text[50] = "12,abc,3,1"
    (tmp_path / "a.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(EventFileError, match=r"a\.csv: line 51: cannot parse '12,abc,3,1'"):
        read_events(tmp_path / "a.csv")
    r = open_array_file(tmp_path / "a.csv", lenient=True)
    got = r.read_all()
    assert r.skipped == {"bad_lines": 1}
    np.testing.assert_array_equal(got, np.delete(ev[:100], 48))  # line 51 = comment + header + event 48


def test_unsorted_and_out_of_geometry_events(tmp_path, ev):
    bad = ev.copy()
    bad["t"][3000] = 5  # goes backwards
    bad["x"][7000] = 700  # outside 640x480
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(EventFileError, match=r"bad\.npy: array event 3000: t=5 is before the previous"):
        read_events(tmp_path / "bad.npy", chunk_events=512)
    np.save(tmp_path / "wide.npy", np.delete(bad, 3000))
    with pytest.raises(EventFileError, match="event 6999: x=700 lies outside the 640x480 geometry"):
        read_events(tmp_path / "wide.npy", geometry=(640, 480), chunk_events=4096)
    r = open_array_file(tmp_path / "bad.npy", geometry=(640, 480), lenient=True, chunk_events=512)
    got = r.read_all()
    assert r.skipped == {"time_backwards": 1, "out_of_geometry": 1}
    np.testing.assert_array_equal(got, np.delete(ev, [3000, 7000]))


def test_bad_values_and_broken_files(tmp_path, ev):
    odd = np.zeros(3, dtype=[("x", "f8"), ("y", "u2"), ("p", "i1"), ("t", "i8")])
    odd["x"] = [1, 2.5, 3]
    np.save(tmp_path / "f.npy", odd)
    with pytest.raises(EventFileError, match="event 1: x=2.5 is not a whole number"):
        read_events(tmp_path / "f.npy")
    odd["x"], odd["p"] = [1, 2, 3], [0, 1, 2]
    np.save(tmp_path / "g.npy", odd)
    with pytest.raises(EventFileError, match="event 2: p=2 is not 0/1"):
        read_events(tmp_path / "g.npy")
    np.save(tmp_path / "h.npy", ev[["x", "y", "t"]])
    with pytest.raises(EventFileError, match="expected x: x; y: y; p: p/polarity"):
        open_array_file(tmp_path / "h.npy")
    write_npz(tmp_path / "t.npz", ev)
    data = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(EventFileError, match=r"t\.npz: not a readable \.npz"):
        open_array_file(tmp_path / "t.npz")
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(EventFileError, match="junk.npy: not a readable .npy"):
        open_array_file(tmp_path / "junk.npy")


def test_open_events_dispatches_to_the_array_readers(tmp_path, ev):
    write_npz(tmp_path / "a.npz", ev, geometry=(640, 480))
    with open_events(tmp_path / "a.npz", chunk_events=4096) as r:
        assert isinstance(r, ArrayFileReader) and r.geometry == (640, 480)
        np.testing.assert_array_equal(r.read_all(), ev)
