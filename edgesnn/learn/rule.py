r"""The three-factor rule of the plastic readout, as pure numpy functions.

These functions are the specification: the session's learner calls them, and a
JAX reimplementation (the meta-trainer) is tested against them update for
update. Nothing here keeps state; every function returns new arrays.

Dynamics (per step :math:`t` of length :math:`\Delta t`, features :math:`s_t \in \{0,1\}^F`,
weights :math:`W \in \mathbb{R}^{C \times F}`):

.. math::

    x_t &= \alpha x_{t-1} + (1-\alpha) s_t, \qquad \alpha = e^{-\Delta t/\tau_\mathrm{trace}}
          &&\text{(presynaptic trace, a rate in spikes per step)}\\
    u_t &= \beta u_{t-1} + (1-\beta) W s_t, \qquad \beta = e^{-\Delta t/\tau_\mathrm{readout}}
          &&\text{(class scores: leaky-integrator readout)}

Learning replays one example's feature spikes from rest (:math:`x_0 = u_0 = 0`),
``passes`` times, cut into learning epochs of ``t_epoch`` steps (a trailing
shorter epoch counts too). During epoch :math:`k` the weights :math:`W_k` are
fixed; at its end

.. math::

    \bar y_k &= \tfrac{1}{n}\textstyle\sum_{t \in k} u_t  &&\text{(mean score over the epoch)}\\
    e_k &= y^\ast - \bar y_k  &&\text{(error per output: target minus output)}\\
    \hat e_k &= g(e_k)\,\mathbf 1[|e_k| > \theta_k],\quad g(e) = e \text{ or } \operatorname{sign}(e)
        &&\text{(third factor, error-triggered)}\\
    W_{k+1} &= Q\!\left(W_k + (\eta \odot \hat e_k)\, x_{\mathrm{end}(k)}^\top\right)
        &&\text{(pre-trace x error, applied once per epoch)}

with :math:`y^\ast_i` = ``target_on`` for the taught class and ``target_off``
otherwise, :math:`\eta_i` = ``learning_rate`` for the taught class and
``learning_rate_other`` otherwise, :math:`x_{\mathrm{end}(k)}` the trace at the
epoch's last step (what Loihi's learning engine reads at the epoch boundary),
and :math:`Q` the optional weight quantisation (:func:`quantise`). With
``threshold_mode="adaptive"``, :math:`\theta_{k+1} = \theta_k + \delta` after
an epoch that triggered an update and :math:`\max(\theta_k - \delta,
\theta_\min)` after one that did not.

Version 2 of the configuration adds three options (version 1's behaviour in
brackets):

* ``bias="prototype"`` [``"none"``]: the readout's input current is
  :math:`W s_t + b` with :math:`b_c = -|w_c|^2 / (2\sigma)`, :math:`\sigma` =
  ``init_scale`` (:func:`bias`), recomputed whenever :math:`W` changes. A class
  score is then :math:`\tfrac{\sigma}{2}(|x|^2 - |x - w_c/\sigma|^2)` for an input
  :math:`x`: nearest prototype :math:`p_c = w_c/\sigma` (Euclidean). Imprinted rows
  make this nearest-class-mean (with this bias an imprint is the example's mean
  rate, :func:`imprint_row`). The update follows the score's gradient:
  :math:`W_{k+1} = Q(W_k + \hat e'_k \odot (x_{\mathrm{end}(k)} - W_k/\sigma))`, which moves a
  prototype toward the example (or away from it) and leaves it still when it
  already sits on the example.
* ``shots="mean"`` [``"first"``]: before the rule runs on the n-th example of a
  known class, its row moves to the running mean of the imprints,
  :math:`w_c \mathrel{+}= (\sigma \bar x - w_c)/n` (:func:`add_example_row`).
* ``step="normalised"`` [``"constant"``]: epoch :math:`k`'s targets and threshold
  are in units of :math:`r_k`, the mean score over the epoch that the example's
  own imprint :math:`v` (:func:`imprint_row`) would have (the same leaky readout
  run with the row :math:`v`; no update in an epoch with :math:`r_k \le 0`), so an
  imprinted row meets ``target_on = 1`` on its own example, and the step
  sizes are divided by :math:`\bar x \cdot \bar\phi` (the example's mean trace
  dotted with its mean readout input, :math:`\approx |\bar x|^2`): normalised
  LMS, :math:`\eta = 1` removes about one epoch's error whatever the features'
  scale (:func:`example_scales`). The units depend on the example only, not on
  :math:`W`: the host can compute them before the epochs run.

Because :math:`W` is fixed within an epoch, :math:`\bar y_k`, :math:`u` and
:math:`x` at the epoch's end are weighted sums of its spikes
(:func:`epoch_kernels`): one matrix product per epoch, no loop over steps.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from edgesnn.learn.config import LearningConfig


@dataclasses.dataclass(frozen=True)
class Coefficients:
    """Per-step decays of the trace (``alpha``) and of the readout (``beta``) at one dt."""

    alpha: float
    beta: float


@dataclasses.dataclass(frozen=True)
class RuleState:
    """What the rule carries between examples: the (possibly adaptive) error threshold."""

    threshold: float


@dataclasses.dataclass(frozen=True)
class LearnStats:
    """Outcome of one example: epochs run, row updates applied, final rule state."""

    epochs: int
    updates: int
    state: RuleState


def coefficients(config: LearningConfig, dt_s: float) -> Coefficients:
    """Decays ``exp(-dt/tau)`` of the trace and of the readout for a step of ``dt_s`` seconds."""
    return Coefficients(math.exp(-dt_s / config.trace_tau_s), math.exp(-dt_s / config.readout_tau_s))


def initial_state(config: LearningConfig) -> RuleState:
    """The rule state before any example: the configured threshold."""
    return RuleState(float(config.threshold))


def epoch_kernels(decay: float, n: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Weights that turn an epoch's ``n`` inputs into the filter's mean and end value.

    For ``v_t = decay * v_{t-1} + (1 - decay) * i_t`` over ``t = 1..n`` from ``v_0``:
    ``mean(v) = mean_w @ i + mean_v0 * v_0`` and ``v_n = end_w @ i + end_v0 * v_0``.
    Returns ``(mean_w, end_w, mean_v0, end_v0)``.
    """
    j = np.arange(n, dtype=np.float64)
    powers = decay ** (n - j)  # decay^(n-j), j = 0..n-1
    mean_w = (1.0 - powers) / n
    end_w = (1.0 - decay) * decay ** (n - 1 - j)
    mean_v0 = float(np.mean(decay ** (j + 1)))
    return mean_w, end_w, mean_v0, float(decay**n)


