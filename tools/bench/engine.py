"""Engine benchmark of issue 2: W1, W2, W3 and W1 at batch 32, against a plain numpy loop.

Prints one JSON document on stdout: per workload, median and min-max µs per
step over the repeats (batch 1, one ``session.step(x)`` call per step, after
warm-up), the same for a hand-written numpy loop over the same network in this
process, their ratio, each LIF layer's firing rate, and the peak RSS of a
separate process that loaded W2 and stepped it 1000 times. Under ``run``, each
workload is also timed as one ``Session.run`` over the whole sequence (issue 19;
W1 at batch 32 on two threads).

    python tools/bench/engine.py [--repeats 7] [--quick] [--backend native|numpy]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tools.bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from edgesnn.cli import HelpFormatter

#: Targets of issue 2 on the 2-core reference machine, one BLAS thread.
TARGET_US = {"W1": 10.0, "W2": 20.0, "W3": 100.0}
TARGET_BATCH32_SAMPLE_STEPS_PER_S = 400_000
TARGET_RATIO = 3.0
TARGET_RSS_MB = 80.0
#: Issue 19: Session.run (the whole sequence in one native call) per step, and W1 batch 32 with
#: the batch split over two threads (SessionOptions(num_threads=2)).
TARGET_RUN_US = {"W1": 1.5, "W3": 40.0}
TARGET_RUN_BATCH32_SAMPLE_STEPS_PER_S = 1_000_000
SEED = 2024


def _limit_blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return "unlimited (threadpoolctl not installed)"
    threadpool_limits(limits=1, user_api="blas")
    return "1"


def _time_repeats(start: Callable[[], Callable[[np.ndarray], Any]], xs: list[np.ndarray], repeats: int) -> list[float]:
    """Mean µs per step of each repeat; ``start()`` resets the network and returns its step function."""
    times = []
    for _ in range(repeats):
        step = start()
        t0 = time.perf_counter()
        for x in xs:
            step(x)
        times.append((time.perf_counter() - t0) / len(xs) * 1e6)
    return times


def _summary(values: list[float], digits: int = 2) -> dict[str, float]:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}  # fmt: skip


def bench_workload(name: str, batch: int, repeats: int, backend: str, steps: int | None) -> dict[str, Any]:
    """Time edgesnn and the numpy reference on one workload; return its JSON entry."""
    from edgesnn.engine import SessionOptions
    from tools.bench.reference import make_reference
    from tools.bench.workloads import WORKLOADS

    wl = WORKLOADS[name](np.random.default_rng(SEED))
    n_steps = wl.steps if steps is None else steps
    seq = wl.inputs(np.random.default_rng(SEED + 1), batch=batch, steps=n_steps)
    xs = list(seq)  # views (batch, *shape), so the loop does no slicing of its own

    session = wl.model.session(batch=batch, options=SessionOptions(backends=(backend,)))
    warm = xs[: min(200, n_steps)]
    for x in warm:
        session.step(x)
    ours = _time_repeats(lambda: (session.reset(), session.step)[1], xs, repeats)
    threads = 2 if batch > 1 else 1
    runner = wl.model.session(batch=batch, options=SessionOptions(backends=(backend,), num_threads=threads))
    runner.run(seq[: len(warm)])
    run_times = []
    for _ in range(repeats):
        runner.reset()
        t0 = time.perf_counter()
        runner.run(seq)
        run_times.append((time.perf_counter() - t0) / n_steps * 1e6)
    # Rates from an untimed run over the same input (recording outputs costs time).
    session.reset()
    recorded = session.run(seq, outputs=list(wl.lif_layers))
    rates = {k: round(float(v.mean()), 4) for k, v in recorded.items()}

    refs = [make_reference(wl, batch)]
    for x in warm:
        refs[0].step(x)

    def fresh_reference() -> Callable[[np.ndarray], None]:
        refs.append(make_reference(wl, batch))
        return refs[-1].step

    ref_times = _time_repeats(fresh_reference, xs, repeats)
    ref_rates = {k: round(s / len(xs), 4) for k, s in zip(wl.lif_layers, refs[-1].spikes, strict=True)}

    entry: dict[str, Any] = {
        "network": wl.description,
        "steps": n_steps,
        "batch": batch,
        "input_density": wl.input_density,
        "backend": session.backend,
        "edgesnn_us_per_step": _summary(ours),
        "numpy_reference_us_per_step": _summary(ref_times),
        "ratio_reference_over_edgesnn": round(statistics.median(ref_times) / statistics.median(ours), 2),
        "lif_firing_rate": rates,
        "reference_lif_firing_rate": ref_rates,
    }
    entry["run"] = {"call": f"Session.run(xs), num_threads={threads}", "us_per_step": _summary(run_times)}
    run_median = statistics.median(run_times)
    if batch > 1:
        entry["run"]["sample_steps_per_s"] = round(batch * 1e6 / run_median)
        entry["run"]["target_sample_steps_per_s"] = TARGET_RUN_BATCH32_SAMPLE_STEPS_PER_S
        entry["run"]["meets_target"] = entry["run"]["sample_steps_per_s"] >= TARGET_RUN_BATCH32_SAMPLE_STEPS_PER_S
    elif name in TARGET_RUN_US:
        entry["run"]["target_us_per_step"] = TARGET_RUN_US[name]
        entry["run"]["meets_target"] = run_median <= TARGET_RUN_US[name]
    if batch > 1:
        entry["edgesnn_sample_steps_per_s"] = {k: round(batch * 1e6 / v) for k, v in
                                               (("median", statistics.median(ours)), ("min", max(ours)),
                                                ("max", min(ours)))}  # fmt: skip
        entry["numpy_reference_sample_steps_per_s"] = round(batch * 1e6 / statistics.median(ref_times))
        entry["target_sample_steps_per_s"] = TARGET_BATCH32_SAMPLE_STEPS_PER_S
        met = entry["edgesnn_sample_steps_per_s"]["median"] >= TARGET_BATCH32_SAMPLE_STEPS_PER_S
    else:
        entry["target_us_per_step"] = TARGET_US[name]
        met = entry["edgesnn_us_per_step"]["median"] <= TARGET_US[name]
    entry["target_ratio"] = TARGET_RATIO
    entry["meets_targets"] = bool(met and entry["ratio_reference_over_edgesnn"] >= TARGET_RATIO)
    return entry


# -- peak RSS of a fresh process stepping W2 -------------------------------------------------
def _rss_child(bundle: str | None, backend: str, steps: int) -> None:
    """Child process: load W2 (from the bundle when given), step it, print peak RSS as JSON."""
    _limit_blas_threads()
    if bundle:
        from edgesnn.bundle import read_bundle

        model = read_bundle(bundle)
    else:
        from tools.bench.workloads import w2

        model = w2(np.random.default_rng(SEED)).model
    from edgesnn.engine import SessionOptions

    session = model.session(options=SessionOptions(backends=(backend,)))
    rng = np.random.default_rng(SEED + 1)
    x = np.zeros((1, 700), np.float32)
    for _ in range(steps):
        x[...] = rng.random((1, 700), dtype=np.float32) < 0.02
        session.step(x)
    # Linux carries the parent's high-water mark into ru_maxrss across fork and exec, so a child
    # of a large parent over-reports; VmHWM is the peak of this process's own address space.
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    peak_kib, source = rss_kib, "ru_maxrss"
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            hwm = [line.split()[1] for line in f if line.startswith("VmHWM:")]
        if hwm:
            peak_kib, source = int(hwm[0]), "VmHWM (/proc/self/status)"
    except OSError:
        pass
    print(json.dumps({"peak_rss_mib": round(peak_kib / 1024, 1), "peak_rss_source": source,
                      "ru_maxrss_mib": round(rss_kib / 1024, 1), "backend": session.backend,
                      "onnxruntime_imported": "onnxruntime" in sys.modules}))  # fmt: skip


def bench_rss(backend: str, steps: int) -> dict[str, Any]:
    """Run the RSS child, through a real .esnn bundle when edgesnn can write one."""
    try:
        from edgesnn.bundle import write_bundle
    except ImportError:
        write_bundle = None
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--rss-child",
            "--backend",
            backend,
            "--steps",
            str(steps),
        ]
        source = "in-memory graph (edgesnn.bundle.write_bundle not available)"
        if write_bundle is not None:
            from tools.bench.workloads import w2

            path = os.path.join(tmp, "w2.esnn")
            write_bundle(w2(np.random.default_rng(SEED)).model, path)
            args += ["--bundle", path]
            source = ".esnn bundle (edgesnn.bundle.read_bundle)"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                        os.environ.get("PYTHONPATH")])))  # fmt: skip
        proc = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        return {"workload": "W2", "error": proc.stderr.strip().splitlines()[-1:] or ["child failed"]}
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"workload": "W2", "steps": steps, "loaded_from": source, **child, "target_mb": TARGET_RSS_MB,
            "peak_rss_mb": round(child["peak_rss_mib"] * 1.048576, 1),
            "meets_target": child["peak_rss_mib"] * 1.048576 <= TARGET_RSS_MB}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON."""
    ap = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats per workload (>= 5 for the report)")
    ap.add_argument("--quick", action="store_true", help="a fifth of the steps and 5 repeats: a smoke run")
    ap.add_argument(
        "--backend", choices=("native", "numpy"), help="edgesnn backend to time (default: fastest available)"
    )
    ap.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--bundle", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=1000, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    from edgesnn.engine import available_backends

    backend = args.backend or available_backends()[0]
    if args.rss_child:
        _rss_child(args.bundle, backend, args.steps)
        return 0
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    blas = _limit_blas_threads()
    repeats = 5 if args.quick else args.repeats
    import edgesnn

    if backend not in available_backends():
        print(f"edgesnn bench: backend {backend!r} is not available here ({', '.join(available_backends())})",
              file=sys.stderr)  # fmt: skip
        return 2
    rss = bench_rss(backend, 1000)  # first, while this process is still small (see _rss_child)
    results: dict[str, Any] = {}
    for name, batch in (("W1", 1), ("W2", 1), ("W3", 1), ("W1", 32)):
        steps = None
        if args.quick:
            steps = {"W3": 60}.get(name, 200)
        key = name if batch == 1 else f"{name}_batch{batch}"
        results[key] = bench_workload(name, batch, repeats, backend, steps)
    doc = {
        "benchmark": "edgesnn engine (issue 2)",
        "edgesnn_version": getattr(edgesnn, "__version__", "unknown"),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "blas_threads": blas,
        },  # fmt: skip
        "backend": backend,
        "repeats": repeats,
        "quick": args.quick,
        "workloads": results,
        "rss": rss,
    }
    doc["all_targets_met"] = all(r["meets_targets"] for r in results.values()) and bool(doc["rss"].get("meets_target"))
    doc["run_targets_met"] = all(r["run"].get("meets_target", True) for r in results.values())
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
