"""``python -m firmware_bridges.analog``: serve a gain-cell board (or its emulator) over the edgesnn.v1 DeviceService.

Without ``--serial`` the bridge starts the board emulator on a pseudo-terminal and talks
to it through pyserial as to a board on USB; capabilities then say ``simulated: true``.
Prints ``listening <port>`` on stdout once serving (port 0 picks a free one), then serves
until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys

from edgesnn.devices.base import Device
from firmware_bridges.serving import add_server_flags, serve_until_signal


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
    add_server_flags(p, port=50071, max_sessions=8)
    p.add_argument("--serial", default=None, help="the board's serial port or pyserial URL (default: the emulator)")
    p.add_argument("--baudrate", type=int, default=2_000_000)
    p.add_argument("--timeout-s", type=float, default=0.5, help="seconds to wait for each reply (default 0.5)")
    p.add_argument("--tries", type=int, default=4, help="times a request is sent before giving up (default 4)")
    p.add_argument("--emulator-args", default="", help="options for the emulator (fault injection), one string")
    args = p.parse_args(argv)
    emulator: list[subprocess.Popen] = []

    def device() -> Device:
        from firmware_bridges.analog.device import AnalogDevice
        from firmware_bridges.analog.link import BoardLink, open_port

        url = args.serial
        if url is None:
            proc, url = start_emulator(args.emulator_args)
            emulator.append(proc)
        link = BoardLink(open_port(url, baudrate=args.baudrate), timeout_s=args.timeout_s, tries=args.tries)
        return AnalogDevice(link)

    def stop_emulator() -> None:
        for proc in emulator:
            proc.terminate()
            proc.wait(10)

    return serve_until_signal("analog", device, args, stop_emulator)


if __name__ == "__main__":
    sys.exit(main())
