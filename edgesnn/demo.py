"""``make demo``: stream the shipped demo bundle over its sample input, step by step.

Prints each change of decision as it happens (the model emits one every step,
1 ms), then a per-pattern summary and the share of patterns recognised.

    python -m edgesnn.demo [--model path.esnn] [--input path.npz] [--every-step]
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib import resources

import numpy as np

import edgesnn

SCORE_MIN = 0.4  # below this the readout is treated as "nothing recognised"


def _data(name: str) -> str:
    return str(resources.files("edgesnn") / "data" / name)


def decide(scores: np.ndarray, labels: tuple[str, ...]) -> str:
    """The label with the highest score, or '-' when none reaches SCORE_MIN."""
    k = int(np.argmax(scores))
    return labels[k] if scores[k] >= SCORE_MIN else "-"


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    ap = argparse.ArgumentParser(description="Stream the demo model over its sample input.")
    ap.add_argument("--model", default=_data("demo.esnn"))
    ap.add_argument("--input", default=_data("demo_input.npz"))
    ap.add_argument("--every-step", action="store_true", help="print a line for every step")
    args = ap.parse_args(argv)

    model = edgesnn.load(args.model)
    with np.load(args.input, allow_pickle=False) as z:
        spikes, truth = z["spikes"].astype(np.float32), z["labels"]
    session = model.session()
    print(f"edgesnn {edgesnn.__version__} demo: {args.model}")
    print(f"  {model.inputs[0].shape[0]} input channels -> {', '.join(model.labels)}; step {model.dt_s * 1e3:g} ms;"
          f" backend {session.backend}; {len(spikes)} steps")  # fmt: skip
    name = model.outputs[0].name
    decisions, last = [], None
    t0 = time.perf_counter()
    for t, x in enumerate(spikes):
        scores = session.step(x)[name][0]
        d = decide(scores, model.labels)
        decisions.append(d)
        if args.every_step or d != last:
            shown = model.labels[truth[t]] if truth[t] >= 0 else "-"
            print(f"  t={t:5d} ms  decision {d:<11} score {scores.max():5.2f}   (shown: {shown})")
        last = d
    elapsed = time.perf_counter() - t0

    # A pattern counts as recognised when the majority decision over its second half is right.
    correct = total = 0
    print("  pattern summary:")
    starts = np.flatnonzero(np.diff(np.r_[-1, truth]) != 0)
    for s in starts:
        if truth[s] < 0:
            continue
        e = s + int(np.argmax(truth[s:] != truth[s])) if np.any(truth[s:] != truth[s]) else len(truth)
        tail = decisions[(s + e) // 2 : e]
        votes = {lab: tail.count(lab) for lab in set(tail)}
        best = max(votes, key=votes.get)
        ok = best == model.labels[truth[s]]
        correct += ok
        total += 1
        print(f"    {s:5d}-{e:5d} ms  shown {model.labels[truth[s]]:<11} decided {best:<11} {'ok' if ok else 'MISS'}")
    print(f"  recognised {correct}/{total} patterns; {elapsed / len(spikes) * 1e6:.1f} us per step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
