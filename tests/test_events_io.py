"""open_events: format detection, the reader registry, options and the EventReader contract."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from edgesnn.errors import EventFileError, OptionError
from edgesnn.events._dtype import EVENT_DTYPE, make_events
from edgesnn.events.dat import write_dat
from edgesnn.events.evt2 import write_evt2
from edgesnn.events.evt3 import write_evt3
from edgesnn.events.io import READERS, EventReader, detect_format, open_events, read_events

EV = make_events([1, 2, 3], [4, 5, 6], [1, 0, 1], [10, 20, 30])


@pytest.mark.parametrize(
    "name,write,fmt",
    [
        ("a.raw", write_evt3, "evt3"),
        ("b.raw", write_evt2, "evt2"),
        ("c.dat", write_dat, "dat"),
        ("noext", write_evt3, "evt3"),
    ],
)
def test_prophesee_files_are_detected_from_content(tmp_path, name, write, fmt):
    write(tmp_path / name, EV, geometry=(8, 8))
    assert detect_format(tmp_path / name) == fmt
    with open_events(tmp_path / name, chunk_events=2) as r:
        assert isinstance(r, EventReader) and r.format == fmt and r.geometry == (8, 8)
        assert [len(c) for c in r.chunks()] == [2, 1]
        assert r.skipped == {}
    out = read_events(tmp_path / name)
    assert out.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(out, EV)


def test_magic_numbers_and_extensions(tmp_path):
    cases = {
        "a.aedat4": (b"#!AER-DAT4.0\r\n", "aedat4"),
        "a.bin": (b"\x93NUMPY\x01\x00", "npy"),
        "a.h5": (b"\x89HDF\r\n\x1a\n", "hdf5"),
        "a.csv": (b"t,x,y,p\n", "csv"),
    }
    for name, (data, fmt) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert detect_format(tmp_path / name) == fmt


def test_unknown_content_and_bad_options_are_clear_errors(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"\x00" * 16)
    with pytest.raises(EventFileError, match="pass format="):
        open_events(tmp_path / "x.bin")
    with pytest.raises(EventFileError, match="cannot read"):
        open_events(tmp_path / "missing.raw")
    write_evt3(tmp_path / "a.raw", EV)
    with pytest.raises(OptionError, match="format"):
        open_events(tmp_path / "a.raw", format="evt4")
    with pytest.raises(OptionError, match="chunk_events"):
        open_events(tmp_path / "a.raw", chunk_events=0)
    with pytest.raises(OptionError, match="geometry"):
        open_events(tmp_path / "a.raw", geometry=(0, 5))


def test_format_override_reads_a_headerless_payload(tmp_path):
    write_evt3(tmp_path / "a.raw", EV, geometry=(8, 8))
    data = (tmp_path / "a.raw").read_bytes()
    (tmp_path / "bare.bin").write_bytes(data[data.index(b"% end\n") + 6 :])
    np.testing.assert_array_equal(read_events(tmp_path / "bare.bin", format="evt3"), EV)


def test_registry_points_at_importable_openers():
    for fmt in ("evt2", "evt21", "evt3", "dat"):
        module, func = READERS[fmt].split(":")
        assert callable(getattr(importlib.import_module(module), func))
