"""Bad input refused with the right error: each escape of the event-file fuzzing campaign, reproduced.

AEDAT4 files are written by faery (the same writer as a DAVIS346 recording's converter), then
damaged the way the campaign did: packet sizes (too small for a flatbuffer, which made aedat
panic; 2-4 GB, which made it abort the process), XML, ``sizeX=0``, compressed payloads that
would decompress past the limits. Prophesee files are hand-made words or headers.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import edgesnn.cli
from edgesnn import limits
from edgesnn.errors import EventFileError, LimitError
from edgesnn.events._dtype import make_events
from edgesnn.events.io import open_events, read_events

pytest.importorskip("aedat", reason="aedat is not installed (edgesnn[events])")
from edgesnn.events import _aedat4_container as box  # noqa: E402

W, H = 346, 260


def events(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(
        rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, 2, n), 1000 + np.sort(rng.integers(0, 10**6, n))
    )


def write_aedat4(path, ev, compression=None) -> bytes:
    faery = pytest.importorskip("faery", reason="faery writes the AEDAT4 files these tests damage")
    arr = np.zeros(len(ev), dtype=faery.events_stream.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"]
    faery.events_stream_from_array(arr, (W, H)).to_file(str(path), compression=compression)
    return path.read_bytes()


def packets(path) -> list[tuple[int, int, int]]:
    """(offset, stream id, size) of each packet of an intact file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        c = box.read_container(fd, os.fstat(fd).st_size, str(path), lenient=False)
        return [(p.offset, p.stream_id, p.size) for p in box.walk(fd, c, str(path), lenient=False)]
    finally:
        os.close(fd)


@pytest.fixture
def plain(tmp_path):
    """An uncompressed AEDAT4 file of 12,000 events in 3 packets of 4,096 events and a shorter one."""
    ev = events(12_000)
    path = tmp_path / "plain.aedat4"
    write_aedat4(path, ev)
    return path, ev


def damaged(path, name, edit) -> object:
    data = bytearray(path.read_bytes())
    edit(data)
    out = path.with_name(name)
    out.write_bytes(bytes(data))
    return out


def cli_info(path, capsys, *extra) -> tuple[int, str]:
    code = edgesnn.cli.main(["events", "info", str(path), *extra])
    return code, capsys.readouterr().err.strip()


def check_invariants(ev: np.ndarray, geometry) -> None:
    """What lenient output promises: time-sorted, inside the geometry, polarity 0 or 1."""
    assert (np.diff(ev["t"]) >= 0).all()
    if geometry is not None and len(ev):
        assert int(ev["x"].max()) < geometry[0] and int(ev["y"].max()) < geometry[1]
    assert set(np.unique(ev["p"]).tolist()) <= {0, 1}


# ------------------------------------------------------------------------------------------ AEDAT4 packets


def test_packet_too_small_for_a_flatbuffer_is_refused_not_a_panic(plain, capsys):
    path, ev = plain
    offset, sid, _ = packets(path)[1]
    bad = damaged(path, "small.aedat4", lambda d: struct.pack_into("<ii", d, offset, sid, 4))
    with pytest.raises(
        EventFileError, match=rf"small\.aedat4: packet 1 at byte {offset}: stream 0, size 4: expected at least 12"
    ):
        read_events(bad)
    code, err = cli_info(bad, capsys)
    assert code == 3 and len(err.splitlines()) == 1 and f"packet 1 at byte {offset}" in err
    r = open_events(bad, lenient=True)
    got = r.read_all()
    # The broken header hides where packet 2 starts: the reader finds it again and keeps the rest.
    assert r.skipped == {"bad_packet": 1}
    np.testing.assert_array_equal(got, np.concatenate([ev[:4096], ev[8192:]]))
    r.close()


@pytest.mark.parametrize("size", [2**31 - 1, 2**31, 3_000_000_000, 2**32 - 1])
def test_a_packet_size_of_2_to_4_gb_is_refused_before_any_allocation(plain, size):
    path, ev = plain
    offset, sid, _ = packets(path)[0]
    bad = damaged(path, "huge.aedat4", lambda d: struct.pack_into("<iI", d, offset, sid, size))
    with pytest.raises(
        EventFileError, match=rf"packet 0 at byte {offset}: stream 0 declares {size} bytes, \d+ are left"
    ):
        open_events(bad)
    tracemalloc.start()
    with open_events(bad, lenient=True) as r:
        got = r.read_all()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 << 20  # a few packets' worth, not the declared size
    assert r.skipped == {"bad_packet": 1}
    np.testing.assert_array_equal(got, ev[4096:])


