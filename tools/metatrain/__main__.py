"""Command line: ``python -m tools.metatrain CONFIG.json --out DIR [--data FOLDER] [--set KEY=VALUE ...] [--quiet]``.

Prints the run's JSON summary (without per-iteration history) on stdout; user
errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys

from edgesnn.cli import HelpFormatter
from edgesnn.errors import EdgeSNNError


def main(argv: list[str] | None = None) -> int:
    """Run one meta-training configuration; return the process exit status."""
    parser = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="python -m tools.metatrain", description=__doc__.splitlines()[0]
    )
    parser.add_argument("config", help="meta-training configuration (JSON)")
    parser.add_argument("--out", required=True, help="output folder (a pre-trained feature network in it is reused)")
    parser.add_argument("--data", help="dataset folder overriding data/path of the configuration")
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a configuration key, e.g. epochs=2 or model/hidden=[64] (JSON; repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-evaluation lines")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(name)s: %(message)s")
    try:
        from tools.metatrain.config import load_config
        from tools.metatrain.run import run

        cfg = load_config(args.config, args.set or ())
        if args.data:
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=args.data))
        summary = run(cfg, args.out, quiet=args.quiet)
    except EdgeSNNError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        print(f"error: {exc.name} is missing; install the train extra: pip install 'edgesnn[train]'", file=sys.stderr)
        return 2
    brief = {k: v for k, v in summary.items() if k not in ("grid", "classes")}
    brief["grid"] = [{k: v for k, v in g.items() if k != "history"} for g in summary["grid"]]
    print(json.dumps(brief, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
