"""Bits per character of the stdlib LM, float against gain cells, before and after the hardware-aware adaptation.

    nice .venv/bin/python -m tools.eval.gaincell --run results/lm [--chunks 128] [--board] [--plots]

Reads the bundles ``python -m tools.train_lm pretrain`` and ``adapt`` wrote into ``--run``
and evaluates each on the first ``--chunks`` chunks of ``context`` characters of the test
split (files never seen in training), predicting characters 2..T of each chunk from
the ones before, with the edgesnn runtime stepping one token per step:

1. float, full context (``float.esnn``);
2. float, sliding window (``float_window.esnn``);
3. gain-cell numerics without adaptation (``gaincell_raw.esnn``: the authors' initial scalers);
4. after calibration (``gaincell_calibrated.esnn``);
5. after calibration and fine-tuning (``gaincell_adapted.esnn``), and the same bundle on the
   emulated board through the serial link (``--board``).

Every row also gives the JAX model's figure on the same chunks. ``--plots`` adds bits per
character against the window and against the leakage rate (JAX hardware model, which the
runtime equals; tests/test_gaincell_jax.py). Writes ``eval.json`` (and ``eval.png``) into ``--run``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import pathlib
import sys
import time
from typing import Any

import numpy as np

from edgesnn.bundle import read_bundle

log = logging.getLogger("tools.eval.gaincell")

ROWS = (
    ("float, full context", "float.esnn", "float", "float"),
    ("float, sliding window", "float_window.esnn", "float", "float"),
    ("gain cells, not adapted", "gaincell_raw.esnn", "gaincell", "polynomial"),
    ("gain cells, calibrated", "gaincell_calibrated.esnn", "gaincell", "polynomial"),
    ("gain cells, calibrated and fine-tuned", "gaincell_adapted.esnn", "gaincell", "polynomial"),
)


def _nats(logits: np.ndarray, chunk: np.ndarray) -> float:
    # logits (T, B, V) for inputs chunk[:, t]; the target of step t is chunk[:, t + 1]
    lg = logits[:-1].astype(np.float64)
    lg = lg - lg.max(-1, keepdims=True)
    logp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
    return float(-np.take_along_axis(logp, chunk.T[1:, :, None], axis=-1).sum())


def runtime_bpc(session_for: Any, chunks: np.ndarray, batch: int) -> float:
    """Bits per character of a model stepped by sessions ``session_for(batch)`` over the chunks."""
    total = 0.0
    for i in range(0, len(chunks), batch):
        part = chunks[i : i + batch]
        s = session_for(len(part))
        logits = s.run(np.ascontiguousarray(part.T[:, :, None], np.float32))["logits"]
        total += _nats(logits, part)
        close = getattr(s, "close", None)
        if close:
            close()
    return total / (chunks.shape[0] * (chunks.shape[1] - 1)) / math.log(2)


def _board_device() -> tuple[Any, Any]:
    from firmware_bridges.analog.__main__ import start_emulator
    from firmware_bridges.analog.device import AnalogDevice
    from firmware_bridges.analog.link import BoardLink, open_port

    proc, url = start_emulator()
    return proc, AnalogDevice(BoardLink(open_port(url), timeout_s=5.0))


def evaluate(run: pathlib.Path, n_chunks: int, batch: int, board: bool) -> list[dict[str, Any]]:
    """The table's rows: name, bundle, numerics, runtime and JAX bits per character, seconds."""
    from tools.train_lm import data
    from tools.train_lm.export import load_params
    from tools.train_lm.model import Config
    from tools.train_lm.train import bits_per_char

    cfg = Config(**json.loads((run / "config.json").read_text()))
    adapted_cfg = json.loads((run / "adapt.json").read_text())
    hw = dataclasses.replace(cfg, window=adapted_cfg["window"], decay_per_step=adapted_cfg["decay_per_step"])
    chunks = data.chunks(data.load_corpus().ids["test"], cfg.context, n_chunks)
    params = {"float.esnn": load_params(run / "float.npz"), "gaincell_adapted.esnn": load_params(
        run / "gaincell_adapted.npz")}  # fmt: skip
    rows = []
    for name, bundle, numerics, kind in ROWS:
        model = read_bundle(run / bundle)
        start = time.perf_counter()
        bpc = runtime_bpc(lambda b, m=model, n=numerics: m.session(batch=b, numerics=n), chunks, batch)
        row = {"row": name, "bundle": bundle, "numerics": numerics, "runtime_bpc": bpc,
               "runtime_s": time.perf_counter() - start}  # fmt: skip
        jcfg = cfg if bundle == "float.esnn" else hw
        p = params.get(bundle)
        if p is None:  # the float params with the bundle's own scalers
            from tools.train_lm.export import params_of

            p = params_of(model)
        row["jax_bpc"] = bits_per_char(p, jcfg, kind, chunks)
        log.info("%s: runtime %.4f, JAX %.4f bits/char (%.0f s)", name, bpc, row["jax_bpc"], row["runtime_s"])
        rows.append(row)
    if board:
        proc, dev = _board_device()
        try:
            mid = dev.load_model(str(run / "gaincell_adapted.esnn"))
            start = time.perf_counter()
            bpc = runtime_bpc(lambda b: dev.open_session(mid, batch=b), chunks, batch)
            rows.append({
                "row": "gain cells, calibrated and fine-tuned, emulated board", "bundle": "gaincell_adapted.esnn",
                "numerics": "gaincell (board)", "runtime_bpc": bpc, "runtime_s": time.perf_counter() - start,
                "link_faults": dict(dev.client.link.faults),
            })  # fmt: skip
            log.info("emulated board: %.4f bits/char", bpc)
        finally:
            dev.close()
            proc.terminate()
    return rows


