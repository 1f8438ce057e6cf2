"""Starting the analog bridge process (with its board emulator) for the tests."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from edgesnn.bundle import write_bundle
from edgesnn.model import Model

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Bridge:
    """A running bridge: its address, and its log so far."""

    address: str
    log_file: IO[str]

    def log(self) -> str:
        """What the bridge has logged (stderr) so far."""
        self.log_file.seek(0)
        return self.log_file.read()


@contextlib.contextmanager
def analog_bridge(*args: str) -> Iterator[Bridge]:
    """``python -m firmware_bridges.analog --port 0 *args``; yields it running, stops it afterwards."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([sys.executable, "-m", "firmware_bridges.analog", "--port", "0", *args], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=log, text=True)  # fmt: skip
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            assert line.startswith("listening "), f"bridge did not start: {line!r}"
            yield Bridge(f"127.0.0.1:{int(line.split()[1])}", log)
        finally:
            proc.terminate()
            proc.wait(30)
            if proc.stdout:
                proc.stdout.close()


def bundle(model: Model) -> bytes:
    """The .esnn bytes of ``model``."""
    buf = io.BytesIO()
    write_bundle(model, buf)
    return buf.getvalue()


def emulator_faults(**kw: object) -> object:
    """The emulator's fault plan (see firmware_bridges.analog.emulator), nothing by default."""
    import argparse

    from firmware_bridges.analog.emulator import Faults

    args = {"drop_at": "", "flip_at": "", "restart_at": "", "stall_at": 0, "stall_s": 0.0}
    return Faults(argparse.Namespace(**{**args, **kw}))


@contextlib.contextmanager
def board_on_pty(faults: object = None, **board: object) -> Iterator[tuple[object, str]]:
    """A Board answering on a pty from a thread of this process; yields it and the tty path a host opens."""
    import os
    import threading
    import tty

    from firmware_bridges.analog.board import Board
    from firmware_bridges.analog.emulator import serve

    dev = Board(**board)  # type: ignore[arg-type]
    board_end, host_end = os.openpty()
    tty.setraw(host_end)
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(board_end, dev, faults or emulator_faults(), stop), daemon=True)
    thread.start()
    try:
        yield dev, os.ttyname(host_end)
    finally:
        stop.set()
        thread.join(5)
        os.close(board_end)
        os.close(host_end)
