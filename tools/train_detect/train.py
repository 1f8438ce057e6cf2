"""Training loop: windows of the detection dataset -> JAX detector -> optax; the export is in :mod:`.export`.

Each sample is a label time ``t`` of a clip: the SNN runs over ``(warmup_windows + 1) * T``
bins ending at ``t`` (state from rest, as the runtime after ``warmup_windows`` windows), and
the head is trained on the last window against the boxes labelled at ``t``.

    python -m tools.train_detect --data data/detect --variant hybrid --steps 400 --out hybrid.esnn
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax

from edgesnn.events.functional.to_histogram import to_time_bins
from tools.datasets.detection import DetectionSplit
from tools.train_detect.arch import ArchSpec
from tools.train_detect.loss import build_targets, detection_loss
from tools.train_detect.model import forward, init_params

log = logging.getLogger("tools.train_detect")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings."""

    steps: int = 400
    batch: int = 4
    lr: float = 2e-3
    warmup_windows: int = 1
    seed: int = 0
    log_every: int = 20


def label_times(split: DetectionSplit, spec: ArchSpec, warmup_windows: int) -> list[tuple[int, int]]:
    """(clip, label time) pairs with enough history for the warm-up windows."""
    window = spec.n_bins * spec.bin_us
    out = []
    for i in range(len(split)):
        for t in np.unique(split.boxes(i)["t"]):
            if int(t) >= (warmup_windows + 1) * window:
                out.append((i, int(t)))
    return out


def histograms(split: DetectionSplit, items, spec: ArchSpec, n_steps: int) -> np.ndarray:
    """Binned input (n_steps, B, 2, H, W) float32 ending at each item's label time."""
    out = np.empty((n_steps, len(items), 2, spec.height, spec.width), np.float32)
    for b, (clip, t) in enumerate(items):
        out[:, b] = to_time_bins(split.events(clip), sensor_size=(spec.width, spec.height, 2), n_bins=n_steps,
                                 t_start_us=t - n_steps * spec.bin_us, t_end_us=t, count_cutoff=spec.count_cutoff,
                                 dtype=np.float32)  # fmt: skip
    return out


def targets(split: DetectionSplit, items, spec: ArchSpec) -> tuple[np.ndarray, ...]:
    """Stacked (obj, cls, reg, pos) targets of a batch."""
    per = []
    for clip, t in items:
        bx = split.boxes(clip)
        bx = bx[bx["t"] == t]
        rows = np.stack([bx["x"], bx["y"], bx["w"], bx["h"], bx["class_id"].astype(np.float32)], axis=1)
        per.append(build_targets(rows, spec.level_shapes(), spec.strides(), spec.n_classes))
    return tuple(np.stack(col) for col in zip(*per, strict=True))


def batches(items: list, batch: int, rng: np.random.Generator) -> Iterator[list]:
    """Endless shuffled batches."""
    while True:
        order = rng.permutation(len(items))
        for k in range(0, len(order) - batch + 1, batch):
            yield [items[i] for i in order[k : k + batch]]


def train(split: DetectionSplit, spec: ArchSpec, cfg: TrainConfig, params=None) -> tuple[dict[str, np.ndarray], list]:
    """Train from ``params`` (default: fresh ones); return the parameters and the loss history."""
    params = {k: jnp.asarray(v) for k, v in (params or init_params(spec, cfg.seed)).items()}
    n_steps = (cfg.warmup_windows + 1) * spec.n_bins
    sched = optax.cosine_onecycle_schedule(max(cfg.steps, 1), cfg.lr)
    opt = optax.chain(optax.clip_by_global_norm(5.0), optax.adam(sched))
    state = opt.init(params)

    def loss_fn(p, hist, obj, cls, reg, pos):
        return detection_loss(forward(p, spec, hist), obj, cls, reg, pos)

    @jax.jit
    def update(p, s, hist, obj, cls, reg, pos):
        loss, grads = jax.value_and_grad(loss_fn)(p, hist, obj, cls, reg, pos)
        upd, s = opt.update(grads, s, p)
        return optax.apply_updates(p, upd), s, loss

    items = label_times(split, spec, cfg.warmup_windows)
    rng = np.random.default_rng(cfg.seed)
    history = []
    t0 = time.perf_counter()
    for step, batch in zip(range(cfg.steps), batches(items, min(cfg.batch, len(items)), rng), strict=False):
        hist = histograms(split, batch, spec, n_steps)
        params, state, loss = update(params, state, jnp.asarray(hist), *map(jnp.asarray, targets(split, batch, spec)))
        history.append(float(loss))
        if cfg.log_every and (step + 1) % cfg.log_every == 0:
            log.info("step %d/%d loss %.4f (%.1f s)", step + 1, cfg.steps, np.mean(history[-cfg.log_every :]),
                     time.perf_counter() - t0)  # fmt: skip
    return {k: np.asarray(v) for k, v in params.items()}, history
