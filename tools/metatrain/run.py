"""One meta-training run end to end: data, feature network, cached feature spikes, grid of outer loops, bundles.

Writes into the output folder:

* ``features/``: the pre-trained feature network (tools.train's checkpoint, summary, ``model.esnn``);
* ``features_<split>.npz``: cached feature spikes (uint8) of the meta-train, meta-val and test splits;
* ``model.esnn``: the feature network with the meta-trained ``learning`` configuration;
* ``untuned.esnn``: the same network with the untuned rule (the ``rule`` section as it is);
* ``summary.json``: the grid (meta-val accuracy before and after per epoch length), the
  chosen and the untuned configuration, timings; ``config.json``: the configuration used.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from edgesnn.bundle import read_bundle, write_bundle
from edgesnn.learn import enable_learning
from tools.metatrain import features as F
from tools.metatrain.config import MetaConfig
from tools.metatrain.meta import meta_train_grid

log = logging.getLogger("edgesnn.metatrain")

BUNDLE = "model.esnn"
UNTUNED = "untuned.esnn"
SUMMARY = "summary.json"
CONFIG = "config.json"


def feature_bundle_path(cfg: MetaConfig, out: Path) -> Path:
    """Where the feature network lives: the configured bundle or the pre-trained one in ``out/features``."""
    return Path(cfg.features.bundle) if cfg.features.bundle is not None else out / "features" / BUNDLE


def run(cfg: MetaConfig, out_dir: str | os.PathLike[str], *, quiet: bool = False) -> dict[str, Any]:
    """Meta-train ``cfg`` into ``out_dir``; return the summary."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2))
    raw = F.load_raw(cfg.data, cfg.seed)
    model = F.feature_model(cfg.features, raw, out, cfg.seed, quiet)
    splits = F.cached_features(feature_bundle_path(cfg, out), cfg.features.feature_node, raw, out)
    n_features = splits["meta_train"].spikes.shape[2]
    t_features = time.perf_counter() - t0
    untuned = cfg.base_rule(n_features)
    grid = meta_train_grid(cfg.start_rule(n_features), model.dt_s, splits, cfg.episodes, cfg.meta, cfg.seed,
                           quiet=quiet)  # fmt: skip
    best = max(grid, key=lambda r: r.score)
    model = dataclasses.replace(model, learning=None)
    tuned_fields = {k: v for k, v in best.config.to_dict().items() if k not in ("rule", "version", "feature_node")}
    untuned_fields = {k: v for k, v in untuned.to_dict().items() if k not in ("rule", "version", "feature_node")}
    producer = {
        **model.producer,
        "metatrain": {
            "name": cfg.name,
            "t_epoch": best.t_epoch,
            "val_accuracy": {str(k): v for k, v in best.val_after.items()},
        },
    }
    tuned_model = enable_learning(dataclasses.replace(model, producer=producer), cfg.features.feature_node,
                                  **tuned_fields)  # fmt: skip
    write_bundle(tuned_model, out / BUNDLE)
    write_bundle(enable_learning(model, cfg.features.feature_node, **untuned_fields), out / UNTUNED)
    read_bundle(out / BUNDLE)  # the written bundle must load (validation of the learning section included)
    summary = {
        "name": cfg.name,
        "n_features": n_features,
        "dt_s": model.dt_s,
        "classes": {k: list(v.classes) for k, v in splits.items()},
        "grid": [
            {
                "t_epoch": r.t_epoch,
                "val_before": r.val_before,
                "val_after": r.val_after,
                "sequential_before": r.sequential_before,
                "sequential_after": r.sequential_after,
                "history": r.history,
            }
            for r in grid
        ],  # fmt: skip
        "chosen_t_epoch": best.t_epoch,
        "tuned": best.config.to_dict(),
        "untuned": untuned.to_dict(),
        "bundle": str(out / BUNDLE),
        "untuned_bundle": str(out / UNTUNED),
        "features_seconds": t_features,
        "wall_seconds": time.perf_counter() - t0,
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=2, default=_json_default))
    return summary


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
