"""Start the IPU bridge as its own process from Python, as a client of it would: ``with bridge() as address``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator

from edgesnn.errors import DeviceError

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@contextlib.contextmanager
def bridge(*args: str, timeout_s: float = 60.0) -> Iterator[str]:
    """Run ``python -m firmware_bridges.ipu --port 0 ARGS``; yield "127.0.0.1:<port>"; stop it with SIGTERM."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "firmware_bridges.ipu", "--port", "0", *args], cwd=_ROOT,
                                stdout=subprocess.PIPE, stderr=err, text=True)  # fmt: skip
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line.startswith("listening "):
                proc.wait(timeout_s)
                err.seek(0)
                raise DeviceError(f"the IPU bridge did not start: {err.read().strip()[-500:]}", path="ipu")
            yield f"127.0.0.1:{int(line.split()[1])}"
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout:
                proc.stdout.close()
