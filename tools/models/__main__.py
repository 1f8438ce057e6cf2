"""``python -m tools.models NAME [--data DIR] [--work DIR] [--out DIR]``: make one shipped model."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from edgesnn.cli import HelpFormatter

BUILDERS = ("keywords", "glyphs", "detector")
DATA = {"keywords": "data/keywords", "glyphs": "data/glyphs", "detector": "data/detect"}


def main(argv: list[str] | None = None) -> int:
    """Build the named model into edgesnn/data/models (or ``--out``) and print its summary as JSON."""
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter, prog="python -m tools.models", description=__doc__)
    parser.add_argument("name", choices=BUILDERS)
    parser.add_argument("--data", help="dataset folder, generated when empty (default: data/<dataset>)")
    parser.add_argument("--work", help="folder for training runs (default: runs/models/<name>)")
    parser.add_argument("--out", help="folder of the shipped bundle (default: edgesnn/data/models)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    logging.getLogger("jax").setLevel(logging.WARNING)
    data = Path(args.data or DATA[args.name])
    work = Path(args.work or f"runs/models/{args.name}")
    out = Path(args.out) if args.out else None
    if args.name == "keywords":
        from tools.models.keywords import build
    elif args.name == "glyphs":
        from tools.models.glyphs import build
    else:
        from tools.models.detector import build
    print(json.dumps(build(data, work, out, quiet=args.quiet), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
