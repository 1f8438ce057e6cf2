"""Time-resolution adaptation on the spoken-keyword task: train at one step, run at others.

For each network (feed-forward LIF, feed-forward and recurrent adaptive LIF) and each training
step (1 ms and 4 ms), train with tools.train (or reuse a trained bundle in the
output folder), then evaluate the test split binned at 0.25, 0.5, 1, 2 and 4 ms
with every adaptation method of edgesnn.adapt, running the runtime engine itself.
Writes ``timeres.json``, ``timeres.md`` and ``timeres.png`` into ``--out``, keeping the
tables of networks an earlier invocation reported there (see :func:`merge_runs`).

    python -m tools.eval.timeres --data data/keywords --out results/timeres [--epochs 20] [--quiet]
        [--kinds recurrent-adlif] [--train-dt-ms 4] [--eval-dt-ms 1 2 4]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgesnn.adapt import METHODS, retime_model
from edgesnn.bundle import read_bundle
from edgesnn.cli import HelpFormatter
from edgesnn.errors import EdgeSNNError, OptionError
from edgesnn.model import Model

log = logging.getLogger("edgesnn.tools.eval")

CONFIGS = {
    "lif": "keywords_lif.json",
    "adlif": "keywords_adlif.json",
    "recurrent-adlif": "keywords_recurrent_adlif.json",
}
TRAIN_DT_S = (1e-3, 4e-3)
EVAL_DT_S = (0.25e-3, 0.5e-3, 1e-3, 2e-3, 4e-3)


def readout_scores(trace: np.ndarray, readout: str) -> np.ndarray:
    """Per-class scores (B, K) of a read-out trace (T, B, K), reduced as the trainer's loss reduces it."""
    if readout == "max":
        return trace.max(axis=0)
    if readout == "mean":
        return trace.mean(axis=0)
    e = np.exp(trace - trace.max(axis=-1, keepdims=True))  # softmax_mean: every step's class probabilities
    return (e / e.sum(axis=-1, keepdims=True)).mean(axis=0)


def accuracy(model: Model, x: np.ndarray, y: np.ndarray, *, readout: str, batch: int = 64) -> float:
    """Test accuracy of ``model`` on binned samples x (N, T, C), scored as the trainer scores."""
    hits = 0
    name = model.outputs[0].name
    for start in range(0, len(x), batch):
        xb = np.ascontiguousarray(x[start : start + batch].transpose(1, 0, 2))  # (T, B, C)
        session = model.session(batch=xb.shape[1])
        out = session.run(xb)[name]  # (T, B, K)
        logits = readout_scores(out, readout)
        hits += int((logits.argmax(axis=1) == y[start : start + batch]).sum())
    return hits / len(x)


def train_or_load(kind: str, dt_s: float, args: argparse.Namespace) -> tuple[Model, dict[str, Any]]:
    """The trained bundle for (kind, dt), training it when the output folder has none."""
    from tools.train import config_from_dict, train

    run_dir = Path(args.out) / f"{kind}_{dt_s * 1e3:g}ms"
    bundle = run_dir / "model.esnn"
    config_path = Path(__file__).resolve().parents[1] / "train" / "configs" / CONFIGS[kind]
    raw = json.loads(config_path.read_text())
    raw["name"] = f"timeres_{kind}_{dt_s * 1e3:g}ms"
    raw["dt_s"] = dt_s
    raw["data"]["path"] = str(args.data)
    if args.epochs:
        raw["epochs"] = args.epochs
    if args.batch_size:
        raw["batch_size"] = args.batch_size
    if not bundle.exists():
        summary = train(config_from_dict(raw), run_dir, resume=True, quiet=args.quiet)
    else:
        summary = json.loads((run_dir / "summary.json").read_text())
    return read_bundle(bundle), {"config": raw, "summary": summary}


def evaluate_all(args: argparse.Namespace) -> dict[str, Any]:
    """Train (or load) every network and evaluate it at every step with every method."""
    from tools.datasets.keywords import load_split

    train_dts = tuple(v / 1e3 for v in args.train_dt_ms) if getattr(args, "train_dt_ms", None) else TRAIN_DT_S
    eval_dts = tuple(v / 1e3 for v in args.eval_dt_ms) if getattr(args, "eval_dt_ms", None) else EVAL_DT_S
    results: dict[str, Any] = {"eval_dt_s": list(eval_dts), "methods": list(METHODS), "runs": []}
    cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    for kind in args.kinds:
        for dt_src in train_dts:
            model, info = train_or_load(kind, dt_src, args)
            readout = info["config"].get("loss", {}).get("readout", "max")
            run: dict[str, Any] = {
                "network": kind, "train_dt_s": dt_src, "accuracy": {}, "eval_s": {},
                "train_epochs": info["summary"].get("epochs_completed"),
                "train_samples_per_s": info["summary"].get("throughput_samples_per_s"),
                "train_peak_rss_mib": info["summary"].get("peak_rss_mib"),
                "train_test_accuracy_jax": info["summary"].get("test_accuracy"),
            }  # fmt: skip
            for dt in eval_dts:
                if dt not in cache:
                    cache[dt] = load_split(args.data, "test", dt_s=dt)
                x, y = cache[dt]
                if args.limit:
                    x, y = x[: args.limit], y[: args.limit]
                for method in METHODS:
                    key = f"{method}@{dt * 1e3:g}ms"
                    t0 = time.perf_counter()
                    try:
                        adapted = retime_model(model, dt, method)
                        acc = accuracy(adapted, x, y, readout=readout)
                    except EdgeSNNError as exc:  # the method cannot reach this step (decay out of range)
                        log.info("%s %s: %s", kind, key, exc)
                        acc = None
                    run["accuracy"][key] = acc
                    run["eval_s"][key] = time.perf_counter() - t0
                    if not args.quiet:
                        shown = "n/a" if acc is None else f"{acc:.3f}"
                        print(f"{kind} trained at {dt_src * 1e3:g} ms, {key}: {shown}", file=sys.stderr)
            results["runs"].append(run)
    return results


