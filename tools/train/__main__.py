"""Command line: ``python -m tools.train CONFIG.json [--out DIR] [--resume] [--set KEY=VALUE ...] [--quiet]``.

Prints the run's JSON summary (accuracy, throughput, peak memory) on stdout;
user errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from edgesnn.cli import HelpFormatter
from edgesnn.errors import EdgeSNNError


def main(argv: list[str] | None = None) -> int:
    """Run one experiment; return the process exit status."""
    parser = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="python -m tools.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument("config", help="experiment configuration (JSON)")
    parser.add_argument("--out", help="output folder (default: runs/<config name>)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a configuration key, e.g. epochs=2 or model/hidden=[64] (JSON; repeatable)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in the output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(name)s: %(message)s")
    try:
        from tools.train.config import load_config
        from tools.train.trainer import train

        cfg = load_config(args.config, args.set or ())
        out = args.out or os.path.join("runs", cfg.name)
        summary = train(cfg, out, resume=args.resume, quiet=args.quiet)
    except EdgeSNNError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        print(f"error: {exc.name} is missing; install the train extra: pip install 'edgesnn[train]'", file=sys.stderr)
        return 2
    brief = {k: v for k, v in summary.items() if k != "history"}
    print(json.dumps(brief, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
