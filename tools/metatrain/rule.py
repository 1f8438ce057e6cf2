r"""The runtime's three-factor rule (:mod:`edgesnn.learn.rule`) in jax.numpy, differentiable in its hyperparameters.

Forward values are those of the runtime, step for step: the same epoch
kernels, the same error gate, the same per-epoch update applied only when some
row's third factor is non-zero, the same float32 rounding of the weights after
each update, and the same quantisation (``bits``-bit mantissas, one shared
power-of-two exponent, round half to even). A growing readout is simulated
with a fixed ``(n_way, F)`` matrix whose rows not yet allocated are zero and
excluded from the update by a mask; zero rows do not change the shared
exponent, so the quantised values match the runtime's smaller matrix.

Version 2's options are mirrored: the prototype bias ``-|w|^2 / (2 init_scale)`` in
every score and the update toward ``x - w / init_scale`` (:func:`bias`), the running
class mean of the imprints before a known class's next example (in :func:`adapt`),
and the normalised step's per-epoch unit (the score of the example's own imprint)
and step factor (:func:`rate_scale`); the gate's surrogate sharpness is per unit.

Two places have no useful derivative and get straight-through estimators
(forward exact, backward surrogate):

* the error gate ``e * 1[|e| > theta]``: backward as ``e * sigmoid(k (|e| - theta))``
  with ``k = sharpness / (target_on - target_off)``, which gives the threshold a gradient;
* quantisation ``Q(w)``: backward as the identity (the exponent is treated as a constant).

Run in float64 (``with jax.enable_x64(True)``, float64 hyperparameters and
spikes) the weights agree with the runtime's to rounding (~1e-12 relative);
meta-training runs in float32.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from edgesnn.errors import OptionError
from edgesnn.learn import LearningConfig

Hyper = dict[str, jax.Array]

#: Continuous hyperparameters of :class:`LearningConfig` the JAX rule takes as arrays.
CONTINUOUS = (
    "learning_rate", "learning_rate_other", "threshold", "threshold_step", "threshold_min", "target_on",
    "target_off", "init_scale", "trace_tau_s", "readout_tau_s",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Static:
    """The discrete part of a rule configuration (hashable: a jit static argument)."""

    t_epoch: int
    passes: int
    weight_bits: int | None
    error_mode: str
    threshold_mode: str
    init: str
    dt_s: float
    gate_sharpness: float = 20.0
    bias: str = "none"
    shots: str = "first"
    step: str = "constant"


def split_config(config: LearningConfig, dt_s: float, *, gate_sharpness: float = 20.0,
                 dtype: Any = jnp.float32) -> tuple[Hyper, Static]:  # fmt: skip
    """The config's continuous hyperparameters as arrays, and its discrete part."""
    hyper = {name: jnp.asarray(getattr(config, name), dtype) for name in CONTINUOUS}
    if config.initial_weights is not None:
        hyper["initial_weights"] = jnp.asarray(config.initial_weights, dtype)
    static = Static(config.t_epoch, config.passes, config.weight_bits, config.error_mode, config.threshold_mode,
                    config.init, float(dt_s), float(gate_sharpness), config.bias, config.shots,
                    config.step)  # fmt: skip
    return hyper, static


def merge_config(config: LearningConfig, hyper: Mapping[str, Any], static: Static) -> LearningConfig:
    """``config`` with the values of ``hyper`` and the epoch length of ``static`` (validated by LearningConfig)."""
    values: dict[str, Any] = {k: float(np.asarray(v)) for k, v in hyper.items() if k in CONTINUOUS}
    if "initial_weights" in hyper:
        values["initial_weights"] = tuple(float(v) for v in np.asarray(hyper["initial_weights"], np.float64))
    return dataclasses.replace(config, t_epoch=static.t_epoch, **values)


# -- building blocks -------------------------------------------------------------------------


def decays(hyper: Hyper, dt_s: float) -> tuple[jax.Array, jax.Array]:
    """Per-step decays ``(alpha, beta)`` of the trace and of the readout."""
    return jnp.exp(-dt_s / hyper["trace_tau_s"]), jnp.exp(-dt_s / hyper["readout_tau_s"])


