"""The shared command line of the dataset generators: generate, write the splits, print a JSON summary."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edgesnn.cli import HelpFormatter
from edgesnn.errors import EdgeSNNError, OptionError


def override_fields(config: Any, items: Sequence[str]) -> Any:
    """``config`` (a frozen dataclass) with each ``FIELD=VALUE`` replaced; VALUE is JSON, lists become tuples."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or name.strip() not in fields:
            known = ", ".join(sorted(fields))
            raise OptionError(f"expected FIELD=VALUE with FIELD one of {known}, got {item!r}", path="--set")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OptionError(f"{name.strip()}: {text!r} is not a JSON value", path="--set") from exc
        if isinstance(value, list) and isinstance(getattr(config, name.strip()), tuple):
            value = tuple(value)
        changes[name.strip()] = value
    try:
        return dataclasses.replace(config, **changes)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, EdgeSNNError):
            raise
        raise OptionError(str(exc), path="--set") from exc


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
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter, prog=prog, description=description)
    parser.add_argument("--out", required=True, help="output directory (train.npz, val.npz, test.npz)")
    parser.add_argument("--size", choices=sorted(sizes), default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--set",
        action="append",
        metavar="FIELD=VALUE",
        help="change one field of the size's configuration, e.g. speakers=[2,2,3] (JSON; repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        config = override_fields(sizes[args.size], args.set or ())
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
        **({"set": list(args.set)} if args.set else {}),
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