def merge_runs(previous: Path, results: dict[str, Any]) -> dict[str, Any]:
    """``results`` plus the runs of other networks kept from an earlier report at ``previous``.

    Evaluating ``--kinds adlif`` into a folder that already reports ``lif`` keeps
    the ``lif`` tables, so networks can be evaluated one invocation at a time.
    A report with other steps or methods is replaced, not merged.
    """
    try:
        old = json.loads(previous.read_text())
    except (OSError, ValueError):
        return results
    if old.get("eval_dt_s") != results["eval_dt_s"] or old.get("methods") != results["methods"]:
        return results
    fresh = {(r["network"], r["train_dt_s"]) for r in results["runs"]}
    kept = [r for r in old.get("runs", []) if (r.get("network"), r.get("train_dt_s")) not in fresh]
    order = list(CONFIGS)
    runs = sorted(kept + results["runs"], key=lambda r: (order.index(r["network"]) if r["network"] in order
                                                         else len(order), r["train_dt_s"]))  # fmt: skip
    return {**results, "runs": runs}


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables, one per network and training step."""
    lines = ["# Time-resolution adaptation on the spoken-keyword task", ""]
    for run in results["runs"]:
        src = run["train_dt_s"]
        lines += [f"## {run['network']} trained at {src * 1e3:g} ms", ""]
        header = "| method | " + " | ".join(f"{d * 1e3:g} ms" for d in results["eval_dt_s"]) + " |"
        lines += [header, "|---" * (len(results["eval_dt_s"]) + 1) + "|"]
        for m in results["methods"]:
            cells = []
            for d in results["eval_dt_s"]:
                acc = run["accuracy"][f"{m}@{d * 1e3:g}ms"]
                cells.append("n/a" if acc is None else f"{100 * acc:.1f} %")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines += ["", f"Training: {run.get('train_epochs') or 0} epochs, {run['train_samples_per_s'] or 0:.0f} "
                  f"samples/s, peak RSS {run['train_peak_rss_mib'] or 0:.0f} MiB.", ""]  # fmt: skip
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    """Accuracy against evaluation step, one panel per run, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.6), squeeze=False, sharey=True)
    dts = np.array(results["eval_dt_s"]) * 1e3
    for ax, run in zip(axes[0], runs, strict=True):
        for m in results["methods"]:
            acc = [run["accuracy"][f"{m}@{d:g}ms"] for d in dts]
            ys = np.array([np.nan if a is None else 100 * a for a in acc])
            ax.plot(dts, ys, marker="o", label=m)
        ax.axvline(run["train_dt_s"] * 1e3, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_xticks(dts, [f"{d:g}" for d in dts])
        ax.set_xlabel("evaluation step (ms)")
        ax.set_title(f"{run['network']}, trained at {run['train_dt_s'] * 1e3:g} ms")
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="python -m tools.eval.timeres", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--data", required=True, help="spoken-keyword dataset folder (tools.datasets.keywords)")
    ap.add_argument("--out", required=True, help="output folder (trained bundles are reused from it)")
    ap.add_argument("--epochs", type=int, default=0, help="override the configs' epochs")
    ap.add_argument("--batch-size", type=int, default=0, help="override the configs' batch size")
    ap.add_argument("--kinds", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--train-dt-ms", type=float, nargs="+", default=[1e3 * d for d in TRAIN_DT_S],
                    help="training steps, in ms")  # fmt: skip
    ap.add_argument("--eval-dt-ms", type=float, nargs="+", default=[1e3 * d for d in EVAL_DT_S],
                    help="evaluation steps, in ms")  # fmt: skip
    ap.add_argument("--limit", type=int, default=0, help="evaluate only the first N test samples")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    try:
        if not Path(args.data).exists():
            raise OptionError(
                "no such dataset folder; generate it with python -m tools.datasets.keywords", path=args.data
            )
        os.makedirs(args.out, exist_ok=True)
        t0 = time.perf_counter()
        out = Path(args.out)
        results = merge_runs(out / "timeres.json", evaluate_all(args))
        results["wall_s"] = time.perf_counter() - t0
        (out / "timeres.json").write_text(json.dumps(results, indent=2))
        (out / "timeres.md").write_text(markdown(results))
        plot(results, out / "timeres.png")
        print(markdown(results))
    except EdgeSNNError as exc:
        print(f"timeres: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["readout_scores", "accuracy", "evaluate_all", "main", "markdown", "merge_runs", "plot"]
