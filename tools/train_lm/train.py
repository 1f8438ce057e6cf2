"""Training loops: pre-training the float model and fine-tuning a hardware model; bits per character."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tools.train_lm.data import batches
from tools.train_lm.model import Config, Params, forward, loss_fn

log = logging.getLogger("tools.train_lm")


def _decay_mask(params: Params) -> Any:
    # Weight decay on the matrices only: not on biases, norms, embeddings' rows... nor the scalers.
    return jax.tree_util.tree_map(lambda a: np.ndim(a) == 2, params)


def optimiser(lr: float, steps: int, warmup: int, weight_decay: float = 0.1) -> optax.GradientTransformation:
    """AdamW with linear warm-up and cosine decay to lr/10, gradients clipped at norm 1 (nanoGPT's recipe)."""
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, max(warmup, 1), max(steps, warmup + 1), lr / 10)
    return optax.chain(optax.clip_by_global_norm(1.0),
                       optax.adamw(schedule, b1=0.9, b2=0.95, weight_decay=weight_decay, mask=_decay_mask))  # fmt: skip


def fit(params: Params, cfg: Config, kind: str, train_ids: np.ndarray, *, steps: int, batch: int, lr: float,
        seed: int, warmup: int = 100, log_every: int = 100) -> tuple[Params, list[dict[str, float]]]:  # fmt: skip
    """``steps`` AdamW steps of ``kind`` ("float", "linear", "polynomial") on random windows; the loss history."""
    opt = optimiser(lr, steps, warmup)
    params = jax.tree_util.tree_map(jnp.asarray, params)
    state = opt.init(params)

    @jax.jit
    def update(p: Params, s: Any, b: jax.Array) -> tuple[Params, Any, jax.Array]:
        loss, grads = jax.value_and_grad(loss_fn)(p, b, cfg, kind)
        upd, s = opt.update(grads, s, p)
        return optax.apply_updates(p, upd), s, loss

    rng = np.random.default_rng(seed)
    history, start, recent = [], time.perf_counter(), []
    for step in range(1, steps + 1):
        params, state, loss = update(params, state, jnp.asarray(batches(train_ids, batch, cfg.context, rng)))
        recent.append(float(loss))
        if step % log_every == 0 or step == steps:
            bpc = float(np.mean(recent)) / math.log(2)
            history.append({"step": step, "train_bpc": bpc, "seconds": time.perf_counter() - start})
            log.info("%s step %d/%d: train %.3f bits/char (%.0f s)", kind, step, steps, bpc, history[-1]["seconds"])
            recent = []
    return jax.tree_util.tree_map(np.asarray, params), history


def bits_per_char(params: Params, cfg: Config, kind: str, chunks: np.ndarray, batch: int = 32) -> float:
    """Bits per character of predicting each chunk's characters 2..T from the ones before (JAX, whole chunks)."""

    @jax.jit
    def nats(p: Params, x: jax.Array) -> jax.Array:
        logits, _ = forward(p, x[:, :-1], cfg, kind)
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.take_along_axis(logp, x[:, 1:, None], axis=-1).sum()

    total = sum(float(nats(params, jnp.asarray(chunks[i : i + batch]))) for i in range(0, len(chunks), batch))
    return total / (chunks.shape[0] * (chunks.shape[1] - 1)) / math.log(2)
