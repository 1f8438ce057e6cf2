"""Build the demo model and its sample stream, shipped in edgesnn/data/.

The task: tell four spatio-temporal spike patterns on 32 input channels apart
as they stream in (a sweep up the channels, a sweep down, a burst on the low
half, a burst on the high half), on top of background noise. The network is a
recurrent LIF reservoir (fixed random weights) read out by leaky integrators
whose weights are fitted by ridge regression on the reservoir's own spikes,
computed with edgesnn's engine. Deterministic: the same seed gives the same files.

    python tools/make_demo.py [--out edgesnn/data]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from edgesnn.bundle import write_bundle
from edgesnn.cli import HelpFormatter
from edgesnn.engine import SessionOptions
from edgesnn.graph import LI, LIF, Graph, Input, Linear, Output
from edgesnn.model import Model
from edgesnn.neurons import discretise

LABELS = ("sweep_up", "sweep_down", "low_burst", "high_burst")
N_IN, N_HID, DT_S = 32, 128, 1e-3
PATTERN_MS, GAP_MS, NOISE_P, ONSET_MS = 120, 60, 0.01, 25


def pattern(label: int, rng: np.random.Generator) -> np.ndarray:
    """Spikes (PATTERN_MS, N_IN) of one pattern, with jittered timing and rate."""
    x = np.zeros((PATTERN_MS, N_IN), np.float32)
    rate = rng.uniform(0.3, 0.6)
    if label in (0, 1):
        speed = rng.uniform(0.8, 1.2) * N_IN / (PATTERN_MS - 10)
        for t in range(PATTERN_MS):
            centre = speed * t if label == 0 else N_IN - 1 - speed * t
            ch = np.arange(N_IN)
            p = rate * np.exp(-0.5 * ((ch - centre) / 1.5) ** 2)
            x[t] = rng.random(N_IN) < p
    else:
        half = slice(0, N_IN // 2) if label == 2 else slice(N_IN // 2, N_IN)
        x[:, half] = rng.random((PATTERN_MS, N_IN // 2)) < rate * 0.25
    return x


def stream(n_patterns: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A stream of patterns separated by gaps; returns spikes (T, N_IN) and labels (T,), -1 in gaps."""
    xs, ys = [], []
    for _ in range(n_patterns):
        label = int(rng.integers(len(LABELS)))
        xs += [np.zeros((GAP_MS, N_IN), np.float32), pattern(label, rng)]
        ys += [np.full(GAP_MS, -1, np.int8), np.full(PATTERN_MS, label, np.int8)]
    x = np.concatenate(xs)
    x = np.maximum(x, rng.random(x.shape) < NOISE_P).astype(np.float32)
    return x, np.concatenate(ys)


def reservoir(rng: np.random.Generator) -> dict:
    """Fixed random input and recurrent weights of the LIF layer."""
    return {
        # Moderate weights keep the reservoir near 50 spikes/s, far from one spike per step,
        # so its dynamics are a property of time, not of the step (see edgesnn.adapt).
        "fc": Linear(rng.normal(0.0, 0.4, (N_HID, N_IN))),
        "lif": LIF.uniform(N_HID, tau_mem_s=0.02, r=20.0, v_threshold=1.0),
        "rec": Linear(rng.normal(0.0, 0.1, (N_HID, N_HID))),
    }


def build(parts: dict, w_out: np.ndarray) -> Model:
    """The full graph: input -> LIF reservoir (recurrent) -> LI readout."""
    nodes = {
        "spikes": Input((N_IN,), unit="spikes"),
        **parts,
        "readout": Linear(w_out),
        "li": LI.uniform(len(LABELS), tau_mem_s=0.05),
        "scores": Output((len(LABELS),)),
    }
    edges = [("spikes", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "readout"), ("readout", "li"),
             ("li", "scores")]  # fmt: skip
    meta = {"task": "4-way spike pattern recognition (demo)", "generator": "tools/make_demo.py"}
    return Model(
        Graph(nodes, edges, meta),
        dt_s=DT_S,
        labels=LABELS,
        producer={"name": "edgesnn tools/make_demo.py", "training": "ridge regression readout on a LIF reservoir"},
    )


def fit_readout(parts: dict, x: np.ndarray, y: np.ndarray, ridge: float = 1.0) -> np.ndarray:
    """Ridge-regress LI-filtered reservoir spikes onto one-hot targets (silence -> 0)."""
    probe = build(parts, np.zeros((len(LABELS), N_HID)))
    z = probe.session(options=SessionOptions(backends=("numpy",))).run(x[:, None], outputs=["lif"])["lif"][:, 0]
    c = discretise(probe.graph.nodes["li"], DT_S)
    a, g = float(c.a_v[0]), float(c.g_v[0])
    feats = np.zeros_like(z, dtype=np.float64)
    acc = np.zeros(N_HID)
    for t in range(len(z)):
        acc = a * acc + g * z[t]
        feats[t] = acc
    target = np.zeros((len(z), len(LABELS)))
    target[y >= 0, y[y >= 0]] = 1.0
    # The first steps of a pattern carry too little evidence to decide; leave them out of the fit.
    onset = np.flatnonzero(np.diff(np.r_[-1, y]) != 0)
    keep = np.ones(len(y), bool)
    for s in onset:
        keep[s : s + ONSET_MS] = False
    f1, t1 = feats[keep], target[keep]
    w = np.linalg.solve(f1.T @ f1 + ridge * np.eye(N_HID), f1.T @ t1)
    return w.T.astype(np.float32)


def pattern_accuracy(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    """Share of patterns whose majority decision over their second half is right."""
    scores = model.session(options=SessionOptions(backends=("numpy",))).run(x[:, None])["scores"][:, 0]
    decisions = scores.argmax(1)
    starts = [s for s in np.flatnonzero(np.diff(np.r_[-1, y]) != 0) if y[s] >= 0]
    hits = [np.bincount(decisions[s + PATTERN_MS // 2 : s + PATTERN_MS], minlength=len(LABELS)).argmax() == y[s]
            for s in starts]  # fmt: skip
    return float(np.mean(hits))


def main() -> None:
    """Write demo.esnn and demo_input.npz."""
    ap = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "edgesnn" / "data"))
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    parts = reservoir(rng)
    x_train, y_train = stream(240, rng)
    w_out = fit_readout(parts, x_train, y_train)
    model = build(parts, w_out)
    x_test, y_test = stream(100, np.random.default_rng(args.seed + 2000))
    acc = pattern_accuracy(model, x_test, y_test)
    model = dataclasses.replace(model, producer={**model.producer, "heldout_pattern_accuracy": acc})
    print(f"held-out pattern accuracy: {acc:.2f} (100 patterns)")
    x_demo, y_demo = stream(12, np.random.default_rng(args.seed + 1000))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_bundle(model, out / "demo.esnn")
    np.savez_compressed(out / "demo_input.npz", spikes=x_demo.astype(np.uint8), labels=y_demo)
    print(f"wrote {out / 'demo.esnn'} and {out / 'demo_input.npz'} ({len(x_demo)} steps)")


if __name__ == "__main__":
    main()