def epoch_kernels(decay: jax.Array, n: int) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``(mean_w, end_w, mean_v0, end_v0)`` of :func:`edgesnn.learn.rule.epoch_kernels`, differentiable in ``decay``."""
    j = jnp.arange(n, dtype=decay.dtype)
    mean_w = (1.0 - decay ** (n - j)) / n
    end_w = (1.0 - decay) * decay ** (n - 1 - j)
    return mean_w, end_w, jnp.mean(decay ** (j + 1)), decay**n


def _round_float32(w: jax.Array) -> jax.Array:
    return w.astype(jnp.float32).astype(w.dtype)


def quantise_forward(w: jax.Array, bits: int | None) -> jax.Array:
    """The runtime's ``quantise_weights`` (float32 rounding for ``bits=None``), without a gradient rule."""
    if bits is None:
        return _round_float32(w)
    m_max = float((1 << (bits - 1)) - 1)
    amax = jnp.max(jnp.abs(w))
    safe = jnp.where(amax > 0, amax, 1.0)
    e = jnp.ceil(jnp.log2(safe / m_max)).astype(jnp.int32)
    # log2 may be one ulp off at powers of two: settle on the smallest exponent that fits, as the runtime does.
    # ldexp keeps the powers of two exact (XLA's exp2 is not).
    e = jnp.where(safe > jnp.ldexp(m_max, e), e + 1, e)
    e = jnp.where(safe <= jnp.ldexp(m_max, e - 1), e - 1, e)
    q = jnp.ldexp(jnp.clip(jnp.rint(jnp.ldexp(w, -e)), -m_max, m_max), e)
    return jnp.where(amax > 0, _round_float32(q), jnp.zeros_like(w))


def quantise(w: jax.Array, bits: int | None) -> jax.Array:
    """Quantised weights in the forward pass, identity in the backward pass (straight-through)."""
    # Written so the forward value is exactly Q(w): (w - w) is exactly 0, whereas w + (Q(w) - w) may round.
    return jax.lax.stop_gradient(quantise_forward(w, bits)) + (w - jax.lax.stop_gradient(w))


def gate(error: jax.Array, threshold: jax.Array, mode: str, sharpness: jax.Array) -> jax.Array:
    """Error-triggered third factor (exact forward) with a sigmoid surrogate for its backward pass."""
    g = error if mode == "value" else jnp.sign(error)
    hard = jnp.where(jnp.abs(error) > threshold, g, 0.0)
    soft = g * jax.nn.sigmoid(sharpness * (jnp.abs(error) - threshold))
    return hard + (soft - jax.lax.stop_gradient(soft))  # exactly ``hard`` forward


def next_threshold(threshold: jax.Array, triggered: jax.Array, hyper: Hyper, static: Static) -> jax.Array:
    """Threshold of the next epoch: fixed, or one step up after an update and down (to the floor) after none."""
    if static.threshold_mode == "fixed":
        return threshold
    up = threshold + hyper["threshold_step"]
    down = jnp.maximum(threshold - hyper["threshold_step"], hyper["threshold_min"])
    return jnp.where(triggered, up, down)


def bias(w: jax.Array, hyper: Hyper, static: Static) -> jax.Array:
    """Per-row bias current (C,): ``-|w_c|^2 / (2 init_scale)`` with the prototype bias, else 0."""
    if static.bias == "none":
        return jnp.zeros(w.shape[0], w.dtype)
    return -jnp.sum(w * w, axis=1) / (2.0 * hyper["init_scale"])


def imprint_row(spikes: jax.Array, hyper: Hyper, static: Static) -> jax.Array:
    """The example's imprint (F,), float32 values: scaled mean trace, or with the prototype bias mean rate."""
    alpha, _ = decays(hyper, static.dt_s)
    kernel = epoch_kernels(alpha, spikes.shape[0])[0]
    mean = kernel @ spikes
    if static.bias == "prototype":
        mean = mean / jnp.sum(kernel)
    return _round_float32(hyper["init_scale"] * mean)


