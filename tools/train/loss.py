"""Readout traces -> logits -> cross-entropy and accuracy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def logits(trace: jax.Array, readout: str) -> jax.Array:
    """Reduce a readout membrane trace (T, B, classes) over time: ``"max"``, ``"mean"`` or ``"softmax_mean"``.

    ``softmax_mean`` is the log of the per-step class probabilities averaged over time (every
    step votes, as in Bittar and Garner's read-out); as logits it gives those probabilities back.
    """
    if readout == "max":
        return jnp.max(trace, axis=0)
    if readout == "mean":
        return jnp.mean(trace, axis=0)
    return jax.nn.logsumexp(jax.nn.log_softmax(trace, axis=-1), axis=0) - jnp.log(trace.shape[0])


def rate_penalty(spikes: dict[str, jax.Array], dt_s: float, max_rate_hz: float, steps: int | None = None) -> jax.Array:
    """Mean over layers of the mean squared excess of each neuron's rate over ``max_rate_hz``.

    Rates are per sample and neuron (spikes over the sample's duration, in Hz); the excess
    is relative to the bound, so the penalty is dimensionless and independent of ``dt_s``.
    ``spikes`` are (T, B, *shape) sequences, or with ``steps`` counts (B, *shape) over that many steps.
    """
    terms = []
    for z in spikes.values():
        rate_hz = jnp.sum(z, axis=0) / (z.shape[0] * dt_s) if steps is None else z / (steps * dt_s)
        terms.append(jnp.mean(jnp.square(jax.nn.relu(rate_hz / max_rate_hz - 1.0))))
    return jnp.mean(jnp.stack(terms)) if terms else jnp.float32(0.0)


def cross_entropy(lg: jax.Array, y: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Mean softmax cross-entropy of logits (B, classes) against int labels (B,), over ``mask``."""
    losses = optax.softmax_cross_entropy_with_integer_labels(lg, y)
    if mask is None:
        return jnp.mean(losses)
    return jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def correct(lg: jax.Array, y: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Number of samples whose largest logit is the label (within ``mask``)."""
    hits = (jnp.argmax(lg, axis=-1) == y).astype(jnp.float32)
    return jnp.sum(hits if mask is None else hits * mask)
