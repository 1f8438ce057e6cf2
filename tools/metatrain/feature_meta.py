r"""Meta-train the feature layers through the rule: the first-order half of MAML that the readout alone lacks.

Pre-training fits the feature network to classify the meta-train classes; what
the device needs is features from which the three-factor rule learns a *new*
class from one example. This stage fine-tunes the pre-trained hidden layers
(weights and neuron parameters; the pre-training readout is left as it was) on
N-way k-shot episodes of the meta-train classes:

1. the JAX network (``tools.train.models.forward``, surrogate gradients) turns each
   episode's raw inputs into feature spikes;
2. the JAX rule (:func:`tools.metatrain.rule.adapt`, quantisation included) teaches
   a fresh readout the support set, as the device will;
3. the loss is the query cross-entropy of ``temperature * scores``, as in the outer loop.

The gradient flows through the inner updates into the spikes and from there,
through the surrogate, into the feature layers; the rule's hyperparameters named in
``meta.learn`` move along (the later grid search re-tunes them on the fixed
features). Every fifth of the run, 1-shot accuracy on fixed meta-val episodes is
measured; the layers with the best one are kept and exported as a bundle.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from edgesnn.learn import LearningConfig
from edgesnn.model import Model
from tools.metatrain import rule as R
from tools.metatrain.config import EpisodeSection, FeatureSection, MetaSection
from tools.metatrain.episodes import Episode, fixed_episodes, sample_episode
from tools.metatrain.features import RawSplit
from tools.metatrain.meta import from_theta, project, to_theta

log = logging.getLogger("edgesnn.metatrain")


@dataclasses.dataclass(frozen=True)
class FeatureMetaResult:
    """The meta-trained feature network, and meta-val 1-shot accuracy before, after and along the way."""

    model: Model
    val_before: float
    val_after: float
    history: list[dict[str, Any]]
    seconds: float


def _load_pretrained(features: FeatureSection, pretrain_dir: Path, raw: RawSplit) -> tuple[Any, Any, Any]:
    """The pre-training network, its best parameters and its experiment config, from ``pretrain_dir``."""
    from tools.train import config_from_dict
    from tools.train.checkpoint import load_best_params
    from tools.train.models import build_network, init_params

    cfg = dict(features.train or {})
    cfg.setdefault("name", "features")
    cfg.setdefault("seed", 0)
    cfg["dt_s"] = raw.dt_s
    cfg["data"] = {"kind": "synthetic", "options": {}}
    ecfg = config_from_dict(cfg)
    net = build_network(ecfg, (raw.x.shape[2],), len(raw.classes))
    skeleton = init_params(net, ecfg, jax.random.PRNGKey(0))
    return net, load_best_params(pretrain_dir / "checkpoint.msgpack", skeleton), ecfg


def _arrays(raw: RawSplit, episodes: list[Episode]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sup = np.stack([raw.x[e.support] for e in episodes]).astype(np.float32)
    qry = np.stack([raw.x[e.query] for e in episodes]).astype(np.float32)
    return sup, qry, np.stack([e.query_rows for e in episodes]).astype(np.int32)


@functools.lru_cache(maxsize=8)
def _functions(net: Any, spike: Any, node: str, static: R.Static, n_way: int, k_shot: int, optimizer: Any) -> tuple:
    from tools.train.models import forward

    order = R.presentation_order(n_way, k_shot)

    def spikes_of(layers: Any, readout: Any, x: jax.Array) -> jax.Array:
        _, rec = forward(net, spike, {"layers": layers, "readout": readout}, jnp.swapaxes(x, 0, 1), record=True)
        return jnp.swapaxes(rec[node], 0, 1).reshape(x.shape[0], x.shape[1], -1)

    def one(theta: dict, readout: Any, base: R.Hyper, sup: jax.Array, qry: jax.Array, rows: jax.Array) -> tuple:
        hyper = from_theta(theta["rule"], base)
        w, _ = R.adapt(hyper, static, spikes_of(theta["layers"], readout, sup), order, n_way)
        s = R.scores(w, spikes_of(theta["layers"], readout, qry), hyper, static)
        logits = jnp.exp(theta["rule"]["log_temperature"]) * s
        loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), rows[:, None], axis=1))
        return loss, jnp.mean(jnp.argmax(s, axis=1) == rows)

    def batch_loss(theta: dict, readout: Any, base: R.Hyper, sup: jax.Array, qry: jax.Array, rows: jax.Array):  # type: ignore[no-untyped-def]
        loss, acc = jax.vmap(one, in_axes=(None, None, None, 0, 0, 0))(theta, readout, base, sup, qry, rows)
        return jnp.mean(loss), jnp.mean(acc)

    @jax.jit
    def train_step(theta: dict, opt_state: Any, readout: Any, base: R.Hyper, sup, qry, rows):  # type: ignore[no-untyped-def]
        (loss, acc), grads = jax.value_and_grad(batch_loss, has_aux=True)(theta, readout, base, sup, qry, rows)
        updates, opt_state = optimizer.update(grads, opt_state, theta)
        theta = optax.apply_updates(theta, updates)
        return {**theta, "rule": project(theta["rule"], base)}, opt_state, loss, acc

    @jax.jit
    def accuracy(theta: dict, readout: Any, base: R.Hyper, sup, qry, rows):  # type: ignore[no-untyped-def]
        return jax.vmap(lambda s, q, r: one(theta, readout, base, s, q, r)[1])(sup, qry, rows)

    return train_step, accuracy


def meta_train_features(
    features: FeatureSection, pretrain_dir: Path, raw: dict[str, RawSplit], rule: LearningConfig,
    episodes: EpisodeSection, meta: MetaSection, seed: int, *, quiet: bool = True,
) -> FeatureMetaResult:  # fmt: skip
    """Fine-tune the pre-trained feature layers on episodes through ``rule``; return the best model on meta-val."""
    from tools.train.export import to_model
    from tools.train.surrogate import make_spike_fn

    t0 = time.perf_counter()
    train, val = raw["meta_train"], raw["meta_val"]
    net, params, ecfg = _load_pretrained(features, pretrain_dir, train)
    spike = make_spike_fn(ecfg.surrogate.kind, ecfg.surrogate.scale)
    base, static = R.split_config(rule, train.dt_s, gate_sharpness=meta.gate_sharpness)
    optimizer = optax.apply_if_finite(
        optax.chain(optax.clip_by_global_norm(meta.clip_norm), optax.adam(features.meta_lr)), max_consecutive_errors=20
    )
    theta = {"layers": params["layers"], "rule": to_theta(base, meta.learn)}
    readout = params["readout"]
    opt_state = optimizer.init(theta)
    n_way, n_query = episodes.n_way, episodes.n_query
    val_eps = fixed_episodes(val.y, meta.val_episodes, n_way=n_way, k_shot=1, n_query=n_query, seed=[seed, 97])

    def validate(th: dict) -> float:
        _, accuracy = _functions(net, spike, features.feature_node, static, n_way, 1, optimizer)
        accs = [np.asarray(accuracy(th, readout, base, *_arrays(val, val_eps[i : i + 25])))
                for i in range(0, len(val_eps), 25)]  # fmt: skip
        return float(np.mean(np.concatenate(accs)))

    before = validate(theta)
    best, best_theta = before, theta
    history: list[dict[str, Any]] = [{"iteration": 0, "val_1shot": before}]
    log.info("feature meta-training: meta-val 1-shot %.3f before", before)
    rng = np.random.default_rng([seed, 96])
    every = max(1, features.meta_iterations // 5)
    from tqdm import tqdm

    for it in tqdm(range(1, features.meta_iterations + 1), desc="meta features", disable=quiet, leave=False):
        k = episodes.k_shot[(it - 1) % len(episodes.k_shot)]
        batch = [sample_episode(train.y, n_way, k, n_query, rng) for _ in range(meta.batch)]
        step, _ = _functions(net, spike, features.feature_node, static, n_way, k, optimizer)
        theta, opt_state, loss, acc = step(theta, opt_state, readout, base, *_arrays(train, batch))
        if it % every == 0 or it == features.meta_iterations:
            v = validate(theta)
            history.append({"iteration": it, "loss": float(loss), "train_accuracy": float(acc), "val_1shot": v})
            log.info("feature meta-training it %d: loss %.3f meta-val 1-shot %.3f", it, float(loss), v)
            if v > best:
                best, best_theta = v, theta
    producer = {"name": "edgesnn-metatrain-features", "iterations": features.meta_iterations,
                "val_1shot_before": before, "val_1shot_after": best}  # fmt: skip
    model = to_model(net, {"layers": best_theta["layers"], "readout": readout}, labels=train.classes,
                     producer=producer)  # fmt: skip
    return FeatureMetaResult(model, before, best, history, time.perf_counter() - t0)


__all__ = ["FeatureMetaResult", "meta_train_features"]