def presynaptic_traces(spikes: np.ndarray, alpha: float, x0: np.ndarray | None = None) -> np.ndarray:
    """Trace after every step, (T, F), from spikes (T, F), step by step (the reference form)."""
    spikes = np.asarray(spikes, np.float64)
    x = np.zeros(spikes.shape[1]) if x0 is None else np.asarray(x0, np.float64).copy()
    out = np.empty_like(spikes)
    for t, s in enumerate(spikes):
        x = alpha * x + (1.0 - alpha) * s
        out[t] = x
    return out


def readout_potentials(
    spikes: np.ndarray, weights: np.ndarray, beta: float, offset: np.ndarray | None = None
) -> np.ndarray:
    """Class scores after every step, (T, C), for fixed weights (and bias currents ``offset``) from rest."""
    currents = np.asarray(spikes, np.float64) @ np.asarray(weights, np.float64).T
    if offset is not None:
        currents = currents + np.asarray(offset, np.float64)
    u = np.zeros(currents.shape[1])
    out = np.empty_like(currents)
    for t, i in enumerate(currents):
        u = beta * u + (1.0 - beta) * i
        out[t] = u
    return out


def mean_input(spikes: np.ndarray, beta: float) -> np.ndarray:
    """Features (F,) whose product with weights (C, F) is the mean class score over spikes (T, F) from rest."""
    s = np.asarray(spikes, np.float64)
    return epoch_kernels(beta, len(s))[0] @ s


def gate(error: np.ndarray, threshold: float, mode: str) -> np.ndarray:
    """Error-triggered third factor: ``error`` (or its sign) where ``|error| > threshold``, else 0."""
    fired = np.abs(error) > threshold
    return np.where(fired, error if mode == "value" else np.sign(error), 0.0)


def next_threshold(threshold: float, triggered: bool, config: LearningConfig) -> float:
    """Threshold for the next epoch: unchanged when fixed; up or down one step when adaptive."""
    if config.threshold_mode == "fixed":
        return threshold
    if triggered:
        return threshold + config.threshold_step
    return max(threshold - config.threshold_step, config.threshold_min)


def targets_and_rates(n_classes: int, row: int, config: LearningConfig) -> tuple[np.ndarray, np.ndarray]:
    """Target score and learning rate of every output when class ``row`` is taught."""
    target = np.full(n_classes, config.target_off)
    target[row] = config.target_on
    rates = np.full(n_classes, config.learning_rate_other)
    rates[row] = config.learning_rate
    return target, rates


