"""Cost of one token through plasticity attention (float, 8-bit, Loihi integers) beside softmax attention.

Prints one JSON document: per configuration, the median (and min, max) over ``--repeats``
of the µs per token of ``session.run`` over ``--tokens`` tokens from reset, batch 1, and the
same for :class:`~edgesnn.graph.SlidingWindowAttention` with ``window = slots`` (the float
softmax K/V cache of the same size), measured in the same run, interleaved.

    python tools/bench/plastic_attention.py [--d 64] [--heads 4] [--slots 32] [--tokens 64] [--repeats 21]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tools.bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from edgesnn.cli import HelpFormatter
from edgesnn.graph import Graph, Input, Output, PlasticAttention, SlidingWindowAttention
from edgesnn.model import Model

SEED = 2024


def _model(layer: object, d: int) -> Model:
    return Model(Graph({"x": Input((d,)), "attn": layer, "y": Output((d,))}, [("x", "attn"), ("attn", "y")]), 1e-3)


def configurations(d: int, heads: int, slots: int) -> dict[str, tuple[Model, str]]:
    """Name -> (model, numerics) of every configuration measured."""
    rng = np.random.default_rng(SEED)
    w_qkv, b_qkv = 0.3 * rng.standard_normal((3 * d, d)), np.zeros(3 * d)
    w_out, b_out = 0.3 * rng.standard_normal((d, d)), np.zeros(d)
    plastic = dict(w_qkv=w_qkv, b_qkv=b_qkv, w_out=w_out, b_out=b_out, w_gate=0.1 * rng.standard_normal(d),
                   b_gate=0.8, num_heads=heads, slots=slots)  # fmt: skip
    return {
        "plastic_float": (_model(PlasticAttention(**plastic), d), "float"),
        "plastic_8bit": (_model(PlasticAttention(**plastic, weight_bits=8), d), "float"),
        "plastic_loihi": (_model(PlasticAttention(**plastic), d), "loihi"),
        "softmax_window": (
            _model(SlidingWindowAttention(w_qkv, b_qkv, w_out, b_out, num_heads=heads, window=slots), d),
            "float",
        ),  # fmt: skip
    }


def main(argv: list[str] | None = None) -> int:
    """Measure and print the JSON document."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--d", type=int, default=64, help="width of the token vectors")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--slots", type=int, default=32, help="plastic slots, and the softmax window")
    p.add_argument("--tokens", type=int, default=64, help="tokens per timed run")
    p.add_argument("--repeats", type=int, default=21)
    p.add_argument("--out", type=Path, help="also write the JSON here")
    args = p.parse_args(argv)
    configs = configurations(args.d, args.heads, args.slots)
    xs = np.random.default_rng(SEED + 1).standard_normal((args.tokens, 1, args.d)).astype(np.float32)
    sessions = {name: model.session(numerics=numerics) for name, (model, numerics) in configs.items()}
    times: dict[str, list[float]] = {name: [] for name in configs}
    for r in range(args.repeats + 2):
        for name, s in sessions.items():  # interleaved, so drifts in the machine's speed hit all alike
            s.reset()
            t0 = time.perf_counter()
            s.run(xs)
            if r >= 2:  # two warm-up rounds
                times[name].append((time.perf_counter() - t0) * 1e6 / args.tokens)
    doc = {
        "what": "µs per token, batch 1, session.run from reset",
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "d": args.d, "heads": args.heads, "slots": args.slots, "tokens": args.tokens, "repeats": args.repeats,
        "us_per_token": {n: {"median": statistics.median(v), "min": min(v), "max": max(v)} for n, v in times.items()},
    }  # fmt: skip
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
