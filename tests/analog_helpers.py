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
