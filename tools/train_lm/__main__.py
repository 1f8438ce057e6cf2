"""``python -m tools.train_lm pretrain | adapt``: a character LM on the stdlib, then its gain-cell adaptation.

    nice .venv/bin/python -m tools.train_lm pretrain --out runs/lm --steps 3000
    nice .venv/bin/python -m tools.train_lm adapt --run runs/lm --window 96 --linear-steps 100 --poly-steps 200

``pretrain`` writes ``float.npz``, ``config.json``, ``pretrain.json`` (loss history) and
``float.esnn``. ``adapt`` writes the bundles the evaluation compares
(``float_window.esnn``: the float model with the sliding window; ``gaincell_raw.esnn``: the
gain-cell model before adaptation, the authors' initial scalers; ``gaincell_calibrated.esnn``;
``gaincell_adapted.esnn``: after the linear fine-tuning, a second calibration and the
nonlinear fine-tuning) and ``adapt.json`` (calibration reports, histories, step counts).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import pathlib
import sys

import numpy as np

from tools.train_lm import data
from tools.train_lm.model import Config, init_params


def _write_json(path: pathlib.Path, doc: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(path)


def pretrain(args: argparse.Namespace) -> None:
    """Train the float model with full-context attention and export it."""
    from tools.train_lm.export import save, save_params, to_model
    from tools.train_lm.train import fit

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = Config(d=args.d, heads=args.heads, layers=args.layers, context=args.context, window=args.context)
    corpus = data.load_corpus()
    params, history = fit(init_params(cfg, args.seed), cfg, "float", corpus.ids["train"], steps=args.steps,
                          batch=args.batch, lr=args.lr, seed=args.seed)  # fmt: skip
    save_params(params, out / "float.npz")
    save(to_model(params, cfg, notes={"stage": "pretrained", "steps": args.steps}), out / "float.esnn")
    _write_json(out / "config.json", dataclasses.asdict(cfg))
    _write_json(out / "pretrain.json", {
        "steps": args.steps, "batch": args.batch, "lr": args.lr, "corpus": corpus.root,
        "files": {k: len(v) for k, v in corpus.files.items()}, "chars": {k: len(v) for k, v in corpus.ids.items()},
        "history": history,
    })  # fmt: skip


def adapt(args: argparse.Namespace) -> None:
    """Calibrate, fine-tune the linear model, calibrate again, fine-tune the nonlinear model; export each stage."""
    from tools.train_lm.calibrate import calibrate
    from tools.train_lm.export import load_params, save, save_params, to_model
    from tools.train_lm.train import fit

    run = pathlib.Path(args.run)
    base = json.loads((run / "config.json").read_text())
    cfg = Config(**{**base, "window": args.window, "decay_per_step": args.decay_per_step})
    pre = json.loads((run / "pretrain.json").read_text())
    budget = args.linear_steps + args.poly_steps
    if budget > 0.1 * pre["steps"]:
        logging.warning("fine-tuning %d steps is more than 10%% of the %d pre-training steps", budget, pre["steps"])
    corpus = data.load_corpus()
    calib = data.batches(corpus.ids["train"], args.calibration_batch, cfg.context, np.random.default_rng(123))[:, :-1]
    params = load_params(run / "float.npz")
    notes = {"window": cfg.window, "decay_per_step": cfg.decay_per_step}
    save(to_model(params, cfg, notes={**notes, "stage": "float-window"}), run / "float_window.esnn")
    save(to_model(params, cfg, notes={**notes, "stage": "gaincell-raw"}), run / "gaincell_raw.esnn")
    calibrated, report_1 = calibrate(params, cfg, "polynomial", calib)
    save(to_model(calibrated, cfg, notes={**notes, "stage": "gaincell-calibrated"}), run / "gaincell_calibrated.esnn")
    linear_start, report_lin = calibrate(params, cfg, "linear", calib)
    linear, hist_lin = fit(linear_start, cfg, "linear", corpus.ids["train"], steps=args.linear_steps,
                           batch=args.batch, lr=args.lr, seed=args.seed + 1, warmup=10, log_every=25)  # fmt: skip
    poly_start, report_2 = calibrate(linear, cfg, "polynomial", calib)
    adapted, hist_poly = fit(poly_start, cfg, "polynomial", corpus.ids["train"], steps=args.poly_steps,
                             batch=args.batch, lr=args.lr, seed=args.seed + 2, warmup=10, log_every=25)  # fmt: skip
    save_params(adapted, run / "gaincell_adapted.npz")
    save(to_model(adapted, cfg, notes={**notes, "stage": "gaincell-adapted"}), run / "gaincell_adapted.esnn")
    _write_json(run / "adapt.json", {
        "window": cfg.window, "decay_per_step": cfg.decay_per_step, "pretrain_steps": pre["steps"],
        "linear_steps": args.linear_steps, "poly_steps": args.poly_steps,
        "fine_tuning_share_of_pretraining": budget / pre["steps"], "lr": args.lr, "batch": args.batch,
        "calibration": {"polynomial_from_float": report_1, "linear_from_float": report_lin,
                        "polynomial_from_linear": report_2},
        "history": {"linear": hist_lin, "polynomial": hist_poly},
    })  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Parse and run one stage."""
    p = argparse.ArgumentParser(prog="python -m tools.train_lm", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="stage", required=True)
    pt = sub.add_parser("pretrain", help="train the float model on the stdlib")
    pt.add_argument("--out", required=True)
    pt.add_argument("--steps", type=int, default=3000)
    pt.add_argument("--batch", type=int, default=16)
    pt.add_argument("--lr", type=float, default=1e-3)
    pt.add_argument("--d", type=int, default=128)
    pt.add_argument("--heads", type=int, default=4)
    pt.add_argument("--layers", type=int, default=4)
    pt.add_argument("--context", type=int, default=128)
    pt.add_argument("--seed", type=int, default=0)
    ad = sub.add_parser("adapt", help="calibrate and fine-tune a pre-trained model to the gain cells")
    ad.add_argument("--run", required=True)
    ad.add_argument("--window", type=int, default=96)
    ad.add_argument("--decay-per-step", type=float, default=1.6e-4)
    ad.add_argument("--linear-steps", type=int, default=100)
    ad.add_argument("--poly-steps", type=int, default=200)
    ad.add_argument("--batch", type=int, default=16)
    ad.add_argument("--calibration-batch", type=int, default=16)
    ad.add_argument("--lr", type=float, default=3e-4)
    ad.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    (pretrain if args.stage == "pretrain" else adapt)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
