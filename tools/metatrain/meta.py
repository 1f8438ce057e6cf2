r"""The outer loop: tune the rule's hyperparameters by gradient descent through the simulated rule.

Each iteration draws ``batch`` N-way k-shot episodes of the meta-train split,
teaches a fresh readout the support set with the JAX rule (the inner loop,
:func:`tools.metatrain.rule.adapt`: every epoch update, quantisation included),
scores the query set and takes the query cross-entropy of ``temperature *
scores``. Adam (after global-norm clipping) follows its gradient with respect
to the hyperparameters named in ``meta.learn``, second order: the gradient
flows through every inner update. The temperature only shapes the loss (the
runtime takes an argmax) and is not exported.

With ``meta.retention > 0`` the loss gains a class-incremental term, weighted
by it: ``batch`` episodes of ``2 N`` classes taught in two rounds (N classes,
then N more, :func:`tools.metatrain.episodes.sequential_episode`), whose
queries of all ``2 N`` classes are scored over all ``2 N`` rows. The N-way term
alone rewards pushing other rows down (``learning_rate_other``), which helps
within an episode but erases earlier classes when later ones are learned on a
device; this term makes the outer loop pay for that. Model selection then
scores ``(val + retention * sequential val) / (1 + retention)``.

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
from tools.metatrain.episodes import Episode, fixed_episodes, sample_episode, sequential_episode
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
    retention: float = 0.0
    sequential_before: dict[int, float] = dataclasses.field(default_factory=dict)
    sequential_after: dict[int, float] = dataclasses.field(default_factory=dict)

    @property
    def score(self) -> float:
        """The selection criterion: mean meta-val accuracy, blended with the sequential one by ``retention``."""
        return selection_score(self.val_after, self.sequential_after, self.retention)


def selection_score(val: dict[int, float], sequential: dict[int, float], retention: float) -> float:
    """Mean N-way meta-val accuracy, or ``(that + retention * mean sequential accuracy) / (1 + retention)``."""
    score = float(np.mean(list(val.values())))
    if retention > 0 and sequential:
        score = (score + retention * float(np.mean(list(sequential.values())))) / (1.0 + retention)
    return score


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
def _functions(static: R.Static, n_way: int, k_shot: int, optimizer: Any, retention: float = 0.0) -> tuple:
    """Jitted (train step, N-way accuracy, sequential 2N-way accuracy) for one rule structure and episode shape.

    The train step takes ``(theta, opt_state, base, episodes, sequential)``, each of the
    last two a ``(support, query, query rows)`` batch; ``sequential`` is None without retention.
    """
    orders = {n_way: R.presentation_order(n_way, k_shot), 2 * n_way: R.sequential_order(n_way, k_shot)}

    def one(theta: dict, base: R.Hyper, sup: jax.Array, qry: jax.Array, qrows: jax.Array) -> tuple:
        n_rows = sup.shape[0] // k_shot  # n_way, or 2 n_way for a sequential episode
        hyper = from_theta(theta, base)
        w, _ = R.adapt(hyper, static, sup, orders[n_rows], n_rows)
        s = R.scores(w, qry, hyper, static)
        logits = jnp.exp(theta["log_temperature"]) * s
        loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), qrows[:, None], axis=1))
        return loss, jnp.mean(jnp.argmax(s, axis=1) == qrows)

    def batch_loss(theta: dict, base: R.Hyper, episodes: tuple, sequential: tuple | None) -> tuple:
        loss, acc = jax.vmap(one, in_axes=(None, None, 0, 0, 0))(theta, base, *episodes)
        total = jnp.mean(loss)
        if sequential is not None:
            seq_loss, _ = jax.vmap(one, in_axes=(None, None, 0, 0, 0))(theta, base, *sequential)
            total = total + retention * jnp.mean(seq_loss)
        return total, jnp.mean(acc)

    @jax.jit
    def train_step(theta: dict, opt_state: Any, base: R.Hyper, episodes: tuple, sequential: tuple | None):  # type: ignore[no-untyped-def]
        (loss, acc), grads = jax.value_and_grad(batch_loss, has_aux=True)(theta, base, episodes, sequential)
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
    if meta.retention > 0:
        rng = np.random.default_rng([seed, 98])
        val_seq = {k: [sequential_episode(splits["meta_val"].y, episodes.n_way, k, episodes.n_query, rng)
                       for _ in range(meta.val_episodes)] for k in episodes.k_shot}  # fmt: skip
    else:
        val_seq = {}
    results = []
    for g, t_epoch in enumerate(meta.t_epoch_grid):
        config = dataclasses.replace(base, t_epoch=t_epoch)
        results.append(meta_train(config, dt_s, splits, episodes, meta, [seed, g], val, val_seq, quiet=quiet))
        r = results[-1]
        log.info("t_epoch %d: meta-val accuracy %s -> %s; sequential %s -> %s", t_epoch,
                 {k: round(v, 3) for k, v in r.val_before.items()},
                 {k: round(v, 3) for k, v in r.val_after.items()},
                 {k: round(v, 3) for k, v in r.sequential_before.items()},
                 {k: round(v, 3) for k, v in r.sequential_after.items()})  # fmt: skip
    return results


def meta_train(
    config: LearningConfig, dt_s: float, splits: dict[str, FeatureSplit], episodes: EpisodeSection,
    meta: MetaSection, seed: list[int], val: dict[int, list[Episode]],
    val_sequential: dict[int, list[Episode]] | None = None, *, quiet: bool = True,
) -> GridResult:  # fmt: skip
    """Tune the hyperparameters ``meta.learn`` of ``config`` (epoch length fixed); keep the best on meta-val.

    ``val_sequential``: class-incremental meta-val episodes per shot count (with ``meta.retention > 0``).
    """
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

    retention = float(meta.retention)
    val_sequential = val_sequential or {}

    def validate(th: dict, sets: dict[int, list[Episode]]) -> dict[int, float]:
        out = {}
        for k, eps in sets.items():
            _, accuracy = _functions(static, n_way, k, optimizer, retention)
            accs = [accuracy(th, hyper, *_episode_arrays(splits["meta_val"], eps[i : i + 50]))
                    for i in range(0, len(eps), 50)]  # fmt: skip
            out[k] = float(np.mean(np.concatenate([np.asarray(a) for a in accs])))
        return out

    before, seq_before = validate(theta, val), validate(theta, val_sequential)
    best, best_theta = selection_score(before, seq_before, retention), theta
    history: list[dict[str, Any]] = [{"iteration": 0, "val": before, "val_sequential": seq_before}]
    every = max(1, meta.iterations // 5)
    from tqdm import tqdm

    bar = tqdm(range(1, meta.iterations + 1), desc=f"meta t_epoch={config.t_epoch}", disable=quiet, leave=False)
    for it in bar:
        k = episodes.k_shot[(it - 1) % len(episodes.k_shot)]
        batch = [sample_episode(train.y, n_way, k, n_query, rng) for _ in range(meta.batch)]
        sequential = None
        if retention > 0:
            seq = [sequential_episode(train.y, n_way, k, n_query, rng) for _ in range(meta.batch)]
            sequential = _episode_arrays(train, seq)
        train_step, _ = _functions(static, n_way, k, optimizer, retention)
        theta, opt_state, loss, acc = train_step(theta, opt_state, hyper, _episode_arrays(train, batch), sequential)
        if not quiet:
            bar.set_postfix(loss=f"{float(loss):.3f}", acc=f"{float(acc):.3f}", refresh=False)
        if not np.isfinite(float(loss)):
            log.info("t_epoch %d: non-finite loss at iteration %d; step skipped", config.t_epoch, it)
        if it % every == 0 or it == meta.iterations:
            v, vs = validate(theta, val), validate(theta, val_sequential)
            history.append({"iteration": it, "loss": float(loss), "train_accuracy": float(acc), "val": v,
                            "val_sequential": vs,
                            "hyper": {n: float(np.asarray(x)) for n, x in from_theta(theta, hyper).items()
                                      if np.ndim(x) == 0}})  # fmt: skip
            log.info("t_epoch %d it %d: loss %.3f val %s sequential %s", config.t_epoch, it, float(loss), v, vs)
            if selection_score(v, vs, retention) > best:
                best, best_theta = selection_score(v, vs, retention), theta
    tuned = R.merge_config(config, from_theta(best_theta, hyper), static)
    after, seq_after = validate(best_theta, val), validate(best_theta, val_sequential)
    return GridResult(config.t_epoch, before, after, tuned, history, retention, seq_before, seq_after)
