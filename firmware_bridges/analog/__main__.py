"""``python -m firmware_bridges.analog``: serve a gain-cell board (or its emulator) over the edgesnn.v1 DeviceService.

Without ``--serial`` the bridge starts the board emulator on a pseudo-terminal and talks
to it through pyserial as to a board on USB; capabilities then say ``simulated: true``.
Prints ``listening <port>`` on stdout once serving (port 0 picks a free one), then serves
until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import subprocess
import sys
import threading

from edgesnn.errors import EdgeSNNError


def start_emulator(extra: str = "") -> tuple[subprocess.Popen, str]:
    """Start the emulator process; return it and the path of its serial port."""
    cmd = [sys.executable, "-m", "firmware_bridges.analog.emulator", *shlex.split(extra)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("tty "):
        proc.kill()
        raise OSError(f"the board emulator did not start (it said {line!r})")
    return proc, line.split(maxsplit=1)[1].strip()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, open the link, serve, drain on a signal."""
    p = argparse.ArgumentParser(prog="python -m firmware_bridges.analog", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50071)
    p.add_argument("--serial", default=None, help="the board's serial port or pyserial URL (default: the emulator)")
    p.add_argument("--baudrate", type=int, default=2_000_000)
    p.add_argument("--timeout-s", type=float, default=0.5, help="seconds to wait for each reply (default 0.5)")
    p.add_argument("--tries", type=int, default=4, help="times a request is sent before giving up (default 4)")
    p.add_argument("--emulator-args", default="", help="options for the emulator (fault injection), one string")
    p.add_argument("--token", default=None, help="bearer token clients must send (required off loopback)")
    p.add_argument("--max-sessions", type=int, default=8)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    from edgesnn.serve import create_server
    from firmware_bridges.analog.device import AnalogDevice
    from firmware_bridges.analog.link import BoardLink, open_port

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    emulator = None
    try:
        url = args.serial
        if url is None:
            emulator, url = start_emulator(args.emulator_args)
        link = BoardLink(open_port(url, baudrate=args.baudrate), timeout_s=args.timeout_s, tries=args.tries)
        device = AnalogDevice(link)
        server, port = create_server(device, f"{args.host}:{args.port}", token=args.token,
                                     max_sessions=args.max_sessions)  # fmt: skip
    except (EdgeSNNError, OSError) as exc:
        print(f"analog bridge: {exc}", file=sys.stderr)
        if emulator is not None:
            emulator.terminate()
        return 2
    print(f"listening {port}", flush=True)
    try:
        stop.wait()
    finally:
        server.drain(2.0)
        device.close()
        if emulator is not None:
            emulator.terminate()
            emulator.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
