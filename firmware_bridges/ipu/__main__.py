"""``python -m firmware_bridges.ipu --port N``: serve simulated Graphcore IPUs over the edgesnn.v1 DeviceService.

Prints ``listening <port>`` on stdout once serving (port 0 picks a free one), then serves
until SIGTERM/SIGINT. Every loaded model's plan (tiles, memory per tile, predicted time per
step) is logged on stderr and sent in Capabilities.model_figures.
"""

from __future__ import annotations

import argparse
import sys

from edgesnn.devices.base import Device
from firmware_bridges.serving import add_server_flags, preload, serve_until_signal


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve, drain on a signal."""
    p = argparse.ArgumentParser(prog="python -m firmware_bridges.ipu", description=__doc__.split("\n")[0])
    add_server_flags(p, port=50062, max_sessions=4)
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

    def device() -> Device:
        from firmware_bridges.ipu.compiler import CompileOptions
        from firmware_bridges.ipu.device import IPUDevice

        options = CompileOptions(max_activity=args.max_activity, input_capacity=args.input_capacity,
                                 exchange=args.exchange, ipus=args.ipus)  # fmt: skip
        return preload(IPUDevice(options=options), args.model)  # each model's plan is logged

    return serve_until_signal("ipu", device, args)


if __name__ == "__main__":
    sys.exit(main())
