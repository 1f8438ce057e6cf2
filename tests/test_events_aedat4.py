"""AEDAT4 through aedat: files written by dv-processing and by faery decode to exactly what those libraries decode."""

from __future__ import annotations

import numpy as np
import pytest

from edgesnn.errors import EventFileError, MissingDependencyError, OptionError
from edgesnn.events._dtype import EVENT_DTYPE, make_events
from edgesnn.events.io import open_events

pytest.importorskip("aedat", reason="aedat is not installed (edgesnn[events])")
from edgesnn.events.aedat4 import Aedat4Frame, Aedat4Reader, open_aedat4, read_description  # noqa: E402

W, H = 346, 260


def random_stream(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = 1_000_000 + np.sort(rng.integers(0, 5_000_000, n))
    return make_events(rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, 2, n), t)


@pytest.fixture(scope="module")
def dv_file(tmp_path_factory):
    """A DAVIS-like recording written by iniVation's own writer: events, a frame, IMU samples, triggers."""
    dv = pytest.importorskip("dv_processing", reason="dv-processing is not installed (dev dependency)")
    path = tmp_path_factory.mktemp("dv") / "davis.aedat4"
    ev = random_stream(0, 30_000)
    writer = dv.io.MonoCameraWriter(str(path), dv.io.MonoCameraWriter.DAVISConfig("DAVIS346_test", (W, H)))
    for part in np.array_split(ev, 9):  # several event packets
        store = dv.EventStore()
        for e in part:
            store.push_back(int(e["t"]), int(e["x"]), int(e["y"]), bool(e["p"]))
        writer.writeEvents(store)
    pixels = (np.arange(H * W) % 251).astype(np.uint8).reshape(H, W)
    writer.writeFrame(dv.Frame(2_000_000, pixels))
    for k in range(3):
        writer.writeImu(dv.IMU(2_100_000 + k, 30.0, 0.1 * k, 0.2, 9.8, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0))
    writer.writeTrigger(dv.Trigger(2_200_000, dv.TriggerType.EXTERNAL_SIGNAL_RISING_EDGE))
    del writer  # flushes and closes the file
    recording = dv.io.MonoCameraRecording(str(path))
    batches = []
    while (batch := recording.getNextEventBatch()) is not None:
        batches.append(batch.numpy())
    reference = np.concatenate(batches)
    return path, ev, reference, pixels


def same_as_dv(ours: np.ndarray, dv_events: np.ndarray) -> None:
    assert ours.dtype == EVENT_DTYPE and len(ours) == len(dv_events)
    for a, b in (("t", "timestamp"), ("x", "x"), ("y", "y"), ("p", "polarity")):
        np.testing.assert_array_equal(ours[a].astype(np.int64), dv_events[b].astype(np.int64))


def test_dv_processing_file_decodes_to_what_dv_processing_decodes(dv_file):
    path, ev, reference, _ = dv_file
    with open_aedat4(path) as r:
        same_as_dv(r.read_all(), reference)
        assert r.geometry == (W, H)
        streams = r.metadata["streams"]
        assert {s["type"] for s in streams.values()} == {"events", "frame", "imus", "triggers"}
        assert streams[r.metadata["stream_id"]]["source"] == "DAVIS346_test"
    np.testing.assert_array_equal(reference["timestamp"], ev["t"])


def test_frames_imus_and_triggers_are_exposed_and_skipped_by_chunks(dv_file):
    path, _, _, pixels = dv_file
    r = open_aedat4(path)
    frames = list(r.frames())
    assert len(frames) == 1 and isinstance(frames[0], Aedat4Frame)
    assert frames[0].t == 2_000_000 and frames[0].format == "L"
    np.testing.assert_array_equal(frames[0].pixels, pixels)
    imus = np.concatenate(list(r.imus()))
    assert list(imus["t"]) == [2_100_000, 2_100_001, 2_100_002]
    np.testing.assert_allclose(imus["accelerometer_z"], 9.8, rtol=1e-6)
    triggers = np.concatenate(list(r.triggers()))
    assert list(triggers["t"]) == [2_200_000]
    assert sum(len(c) for c in r.chunks()) == 30_000  # only events


