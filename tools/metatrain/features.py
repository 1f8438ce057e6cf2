"""Episode data: raw inputs per split, the pre-trained feature network, and its feature spikes cached on disk.

Three splits, each restricted to its classes and relabelled 0..K-1 in class order:

* ``meta_train``: the classes meta-training (and pre-training) sees, from the
  dataset's train split;
* ``meta_val``: for model selection (the epoch-length grid): keywords, the same
  classes spoken by the val split's voices; glyphs, the val split's alphabets;
* ``test``: held-out classes (keywords: ``test_classes`` of the test split's
  voices; glyphs: the test split's alphabets) - only the evaluation sees them.

Feature spikes are recorded by the runtime engine itself (a batched session of
the bundle with ``outputs=[feature_node]``), so what meta-training and the
baselines see is what ``session.learn`` records. They are cached as uint8 in
``features_<split>.npz`` next to the bundle hash, and recomputed when it changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgesnn.bundle import read_bundle
from edgesnn.errors import OptionError, StateError
from edgesnn.model import Model
from tools.metatrain.config import DataSection, FeatureSection

log = logging.getLogger("edgesnn.metatrain")

SPLITS = ("meta_train", "meta_val", "test")
_SOURCE = {"meta_train": "train", "meta_val": "val", "test": "test"}


@dataclasses.dataclass(frozen=True, eq=False)
class RawSplit:
    """Inputs ``x`` (N, T, C) float32 at ``dt_s``, labels ``y`` (N,) int64 in 0..K-1, and the K class names."""

    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    dt_s: float


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureSplit:
    """Feature spikes ``spikes`` (N, T, F) uint8 of one split, labels ``y`` (N,) and class names."""

    spikes: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]

    def mean_rates(self) -> np.ndarray:
        """Mean spikes per step per feature, (N, F) float64: the features of the NCM and SGD baselines."""
        return self.spikes.mean(axis=1, dtype=np.float64)


def _select(x: np.ndarray, y: np.ndarray, names: list[str], keep: tuple[str, ...], path: str) -> RawSplit | tuple:
    missing = [k for k in keep if k not in names]
    if missing:
        raise OptionError(f"no classes named {missing}; the dataset has {names}", path=path)
    ids = [names.index(k) for k in keep]
    mask = np.isin(y, ids)
    remap = np.full(len(names), -1, np.int64)
    remap[ids] = np.arange(len(ids))
    return x[mask], remap[y[mask]]


def _synthetic(data: DataSection, seed: int) -> dict[str, RawSplit]:
    """Class-specific Poisson rate patterns over ``n_inputs`` inputs (tests and smoke runs)."""
    o = {"n_classes": 12, "n_test_classes": 6, "n_inputs": 32, "steps": 40, "per_class": 12, "active": 6,
         "rate_on": 0.4, "rate_off": 0.03, **data.options}  # fmt: skip
    rng = np.random.default_rng([seed, 7])
    n_all = int(o["n_classes"]) + int(o["n_test_classes"])
    patterns = [rng.choice(int(o["n_inputs"]), int(o["active"]), replace=False) for _ in range(n_all)]

    def make(classes: range, key: int) -> RawSplit:
        r = np.random.default_rng([seed, key])
        xs, ys = [], []
        for k, c in enumerate(classes):
            rates = np.full(int(o["n_inputs"]), float(o["rate_off"]))
            rates[patterns[c]] = float(o["rate_on"])
            xs.append(r.random((int(o["per_class"]), int(o["steps"]), int(o["n_inputs"]))) < rates)
            ys.append(np.full(int(o["per_class"]), k, np.int64))
        return RawSplit(np.concatenate(xs).astype(np.float32), np.concatenate(ys), tuple(f"p{c}" for c in classes),
                        data.dt_s)  # fmt: skip

    meta = range(int(o["n_classes"]))
    return {"meta_train": make(meta, 1), "meta_val": make(meta, 2),
            "test": make(range(int(o["n_classes"]), n_all), 3)}  # fmt: skip


def load_raw(data: DataSection, seed: int) -> dict[str, RawSplit]:
    """The three splits' raw inputs as :class:`RawSplit`."""
    if data.kind == "synthetic":
        return _synthetic(data, seed)
    if not Path(str(data.path)).exists():
        raise OptionError(f"no such dataset folder; generate it with python -m tools.datasets.{data.kind}",
                          path=str(data.path))  # fmt: skip
    out = {}
    if data.kind == "keywords":
        from tools.datasets.keywords import load_split, read_split

        names = [str(k) for k in read_split(data.path, "train").keywords]
        for split, keep in (("meta_train", data.meta_train_classes), ("meta_val", data.meta_train_classes),
                            ("test", data.test_classes)):  # fmt: skip
            x, y = load_split(data.path, _SOURCE[split], dt_s=data.dt_s)
            x, y = _select(x, y, names, keep, "data/meta_train_classes" if split != "test" else "data/test_classes")
            out[split] = RawSplit(x, y, keep, data.dt_s)
        return out
    from tools.datasets.glyphs import load_split as load_glyphs
    from tools.datasets.glyphs import read_split as read_glyphs

    for split in SPLITS:
        meta = read_glyphs(data.path, _SOURCE[split])
        x, y = load_glyphs(data.path, _SOURCE[split], n_bins=int(data.n_bins))  # (N, T, 2, H, W)
        used = np.unique(y)
        remap = np.full(int(y.max()) + 1, -1, np.int64)
        remap[used] = np.arange(len(used))
        names = tuple(f"{meta.class_alphabet[c]}:{meta.class_names[c]}" for c in used)
        dt_s = float(meta.duration_us) * 1e-6 / int(data.n_bins)
        out[split] = RawSplit(x.reshape(len(x), x.shape[1], -1), remap[y], names, dt_s)
    return out