def initial_row(spikes: jax.Array, hyper: Hyper, static: Static) -> jax.Array:
    """Weights (F,) of a new class before the rule runs (float32 values, as the runtime keeps them)."""
    if static.init == "zeros":
        return jnp.zeros(spikes.shape[1], spikes.dtype)
    if static.init == "weights":
        return _round_float32(hyper["initial_weights"].astype(spikes.dtype))
    return imprint_row(spikes, hyper, static)


def mean_scores(w: jax.Array, spikes: jax.Array, hyper: Hyper, static: Static) -> jax.Array:
    """Every row's score (C,) averaged over one example (T, F) from rest, bias included."""
    _, beta = decays(hyper, static.dt_s)
    kernel = epoch_kernels(beta, spikes.shape[0])[0]
    return w @ (kernel @ spikes) + bias(w, hyper, static) * jnp.sum(kernel)


def rate_scale(spikes: jax.Array, hyper: Hyper, static: Static) -> jax.Array:
    """Step-size factor of ``step="normalised"``: 1 / (mean trace . mean input); 0 without overlap (or spikes)."""
    if static.step == "constant":
        return jnp.asarray(1.0, spikes.dtype)
    alpha, beta = decays(hyper, static.dt_s)
    n = spikes.shape[0]
    overlap = (epoch_kernels(alpha, n)[0] @ spikes) @ (epoch_kernels(beta, n)[0] @ spikes)
    imprint = imprint_row(spikes, hyper, static)
    r = mean_scores(imprint[None], spikes, hyper, static)[0]
    ok = (overlap > 0) & (r > 0)
    return jnp.where(ok, 1.0 / jnp.where(ok, overlap, 1.0), 0.0)


# -- the rule -------------------------------------------------------------------------------------


def learn_example(
    w: jax.Array, spikes: jax.Array, row: int, present: jax.Array, threshold: jax.Array, hyper: Hyper, static: Static
) -> tuple[jax.Array, jax.Array]:
    """Teach row ``row`` one example, spikes (T, F); rows where ``present`` is False neither learn nor count.

    Returns the new weights (C, F) and the threshold after the last epoch.
    """
    n_rows = w.shape[0]
    is_row = jnp.arange(n_rows) == row
    target = jnp.where(is_row, hyper["target_on"], hyper["target_off"])
    rates = jnp.where(is_row, hyper["learning_rate"], hyper["learning_rate_other"]) * present
    rates = rates * rate_scale(spikes, hyper, static)
    sharp = static.gate_sharpness / (hyper["target_on"] - hyper["target_off"])
    alpha, beta = decays(hyper, static.dt_s)
    t_total, n_features = spikes.shape
    n_full, rest = divmod(t_total, static.t_epoch)
    prototype, normalised = static.bias == "prototype", static.step == "normalised"
    imprint = imprint_row(spikes, hyper, static)
    imprint_bias = bias(imprint[None], hyper, static)[0]

    def epoch(carry: tuple, block: jax.Array, kb: tuple, ka: tuple) -> tuple:
        w, u, x, thr, u_own = carry
        mean_b, end_b, mean_u0, end_u0 = kb
        _, end_a, _, end_x0 = ka
        mean_in, end_in = mean_b @ block, end_b @ block
        y_mean = w @ mean_in + mean_u0 * u
        u = w @ end_in + end_u0 * u
        if prototype:
            b = bias(w, hyper, static)
            y_mean, u = y_mean + b * jnp.sum(mean_b), u + b * jnp.sum(end_b)
        x = end_a @ block + end_x0 * x
        unit = jnp.asarray(1.0, w.dtype)
        if normalised:
            unit = imprint @ mean_in + mean_u0 * u_own + imprint_bias * jnp.sum(mean_b)
            u_own = imprint @ end_in + end_u0 * u_own + imprint_bias * jnp.sum(end_b)
        ok = unit > 0
        unit_safe = jnp.where(ok, unit, 1.0)
        # The surrogate's sharpness is per unit of the (normalised) error, as the gate's threshold is.
        third = rates * gate(target * unit_safe - y_mean, thr * unit_safe, static.error_mode, sharp / unit_safe)
        third = jnp.where(ok, third, 0.0)
        fired = jnp.any(third != 0)
        step = third[:, None] * (x[None, :] - w / hyper["init_scale"]) if prototype else jnp.outer(third, x)
        w = jnp.where(fired, quantise(w + step, static.weight_bits), w)
        return w, u, x, next_threshold(thr, fired, hyper, static), u_own

    kb_full, ka_full = epoch_kernels(beta, static.t_epoch), epoch_kernels(alpha, static.t_epoch)
    blocks = spikes[: n_full * static.t_epoch].reshape(n_full, static.t_epoch, n_features)
    carry = (w, threshold)
    for _ in range(static.passes):
        zero = jnp.zeros((), w.dtype)
        state = (carry[0], jnp.zeros(n_rows, w.dtype), jnp.zeros(n_features, w.dtype), carry[1], zero)
        if n_full:
            state, _ = jax.lax.scan(lambda c, b: (epoch(c, b, kb_full, ka_full), None), state, blocks)
        if rest:
            state = epoch(state, spikes[n_full * static.t_epoch :], epoch_kernels(beta, rest),
                          epoch_kernels(alpha, rest))  # fmt: skip
        carry = (state[0], state[3])
    return carry


