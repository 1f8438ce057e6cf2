"""Cost of learning one class from one example, beyond the forward pass (issue 5: <= 5 ms on this CPU).

Prints one JSON document: per configuration, medians over the repeats of what
``session.learn`` reports: ``forward_us`` (the example through the private
batch-1 copy of the graph), ``rule_us`` (initial row, the three-factor rule,
quantisation: the cost beyond the forward pass), ``store_us`` (the durable
store write: temp file, fsync, rename, directory fsync) and ``elapsed_us``.
Each repeat adds a new class to a readout that already holds ``--classes``
classes, then forgets it (not timed) so every repeat sees the same size.

    python tools/bench/learn.py [--repeats 51] [--classes 10]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tools.bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from edgesnn.learn import enable_learning
from tools.bench.learn_task import ToyTask

SEED = 2024
TARGET_BEYOND_FORWARD_US = 5000.0
KEYS = ("forward_us", "rule_us", "store_us", "elapsed_us")


def measure(task: ToyTask, hyper: dict, *, store: bool, classes: int, repeats: int) -> dict:
    """Median (and min, max) timings of ``repeats`` one-shot learns of a new class."""
    model = enable_learning(task.model(), "features", **hyper)
    rng = np.random.default_rng(SEED)
    with tempfile.TemporaryDirectory() as tmp:
        session = model.session(store=tmp if store else None)
        for c in range(classes):
            session.learn(f"known{c}", task.example(c % task.n_classes, rng))
        examples = [task.example(int(c), rng) for c in rng.integers(0, task.n_classes, repeats + 3)]
        for x in examples[:3]:  # warm-up: first calls pay for lazy initialisation
            session.learn("new", x)
            session.forget("new")
        rows = []
        for x in examples[3:]:
            rows.append(session.learn("new", x))
            session.forget("new")
    out = {k: {"median": statistics.median(r[k] for r in rows), "min": min(r[k] for r in rows),
               "max": max(r[k] for r in rows)} for k in KEYS}  # fmt: skip
    beyond = [r["rule_us"] + r["store_us"] for r in rows]
    out["beyond_forward_us"] = {"median": statistics.median(beyond), "min": min(beyond), "max": max(beyond)}
    out["epochs"] = rows[0]["epochs"]
    return out


def step_cost(task: ToyTask, classes: int, repeats: int) -> dict:
    """Median µs per ``session.step`` (batch 1) without learning and with ``classes`` learned classes."""
    rng = np.random.default_rng(SEED)
    plain = task.model().session()
    learning = enable_learning(task.model(), "features").session()
    for c in range(classes):
        learning.learn(f"known{c}", task.example(c % task.n_classes, rng))
    xs = [x[None] for x in task.example(0, rng)]
    out = {}
    for name, session in (("plain", plain), ("learning", learning)):
        times = []
        for _ in range(max(5, repeats // 5)):
            session.reset()
            t0 = time.perf_counter()
            for x in xs:
                session.step(x)
            times.append((time.perf_counter() - t0) / len(xs) * 1e6)
        out[name] = statistics.median(times)
    out["backend"] = plain.backend
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=51)
    parser.add_argument("--classes", type=int, default=10, help="classes already learned")
    args = parser.parse_args(argv)
    task = ToyTask()
    big = ToyTask(n_inputs=256, n_features=1024, steps=200)
    configs = {
        "F256_T100_float": (task, {}, False),
        "F256_T100_8bit": (task, {"weight_bits": 8}, False),
        "F256_T100_float_store": (task, {}, True),
        "F1024_T200_8bit_store": (big, {"weight_bits": 8}, True),
    }
    results: dict = {"step_us": step_cost(task, args.classes, args.repeats)}
    for name, (t, hyper, store) in configs.items():
        r = measure(t, hyper, store=store, classes=args.classes, repeats=args.repeats)
        r.update(features=t.n_features, steps=t.steps, store=store, **hyper)
        r["within_target"] = r["beyond_forward_us"]["median"] <= TARGET_BEYOND_FORWARD_US
        results[name] = r
    report = {
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
        "repeats": args.repeats,
        "classes_already_learned": args.classes,
        "target_beyond_forward_us": TARGET_BEYOND_FORWARD_US,
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
