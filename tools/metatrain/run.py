"""One meta-training run end to end: data, feature network, cached feature spikes, grid of outer loops, bundles.

Writes into the output folder:

* ``features/``: the pre-trained feature network (tools.train's checkpoint, summary, ``model.esnn``);
* ``features_meta/``: with ``features.meta_iterations > 0``, that network with its hidden
  layers meta-trained through the rule (``model.esnn``, ``summary.json``); it is then the feature network;
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
    """Where the feature network lives: the configured bundle, the pre-trained one or its meta-trained successor."""
    if cfg.features.bundle is not None:
        return Path(cfg.features.bundle)
    return out / ("features_meta" if cfg.features.meta_iterations > 0 else "features") / BUNDLE


def meta_features(cfg: MetaConfig, raw: dict, model: Any, out: Path, *, quiet: bool) -> tuple[Any, dict[str, Any]]:
    """The feature network after meta-training its layers (``features_meta/``, reused when present)."""
    from tools.metatrain.feature_meta import meta_train_features

    folder = out / "features_meta"
    bundle, summary_path = folder / BUNDLE, folder / SUMMARY
    if bundle.exists() and summary_path.exists():
        log.info("reusing the meta-trained feature network %s", bundle)
        return read_bundle(bundle), json.loads(summary_path.read_text())
    n_features = model.graph.nodes[cfg.features.feature_node].size
    # The rule the layers are shaped for: the outer loop's start, at the longest epoch of the grid.
    rule = dataclasses.replace(cfg.start_rule(n_features), t_epoch=max(cfg.meta.t_epoch_grid))
    result = meta_train_features(cfg.features, out / "features", raw, rule, cfg.episodes, cfg.meta, cfg.seed,
                                 quiet=quiet)  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    summary = {"iterations": cfg.features.meta_iterations, "lr": cfg.features.meta_lr, "t_epoch": rule.t_epoch,
               "val_1shot_before": result.val_before, "val_1shot_after": result.val_after,
               "history": result.history, "seconds": result.seconds}  # fmt: skip
    write_bundle(result.model, bundle)
    summary_path.write_text(json.dumps(summary, indent=2))
    return result.model, summary


def run(cfg: MetaConfig, out_dir: str | os.PathLike[str], *, quiet: bool = False) -> dict[str, Any]:
    """Meta-train ``cfg`` into ``out_dir``; return the summary."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2))
    raw = F.load_raw(cfg.data, cfg.seed)
    model = F.feature_model(cfg.features, raw, out, cfg.seed, quiet)
    feature_meta = None
    if cfg.features.meta_iterations > 0:
        model, feature_meta = meta_features(cfg, raw, model, out, quiet=quiet)
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
        "feature_meta": feature_meta,
        "wall_seconds": time.perf_counter() - t0,
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=2, default=_json_default))
    return summary


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