# -- pre-training -------------------------------------------------------------------------------


def pretrain(features: FeatureSection, raw: RawSplit, out_dir: Path, seed: int, quiet: bool) -> Model:
    """Train the feature network on the meta-train classes with tools.train (reused if ``out_dir`` has it)."""
    from tools.train import config_from_dict, train
    from tools.train.data import Dataset, Split, dataset_sha256

    bundle = out_dir / "model.esnn"
    if bundle.exists():
        log.info("reusing the pre-trained feature network %s", bundle)
        return read_bundle(bundle)
    rng = np.random.default_rng([seed, 11])
    val = np.zeros(len(raw.y), bool)
    for c in range(len(raw.classes)):
        # A fifth of each class's samples (at least one) checks pre-training; the rest trains.
        idx = rng.permutation(np.flatnonzero(raw.y == c))
        val[idx[: max(1, len(idx) // 5)]] = True
    splits = {"train": Split(raw.x[~val], raw.y[~val]), "val": Split(raw.x[val], raw.y[val]),
              "test": Split(raw.x[val], raw.y[val])}  # fmt: skip
    data = Dataset(splits, raw.classes, dataset_sha256(splits))
    cfg = dict(features.train or {})
    cfg.setdefault("name", "features")
    cfg.setdefault("seed", seed)
    cfg["dt_s"] = raw.dt_s
    cfg["data"] = {"kind": "synthetic", "options": {}}  # recorded only: the data is passed in
    summary = train(config_from_dict(cfg), out_dir, quiet=quiet, data=data)
    if "bundle" not in summary:
        raise StateError("pre-training finished without a bundle (no epoch improved validation accuracy)",
                         path=str(out_dir))  # fmt: skip
    log.info("feature network: val accuracy %.3f on %d meta-train classes", summary["best_val_accuracy"],
             len(raw.classes))  # fmt: skip
    return read_bundle(bundle)


def feature_model(features: FeatureSection, raw: dict[str, RawSplit], out_dir: Path, seed: int, quiet: bool) -> Model:
    """The feature network: the configured bundle, or one pre-trained into ``out_dir/features``."""
    if features.bundle is not None:
        model = read_bundle(features.bundle)
    else:
        model = pretrain(features, raw["meta_train"], out_dir / "features", seed, quiet)
    if features.feature_node not in model.graph.nodes or not model.graph.nodes[features.feature_node].spiking:
        spiking = [n for n, v in model.graph.nodes.items() if v.spiking]
        raise OptionError(f"{features.feature_node!r} is not a spiking node of the feature network; spiking nodes"
                          f" are {spiking}", path="features/feature_node")  # fmt: skip
    if not math.isclose(model.dt_s, raw["meta_train"].dt_s, rel_tol=1e-9):
        raise OptionError(f"the feature network runs at dt {model.dt_s:g} s but the data is binned at "
                          f"{raw['meta_train'].dt_s:g} s", path="data/dt_s")  # fmt: skip
    return model


# -- recording and the cache ------------------------------------------------------------------------


def record_features(model: Model, feature_node: str, x: np.ndarray, *, batch: int = 128) -> np.ndarray:
    """Feature spikes (N, T, F) uint8 of inputs x (N, T, C), recorded by runtime sessions from rest.

    C is the model input's size: flattened samples (glyph frames) take the input's own shape here.
    """
    out = None
    shape = tuple(model.graph.nodes[model.graph.inputs[0]].shape)
    for start in range(0, len(x), batch):
        xb = np.ascontiguousarray(x[start : start + batch].transpose(1, 0, 2))
        xb = xb.reshape(*xb.shape[:2], *shape)
        session = model.session(batch=xb.shape[1])
        s = session.run(xb, outputs=[feature_node])[feature_node]  # (T, B, *shape)
        s = s.reshape(s.shape[0], s.shape[1], -1).transpose(1, 0, 2)
        if out is None:
            out = np.empty((len(x), s.shape[1], s.shape[2]), np.uint8)
        out[start : start + len(s)] = s
    if out is None:
        raise OptionError("the split has no samples", path="data")
    return out


def bundle_hash(model_path: Path) -> str:
    """sha256 of a bundle file: the cache key of its feature spikes."""
    return hashlib.sha256(model_path.read_bytes()).hexdigest()


def cached_features(model_path: Path, feature_node: str, raw: dict[str, RawSplit], cache_dir: Path) -> dict[str, Any]:
    """Feature spikes of every split, from ``cache_dir/features_<split>.npz`` or recorded (and cached) anew."""
    key = bundle_hash(model_path) + ":" + feature_node
    model = None
    out: dict[str, FeatureSplit] = {}
    os.makedirs(cache_dir, exist_ok=True)
    for split, r in raw.items():
        path = cache_dir / f"features_{split}.npz"
        if path.exists():
            with np.load(path) as z:
                if str(z["key"]) == key and len(z["y"]) == len(r.y):
                    out[split] = FeatureSplit(z["spikes"], z["y"], tuple(str(c) for c in z["classes"]))
                    continue
        if model is None:
            model = read_bundle(model_path)
        log.info("recording %s feature spikes of %d samples", split, len(r.y))
        spikes = record_features(model, feature_node, r.x)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, spikes=spikes, y=r.y, classes=np.array(r.classes), key=np.array(key))
        os.replace(tmp, path)
        out[split] = FeatureSplit(spikes, r.y, r.classes)
    return out
