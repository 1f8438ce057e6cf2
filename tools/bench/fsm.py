"""edgesnn.fsm benchmark: steps per second of a compiled machine of N = 10,000 neurons in the CPU engine.

Prints one JSON document: for the example machine (8 states, 16 edges) in each network form,
the engine's ``session.step`` rate (batch 1, one call per step, after warm-up), the rate of
one ``Session.run`` over the whole walk, and the rate of the pure-numpy reference
(:func:`edgesnn.fsm.simulate`, float32) measured in the same run; each the median of
``--repeats`` repeats, with the ratio engine / reference. One BLAS thread.

    nice -n 10 .venv/bin/python tools/bench/fsm.py [--neurons 10000] [--repeats 5] [--steps 300] [--quick]

Forms: ``dense ideal`` (factored weights: two N x R connections, R = 56), ``sparse ideal``
(k-WTA, coding 0.02), ``dense binary`` (one N x N connection of +-1 weights).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tools` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from edgesnn import limits
from edgesnn.cli import HelpFormatter
from edgesnn.fsm import CompileOptions, compile_fsm, feed, schedule, simulate, to_model
from tools.eval.fsm.example import euler_walk, example_spec

FORMS = {"dense ideal": {}, "sparse ideal": {"coding": 0.02}, "dense binary": {"weights": "binary"}}


def _rate(fn, steps: int, repeats: int) -> dict[str, float]:
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        rates.append(steps / (time.perf_counter() - t0))
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def bench_form(name: str, n: int, steps: int, repeats: int) -> dict[str, object]:
    """Engine step, engine run and reference rates of one network form."""
    spec = example_spec()
    symbols = euler_walk(spec)
    net = compile_fsm(spec, CompileOptions(neurons=n, seed=1, **FORMS[name]))
    model = to_model(net)
    xs = feed(model, symbols)[:steps]
    stim = schedule(spec, symbols, 10)[:steps]
    with limits.override(node_elements=max(limits.current().node_elements, 2 * n * n),
                         session_bytes=max(limits.current().session_bytes, 16 * n * n + (1 << 30))):  # fmt: skip
        session = model.session()
        for x in xs[:5]:  # warm-up: first-use allocations and caches
            session.step(x)

        def step_all() -> None:
            session.reset()
            for x in xs:
                session.step(x)

        def run_all() -> None:
            session.reset()
            session.run(xs)

        step = _rate(step_all, len(xs), repeats)
        run = _rate(run_all, len(xs), repeats)
    ref = _rate(lambda: simulate(net, stim, keep_states=False, dtype=np.float32), len(stim), repeats)
    return {"neurons": n, "rank": int(net.u.shape[1]), "dense_weight": net.weight is not None, "steps": len(xs),
            "engine_step_steps_per_s": step, "engine_run_steps_per_s": run, "reference_steps_per_s": ref,
            "ratio_step_vs_reference": step["median"] / ref["median"], "backend": session.backend}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run every form and print the JSON document."""
    ap = argparse.ArgumentParser(prog="tools/bench/fsm.py", description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--neurons", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300, help="steps of the example walk per repeat")
    ap.add_argument("--quick", action="store_true", help="N = 1000, 2 repeats, 60 steps (a smoke test)")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    n, repeats, steps = (1000, 2, 60) if args.quick else (args.neurons, args.repeats, args.steps)
    doc = {"machine": platform.platform(), "processor": platform.processor() or platform.machine(),
           "blas_threads": 1, "forms": {name: bench_form(name, n, steps, repeats) for name in FORMS}}  # fmt: skip
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
