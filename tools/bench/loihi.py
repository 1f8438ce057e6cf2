"""Loihi figures (JSON): Lava simulation steps/s through the bridge vs Lava called directly vs the runtime.

    .venv/bin/python tools/bench/loihi.py [--steps 200] [--repeats 3]

Needs the bridge venv (firmware_bridges/loihi2/setup.sh). For W1 and W2 (issue 2's
workloads) and the small conv net, batch 1, one stream:
- ``runtime_loihi``: the runtime's ``numerics="loihi"`` session stepping (this process);
- ``lava_direct``: Lava's fixed_pt simulation of the compiled processes over the whole
  sequence (RingBuffer source, one ``run`` call; the first step, which compiles and
  starts Lava, excluded), in the bridge venv;
- ``lava_bridge``: ``step()`` calls from RemoteDevice to the bridge process over gRPC
  (one Lava ``run`` of one step per call, Injector/Extractor I/O).
Each figure is the median of ``--repeats`` runs; ratios are against lava_direct.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import edgesnn  # noqa: E402
from edgesnn.cli import HelpFormatter  # noqa: E402
from tests.loihi_helpers import BRIDGE_PYTHON, bernoulli, bundle_bytes, conv_model  # noqa: E402
from tools.bench.workloads import w1, w2  # noqa: E402


def _cases(steps: int):
    for make in (w1, w2):
        wl = make(np.random.default_rng(0))
        yield wl.name, wl.model, wl.inputs(np.random.default_rng(1), steps=steps)[:, 0]
    yield "conv", conv_model(), bernoulli((2, 12, 12), steps, 0.1)


def _runtime(model, xs) -> float:  # noqa: ANN001
    s = model.session(numerics="loihi")
    t0 = time.perf_counter()
    for x in xs:
        s.step(x[None])
    return len(xs) / (time.perf_counter() - t0)


def _direct(tmp: pathlib.Path, model, xs) -> float:  # noqa: ANN001
    bundle, inputs, out = tmp / "m.esnn", tmp / "x.npz", tmp / "y.npz"
    bundle.write_bytes(bundle_bytes(model))
    np.savez(inputs, **{model.inputs[0].name: xs})
    cmd = [str(BRIDGE_PYTHON), "-m", "firmware_bridges.loihi2.simulate", str(bundle), str(inputs), str(out)]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    with np.load(out) as f:
        return float(f["__steps_per_s"])


def _bridge(address: str, model, xs) -> float:  # noqa: ANN001
    with edgesnn.connect(address) as dev:
        with dev.open_session(dev.load_model(bundle_bytes(model))) as s:
            s.step(xs[0][None])  # the first step after compiling
            t0 = time.perf_counter()
            for x in xs[1:]:
                s.step(x[None])
            return (len(xs) - 1) / (time.perf_counter() - t0)


def main() -> int:
    """Print the figures as JSON."""
    p = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if not BRIDGE_PYTHON.exists():
        print("bench/loihi: the bridge venv is missing; run firmware_bridges/loihi2/setup.sh", file=sys.stderr)
        return 2
    proc = subprocess.Popen([str(BRIDGE_PYTHON), "-m", "firmware_bridges.loihi2", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    results = []
    try:
        address = f"127.0.0.1:{int(proc.stdout.readline().split()[1])}"
        with tempfile.TemporaryDirectory() as tmp:
            for name, model, xs in _cases(args.steps):
                runs = {"runtime_loihi": [], "lava_direct": [], "lava_bridge": []}
                for _ in range(args.repeats):
                    runs["runtime_loihi"].append(_runtime(model, xs))
                    runs["lava_direct"].append(_direct(pathlib.Path(tmp), model, xs))
                    runs["lava_bridge"].append(_bridge(address, model, xs))
                med = {k: statistics.median(v) for k, v in runs.items()}
                results.append({
                    "workload": name, "steps": args.steps, "steps_per_s": {k: round(v, 1) for k, v in med.items()},
                    "vs_lava_direct": {k: round(v / med["lava_direct"], 2) for k, v in med.items()},
                })  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stdout.close()
    print(json.dumps({"bench": "loihi", "repeats": args.repeats, "batch": 1, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
