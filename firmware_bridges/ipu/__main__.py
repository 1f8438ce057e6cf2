"""``python -m firmware_bridges.ipu --port N``: serve simulated Graphcore IPUs over the edgesnn.v1 DeviceService.

Prints ``listening <port>`` on stdout once serving (port 0 picks a free one), then serves
until SIGTERM/SIGINT. Every loaded model's plan (tiles, memory per tile, predicted time per
step) is logged on stderr, since the wire's Capabilities message has no field for it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from edgesnn.errors import EdgeSNNError


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve, drain on a signal."""
    p = argparse.ArgumentParser(prog="python -m firmware_bridges.ipu", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50062)
    p.add_argument("--token", default=None, help="bearer token clients must send (required off loopback)")
    p.add_argument("--max-sessions", type=int, default=4)
    p.add_argument("--model", action="append", help="bundle to preload (repeatable)")
    p.add_argument("--ipus", type=int, default=1, help="IPUs the programs may use (default: 1)")
    p.add_argument(
        "--max-activity",
        type=float,
        default=1.0,
        help="spike-buffer capacity, a fraction of each population (default 1: nothing dropped)",
    )
    p.add_argument(
        "--input-capacity",
        type=int,
        default=None,
        help="send inputs as spike ids, this many per step and sample (default: as values)",
    )
    p.add_argument("--exchange", choices=("sparse", "dense"), default="sparse")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    from edgesnn.serve import create_server
    from firmware_bridges.ipu.compiler import CompileOptions
    from firmware_bridges.ipu.device import IPUDevice

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    try:
        options = CompileOptions(max_activity=args.max_activity, input_capacity=args.input_capacity,
                                 exchange=args.exchange, ipus=args.ipus)  # fmt: skip
        device = IPUDevice(options=options)
        for path in args.model or ():
            device.load_model(path)  # logs its plan
        server, port = create_server(device, f"{args.host}:{args.port}", token=args.token,
                                     max_sessions=args.max_sessions)  # fmt: skip
    except (EdgeSNNError, OSError) as exc:
        print(f"ipu bridge: {exc}", file=sys.stderr)
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
