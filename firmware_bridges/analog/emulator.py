"""``python -m firmware_bridges.analog.emulator``: an emulated gain-cell board behind a pseudo-terminal.

Opens a pty pair, prints ``tty <path>`` (the end a host opens with pyserial, as it would
``/dev/ttyACM0``), and answers frames on it with :class:`~firmware_bridges.analog.board.Board`
until SIGTERM. Faults for tests and drills, counted in request frames received (1-based,
retries included): ``--drop-at`` loses the replies to those requests, ``--flip-at`` flips
one byte of them, ``--restart-at`` power-cycles the board before handling them, and
``--stall-at N --stall-s S`` leaves requests unanswered for S seconds from the N-th on.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import threading
import time
import tty

from firmware_bridges.analog.board import Board
from firmware_bridges.analog.frames import FrameError, FrameReader, FrameTimeout, encode


def _ints(text: str) -> set[int]:
    return {int(t) for t in text.split(",") if t.strip()} if text else set()


class Faults:
    """Which replies to lose, corrupt or withhold, and when to restart."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.drop, self.flip, self.restart = _ints(args.drop_at), _ints(args.flip_at), _ints(args.restart_at)
        self.stall_at, self.stall_s = args.stall_at, args.stall_s
        self.stall_until = 0.0


def serve(fd: int, board: Board, faults: Faults, stop: threading.Event | None = None) -> None:
    """Answer requests on ``fd`` (the pty's board end) until the process is told to stop, or ``stop`` is set."""

    def read(n: int) -> bytes:
        ready, _, _ = select.select([fd], [], [], 0.05)
        return os.read(fd, max(n, 4096)) if ready else b""

    reader = FrameReader(read)
    received = 0
    while stop is None or not stop.is_set():
        try:
            payload = reader.next(time.monotonic() + 0.1)
        except FrameTimeout:
            continue
        except FrameError as exc:
            os.write(fd, encode(board.nak(exc.kind)))
            continue
        received += 1
        if received == faults.stall_at:
            faults.stall_until = time.monotonic() + faults.stall_s
        if time.monotonic() < faults.stall_until:
            continue
        if received in faults.restart:
            board.restart()
        frame = bytearray(encode(board.handle(payload)))
        if received in faults.drop:
            continue
        if received in faults.flip:
            frame[len(frame) // 2] ^= 0x10
        os.write(fd, bytes(frame))


def main(argv: list[str] | None = None) -> int:
    """Open the pty, announce it, serve."""
    p = argparse.ArgumentParser(prog="python -m firmware_bridges.analog.emulator", description=__doc__.split("\n")[0])
    p.add_argument("--max-cells", type=int, default=1 << 24)
    p.add_argument("--drop-at", default="")
    p.add_argument("--flip-at", default="")
    p.add_argument("--restart-at", default="")
    p.add_argument("--stall-at", type=int, default=0)
    p.add_argument("--stall-s", type=float, default=0.0)
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    board_end, host_end = os.openpty()
    tty.setraw(host_end)  # bytes pass as they are: no echo, no line editing, no CR/LF mapping
    print(f"tty {os.ttyname(host_end)}", flush=True)
    try:
        serve(board_end, Board(max_cells=args.max_cells), Faults(args))
    except OSError:  # the host end closed for good
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
