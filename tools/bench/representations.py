"""Event-representation speed (issue 3): million events per second, one thread, numpy only.

Prints one JSON document on stdout: for each representation, the median, min and max Mev/s
over the repeats on one synthetic, time-sorted stream of ``--events`` events on a 1280x720
sensor (uniform pixels and polarities), plus tonic 1.7.0's numbers on the same stream when
tonic is installed. The issue's target is >= 30 Mev/s for the histogram and voxel grid.

    python tools/bench/representations.py [--events 4000000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `edgesnn` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from edgesnn.cli import HelpFormatter  # noqa: E402
from edgesnn.events._dtype import EVENT_DTYPE  # noqa: E402
from edgesnn.events.functional.to_event_frame import to_event_frame  # noqa: E402
from edgesnn.events.functional.to_frame import to_frame  # noqa: E402
from edgesnn.events.functional.to_histogram import to_histogram, to_stacked_histogram, to_time_bins  # noqa: E402
from edgesnn.events.functional.to_voxel_grid import to_voxel_grid  # noqa: E402

WIDTH, HEIGHT = 1280, 720
SENSOR = (WIDTH, HEIGHT, 2)
TARGET_MEVS = 30.0
SEED = 2024


def synthetic_stream(n: int, duration_us: int = 1_000_000, seed: int = SEED) -> np.ndarray:
    """``n`` events with uniform pixels and polarities, sorted times over ``duration_us``."""
    rng = np.random.default_rng(seed)
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"] = rng.integers(0, WIDTH, n)
    ev["y"] = rng.integers(0, HEIGHT, n)
    ev["p"] = rng.integers(0, 2, n)
    ev["t"] = np.sort(rng.integers(0, duration_us, n))
    return ev


def time_mevs(fn: Callable[[], object], n: int, repeats: int) -> dict[str, float]:
    """Median, min and max of ``n / seconds / 1e6`` over ``repeats`` calls, after one warm-up."""
    fn()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t0) / 1e6)
    return {"median": round(float(np.median(rates)), 1), "min": round(min(rates), 1), "max": round(max(rates), 1)}


def _tonic_cases(ev: np.ndarray) -> dict[str, Callable[[], object]]:
    try:
        import tonic.functional as tf
    except ImportError:
        return {}
    tev = np.empty(len(ev), dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "<i1")])
    for f in "xytp":
        tev[f] = ev[f]
    return {
        "to_frame(n_time_bins=10)": lambda: tf.to_frame_numpy(tev, SENSOR, n_time_bins=10),
        "to_voxel_grid(10)": lambda: tf.to_voxel_grid_numpy(tev.copy(), SENSOR, 10),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print JSON."""
    ap = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=4_000_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-tonic", action="store_true", help="skip timing tonic")
    args = ap.parse_args(argv)
    if args.repeats < 5:
        ap.error("--repeats must be at least 5")
    ev = synthetic_stream(args.events)
    cases = {
        "to_histogram": lambda: to_histogram(ev, sensor_size=SENSOR),
        "to_time_bins(10)": lambda: to_time_bins(ev, sensor_size=SENSOR, n_bins=10),
        "to_stacked_histogram(10)": lambda: to_stacked_histogram(ev, sensor_size=SENSOR, n_bins=10),
        "to_voxel_grid(10)": lambda: to_voxel_grid(ev, sensor_size=SENSOR, n_time_bins=10),
        "to_voxel_grid(10, tonic_compat)": lambda: to_voxel_grid(
            ev, sensor_size=SENSOR, n_time_bins=10, tonic_compat=True
        ),
        "to_frame(n_time_bins=10)": lambda: to_frame(ev, sensor_size=SENSOR, n_time_bins=10),
        "to_event_frame": lambda: to_event_frame(ev, sensor_size=SENSOR),
    }
    results = {name: time_mevs(fn, args.events, args.repeats) for name, fn in cases.items()}
    tonic = {} if args.no_tonic else {n: time_mevs(fn, args.events, args.repeats) for n, fn in _tonic_cases(ev).items()}
    gated = ("to_histogram", "to_time_bins(10)", "to_voxel_grid(10)")
    doc = {
        "unit": "Mev/s (million events per second), one thread",
        "events": args.events,
        "sensor": [WIDTH, HEIGHT],
        "repeats": args.repeats,
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "processor": platform.machine()},
        "edgesnn": results,
        "tonic_1_7": tonic,
        "target_mevs": TARGET_MEVS,
        "meets_target": all(results[name]["median"] >= TARGET_MEVS for name in gated),
    }
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