ABORT_CHILD = """
import resource, sys
vm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmSize')) * 1024
{imports}
resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY))  # a small device
{body}
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_the_sigabrt_case_no_longer_aborts_the_process(plain):
    path, _ = plain
    offset, sid, _ = packets(path)[0]
    bad = damaged(path, "abort.aedat4", lambda d: struct.pack_into("<iI", d, offset, sid, 3_000_000_000))
    env = {**os.environ, "RUST_BACKTRACE": "0"}
    # The bug, as it was: aedat alone allocates the declared 3 GB, fails, and aborts the process.
    before = ABORT_CHILD.format(imports="import aedat", body=f"list(aedat.Decoder({str(bad)!r}))")
    old = subprocess.run([sys.executable, "-c", before], capture_output=True, text=True, env=env, timeout=120)
    assert old.returncode == -signal.SIGABRT, old.stderr[-500:]
    for lenient, expected in (([], 3), (["--lenient"], 0)):
        after = ABORT_CHILD.format(
            imports="import edgesnn.cli, edgesnn.events.aedat4, aedat",
            body=f"sys.exit(edgesnn.cli.main(['events', 'info', {str(bad)!r}, '--json'] + {lenient!r}))",
        )
        new = subprocess.run([sys.executable, "-c", after], capture_output=True, text=True, env=env, timeout=120)
        assert new.returncode == expected, new.stderr[-2000:]
        lines = new.stderr.strip().splitlines()
        assert len(lines) == 1 and "declares 3000000000 bytes" in lines[0] and "Traceback" not in new.stderr
        if lenient:
            assert json.loads(new.stdout)["count"] == 12_000 - 4096


def test_a_packet_over_the_limit_is_a_limit_error_or_skipped(plain, capsys):
    path, ev = plain
    with limits.override(packet_bytes=32 << 10):  # the 4,096-event packets hold 64 KiB
        with pytest.raises(
            LimitError, match=r"packet 0 at byte \d+: stream 0 declares 65568 bytes, over the limit packet_bytes"
        ) as e:
            open_events(path)
        assert e.value.limit == "packet_bytes" and e.value.value == 65568
        code, err = cli_info(path, capsys)
        assert code == 8 and len(err.splitlines()) == 1 and "packet_bytes" in err
        r = open_events(path, lenient=True)
        np.testing.assert_array_equal(r.read_all(), ev[3 * 4096 :])
        assert r.skipped == {"over_limit": 3}


@pytest.mark.parametrize("compression", [("lz4", 1), ("zstd", 3)])
def test_compressed_packets_are_bounded_by_what_their_frames_can_decompress_to(tmp_path, compression):
    ev = events(12_000)
    path = tmp_path / "c.aedat4"
    write_aedat4(path, ev, compression)
    np.testing.assert_array_equal(read_events(path), ev)
    # Compressed, the packets are small, but they may decompress to 64 KiB and more each.
    assert all(size < 60_000 for _, _, size in packets(path))
    with limits.override(packet_bytes=60_000):
        with pytest.raises(
            LimitError,
            match=r"packet 0 at byte \d+ \(stream 0, \d+ bytes\): (lz4|zstd) data may decompress to \d+ bytes",
        ):
            open_events(path)


def test_a_compressed_payload_that_is_not_a_frame_is_refused(tmp_path):
    ev = events(12_000)
    path = tmp_path / "z.aedat4"
    write_aedat4(path, ev, ("zstd", 3))
    offset = packets(path)[1][0]
    bad = damaged(path, "zbad.aedat4", lambda d: d.__setitem__(slice(offset + 8, offset + 12), b"\x1e\xb5\x2f\xfd"))
    with pytest.raises(
        EventFileError, match=rf"packet 1 at byte {offset} \(stream 0, \d+ bytes\): Zstandard frame magic 0xFD2FB51E"
    ):
        open_events(bad)
    r = open_events(bad, lenient=True)
    np.testing.assert_array_equal(r.read_all(), np.concatenate([ev[:4096], ev[8192:]]))
    assert r.skipped == {"bad_packet": 1}
    copy = r._copy
    assert copy is not None and os.path.exists(copy)
    r.close()
    assert not os.path.exists(copy)  # the repaired copy lives only as long as the reader


def test_an_unknown_stream_id_is_skipped_with_its_framing_kept(plain):
    path, ev = plain
    offset, _, size = packets(path)[2]
    bad = damaged(path, "sid.aedat4", lambda d: struct.pack_into("<i", d, offset, 7))
    with pytest.raises(EventFileError, match=rf"packet 2 at byte {offset}: stream id 7 is not in the description"):
        open_events(bad)
    r = open_events(bad, lenient=True)
    np.testing.assert_array_equal(r.read_all(), np.concatenate([ev[:8192], ev[3 * 4096 :]]))
    assert r.skipped == {"bad_packet": 1}


def test_a_corrupt_payload_is_skipped_in_lenient_mode(tmp_path):
    ev = events(12_000)
    path = tmp_path / "l.aedat4"
    write_aedat4(path, ev, ("lz4", 1))
    offset, _, size = packets(path)[1]
    middle = offset + 8 + size // 2
    bad = damaged(path, "lbad.aedat4", lambda d: d.__setitem__(slice(middle, middle + 32), bytes(32)))
    with pytest.raises(
        EventFileError, match=rf"packet 1 at byte {offset} cannot be decoded \(4096 events read before it\)"
    ):
        read_events(bad)
    r = open_events(bad, lenient=True)
    np.testing.assert_array_equal(r.read_all(), np.concatenate([ev[:4096], ev[8192:]]))
    assert r.skipped == {"damaged_packet": 1}


# ------------------------------------------------------------------------------------------ AEDAT4 header


def test_damaged_xml_is_refused_naming_the_byte_offset(plain, capsys):
    path, _ = plain
    data = path.read_bytes()
    at = data.index(b"</node>")
    bad = damaged(path, "xml.aedat4", lambda d: d.__setitem__(at + 2, ord("x")))
    for lenient in (False, True):  # aedat cannot read a file whose description it cannot parse
        with pytest.raises(
            EventFileError, match=r"xml\.aedat4: IOHeader description: damaged XML at byte \d+: mismatched tag"
        ):
            open_events(bad, lenient=lenient)
    code, err = cli_info(bad, capsys, "--lenient")
    assert code == 3 and len(err.splitlines()) == 1
    utf8 = damaged(path, "utf8.aedat4", lambda d: d.__setitem__(data.index(b"<dv") + 5, 0xFF))
    with pytest.raises(EventFileError, match=rf"byte {data.index(b'<dv') + 5} is not valid UTF-8"):
        open_events(utf8)


def test_a_damaged_ioheader_is_refused_naming_the_byte(plain):
    path, _ = plain
    # The IOHeader flatbuffer's root offset, pointed outside the buffer: aedat reads it unchecked.
    bad = damaged(path, "root.aedat4", lambda d: struct.pack_into("<I", d, 18, 0x7FFFFF00))
    with pytest.raises(EventFileError, match=r"root\.aedat4: damaged IOHeader at byte \d+: root table"):
        open_events(bad, lenient=True)
    big = damaged(path, "length.aedat4", lambda d: struct.pack_into("<I", d, 14, 3 << 20))
    with pytest.raises(EventFileError, match=r"truncated IOHeader: its length field at byte 14 declares 3145728 bytes"):
        open_events(big)
    with limits.override(header_bytes=256):
        with pytest.raises(LimitError, match="AEDAT4 IOHeader of .* exceeds the limit header_bytes"):
            open_events(path)


def test_size_x_zero_is_refused_strict_and_inferred_lenient(plain, capsys, caplog):
    path, ev = plain
    data = path.read_bytes()
    at = data.index(b'"sizeX" type="int">346<') + len(b'"sizeX" type="int">')
    bad = damaged(path, "size0.aedat4", lambda d: d.__setitem__(slice(at, at + 3), b"000"))
    with pytest.raises(EventFileError, match=r"size0\.aedat4: IOHeader description: outInfo/0/info/sizeX = 0"):
        open_events(bad)
    code, err = cli_info(bad, capsys)
    assert code == 3 and len(err.splitlines()) == 1 and "sizeX" in err
    with open_events(bad, geometry=(W, H)) as r:  # the user can state it
        np.testing.assert_array_equal(r.read_all(), ev)
    with caplog.at_level("WARNING"), open_events(bad, lenient=True) as r:
        got = r.read_all()
    assert "sizeX = 0" in caplog.text and r.metadata["geometry_source"] == "inferred"
    np.testing.assert_array_equal(got, ev)
    assert r.geometry == (int(ev["x"].max()) + 1, int(ev["y"].max()) + 1)


def test_truncated_file_names_the_packet(plain, capsys):
    path, ev = plain
    data = path.read_bytes()
    offset = packets(path)[2][0]
    cut = path.with_name("cut.aedat4")
    cut.write_bytes(data[: offset + 100])
    with pytest.raises(
        EventFileError,
        match=rf"packet 2 at byte {offset}: stream 0 declares 60960 bytes, 92 are left before the end of the file",
    ):
        open_events(cut)
    r = open_events(cut, lenient=True)
    np.testing.assert_array_equal(r.read_all(), ev[:8192])
    assert r.skipped == {"truncated": 1}
    exact = path.with_name("exact.aedat4")
    exact.write_bytes(data[:offset])  # cut at a packet boundary: the file data table is missing
    with pytest.raises(EventFileError, match=r"ends at byte \d+, before the file data table .* \(truncated\)"):
        open_events(exact)


# ------------------------------------------------------------------------------------------ time order


def evt2_file(path, words) -> None:
    header = b"% evt 2.0\n% format EVT2;width=640;height=480\n% end\n"
    path.write_bytes(header + np.asarray(words, "<u4").tobytes())


def cd(x, y, t_low, p=1) -> int:
    return (p << 28) | (t_low << 22) | (x << 11) | y


@pytest.mark.parametrize("native", [True, False])
def test_evt2_timestamps_going_back_inside_a_time_high_period(tmp_path, native):
    from edgesnn.events.evt2 import open_evt2

    path = tmp_path / "back.raw"
    th = 0x8 << 28 | 100
    evt2_file(path, [th, cd(1, 1, 10), cd(2, 2, 5), cd(3, 3, 12), th, cd(4, 4, 11), cd(5, 5, 20)])
    with pytest.raises(
        EventFileError, match=r"timestamp goes backwards .* at byte offset \d+ \(word 2 of the payload\)"
    ):
        open_evt2(path, native=native).read_all()
    r = open_evt2(path, lenient=True, native=native)
    got = r.read_all()
    assert got["t"].tolist() == [6410, 6412, 6420] and got["x"].tolist() == [1, 3, 5]
    assert r.skipped == {"time_backwards": 2}
    check_invariants(got, (640, 480))


def test_evt21_timestamps_going_back_are_refused(tmp_path):
    header = b"% evt 2.1\n% format EVT21;width=320;height=320\n% end\n"
    th = (0x8 << 28 | 100) << 32
    words = [th, (1 << 60) | (10 << 54) | (3 << 32) | 1, (1 << 60) | (5 << 54) | 1]
    path = tmp_path / "back21.raw"
    path.write_bytes(header + np.asarray(words, "<u8").tobytes())
    with pytest.raises(EventFileError, match="timestamp goes backwards"):
        read_events(path)
    assert read_events(path, lenient=True)["t"].tolist() == [6410]


# ------------------------------------------------------------------------------------------ Prophesee headers


@pytest.mark.parametrize(
    "lines, key",
    [
        (b"% evt 2.0\n% geometry 640x480\n% geometry 1280x720\n", "geometry"),
        (b"% format EVT2;width=640;height=480\n% format EVT3;width=640;height=480\n", "format"),
        (b"% evt 2.0\n% evt 3.0\n", "evt"),
    ],
)
def test_conflicting_header_keys_are_refused_strict_first_wins_lenient(tmp_path, lines, key, capsys, caplog):
    path = tmp_path / "twice.raw"
    path.write_bytes(lines + b"% end\n" + np.asarray([0x8 << 28 | 1, cd(1, 1, 3)], "<u4").tobytes())
    first, second = (ln.split(b" ", 2)[2].decode() for ln in lines.splitlines() if ln.split(b" ")[1] == key.encode())
    pattern = (
        rf"header key '{key}' is given twice with different values: '{first}' \(line \d\) and '{second}' \(line \d\)"
    )
    with pytest.raises(EventFileError, match=pattern):
        open_events(path)
    code, err = cli_info(path, capsys)
    assert code == 3 and len(err.splitlines()) == 1
    with caplog.at_level("WARNING"):
        with open_events(path, lenient=True) as r:
            got = r.read_all()
    assert "using the first" in caplog.text and r.format == "evt2" and len(got) == 1
    if key == "geometry":
        assert r.geometry == (640, 480)


def test_a_repeated_key_with_the_same_value_is_fine(tmp_path):
    path = tmp_path / "same.dat"
    body = np.asarray([[5, 1 | (1 << 14)]], "<u4").tobytes()
    path.write_bytes(b"% Version 2\n% Width 640\n% Width 640\n% Height 480\n" + bytes([0x0C, 8]) + body)
    assert read_events(path)["t"].tolist() == [5]
    path.write_bytes(b"% Version 2\n% Width 640\n% Width 320\n% Height 480\n" + bytes([0x0C, 8]) + body)
    with pytest.raises(
        EventFileError, match=r"'Width' is given twice with different values: '640' \(line 2\) and '320' \(line 3\)"
    ):
        read_events(path)