def sweeps(run: pathlib.Path, n_chunks: int) -> dict[str, Any]:
    """Bits per character against the window (float and adapted gain cells) and the leakage rate (JAX)."""
    from tools.train_lm import data
    from tools.train_lm.export import load_params
    from tools.train_lm.model import Config
    from tools.train_lm.train import bits_per_char

    cfg = Config(**json.loads((run / "config.json").read_text()))
    adapted = json.loads((run / "adapt.json").read_text())
    chunks = data.chunks(data.load_corpus().ids["test"], cfg.context, n_chunks)
    fp, gp = load_params(run / "float.npz"), load_params(run / "gaincell_adapted.npz")
    windows = sorted({16, 32, 64, adapted["window"], cfg.context})
    out: dict[str, Any] = {"windows": windows, "float": [], "gaincell": []}
    for w in windows:
        out["float"].append(bits_per_char(fp, dataclasses.replace(cfg, window=w), "float", chunks))
        hw = dataclasses.replace(cfg, window=w, decay_per_step=adapted["decay_per_step"])
        out["gaincell"].append(bits_per_char(gp, hw, "polynomial", chunks))
    rates = [0.0, 1.6e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
    out["rates"], out["gaincell_by_rate"] = rates, []
    for r in rates:
        hw = dataclasses.replace(cfg, window=adapted["window"], decay_per_step=r)
        out["gaincell_by_rate"].append(bits_per_char(gp, hw, "polynomial", chunks))
    return out


def plot(sweep: dict[str, Any], path: pathlib.Path) -> None:
    """Two panels: bits per character against the window, and against the leakage rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(sweep["windows"], sweep["float"], "o-", label="float")
    a.plot(sweep["windows"], sweep["gaincell"], "s-", label="gain cells (adapted)")
    a.set_xlabel("window (tokens)")
    a.set_ylabel("bits per character (test)")
    a.legend()
    rates = [max(r, 1e-5) for r in sweep["rates"]]
    b.semilogx(rates, sweep["gaincell_by_rate"], "s-", color="C1")
    b.set_xlabel("leakage rate per token step (0 drawn at 1e-5)")
    b.set_ylabel("bits per character (test)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    """Evaluate, write eval.json (and eval.png), print the table."""
    p = argparse.ArgumentParser(prog="python -m tools.eval.gaincell", description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True)
    p.add_argument("--chunks", type=int, default=128)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--board", action="store_true", help="also run the adapted model on the emulated board")
    p.add_argument("--plots", action="store_true", help="sweep window and leakage (JAX) and plot them")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    run = pathlib.Path(args.run)
    doc: dict[str, Any] = {"chunks": args.chunks, "rows": evaluate(run, args.chunks, args.batch, args.board)}
    ref = next(r["runtime_bpc"] for r in doc["rows"] if r["row"] == "float, sliding window")
    for r in doc["rows"]:
        r["vs_float_window"] = r["runtime_bpc"] / ref - 1
    if args.plots:
        doc["sweeps"] = sweeps(run, args.chunks)
        plot(doc["sweeps"], run / "eval.png")
    (run / "eval.json").write_text(json.dumps(doc, indent=2))
    for r in doc["rows"]:
        print(f"{r['row']:55s} {r['runtime_bpc']:.4f} bits/char ({r['vs_float_window']:+.1%} vs float window)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
