"""The board link: CRC32 frames, resynchronisation, retries, NAKs, restarts and stalls, against a board on a pty."""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterator

import msgpack
import numpy as np
import pytest

pytest.importorskip("serial")

from edgesnn.errors import CapacityError, DeviceError  # noqa: E402
from firmware_bridges.analog.board import Board  # noqa: E402
from firmware_bridges.analog.frames import MAGIC, FrameError, FrameReader, FrameTimeout, encode  # noqa: E402
from firmware_bridges.analog.link import BoardLink, BoardRestarted, open_port  # noqa: E402
from tests.analog_helpers import board_on_pty as on_pty  # noqa: E402
from tests.analog_helpers import emulator_faults  # noqa: E402


def reader_of(data: bytes) -> FrameReader:
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]  # arrives in pieces, as from a serial port
    return FrameReader(lambda n: chunks.pop(0) if chunks else b"")


def soon() -> float:
    return time.monotonic() + 0.2


def test_frames_round_trip_through_noise_and_pieces() -> None:
    frames = [encode({"seq": i, "cmd": "write", "k": bytes(range(i))}) for i in range(1, 4)]
    r = reader_of(b"\x00\xa5junk" + frames[0] + b"\x5a\xa5" + frames[1] + frames[2])
    assert [r.next(soon())["seq"] for _ in range(3)] == [1, 2, 3]
    assert r.skipped == 8


def test_a_flipped_byte_fails_the_crc_and_the_next_frame_still_arrives() -> None:
    bad = bytearray(encode({"seq": 1, "cmd": "caps"}))
    bad[9] ^= 0x01
    r = reader_of(bytes(bad) + encode({"seq": 2, "cmd": "caps"}))
    with pytest.raises(FrameError, match="CRC32") as err:
        r.next(soon())
    assert err.value.kind == "crc"
    assert r.next(soon())["seq"] == 2


def test_a_damaged_length_is_refused_before_reading_the_body_and_resynchronised() -> None:
    huge = MAGIC + struct.pack("<I", 1 << 30)
    r = reader_of(huge + encode({"seq": 7, "cmd": "caps"}))
    with pytest.raises(FrameError, match="declares 1073741824 bytes") as err:
        r.next(soon())
    assert err.value.kind == "length"
    assert r.next(soon())["seq"] == 7


def test_a_cut_frame_times_out_and_a_bad_payload_is_named() -> None:
    with pytest.raises(FrameTimeout):
        reader_of(encode({"seq": 1, "cmd": "caps"})[:-3]).next(time.monotonic() + 0.05)
    body = msgpack.packb([1, 2])
    head = MAGIC + struct.pack("<I", len(body))
    frame = head + body + struct.pack("<I", zlib.crc32(head[2:] + body))
    with pytest.raises(FrameError, match="integer seq") as err:
        reader_of(frame).next(soon())
    assert err.value.kind == "payload"


# -- the link against the board, on a pty in this process --------------------------------------------------------
def faults(**kw) -> object:
    return emulator_faults(**kw)


class Port:
    """A pyserial port that can damage the next frame it writes."""

    def __init__(self, url: str) -> None:
        self._port = open_port(url)
        self.flip_next = False

    def write(self, data: bytes) -> None:
        if self.flip_next:
            self.flip_next = False
            data = data[:8] + bytes([data[8] ^ 0x04]) + data[9:]  # a payload byte: its CRC fails on the board
        self._port.write(data)

    def read(self, n: int) -> bytes:
        return self._port.read(n)

    def close(self) -> None:
        self._port.close()


@pytest.fixture
def board_on_pty(request: pytest.FixtureRequest) -> Iterator[tuple[Board, Port]]:
    with on_pty(getattr(request, "param", None), max_cells=10_000) as (board, url):
        port = Port(url)
        try:
            yield board, port
        finally:
            port.close()


CONFIG = {"streams": 1, "heads": 1, "head_dim": 2, "window": 4, "array_width": 2, "q_levels": 16, "kv_levels": 8,
          "out_levels": 32, "q_max": 1.0, "kv_max_v": 0.9, "out_max": 1.0, "score_saturation": 80.0,
          "out_saturation": 40.0, "decay_per_step": 1.6e-4, "offset_v": 0.45, "poly": [0.0, 19.3],
          "scalers": {f"{k}_{p}": [1.0 if p == "scale" else 0.0] for k in ("q", "k", "v", "out")
                      for p in ("scale", "offset")}}  # fmt: skip