def bias(weights: np.ndarray, config: LearningConfig) -> np.ndarray:
    """Per-class constant input current (C,): ``-|w_c|^2 / (2 init_scale)`` with the prototype bias, else 0."""
    w = np.asarray(weights, np.float64)
    if config.bias == "none":
        return np.zeros(w.shape[0])
    return -np.einsum("cf,cf->c", w, w) / (2.0 * config.init_scale)


def mean_trace(spikes: np.ndarray, alpha: float) -> np.ndarray:
    """The example's presynaptic trace averaged over its steps, from rest (F,)."""
    s = np.asarray(spikes, np.float64)
    return epoch_kernels(alpha, len(s))[0] @ s


@dataclasses.dataclass(frozen=True)
class Scales:
    """Per-example units of ``step="normalised"``: targets and threshold times ``score``, step sizes times ``rate``."""

    score: float
    rate: float


def example_scales(spikes: np.ndarray, config: LearningConfig, coeffs: Coefficients) -> Scales:
    """The units one example is taught in: 1 and 1 for ``step="constant"``; see the module docstring otherwise."""
    if config.step == "constant":
        return Scales(1.0, 1.0)
    s = np.asarray(spikes, np.float64)
    x, phi = mean_trace(s, coeffs.alpha), mean_input(s, coeffs.beta)
    imprint = imprint_row(s, config, coeffs).astype(np.float64)
    r = float(mean_scores(imprint[None], s, config, coeffs)[0])
    overlap = float(x @ phi)
    if not (r > 0 and overlap > 0):  # no spike (or init_scale 0): nothing to scale by, and nothing to learn
        return Scales(1.0, 0.0)
    return Scales(r, 1.0 / overlap)


def learn_example(
    weights: np.ndarray, spikes: np.ndarray, row: int, state: RuleState, config: LearningConfig, coeffs: Coefficients
) -> tuple[np.ndarray, LearnStats]:
    """Teach class ``row`` one example: feature spikes (T, F); returns new float32 weights (C, F) and stats."""
    w = np.asarray(weights, np.float64)
    s = np.asarray(spikes, np.float64)
    target, rates = targets_and_rates(w.shape[0], row, config)
    scales = example_scales(s, config, coeffs)
    rates = rates * scales.rate
    prototype, normalised = config.bias == "prototype", config.step == "normalised"
    imprint = imprint_row(s, config, coeffs).astype(np.float64)
    imprint_bias = float(bias(imprint[None], config)[0])
    threshold = state.threshold
    epochs = updates = 0
    kernels: dict[int, tuple] = {}
    for _ in range(config.passes):
        u = np.zeros(w.shape[0])
        x = np.zeros(w.shape[1])
        u_own = 0.0  # the score the example's own imprint has (the unit of a normalised step)
        for start in range(0, len(s), config.t_epoch):
            block = s[start : start + config.t_epoch]
            n = len(block)
            if n not in kernels:
                kernels[n] = (epoch_kernels(coeffs.beta, n), epoch_kernels(coeffs.alpha, n))
            (mean_b, end_b, mean_u0, end_u0), (_, end_a, _, end_x0) = kernels[n]
            mean_in, end_in = mean_b @ block, end_b @ block
            y_mean = w @ mean_in + mean_u0 * u
            u = w @ end_in + end_u0 * u
            if prototype:  # the bias current is constant within the epoch
                b = bias(w, config)
                y_mean, u = y_mean + b * mean_b.sum(), u + b * end_b.sum()
            x = end_a @ block + end_x0 * x
            unit = 1.0
            if normalised:
                unit = imprint @ mean_in + mean_u0 * u_own + imprint_bias * mean_b.sum()
                u_own = imprint @ end_in + end_u0 * u_own + imprint_bias * end_b.sum()
            if unit > 0:
                third = rates * gate(target * unit - y_mean, threshold * unit, config.error_mode)
            else:  # nothing to measure this epoch's error against (the example has not spiked yet)
                third = np.zeros_like(y_mean)
            if np.any(third):
                step = third[:, None] * (x[None, :] - w / config.init_scale) if prototype else np.outer(third, x)
                w = quantise_weights(w + step, config.weight_bits).astype(np.float64)
            updates += int(np.count_nonzero(third))
            threshold = next_threshold(threshold, bool(np.any(third)), config)
            epochs += 1
    return w.astype(np.float32), LearnStats(epochs, updates, RuleState(float(threshold)))


