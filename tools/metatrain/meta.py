r"""The outer loop: tune the rule's hyperparameters by gradient descent through the simulated rule.

Each iteration draws ``batch`` N-way k-shot episodes of the meta-train split,
teaches a fresh readout the support set with the JAX rule (the inner loop,
:func:`tools.metatrain.rule.adapt`: every epoch update, quantisation included),
scores the query set and takes the query cross-entropy of ``temperature *
scores``. Adam (after global-norm clipping) follows its gradient with respect
to the hyperparameters named in ``meta.learn``, second order: the gradient
flows through every inner update. The temperature only shapes the loss (the
runtime takes an argmax) and is not exported.

Parameterisation: learning rate, time constants, imprinting scale and the gap
``target_on - target_off`` are learned as logarithms (positive, scale-free
steps); ``learning_rate_other``, ``threshold``, ``threshold_step``,
``target_off`` and ``initial_weights`` are learned as they are, and projected
back into their allowed range after each step.

The epoch length ``t_epoch`` is discrete: each value of ``meta.t_epoch_grid``
gets its own run, and the value whose tuned rule scores best on the meta-val
episodes wins (grid search; a relaxation would need a fractional epoch, which
the runtime does not have). Within a run, the hyperparameters kept are those of
the evaluation (every fifth of the run) with the best meta-val accuracy.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from edgesnn.learn import LearningConfig
from tools.metatrain import rule as R
from tools.metatrain.config import EpisodeSection, MetaSection
from tools.metatrain.episodes import Episode, fixed_episodes, sample_episode
from tools.metatrain.features import FeatureSplit

log = logging.getLogger("edgesnn.metatrain")

_LOG = ("learning_rate", "trace_tau_s", "readout_tau_s", "init_scale")
_NONNEGATIVE = ("learning_rate_other", "threshold", "threshold_step")
_TEMPERATURE0 = 10.0


@dataclasses.dataclass(frozen=True)
class GridResult:
    """Meta-training at one epoch length: meta-val accuracy per shot count before and after, and the tuned rule."""

    t_epoch: int
    val_before: dict[int, float]
    val_after: dict[int, float]
    config: LearningConfig
    history: list[dict[str, Any]]

    @property
    def score(self) -> float:
        """Mean meta-val accuracy over the shot counts (the selection criterion)."""
        return float(np.mean(list(self.val_after.values())))


def to_theta(hyper: R.Hyper, learn: tuple[str, ...]) -> dict[str, jax.Array]:
    """Unconstrained parameters of the hyperparameters in ``learn`` (plus the loss temperature)."""
    theta: dict[str, jax.Array] = {"log_temperature": jnp.asarray(math.log(_TEMPERATURE0), jnp.float32)}
    for name in learn:
        if name in _LOG:
            theta[name] = jnp.log(hyper[name])
        elif name == "target_on":
            theta[name] = jnp.log(hyper["target_on"] - hyper["target_off"])
        else:
            theta[name] = hyper[name]
    return theta


def from_theta(theta: dict[str, jax.Array], base: R.Hyper) -> R.Hyper:
    """The hyperparameters: ``base`` with the learned ones replaced."""
    hyper = dict(base)
    for name, value in theta.items():
        if name in _LOG:
            hyper[name] = jnp.exp(value)
        elif name != "target_on" and name != "log_temperature":
            hyper[name] = value
    if "target_on" in theta:
        hyper["target_on"] = hyper["target_off"] + jnp.exp(theta["target_on"])
    return hyper


def project(theta: dict[str, jax.Array], base: R.Hyper) -> dict[str, jax.Array]:
    """Put parameters learned as they are back into their allowed range."""
    out = dict(theta)
    for name in _NONNEGATIVE:
        if name in out:
            out[name] = jnp.maximum(out[name], 0.0)
    if "threshold" in out:
        out["threshold"] = jnp.maximum(out["threshold"], base["threshold_min"])
    return out


def _episode_arrays(split: FeatureSplit, episodes: list[Episode]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sup = np.stack([split.spikes[e.support] for e in episodes]).astype(np.float32)
    qry = np.stack([split.spikes[e.query] for e in episodes]).astype(np.float32)
    rows = np.stack([e.query_rows for e in episodes]).astype(np.int32)
    return sup, qry, rows


@functools.lru_cache(maxsize=32)
def _functions(static: R.Static, n_way: int, k_shot: int, optimizer: Any) -> tuple[Any, Any]:
    """Jitted (train step, accuracy) for one rule structure and episode shape."""
    rows = R.presentation_order(n_way, k_shot)

    def one(theta: dict, base: R.Hyper, sup: jax.Array, qry: jax.Array, qrows: jax.Array) -> tuple:
        hyper = from_theta(theta, base)
        w, _ = R.adapt(hyper, static, sup, rows, n_way)
        s = R.scores(w, qry, hyper, static)
        logits = jnp.exp(theta["log_temperature"]) * s
        loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), qrows[:, None], axis=1))
        return loss, jnp.mean(jnp.argmax(s, axis=1) == qrows)

    def batch_loss(theta: dict, base: R.Hyper, sup: jax.Array, qry: jax.Array, qrows: jax.Array) -> tuple:
        loss, acc = jax.vmap(one, in_axes=(None, None, 0, 0, 0))(theta, base, sup, qry, qrows)
        return jnp.mean(loss), jnp.mean(acc)

    @jax.jit
    def train_step(theta: dict, opt_state: Any, base: R.Hyper, sup: jax.Array, qry: jax.Array, qrows: jax.Array):  # type: ignore[no-untyped-def]
        (loss, acc), grads = jax.value_and_grad(batch_loss, has_aux=True)(theta, base, sup, qry, qrows)
        updates, opt_state = optimizer.update(grads, opt_state, theta)
        theta = project(optax.apply_updates(theta, updates), base)
        return theta, opt_state, loss, acc

    @jax.jit
    def accuracy(theta: dict, base: R.Hyper, sup: jax.Array, qry: jax.Array, qrows: jax.Array) -> jax.Array:
        return jax.vmap(lambda s, q, r: one(theta, base, s, q, r)[1])(sup, qry, qrows)

    return train_step, accuracy


def episode_accuracy(
    config: LearningConfig, dt_s: float, split: FeatureSplit, episodes: list[Episode], n_way: int, k_shot: int,
    *, chunk: int = 50,
) -> np.ndarray:  # fmt: skip
    """Query accuracy per episode of the (simulated, forward-exact) rule ``config``."""
    hyper, static = R.split_config(config, dt_s)
    theta = to_theta(hyper, ())
    _, accuracy = _functions(static, n_way, k_shot, None)
    out = []
    for start in range(0, len(episodes), chunk):
        sup, qry, rows = _episode_arrays(split, episodes[start : start + chunk])
        out.append(np.asarray(accuracy(theta, hyper, sup, qry, rows)))
    return np.concatenate(out)


def meta_train_grid(
    base: LearningConfig, dt_s: float, splits: dict[str, FeatureSplit], episodes: EpisodeSection,
    meta: MetaSection, seed: int, *, quiet: bool = True,
) -> list[GridResult]:  # fmt: skip
    """Meta-train ``base`` at every epoch length of the grid; one result per length."""
    val = {k: fixed_episodes(splits["meta_val"].y, meta.val_episodes, n_way=episodes.n_way, k_shot=k,
                             n_query=episodes.n_query, seed=[seed, 99, k]) for k in episodes.k_shot}  # fmt: skip
    results = []
    for g, t_epoch in enumerate(meta.t_epoch_grid):
        config = dataclasses.replace(base, t_epoch=t_epoch)
        results.append(meta_train(config, dt_s, splits, episodes, meta, [seed, g], val, quiet=quiet))
        r = results[-1]
        log.info("t_epoch %d: meta-val accuracy %s -> %s", t_epoch,
                 {k: round(v, 3) for k, v in r.val_before.items()},
                 {k: round(v, 3) for k, v in r.val_after.items()})  # fmt: skip
    return results


def meta_train(
    config: LearningConfig, dt_s: float, splits: dict[str, FeatureSplit], episodes: EpisodeSection,
    meta: MetaSection, seed: list[int], val: dict[int, list[Episode]], *, quiet: bool = True,
) -> GridResult:  # fmt: skip
    """Tune the hyperparameters ``meta.learn`` of ``config`` (epoch length fixed); keep the best on meta-val."""
    hyper, static = R.split_config(config, dt_s, gate_sharpness=meta.gate_sharpness)
    # A non-finite loss (a diverging inner loop) skips the step instead of poisoning the parameters.
    optimizer = optax.apply_if_finite(
        optax.chain(optax.clip_by_global_norm(meta.clip_norm), optax.adam(meta.lr)), max_consecutive_errors=20
    )
    theta = to_theta(hyper, meta.learn)
    opt_state = optimizer.init(theta)
    train = splits["meta_train"]
    rng = np.random.default_rng(seed)
    n_way, n_query = episodes.n_way, episodes.n_query

    def validate(th: dict) -> dict[int, float]:
        out = {}
        for k, eps in val.items():
            _, accuracy = _functions(static, n_way, k, optimizer)
            accs = [accuracy(th, hyper, *_episode_arrays(splits["meta_val"], eps[i : i + 50]))
                    for i in range(0, len(eps), 50)]  # fmt: skip
            out[k] = float(np.mean(np.concatenate([np.asarray(a) for a in accs])))
        return out

    before = validate(theta)
    best, best_theta = float(np.mean(list(before.values()))), theta
    history: list[dict[str, Any]] = [{"iteration": 0, "val": before}]
    every = max(1, meta.iterations // 5)
    from tqdm import tqdm

    bar = tqdm(range(1, meta.iterations + 1), desc=f"meta t_epoch={config.t_epoch}", disable=quiet, leave=False)
    for it in bar:
        k = episodes.k_shot[(it - 1) % len(episodes.k_shot)]
        batch = [sample_episode(train.y, n_way, k, n_query, rng) for _ in range(meta.batch)]
        train_step, _ = _functions(static, n_way, k, optimizer)
        theta, opt_state, loss, acc = train_step(theta, opt_state, hyper, *_episode_arrays(train, batch))
        if not quiet:
            bar.set_postfix(loss=f"{float(loss):.3f}", acc=f"{float(acc):.3f}", refresh=False)
        if not np.isfinite(float(loss)):
            log.info("t_epoch %d: non-finite loss at iteration %d; step skipped", config.t_epoch, it)
        if it % every == 0 or it == meta.iterations:
            v = validate(theta)
            history.append({"iteration": it, "loss": float(loss), "train_accuracy": float(acc), "val": v,
                            "hyper": {n: float(np.asarray(x)) for n, x in from_theta(theta, hyper).items()
                                      if np.ndim(x) == 0}})  # fmt: skip
            log.info("t_epoch %d it %d: loss %.3f val %s", config.t_epoch, it, float(loss), v)
            if float(np.mean(list(v.values()))) > best:
                best, best_theta = float(np.mean(list(v.values()))), theta
    tuned = R.merge_config(config, from_theta(best_theta, hyper), static)
    after = validate(best_theta)
    return GridResult(config.t_epoch, before, after, tuned, history)