def test_chunks_are_bounded_joined_and_seekable(dv_file):
    path, ev, _, _ = dv_file
    r = open_aedat4(path, chunk_events=4_000)
    chunks = list(r.chunks())
    assert [len(c) for c in chunks][:-1] == [4_000] * (len(chunks) - 1)
    np.testing.assert_array_equal(np.concatenate(chunks), ev)
    for t in (0, int(ev["t"][12_345]), int(ev["t"][-1]) + 1):
        r.seek_time(t)
        np.testing.assert_array_equal(r.read_all(), ev[np.searchsorted(ev["t"], t) :])
    with open_events(path) as via_io:
        assert isinstance(via_io, Aedat4Reader)
        np.testing.assert_array_equal(via_io.read_all(), ev)


def faery_write(path, ev: np.ndarray, compression) -> np.ndarray:
    faery = pytest.importorskip("faery", reason="faery is not installed (dev dependency for cross-checks)")
    arr = np.zeros(len(ev), dtype=faery.events_stream.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"]
    faery.events_stream_from_array(arr, (W, H)).to_file(str(path), compression=compression)
    decoded = []
    with faery.aedat.Decoder(str(path)) as dec:
        for track, packet in dec:
            if track.data_type == "events":
                decoded.append(packet)
    return np.concatenate(decoded)


@pytest.mark.parametrize("compression", [("lz4", 1), ("zstd", 3), None])
def test_faery_file_decodes_to_what_faery_decodes(tmp_path, compression):
    ev = random_stream(1, 50_000)
    reference = faery_write(tmp_path / "f.aedat4", ev, compression)
    got = open_aedat4(tmp_path / "f.aedat4", chunk_events=7_000).read_all()
    for a, b in (("t", "t"), ("x", "x"), ("y", "y"), ("p", "on")):
        np.testing.assert_array_equal(got[a].astype(np.int64), reference[b].astype(np.int64))
    np.testing.assert_array_equal(got, ev)
    assert read_description(tmp_path / "f.aedat4")[0]["typeIdentifier"] == "EVTS"


def test_truncated_or_corrupt_files_name_the_file(tmp_path):
    ev = random_stream(2, 40_000)
    faery_write(tmp_path / "ok.aedat4", ev, ("lz4", 1))
    data = (tmp_path / "ok.aedat4").read_bytes()
    (tmp_path / "cut.aedat4").write_bytes(data[: len(data) // 2])
    with pytest.raises(
        EventFileError, match=r"cut\.aedat4: packet \d+ at byte \d+: stream 0 declares \d+ bytes, \d+ are left"
    ):
        open_aedat4(tmp_path / "cut.aedat4").read_all()
    r = open_aedat4(tmp_path / "cut.aedat4", lenient=True)
    got = r.read_all()
    assert r.skipped == {"truncated": 1} and 0 < len(got) < len(ev)
    np.testing.assert_array_equal(got, ev[: len(got)])  # everything before the damage, intact
    (tmp_path / "head.aedat4").write_bytes(data[:40])
    with pytest.raises(EventFileError, match=r"head\.aedat4: truncated IOHeader"):
        open_aedat4(tmp_path / "head.aedat4")
    (tmp_path / "magic.aedat4").write_bytes(b"#!AER-DAT3.1\r\n" + data[14:])
    with pytest.raises(EventFileError, match="not an AEDAT 4.0 file"):
        open_aedat4(tmp_path / "magic.aedat4")
    corrupt = bytearray(data)
    middle = len(data) // 2
    corrupt[middle : middle + 64] = bytes(64)
    (tmp_path / "bad.aedat4").write_bytes(bytes(corrupt))
    with pytest.raises(EventFileError, match=r"bad\.aedat4: packet \d+ at byte \d+ cannot be decoded"):
        open_aedat4(tmp_path / "bad.aedat4").read_all()


def test_geometry_override_checks_coordinates_and_options(dv_file, monkeypatch):
    path, ev, _, _ = dv_file
    with pytest.raises(EventFileError, match=r"lies outside 100x100"):
        open_aedat4(path, geometry=(100, 100)).read_all()
    r = open_aedat4(path, geometry=(100, 100), lenient=True)
    got = r.read_all()
    inside = (ev["x"] < 100) & (ev["y"] < 100)
    np.testing.assert_array_equal(got, ev[inside])
    assert r.skipped == {"out_of_geometry": int((~inside).sum())}
    with pytest.raises(OptionError, match="stream_id"):
        open_aedat4(path, stream_id=1)  # the frame stream
    monkeypatch.setitem(__import__("sys").modules, "aedat", None)
    with pytest.raises(MissingDependencyError, match=r"edgesnn\[events\]"):
        open_aedat4(path)