def adapt(
    hyper: Hyper, static: Static, support: jax.Array, rows: Sequence[int], n_rows: int
) -> tuple[jax.Array, jax.Array]:
    """Teach a fresh readout the support examples (S, T, F) in order, example i to row ``rows[i]``.

    A row is allocated (initial row, then the whole matrix re-quantised) the first
    time it is taught, as ``PlasticReadout.partial_fit`` does for a new label, so
    ``rows`` must number rows in order of first appearance. Returns the weights
    (n_rows, F) and the final threshold.
    """
    seen: list[int] = []
    for r in rows:
        if r not in seen:
            seen.append(r)
    if seen != list(range(len(seen))) or len(seen) > n_rows:
        raise OptionError(f"rows must be numbered 0, 1, ... in order of first appearance, got {list(rows)}",
                          path="rows")  # fmt: skip
    dtype = support.dtype
    w = jnp.zeros((n_rows, support.shape[2]), dtype)
    present = jnp.zeros(n_rows, dtype)
    threshold = hyper["threshold"].astype(dtype)
    seen_count: dict[int, int] = {}
    for i, r in enumerate(rows):
        if r not in seen_count:
            seen_count[r] = 0
            w = quantise(w.at[r].set(initial_row(support[i], hyper, static)), static.weight_bits)
            present = present.at[r].set(1.0)
        elif static.shots == "mean" and static.init == "mean_trace":
            # The runtime's add_example_row: the row moves to the running mean of the imprints, then quantised.
            imprint = imprint_row(support[i], hyper, static)
            row_mean = _round_float32(w[r] + (imprint - w[r]) / (seen_count[r] + 1))
            w = quantise(w.at[r].set(row_mean), static.weight_bits)
        seen_count[r] += 1
        w, threshold = learn_example(w, support[i], r, present, threshold, hyper, static)
    return w, threshold


def scores(w: jax.Array, query: jax.Array, hyper: Hyper, static: Static) -> jax.Array:
    """Mean class score over each query (Q, T, F) from rest: what ``PlasticReadout.predict`` takes the argmax of."""
    _, beta = decays(hyper, static.dt_s)
    mean_w = epoch_kernels(beta, query.shape[1])[0]
    return jnp.einsum("t,qtf->qf", mean_w, query) @ w.T + bias(w, hyper, static) * jnp.sum(mean_w)


def presentation_order(n_way: int, k_shot: int) -> tuple[int, ...]:
    """Class of each support example in teaching order: shot by shot, every class once per round."""
    return tuple(c for _ in range(k_shot) for c in range(n_way))


def sequential_order(n_way: int, k_shot: int) -> tuple[int, ...]:
    """Teaching order of a class-incremental episode: ``n_way`` classes, then ``n_way`` more, each shot by shot."""
    first = presentation_order(n_way, k_shot)
    return first + tuple(n_way + c for c in first)