def mean_scores(weights: np.ndarray, spikes: np.ndarray, config: LearningConfig, coeffs: Coefficients) -> np.ndarray:
    """Every class's score (C,) averaged over the example's steps from rest, bias included."""
    kernel = epoch_kernels(coeffs.beta, len(spikes))[0]
    w = np.asarray(weights, np.float64)
    return w @ (kernel @ np.asarray(spikes, np.float64)) + bias(w, config) * kernel.sum()


def imprint_row(spikes: np.ndarray, config: LearningConfig, coeffs: Coefficients) -> np.ndarray:
    """The example's imprint (F,): ``init_scale`` times its mean trace, or with the prototype bias its mean rate.

    The mean rate is the mean trace divided by the sum of its kernel (the mean
    trace of a feature that spikes on every step), so that an imprinted prototype
    is the class's rate and the prototype readout nearest-class-mean on rates.
    """
    kernel = epoch_kernels(coeffs.alpha, len(spikes))[0]
    mean = kernel @ np.asarray(spikes, np.float64)
    if config.bias == "prototype":
        mean = mean / kernel.sum()
    return (config.init_scale * mean).astype(np.float32)


def initial_row(spikes: np.ndarray, config: LearningConfig, coeffs: Coefficients) -> np.ndarray:
    """Weights (F,) of a new class before the rule runs, as ``config.init`` says."""
    n_features = np.shape(spikes)[1]
    if config.init == "zeros":
        return np.zeros(n_features, np.float32)
    if config.init == "weights":
        return np.asarray(config.initial_weights, np.float32)
    # Imprinting: the example's mean presynaptic trace (a rate per feature), scaled. Not
    # normalised per class: dividing by the trace's norm favours classes that fire little.
    return imprint_row(spikes, config, coeffs)


def add_example_row(
    weights: np.ndarray, row: int, seen: int, spikes: np.ndarray, config: LearningConfig, coeffs: Coefficients
) -> np.ndarray:
    """Weights (C', F) ready for the rule to teach ``row`` an example, the class's ``seen + 1``-th.

    ``row == len(weights)`` (and ``seen == 0``) adds the class with its
    :func:`initial_row`; a known class with ``shots="mean"`` (and imprinting) moves its row to the
    running mean of its examples' imprints; the matrix is then quantised.
    """
    w = np.asarray(weights, np.float32)
    if row == len(w):
        w = np.vstack([w, initial_row(spikes, config, coeffs)[None]])
    elif config.shots == "mean" and config.init == "mean_trace":
        w = w.copy()
        imprint = imprint_row(spikes, config, coeffs).astype(np.float64)
        w[row] = (w[row] + (imprint - w[row]) / (seen + 1)).astype(np.float32)
    else:
        return w
    return quantise_weights(w, config.weight_bits)


# -- quantisation -----------------------------------------------------------------
def quantise(weights: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """Signed ``bits``-bit mantissas and one shared exponent with ``weights ~ mantissa * 2**exponent``.

    The exponent is the smallest integer with ``max|w| <= M * 2**exponent``,
    ``M = 2**(bits-1) - 1`` (8 bits: mantissas in [-127, 127]); mantissas are
    ``w / 2**exponent`` rounded to the nearest integer, ties to even
    (deterministic, where Loihi's learning engine rounds stochastically). All-zero
    weights get exponent 0. Quantising already quantised weights returns them
    unchanged: the largest mantissa is then at least ``(M + 1) / 2``, which pins
    the same exponent.
    """
    w = np.asarray(weights, np.float64)
    m_max = (1 << (bits - 1)) - 1
    amax = float(np.max(np.abs(w))) if w.size else 0.0
    if amax == 0.0:
        return np.zeros(w.shape, np.int32), 0
    exponent = math.ceil(math.log2(amax / m_max))
    # log2 can be off by one ulp at exact powers of two; settle on the smallest exponent that fits.
    while amax > math.ldexp(m_max, exponent):
        exponent += 1
    while amax <= math.ldexp(m_max, exponent - 1):
        exponent -= 1
    mantissa = np.clip(np.rint(np.ldexp(w, -exponent)), -m_max, m_max).astype(np.int32)
    return mantissa, exponent


def dequantise(mantissa: np.ndarray, exponent: int) -> np.ndarray:
    """Float32 weights ``mantissa * 2**exponent`` (exact for mantissas of up to 24 bits)."""
    return np.ldexp(np.asarray(mantissa, np.float64), exponent).astype(np.float32)


def quantise_weights(weights: np.ndarray, bits: int | None) -> np.ndarray:
    """Round ``weights`` to what ``bits``-bit mantissas with a shared exponent hold; float32 as is for None."""
    if bits is None:
        return np.asarray(weights, np.float32)
    return dequantise(*quantise(weights, bits))
