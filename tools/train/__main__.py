"""Command line: ``python -m tools.train CONFIG.json [--out DIR] [--resume] [--set KEY=VALUE ...] [--quiet]
[--coordinator HOST:PORT --num-processes N --process-id I]``.

Prints the run's JSON summary (accuracy, throughput, peak memory) on stdout;
user errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator

from edgesnn.cli import HelpFormatter
from edgesnn.errors import EdgeSNNError


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what native code writes to file descriptor 1 to stderr for the duration."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


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
        metavar="KEY=VALUE",
        help="override a configuration key, e.g. epochs=2 or model/hidden=[64] (JSON; repeatable)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in the output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    g = parser.add_argument_group("data-parallel training over processes (default: $EDGESNN_COORDINATOR, ...)")
    g.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="process 0's address, the same for every process; auto: from SLURM, Open MPI or Kubernetes",
    )
    g.add_argument("--num-processes", type=int, metavar="N", help="processes in the run")
    g.add_argument("--process-id", type=int, metavar="I", help="this process's rank, 0 .. N-1 (0 writes the files)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(name)s: %(message)s")
    from tools.train.allocator import keep_freed_memory

    keep_freed_memory()  # before jax's first computation starts its threads
    try:
        from tools.train.config import load_config
        from tools.train.distributed import cluster_from, initialize
        from tools.train.trainer import train

        cfg = load_config(args.config, args.set or ())
        cluster = cluster_from(args.coordinator, args.num_processes, args.process_id)
        out = args.out or os.path.join("runs", cfg.name)
        if cluster is None:
            summary = train(cfg, out, resume=args.resume, quiet=args.quiet)
        else:
            # gloo prints its connections on file descriptor 1: keep stdout for the summary alone
            with _stdout_to_stderr():
                initialize(cluster)
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
