"""The shared command line of the dataset generators: generate, write the splits, print a JSON summary."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edgesnn.errors import EdgeSNNError


def generator_main(
    prog: str,
    description: str,
    sizes: Mapping[str, Any],
    generate: Callable[..., dict[str, Any]],
    write: Callable[[dict[str, Any], str], list[Path]],
    describe: Callable[[Any, str, Any], dict[str, Any]],
    argv: Sequence[str] | None = None,
    extra: Callable[[Any], dict[str, Any]] | None = None,
) -> int:
    """Parse the shared options, generate, write, and print a summary (``describe(config, name, split)`` per split)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--out", required=True, help="output directory (train.npz, val.npz, test.npz)")
    parser.add_argument("--size", choices=sorted(sizes), default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    config = sizes[args.size]
    try:
        t0 = time.perf_counter()
        splits = generate(config, seed=args.seed, workers=args.workers, quiet=args.quiet)
        seconds = time.perf_counter() - t0
        paths = write(splits, args.out)
    except EdgeSNNError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output folder that cannot be made or written
        print(f"error: {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    summary = {
        "size": args.size,
        "seed": args.seed,
        "workers": args.workers,
        "seconds": round(seconds, 1),
        "config_hash": config.config_hash(),
        **(extra(config) if extra is not None else {}),
        "splits": {
            name: {**describe(config, name, s), "bytes": p.stat().st_size}
            for (name, s), p in zip(splits.items(), paths, strict=True)
        },
    }
    print(json.dumps(summary, indent=2))
    return 0