VEC = np.array([0.3, 0.6], np.float32).tobytes()


@pytest.mark.parametrize("board_on_pty", [faults(drop_at="3", flip_at="4")], indirect=True)
def test_lost_and_corrupted_replies_are_asked_again_and_run_once(board_on_pty) -> None:
    board, port = board_on_pty
    link = BoardLink(port, timeout_s=0.2)
    link.request("load", layer=0, config=CONFIG)
    link.request("write", layer=0, k=VEC, v=VEC)
    assert link.request("write", layer=0, k=VEC, v=VEC)["slot"] == 1  # its reply lost (3), then damaged (4)
    assert link.faults == {"timeout": 1, "crc": 1}
    assert board.layers[0].count == 2  # the repeats were answered from the last reply, not written again


def test_a_damaged_request_is_refused_by_the_board_and_sent_again(board_on_pty) -> None:
    _, port = board_on_pty
    link = BoardLink(port, timeout_s=0.2)
    port.flip_next = True
    assert link.request("caps")["simulated"] is True
    assert link.faults == {"nak": 1}


@pytest.mark.parametrize("board_on_pty", [faults(restart_at="3")], indirect=True)
def test_a_restarted_board_is_noticed_by_its_boot_id(board_on_pty) -> None:
    _, port = board_on_pty
    link = BoardLink(port, timeout_s=0.2)
    link.request("load", layer=0, config=CONFIG)
    link.request("write", layer=0, k=VEC, v=VEC)
    with pytest.raises(BoardRestarted, match="restarted"):
        link.request("query", layer=0, q=VEC)


@pytest.mark.parametrize("board_on_pty", [faults(stall_at=2, stall_s=5.0)], indirect=True)
def test_a_stalled_board_is_a_device_error_after_every_try(board_on_pty) -> None:
    _, port = board_on_pty
    link = BoardLink(port, timeout_s=0.1, tries=3)
    link.request("caps")
    start = time.monotonic()
    with pytest.raises(DeviceError, match=r"did not answer caps \(seq \d+\) after 3 tries: no reply within 0.1 s"):
        link.request("caps")
    assert time.monotonic() - start < 1.0
    assert link.faults == {"timeout": 3}


def test_the_board_refuses_bad_commands_by_name(board_on_pty) -> None:
    board, port = board_on_pty
    board.max_cells = 4
    link = BoardLink(port, timeout_s=0.2)
    with pytest.raises(CapacityError, match="out of cells: load: 8 cells asked, 4 free"):
        link.request("load", layer=0, config=CONFIG)
    with pytest.raises(DeviceError, match="head_dim must be a positive integer"):
        link.request("load", layer=0, config={**CONFIG, "head_dim": 0})
    board.max_cells = 100
    link.request("load", layer=0, config=CONFIG)
    with pytest.raises(DeviceError, match="k must be 8 bytes of <f4, got 4"):
        link.request("write", layer=0, k=b"1234", v=VEC)
    with pytest.raises(DeviceError, match="unknown command .fly.; known: caps, load"):
        link.request("fly")
    with pytest.raises(BoardRestarted, match="no layer 5"):  # a layer the board does not hold: lost in a restart
        link.request("query", layer=5, q=VEC)


def test_a_request_too_large_for_the_link_is_a_capacity_error(board_on_pty, monkeypatch) -> None:
    from firmware_bridges.analog import frames

    _, port = board_on_pty
    monkeypatch.setattr(frames, "MAX_FRAME_BYTES", 64)
    with pytest.raises(CapacityError, match="write does not fit the board link: a payload of"):
        BoardLink(port).request("write", layer=0, k=bytes(100), v=bytes(100))


def test_a_session_the_board_has_no_room_for_is_refused_and_frees_what_it_took() -> None:
    from firmware_bridges.analog.device import AnalogDevice
    from tests.analog_helpers import bundle
    from tests.transformer_helpers import tiny_model

    # each layer of the tiny model needs 1 x 2 heads x 6 cells x 8 = 96 cells: the second does not fit
    with on_pty(max_cells=150) as (board, url):
        dev = AnalogDevice(BoardLink(open_port(url), timeout_s=0.2))
        with pytest.raises(CapacityError, match="out of cells: load: 96 cells asked, 54 free"):
            dev.open_session(dev.load_model(bundle(tiny_model(window=6))))
        assert board.layers == {}
        dev.close()
