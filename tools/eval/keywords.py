"""Keyword accuracy in one evaluation: spiking networks against a GRU and logistic regression on the same data.

Trains (or reuses from ``--out``) each network with tools.train on the spoken-keyword set,
scores the spiking ones by running their exported bundles in the runtime engine on the test
split, the GRU reference (same trainer, same binned input, same hidden sizes) in JAX, and fits
multinomial logistic regression on 50 ms log counts. Writes ``keywords.json`` and
``keywords.md`` into ``--out``, with the two comparisons of issue 18 (best spiking network
against logistic regression + 15 points and against 90 % of the GRU)::

    python -m tools.eval.keywords --data data/keywords --out results/keywords [--epochs 30] [--quiet]
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

from edgesnn.bundle import read_bundle
from edgesnn.cli import HelpFormatter
from edgesnn.errors import EdgeSNNError, OptionError

log = logging.getLogger("edgesnn.tools.eval")

CONFIG_DIR = Path(__file__).resolve().parents[1] / "train" / "configs"
#: Network name -> training configuration; "gru" is the non-spiking reference.
CONFIGS = {
    "adlif": "keywords_adlif.json",
    "recurrent-adlif": "keywords_recurrent_adlif.json",
    "gru": "keywords_gru.json",
}
SPIKING = ("adlif", "recurrent-adlif")
LR_BIN_MS = 50.0


def train_or_load(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """The training summary of ``kind`` (trained into ``--out/kind`` unless a finished run is there)."""
    from tools.train import config_from_dict, train

    run_dir = Path(args.out) / kind
    raw = json.loads((CONFIG_DIR / CONFIGS[kind]).read_text())
    raw["data"]["path"] = str(args.data)
    if args.epochs:
        raw["epochs"] = args.epochs
    if args.batch_size:
        raw["batch_size"] = args.batch_size
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        if summary.get("finished"):
            return {"config": raw, "summary": summary}
    return {"config": raw, "summary": train(config_from_dict(raw), run_dir, resume=True, quiet=args.quiet)}


def engine_accuracy(bundle: str, data: str, readout: str, limit: int = 0) -> float:
    """Test accuracy of a bundle run by the runtime engine on the test split at the bundle's step."""
    from tools.datasets.keywords import load_split
    from tools.eval.timeres import accuracy

    model = read_bundle(bundle)
    x, y = load_split(data, "test", dt_s=model.dt_s)
    if limit:
        x, y = x[:limit], y[:limit]
    return accuracy(model, x, y, readout=readout)


def evaluate_all(args: argparse.Namespace) -> dict[str, Any]:
    """Train or load every network, score it, fit the linear baseline; the comparisons as a dict."""
    from tools.datasets.baseline import logistic_baseline

    results: dict[str, Any] = {"networks": {}}
    for kind in args.kinds:
        info = train_or_load(kind, args)
        s = info["summary"]
        row: dict[str, Any] = {
            "config": CONFIGS[kind], "spiking": kind in SPIKING, "parameters": s.get("parameters"),
            "dt_s": s.get("dt_s"), "epochs": s.get("epochs_completed"), "val_accuracy": s.get("best_val_accuracy"),
            "test_accuracy_jax": s.get("test_accuracy"), "train_seconds": s.get("train_seconds"),
            "samples_per_s": s.get("steady_throughput_samples_per_s"), "peak_rss_mib": s.get("peak_rss_mib"),
        }  # fmt: skip
        bundle = Path(args.out) / kind / "model.esnn"
        if kind in SPIKING and bundle.exists():
            readout = info["config"].get("loss", {}).get("readout", "max")
            row["test_accuracy"] = engine_accuracy(str(bundle), args.data, readout, args.limit)
            row["scored_by"] = "runtime engine"
        else:
            row["test_accuracy"] = s.get("test_accuracy")
            row["scored_by"] = "JAX"
        results["networks"][kind] = row
        if not args.quiet:
            print(f"{kind}: test {row['test_accuracy']:.3f}", file=sys.stderr)
    lr = logistic_baseline(str(args.data), LR_BIN_MS)
    results["logistic_regression"] = lr
    spiking = {k: v["test_accuracy"] for k, v in results["networks"].items() if v["spiking"]}
    if spiking:
        best = max(spiking, key=spiking.get)  # type: ignore[arg-type]
        checks: dict[str, Any] = {"best_spiking": best, "best_spiking_accuracy": spiking[best],
                                  "lr_plus_15": lr["accuracy"]["test"] + 0.15}  # fmt: skip
        checks["beats_lr_plus_15"] = spiking[best] >= checks["lr_plus_15"]
        if "gru" in results["networks"]:
            gru = results["networks"]["gru"]["test_accuracy"]
            checks.update(gru_90=0.9 * gru, reaches_90_of_gru=spiking[best] >= 0.9 * gru)
        results["checks"] = checks
    return results


def markdown(results: dict[str, Any]) -> str:
    """The results as a Markdown table and the two comparisons."""
    lr = results["logistic_regression"]
    lines = ["# Spoken keywords: spiking networks, a GRU and logistic regression", "",
             f"Chance {100 * lr['chance']:.1f} %; test split of {lr['samples']['test']} samples.", "",
             "| model | step | parameters | test accuracy | scored by |", "|---|---|---|---|---|"]  # fmt: skip
    for kind, row in results["networks"].items():
        by = row.get("scored_by", "JAX")
        lines.append(f"| {kind} | {1e3 * (row['dt_s'] or 0):g} ms | {row['parameters']} | "
                     f"{100 * row['test_accuracy']:.1f} % | {by} |")  # fmt: skip
    lines.append(f"| logistic regression, {lr['bin_ms']:g} ms log counts | - | {lr['features'] + 1} x classes | "
                 f"{100 * lr['accuracy']['test']:.1f} % | numpy |")  # fmt: skip
    c = results.get("checks")
    if c:
        lines += ["", f"Best spiking network: {c['best_spiking']} at {100 * c['best_spiking_accuracy']:.1f} %; "
                  f"logistic regression + 15 points = {100 * c['lr_plus_15']:.1f} % "
                  f"({'met' if c['beats_lr_plus_15'] else 'not met'})"
                  + (f"; 90 % of the GRU = {100 * c['gru_90']:.1f} % ({'met' if c['reaches_90_of_gru'] else 'not met'})"
                     if "gru_90" in c else "") + "."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="python -m tools.eval.keywords", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--data", required=True, help="spoken-keyword dataset folder (tools.datasets.keywords)")
    ap.add_argument("--out", required=True, help="output folder (finished runs are reused from it)")
    ap.add_argument("--epochs", type=int, default=0, help="override the configs' epochs")
    ap.add_argument("--batch-size", type=int, default=0, help="override the configs' batch size")
    ap.add_argument("--kinds", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--limit", type=int, default=0, help="score spiking networks on the first N test samples only")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    try:
        if not Path(args.data).exists():
            raise OptionError("no such dataset folder; generate it with python -m tools.datasets.keywords",
                              path=args.data)  # fmt: skip
        os.makedirs(args.out, exist_ok=True)
        t0 = time.perf_counter()
        results = evaluate_all(args)
        results["wall_s"] = time.perf_counter() - t0
        out = Path(args.out)
        (out / "keywords.json").write_text(json.dumps(results, indent=2))
        (out / "keywords.md").write_text(markdown(results))
        print(markdown(results))
    except EdgeSNNError as exc:
        print(f"keywords: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["engine_accuracy", "evaluate_all", "main", "markdown"]
