"""``python -m firmware_bridges.loihi2 --port N``: serve Lava's Loihi 2 simulation over the edgesnn.v1 DeviceService.

Prints ``listening <port>`` on stdout once serving (port 0 picks a free one), then
serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from edgesnn.errors import EdgeSNNError
from firmware_bridges.loihi2.compile import TAGS


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve, drain on a signal."""
    p = argparse.ArgumentParser(prog="python -m firmware_bridges.loihi2", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50061)
    p.add_argument("--tag", choices=TAGS, default="fixed_pt", help="Lava process models (default: fixed_pt)")
    p.add_argument("--token", default=None, help="bearer token clients must send (required off loopback)")
    p.add_argument("--max-sessions", type=int, default=4)
    p.add_argument("--model", action="append", help="bundle to preload (repeatable)")
    p.add_argument("--store", metavar="DIR", help="host directory of learned classes (kept across restarts)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    from edgesnn.serve import create_server
    from firmware_bridges.loihi2.device import LavaDevice

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    device = LavaDevice(tag=args.tag, store=args.store)
    try:
        for path in args.model or ():
            device.load_model(path)
        server, port = create_server(device, f"{args.host}:{args.port}", token=args.token,
                                     max_sessions=args.max_sessions)  # fmt: skip
    except (EdgeSNNError, OSError) as exc:
        print(f"loihi2 bridge: {exc}", file=sys.stderr)
        device.close()
        return 2
    print(f"listening {port}", flush=True)
    try:
        stop.wait()
    finally:
        server.drain(2.0)
        device.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
