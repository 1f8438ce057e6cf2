"""Cost of learning one class from one example, beyond the forward pass (issue 5: <= 5 ms on this CPU).

Prints one JSON document: per configuration, medians over the repeats of what
``session.learn`` reports: ``forward_us`` (the example through the private
batch-1 copy of the graph), ``rule_us`` (initial row, the three-factor rule,
quantisation: the cost beyond the forward pass), ``store_us`` (making the
change durable: one checksummed journal frame and an fdatasync, and every
``compact_every`` changes a new snapshot and journal, see
:mod:`edgesnn.learn.store`) and ``elapsed_us``. Each repeat adds a new class to
a readout that already holds ``--classes`` classes, then forgets it (not timed,
though its journal frame counts toward compaction) so every repeat sees the
same size. Besides the median, ``mean`` shows the cost with compactions
amortised.

fsync latency on a shared disk swings by an order of magnitude from minute to
minute, so ``durable_write_us`` compares the two ways of making one learned
class durable under the same conditions, alternating them: appending its
journal frame (what ``session.learn`` does) and replacing the whole snapshot
atomically (what it did before the journal, and what a compaction does).

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

from edgesnn.cli import HelpFormatter
from edgesnn.learn import enable_learning
from edgesnn.learn.store import ClassStore, StoreRecord, encode_record, write_atomic
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
    out = {k: _summary([r[k] for r in rows]) for k in KEYS}
    out["beyond_forward_us"] = _summary([r["rule_us"] + r["store_us"] for r in rows])
    out["epochs"] = rows[0]["epochs"]
    return out


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "mean": statistics.fmean(values), "min": min(values),
            "max": max(values)}  # fmt: skip


def durable_write_cost(n_classes: int, n_features: int, repeats: int) -> dict:
    """µs to make one new class durable: a journal append against an atomic snapshot replace, alternated."""
    rng = np.random.default_rng(SEED)
    w = rng.normal(size=(n_classes, n_features)).astype(np.float32)
    labels = tuple(f"known{c}" for c in range(n_classes))
    rec = StoreRecord("k" * 64, labels, (1,) * n_classes, w, 0.0, 1)
    times: dict[str, list[float]] = {"journal_append": [], "snapshot_replace": []}
    with tempfile.TemporaryDirectory() as tmp:
        store = ClassStore(Path(tmp) / "journal", compact_every=1 << 30)
        store.write(rec)
        replace = Path(tmp) / "snapshot" / "classes.msgpack"
        replace.parent.mkdir()
        for _ in range(repeats):
            nxt = StoreRecord(rec.model_key, (*rec.labels, f"new{rec.generation}"), (*rec.examples, 1),
                              np.vstack([rec.weights, rng.normal(size=(1, n_features)).astype(np.float32)]),
                              0.0, rec.generation + 1)  # fmt: skip
            t0 = time.perf_counter()
            store.write(nxt)
            t1 = time.perf_counter()
            write_atomic(replace, encode_record(nxt))
            t2 = time.perf_counter()
            times["journal_append"].append((t1 - t0) * 1e6)
            times["snapshot_replace"].append((t2 - t1) * 1e6)
            rec = nxt
    return {k: _summary(v) for k, v in times.items()} | {"classes": n_classes, "features": n_features}


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
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.splitlines()[0])
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
    results["durable_write_us"] = {
        f"F{f}": durable_write_cost(args.classes, f, args.repeats) for f in (task.n_features, big.n_features)
    }
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
