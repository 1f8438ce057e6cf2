"""Detector latency (issue 7): end-to-end milliseconds per 50 ms window at 304x240, ~1 M events/s, one thread.

The stream is made by the detection dataset's generator: clips of textured, ego-moving scenes
with cars and pedestrians, several superimposed and placed end to end, then thinned to exactly
``--rate`` events per second, so its structure is a camera's, not uniform noise. Each window
runs the whole path (time-binned histograms, SNN front in the engine, ONNX bridge + ANN + head,
decode, NMS) with the SNN state carried from the previous window. Prints one JSON document:
median and p99 latency per window over all repeats (wall clock, and CPU time of the thread,
which a loaded machine inflates less), the per-stage medians, throughput in
events/s, the real-time margin (window length / median latency), and, measured in the same run
on the same spikes, the numpy bridge (:mod:`edgesnn.detect.bridge`) against the whole ONNX part,
which holds the bridge (the reason the bridge runs inside ONNX).

    python tools/bench/detect.py [--model hybrid.esnn --params hybrid.esnn.npz] [--seconds 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `edgesnn` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from edgesnn.cli import HelpFormatter  # noqa: E402
from edgesnn.detect import Detector, load_detector  # noqa: E402
from edgesnn.detect.bridge import BridgeWeights, bridge  # noqa: E402
from edgesnn.detect.pipeline import STAGES  # noqa: E402
from edgesnn.events._dtype import EVENT_DTYPE  # noqa: E402


def camera_stream(rate_hz: float, seconds: float, seed: int) -> np.ndarray:
    """Events of generated scenes at ``rate_hz`` over ``seconds``: clips superimposed, end to end, thinned."""
    from tools.datasets.detection import SIZES, clip_rng, make_clip

    cfg = SIZES["small"]
    rng = np.random.default_rng(seed)
    parts = []
    k = 0
    for start in range(0, int(seconds * 1e6), cfg.duration_us):
        layer, n = [], 0
        while n < rate_hz * cfg.duration_us * 1e-6:
            ev, _ = make_clip(clip_rng(seed, "test", k), cfg)
            k += 1
            layer.append(ev)
            n += len(ev)
        ev = np.concatenate(layer)
        ev = ev[np.argsort(ev["t"], kind="stable")]
        keep = np.sort(rng.choice(len(ev), int(rate_hz * cfg.duration_us * 1e-6), replace=False))
        ev = ev[keep]
        ev["t"] += start
        parts.append(ev)
    return np.concatenate(parts).astype(EVENT_DTYPE)


def windows_of(events: np.ndarray, window_us: int) -> list[tuple[int, np.ndarray]]:
    """(start, events) of consecutive windows from t = 0."""
    n = int(events["t"][-1]) // window_us + 1
    cuts = np.searchsorted(events["t"], np.arange(n + 1) * window_us)
    return [(k * window_us, events[cuts[k] : cuts[k + 1]]) for k in range(n)]


def default_detector(seed: int) -> tuple[Detector, dict]:
    """The hybrid preset with random weights (when no trained bundle is given)."""
    from tools.train_detect.arch import preset
    from tools.train_detect.export import build_detector
    from tools.train_detect.model import init_params

    params = init_params(preset("hybrid"), seed)
    return build_detector(params, preset("hybrid"), score_threshold=0.05), params


def main(argv: list[str] | None = None) -> int:
    """Measure and print JSON."""
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="detector bundle (default: the hybrid preset, random weights)")
    parser.add_argument("--params", help="the bundle's training parameters (.npz), for the numpy-bridge reference")
    parser.add_argument("--rate", type=float, default=1e6, help="events per second (default 1e6)")
    parser.add_argument("--seconds", type=float, default=2.0, help="stream length (default 2 s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.model:
        det, params = load_detector(args.model), (dict(np.load(args.params)) if args.params else None)
    else:
        det, params = default_detector(args.seed)
    stream = camera_stream(args.rate, args.seconds, args.seed)
    wins = windows_of(stream, det.config.window_us)
    latencies, cpu, stages, spikes_seen = [], [], {s: [] for s in STAGES}, []
    total_s = 0.0
    for r in range(args.repeats + 1):  # the first pass warms caches and is not counted
        session = det.session(num_threads=1, start_us=0)
        for start, ev in wins:
            c0, t0 = time.thread_time(), time.perf_counter()
            session.detect_window(ev, start)
            dt, dc = time.perf_counter() - t0, time.thread_time() - c0
            if r:
                latencies.append(dt * 1e3)
                cpu.append(dc * 1e3)
                total_s += dt
                for s in STAGES:
                    stages[s].append(session.last_timings_us[s] / 1e3)
        if r == 0 and params is not None and "bridge.sc_weight" in params:
            s2 = det.session(num_threads=1, start_us=0)
            for start, ev in wins[:10]:
                spikes_seen.append(s2.front_window(ev, start))
    report = {
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "threads": 1,
            "cores": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
        },  # fmt: skip
        "model": args.model or "hybrid preset, random weights",
        "geometry": [det.config.width, det.config.height],
        "events_per_s": args.rate,
        "events": int(len(stream)),
        "window_ms": det.config.window_us / 1e3,
        "windows_measured": len(latencies),
        "latency_ms": {
            "median": float(np.median(latencies)),
            "p99": float(np.percentile(latencies, 99)),
            "max": float(np.max(latencies)),
        },  # fmt: skip
        # CPU time of the detecting thread: what the window costs when other processes compete for the cores
        "cpu_ms": {"median": float(np.median(cpu)), "p99": float(np.percentile(cpu, 99))},
        "stage_median_ms": {s: float(np.median(v)) for s, v in stages.items()},
        "throughput_events_per_s": float(len(stream) * args.repeats / total_s),
        "realtime_margin": float(det.config.window_us / 1e3 / np.median(latencies)),
        "parameters": det.parameters(),
    }
    if spikes_seen:
        wts = BridgeWeights(**{f: params[f"bridge.{f}"] for f in BridgeWeights.__dataclass_fields__})
        t_np = []
        for sp in spikes_seen:
            t0 = time.perf_counter()
            bridge(sp, wts)
            t_np.append((time.perf_counter() - t0) * 1e3)
        report["bridge_reference_ms"] = {"numpy_bridge_alone": float(np.median(t_np)),
                                         "onnx_bridge_ann_head": report["stage_median_ms"]["ann"]}  # fmt: skip
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
