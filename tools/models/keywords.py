"""The shipped keyword spotter: 12 spoken words, and new words learned on the device from one example.

Made by tools.metatrain with tools/metatrain/configs/keywords.json (the configuration of the README's
few-shot table: a feature network trained on the 12 words, the learning rule's hyperparameters
meta-trained on them), measured by the runtime on speakers it never heard: the 12-way accuracy of its
own read-out, and 5-way 1-shot accuracy on the ten digits, which it never saw, learned by
``session.learn``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgesnn.bundle import read_bundle
from edgesnn.model import Model
from tools.models._ship import ensure_dataset, few_shot_accuracy, ship, stamped

log = logging.getLogger("edgesnn.models")

CONFIG = Path(__file__).parents[1] / "metatrain" / "configs" / "keywords.json"
NAME = "keywords"


def readout_accuracy(model: Model, x: np.ndarray, y: np.ndarray, *, batch: int = 128) -> float:
    """Share of samples (N, T, C) whose mean read-out over time peaks at the right label."""
    out = model.outputs[0].name
    hits = 0
    for i in range(0, len(x), batch):
        xb = np.ascontiguousarray(np.swapaxes(x[i : i + batch], 0, 1))  # (T, B, C)
        scores = model.session(batch=xb.shape[1]).run(xb, outputs=[out])[out].mean(axis=0)
        hits += int(np.sum(scores.argmax(axis=1) == y[i : i + batch]))
    return hits / len(x)


def build(data: Path, work: Path, out_dir: Path | None, *, episodes: int = 300, quiet: bool = False) -> dict[str, Any]:
    """Generate the keyword set if needed, meta-train, measure, write the shipped bundle."""
    from tools.datasets import keywords as kw
    from tools.metatrain import features as F
    from tools.metatrain.config import load_config
    from tools.metatrain.run import BUNDLE, run

    ensure_dataset(data, kw.main, ["--size", "full", "--workers", "1", "--quiet"])
    cfg = load_config(CONFIG)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=str(data)))
    summary = run(cfg, work, quiet=quiet)
    model = read_bundle(work / BUNDLE)
    # The 12 words on the test speakers (disjoint from the training voices).
    names = [str(k) for k in kw.read_split(data, "train").keywords]
    x, y = kw.load_split(data, "test", dt_s=cfg.data.dt_s)
    x, y = F._select(x, y, names, cfg.data.meta_train_classes, "data/meta_train_classes")
    model = dataclasses.replace(model, labels=tuple(cfg.data.meta_train_classes))
    words = readout_accuracy(model, x, y)
    raw = F.load_raw(cfg.data, cfg.seed)
    shot, half = few_shot_accuracy(model, raw["test"].x, raw["test"].y, k=1, episodes=episodes, seed=cfg.seed)
    evaluation = [
        {"metric": f"{len(cfg.data.meta_train_classes)}-way accuracy", "value": round(words, 4), "unit": "%",
         "split": "test", "samples": int(len(y)), "dataset": "tools.datasets.keywords full",
         "note": "speakers never heard"},
        {"metric": "5-way 1-shot accuracy", "value": round(shot, 4), "unit": "%", "split": "test",
         "samples": int(episodes), "dataset": "tools.datasets.keywords full",
         "note": f"digits learned by session.learn, +-{100 * half:.1f} points (95 %), episodes as samples"},
    ]  # fmt: skip
    shipped = stamped(
        model,
        task="keyword spotting: " + ", ".join(cfg.data.meta_train_classes) + "; learns new words from one example",
        description="1 s of 64 cochlea channels at 10 ms steps (inputs: spikes per step); read-out 'scores' over"
        " the 12 words, 'classes' over the words learned with session.learn",
        made_by="python -m tools.models keywords",
        evaluation=evaluation,
    )
    path = ship(shipped, NAME, out_dir)
    return {"name": NAME, "path": str(path), "evaluation": evaluation, "train_seconds": summary["wall_seconds"]}
