"""``python -m firmware_bridges.loihi2 --port N``: serve Lava's Loihi 2 simulation over the edgesnn.v1 DeviceService.

Prints ``listening <port>`` on stdout once serving (port 0 picks a free one), then
serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import sys

from edgesnn.devices.base import Device
from firmware_bridges.loihi2.compile import TAGS
from firmware_bridges.serving import add_server_flags, preload, serve_until_signal


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve, drain on a signal."""
    p = argparse.ArgumentParser(prog="python -m firmware_bridges.loihi2", description=__doc__.split("\n")[0])
    add_server_flags(p, port=50061, max_sessions=4)
    p.add_argument("--tag", choices=TAGS, default="fixed_pt", help="Lava process models (default: fixed_pt)")
    p.add_argument("--model", action="append", help="bundle to preload (repeatable)")
    p.add_argument("--store", metavar="DIR", help="host directory of learned classes (kept across restarts)")
    args = p.parse_args(argv)

    def device() -> Device:
        from firmware_bridges.loihi2.device import LavaDevice

        dev = LavaDevice(tag=args.tag, store=args.store)
        return preload(dev, args.model)

    return serve_until_signal("loihi2", device, args)


if __name__ == "__main__":
    sys.exit(main())
