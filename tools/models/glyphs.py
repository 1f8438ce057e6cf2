"""The shipped few-shot glyph learner: learns a new glyph, seen by an event camera in saccades, from one example.

Made by tools.metatrain with tools/metatrain/configs/glyphs.json (the configuration of the README's
few-shot table: a conv feature network trained on the glyphs of 36 scripts, the rule's hyperparameters
meta-trained on them), measured by the runtime on the glyphs of 12 scripts it never saw: 5-way 1-shot
and 5-shot accuracy learned by ``session.learn``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from edgesnn.bundle import read_bundle
from tools.models._ship import ensure_dataset, few_shot_accuracy, ship, stamped

log = logging.getLogger("edgesnn.models")

CONFIG = Path(__file__).parents[1] / "metatrain" / "configs" / "glyphs.json"
NAME = "glyphs"


def build(data: Path, work: Path, out_dir: Path | None, *, episodes: int = 300, quiet: bool = False) -> dict[str, Any]:
    """Generate the glyph set if needed, meta-train, measure, write the shipped bundle."""
    from tools.datasets import glyphs
    from tools.metatrain import features as F
    from tools.metatrain.config import load_config
    from tools.metatrain.run import BUNDLE, run

    ensure_dataset(data, glyphs.main, ["--size", "full", "--workers", "1", "--quiet"])
    cfg = load_config(CONFIG)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=str(data)))
    summary = run(cfg, work, quiet=quiet)
    model = read_bundle(work / BUNDLE)
    raw = F.load_raw(cfg.data, cfg.seed)
    shape = tuple(model.inputs[0].shape)
    x = raw["test"].x.reshape(*raw["test"].x.shape[:2], *shape)
    evaluation = []
    for k in (1, 5):
        mean, half = few_shot_accuracy(model, x, raw["test"].y, k=k, episodes=episodes, seed=cfg.seed)
        evaluation.append({"metric": f"5-way {k}-shot accuracy", "value": round(mean, 4), "unit": "%",
                           "split": "test", "samples": int(episodes), "dataset": "tools.datasets.glyphs full",
                           "note": f"scripts never seen, learned by session.learn, +-{100 * half:.1f} points (95 %),"
                                   " episodes as samples"})  # fmt: skip
    shipped = stamped(
        dataclasses.replace(model, labels=()),
        task="few-shot learning of glyphs seen by an event camera; learns a new class from one example",
        description=f"{shape[0]}x{shape[1]}x{shape[2]} event counts per bin ({int(cfg.data.n_bins)} bins per"
        " saccade sequence); 'classes' scores the classes learned with session.learn",
        made_by="python -m tools.models glyphs",
        evaluation=evaluation,
    )
    path = ship(shipped, NAME, out_dir)
    return {"name": NAME, "path": str(path), "evaluation": evaluation, "train_seconds": summary["wall_seconds"]}
