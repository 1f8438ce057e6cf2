"""``python -m tools.train_detect``: train one detector variant on a generated dataset and export its bundle."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys

import numpy as np

from edgesnn.cli import HelpFormatter
from edgesnn.detect import write_detector
from tools.datasets.detection import load_split
from tools.train_detect.arch import VARIANTS, preset
from tools.train_detect.export import build_detector
from tools.train_detect.train import TrainConfig, train


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, train, write ``--out`` (.esnn) and ``--out`` + ``.npz`` (the raw parameters)."""
    parser = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="python -m tools.train_detect", description=__doc__
    )
    parser.add_argument("--data", required=True, help="dataset directory (python -m tools.datasets.detection)")
    parser.add_argument("--variant", choices=VARIANTS, default="hybrid")
    parser.add_argument("--out", required=True, help="output .esnn bundle")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--batch", type=int, default=TrainConfig.batch)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup-windows", type=int, default=TrainConfig.warmup_windows,
                        help="windows the SNN runs before the labelled one (0: from rest at its start)")  # fmt: skip
    parser.add_argument("--init", help="start from these parameters (.npz written by an earlier run)")
    parser.add_argument("--score-threshold", type=float, default=0.05)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    logging.getLogger("jax").setLevel(logging.WARNING)
    spec = preset(args.variant)
    cfg = TrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                      warmup_windows=args.warmup_windows)  # fmt: skip
    init = dict(np.load(args.init)) if args.init else None
    params, history = train(load_split(args.data, "train"), spec, cfg, init)
    np.savez(args.out + ".npz", **params)
    detector = build_detector(params, spec, score_threshold=args.score_threshold)
    write_detector(detector, args.out)
    summary = {"out": args.out, "variant": args.variant, "train": dataclasses.asdict(cfg),
               "final_loss": float(np.mean(history[-20:])), "parameters": detector.parameters()}  # fmt: skip
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
