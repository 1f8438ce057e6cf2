"""``make demo``: stream the shipped demo bundle over its sample input, step by step.

Prints each change of decision as it happens (the model emits one every step,
1 ms), then a per-pattern summary. Then the same stream arrives from a sensor
binned four times finer (0.25 ms): the model is adapted to that step without
retraining (edgesnn.adapt) and compared with plain time-constant scaling.

    python -m edgesnn.demo [--model path.esnn] [--input path.npz] [--every-step] [--finer 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib import resources

import numpy as np

import edgesnn
import edgesnn.adapt
from edgesnn.model import Model

SCORE_MIN = 0.4  # below this the readout is treated as "nothing recognised"


def _data(name: str) -> str:
    return str(resources.files("edgesnn") / "data" / name)


def decide(scores: np.ndarray, labels: tuple[str, ...]) -> str:
    """The label with the highest score, or '-' when none reaches SCORE_MIN."""
    k = int(np.argmax(scores))
    return labels[k] if scores[k] >= SCORE_MIN else "-"


def rebin_finer(spikes: np.ndarray, factor: int, rng: np.random.Generator) -> np.ndarray:
    """Spread each step's events over ``factor`` finer steps, as a faster sensor would bin them."""
    steps, channels = spikes.shape
    fine = np.zeros((steps * factor, channels), np.float32)
    t, c = np.nonzero(spikes)
    fine[t * factor + rng.integers(0, factor, size=len(t)), c] = spikes[t, c]
    return fine


def pattern_results(
    decisions: list[str], truth: np.ndarray, labels: tuple[str, ...]
) -> list[tuple[int, int, str, str]]:
    """(start, end, shown, decided) per pattern; decided is the majority over its second half."""
    out = []
    starts = np.flatnonzero(np.diff(np.r_[-1, truth]) != 0)
    for s in starts:
        if truth[s] < 0:
            continue
        rest = np.flatnonzero(truth[s:] != truth[s])
        e = s + int(rest[0]) if len(rest) else len(truth)
        tail = decisions[(s + e) // 2 : e]
        best = max(set(tail), key=tail.count)
        out.append((int(s), int(e), labels[truth[s]], best))
    return out


def stream(
    model: Model,
    spikes: np.ndarray,
    truth: np.ndarray,
    *,
    dt: float | None = None,
    verbose: bool = False,
    every_step: bool = False,
) -> tuple[list[str], float]:
    """Step a session over the stream; returns the decision per step and µs per step."""  # fmt: skip
    session = model.session(dt=dt)
    name = model.outputs[0].name
    decisions, last = [], None
    step_ms = session.dt_s * 1e3
    t0 = time.perf_counter()
    for t, x in enumerate(spikes):
        scores = session.step(x)[name][0]
        d = decide(scores, model.labels)
        decisions.append(d)
        if verbose and (every_step or d != last):
            shown = model.labels[truth[t]] if truth[t] >= 0 else "-"
            print(f"  t={t * step_ms:7.2f} ms  decision {d:<11} score {scores.max():5.2f}   (shown: {shown})")
        last = d
    return decisions, (time.perf_counter() - t0) / max(len(spikes), 1) * 1e6


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    ap = argparse.ArgumentParser(description="Stream the demo model over its sample input.")
    ap.add_argument("--model", default=_data("demo.esnn"))
    ap.add_argument("--input", default=_data("demo_input.npz"))
    ap.add_argument("--every-step", action="store_true", help="print a line for every step")
    ap.add_argument("--finer", type=int, default=4, help="how much finer the second sensor bins (0: skip)")
    args = ap.parse_args(argv)

    model = edgesnn.load(args.model)
    with np.load(args.input, allow_pickle=False) as z:
        spikes, truth = z["spikes"].astype(np.float32), z["labels"]
    print(f"edgesnn {edgesnn.__version__} demo: {args.model}")
    print(f"  {model.inputs[0].shape[0]} input channels -> {', '.join(model.labels)}; step {model.dt_s * 1e3:g} ms;"
          f" {len(spikes)} steps")  # fmt: skip
    decisions, us = stream(model, spikes, truth, verbose=True, every_step=args.every_step)
    results = pattern_results(decisions, truth, model.labels)
    print("  pattern summary:")
    for s, e, shown, decided in results:
        print(f"    {s:5d}-{e:5d} ms  shown {shown:<11} decided {decided:<11} {'ok' if shown == decided else 'MISS'}")
    ok = sum(shown == decided for _, _, shown, decided in results)
    print(f"  recognised {ok}/{len(results)} patterns; {us:.1f} us per step")

    if args.finer > 1:
        f = args.finer
        fine = rebin_finer(spikes, f, np.random.default_rng(0))
        fine_truth = np.repeat(truth, f)
        dt = model.dt_s / f
        print(f"\n  the same stream from a sensor binned at {dt * 1e3:g} ms, no retraining:")
        for method in (model.adapt_method, "tau"):
            adapted = edgesnn.adapt.retime_model(model, dt, method)
            decisions, us = stream(adapted, fine, fine_truth)
            res = pattern_results(decisions, fine_truth, model.labels)
            ok = sum(shown == decided for _, _, shown, decided in res)
            what = "adapted" if method != "tau" else "time constants only"
            print(f"    {method:<13} ({what}): recognised {ok}/{len(res)} patterns; {us:.1f} us per step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
