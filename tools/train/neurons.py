"""The runtime's unified neuron update (edgesnn.neurons.discretise), written in jax.numpy.

:func:`coefficients` turns continuous-time parameters into the discrete
coefficients with the formulas of :func:`edgesnn.neurons.discretise` (all four
methods: the exact "zoh" and "euler" of coupled states through a 2x2 matrix
exponential or closed form, and the two cascades), and :func:`step` applies
the update in the order of the engine's reference kernel: synaptic current
(first for a cascade, after the membrane for coupled methods), adaptation,
membrane, next-step reset, strict threshold, immediate reset. Everything is
float32 (jax's default), as in the runtime.

Two unavoidable float32 differences remain: the runtime computes coefficients
in float64 and rounds once, here they are computed in float32 (a few ulp), and
XLA on CPU contracts ``a * b + c`` into fused multiply-adds (one rounding
instead of two). Traces therefore agree to ~1e-6 relative, not bit for bit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from edgesnn.errors import OptionError
from edgesnn.neurons import NeuronCoefficients
from tools.train.surrogate import SpikeFn

#: Neuron kinds of the trainer and the runtime node class each one exports to.
KINDS = {"li": "LI", "lif": "LIF", "cubalif": "CubaLIF", "adlif": "AdaptiveLIF"}


@dataclasses.dataclass(frozen=True)
class NeuronSpec:
    """The static (non-array) description of a neuron population."""

    kind: str
    reset_mode: str = "subtract"
    reset_timing: str = "immediate"
    detach_reset: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise OptionError(f"expected one of {', '.join(KINDS)}, got {self.kind!r}", path="neuron")

    @property
    def spiking(self) -> bool:
        """True for every kind except the LI readout."""
        return self.kind != "li"

    @property
    def has_synapse(self) -> bool:
        """True when the neuron keeps a synaptic current."""
        return self.kind == "cubalif"

    @property
    def has_adaptation(self) -> bool:
        """True when the neuron keeps an adaptation variable."""
        return self.kind == "adlif"


class Coefficients(NamedTuple):
    """Per-neuron float32 coefficients, the fields of NeuronCoefficients that hold arrays."""

    a_syn: jax.Array
    g_syn: jax.Array
    a_w: jax.Array
    c_w: jax.Array
    b_w: jax.Array
    a_v: jax.Array
    k_v: jax.Array
    g_v: jax.Array
    g_w: jax.Array
    g_x: jax.Array
    h_w: jax.Array
    v_leak: jax.Array
    v_threshold: jax.Array
    v_reset: jax.Array


#: Methods whose synaptic neurons see the previous step's current (the runtime's ``coupled``).
COUPLED = ("zoh", "euler")


class NeuronState(NamedTuple):
    """State of a population for a batch: membrane, current, adaptation, last spikes."""

    v: jax.Array
    i: jax.Array
    w: jax.Array
    z: jax.Array


def decay_and_gain(tau_s: jax.Array, dt_s: float, method: str) -> tuple[jax.Array, jax.Array]:
    """Return (decay, input gain) of ``tau du/dt = -u + x`` over one step, for one state alone, as discretise does."""
    ratio = dt_s / tau_s
    if method in ("zoh", "cascade"):
        # 1 - exp(-r) computed as -expm1(-r): the float64 reference's value, without float32 cancellation.
        return jnp.exp(-ratio), -jnp.expm1(-ratio)
    if method in ("euler", "cascade-euler"):
        return 1.0 - ratio, ratio
    raise OptionError(f"expected one of zoh, euler, cascade, cascade-euler, got {method!r}", path="method")


#: The 2x2 held-input response is summed as a series on M / 2**_SQUARINGS, then squared back.
_SQUARINGS = 4
_TERMS = 12


def _held_response(m: jax.Array, bdt: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(Phi, Gamma) = (e^M, phi1(M) b dt) for stacks of 2x2 ``m`` = A dt and 2-vectors ``bdt`` = b dt.

    float32 has too few digits for ``A^-1 (e^M - I) b``: the small entries (the input's
    effect on the second state within one step) cancel. The series of
    ``phi1(M) = sum_k M^k / (k+1)!`` has no such difference; scaling and squaring
    (``e^2M = (e^M)^2``, ``phi1(2M) = phi1(M) (e^M + I) / 2``) keeps it short.
    """
    eye = jnp.eye(2, dtype=m.dtype)
    small = m / (1 << _SQUARINGS)
    phi1 = eye
    for k in range(_TERMS, 0, -1):  # Horner: phi1 = I + M/2 (I + M/3 (I + ...))
        phi1 = eye + jnp.matmul(small, phi1) / (k + 1)
    expm = eye + jnp.matmul(small, phi1)
    for _ in range(_SQUARINGS):
        phi1 = jnp.matmul(phi1, expm + eye) / 2
        expm = jnp.matmul(expm, expm)
    return expm, jnp.einsum("...ij,...j->...i", phi1, bdt)


def _coupled_system(a: jax.Array, b: jax.Array, dt_s: float, method: str) -> tuple[jax.Array, jax.Array]:
    """(Phi, Gamma) of ``ds/dt = A s + b x`` over one step: exact ("zoh") or forward Euler."""
    if method == "zoh":
        return _held_response(a * dt_s, b * dt_s)
    return jnp.eye(2, dtype=a.dtype) + a * dt_s, b * dt_s


def _matrix(a11: jax.Array, a12: jax.Array, a21: jax.Array, a22: jax.Array) -> jax.Array:
    return jnp.stack([jnp.stack([a11, a12], -1), jnp.stack([a21, a22], -1)], -2)


def _adaptive_coupled(
    tau_mem: jax.Array,
    tau_adapt: jax.Array,
    r: jax.Array,
    coupling: jax.Array,
    kappa: jax.Array,
    b: jax.Array,
    dt_s: float,
    method: str,
) -> tuple[jax.Array, ...]:
    """(a_v, a_w, c_w, b_w, g_v, g_w, h_w) of AdaptiveLIF solved as one 2x2 system on (v - v_leak, w)."""
    lam_m, lam_a = 1.0 / tau_mem, 1.0 / tau_adapt
    a = _matrix(-lam_m, -kappa * lam_m, coupling * lam_a, -lam_a)
    phi, gamma = _coupled_system(a, jnp.stack([r * lam_m, jnp.zeros_like(r)], -1), dt_s, method)
    p11, p12, p21, p22 = phi[..., 0, 0], phi[..., 0, 1], phi[..., 1, 0], phi[..., 1, 1]
    g1, g2 = gamma[..., 0], gamma[..., 1]
    g_w = -p12 / p22
    return p11 + g_w * p21, p22, p21, p22 * b, g1 + g_w * g2, g_w, g2


def coefficients(spec: NeuronSpec, params: Mapping[str, jax.Array], dt_s: float, method: str) -> Coefficients:
    """Discretise continuous-time ``params`` (tau_*_s, v_threshold, ...) at step ``dt_s``.

    Missing optional parameters take the runtime's defaults (r = 1, v_leak = 0,
    w_in = 1, v_reset = 0, g_adapt = 1). Arrays broadcast to ``tau_mem_s``'s shape.
    """
    tau_mem = jnp.asarray(params["tau_mem_s"], jnp.float32)
    ones = jnp.ones_like(tau_mem)
    zeros = jnp.zeros_like(tau_mem)
    get = lambda name, default: jnp.asarray(params.get(name, default), jnp.float32) * ones  # noqa: E731
    r, v_leak = get("r", 1.0), get("v_leak", 0.0)
    a_v, gain = decay_and_gain(tau_mem, dt_s, method)
    g_v, k_v = gain * r, gain * v_leak
    a_syn = g_syn = a_w = c_w = b_w = g_w = g_x = h_w = zeros
    if spec.has_synapse:
        tau_syn, w_in = get("tau_syn_s", np.nan), get("w_in", 1.0)
        a_syn, s_gain = decay_and_gain(tau_syn, dt_s, method)
        g_syn = s_gain * w_in
        if method == "zoh":
            # (I, v - v_leak) as one system; the membrane row gives the previous current's and the input's gains.
            lam_s, lam_m = 1.0 / tau_syn, 1.0 / tau_mem
            a = _matrix(-lam_s, zeros, r * lam_m, -lam_m)
            phi, gamma = _coupled_system(a, jnp.stack([w_in * lam_s, zeros], -1), dt_s, method)
            g_v, g_x = phi[..., 1, 0], gamma[..., 1]
    if spec.has_adaptation:
        a_w, w_gain = decay_and_gain(get("tau_adapt_s", np.nan), dt_s, method)
        coupling, kappa, b = get("a_coupling", 0.0), get("g_adapt", 1.0), get("b_spike", 0.0)
        if method in COUPLED:
            a_v, a_w, c_w, b_w, g_v, g_w, h_w = _adaptive_coupled(tau_mem, get("tau_adapt_s", np.nan), r, coupling,
                                                                  kappa, b, dt_s, method)  # fmt: skip
            k_v = (1.0 - a_v) * v_leak
        else:
            c_w, b_w, g_w = w_gain * coupling, b, gain * kappa
    v_th = get("v_threshold", np.inf) if spec.spiking else jnp.full_like(tau_mem, jnp.inf)
    return Coefficients(a_syn, g_syn, a_w, c_w, b_w, a_v, k_v, g_v, g_w, g_x, h_w, v_leak, v_th,
                        get("v_reset", 0.0))  # fmt: skip


def coefficients_from_runtime(c: NeuronCoefficients) -> Coefficients:
    """Wrap the runtime's own coefficients so :func:`step` can run with them."""
    return Coefficients(*(jnp.asarray(getattr(c, f)) for f in Coefficients._fields))


def initial_state(c: Coefficients, batch: int) -> NeuronState:
    """The runtime's reset state: membrane at v_leak, current, adaptation and spikes at zero."""
    shape = (batch, *c.a_v.shape)
    zeros = jnp.zeros(shape, jnp.float32)
    return NeuronState(jnp.broadcast_to(c.v_leak, shape), zeros, zeros, zeros)


def _reset(spec: NeuronSpec, v: jax.Array, z: jax.Array, c: Coefficients) -> jax.Array:
    zr = jax.lax.stop_gradient(z) if spec.detach_reset else z
    if spec.reset_mode == "subtract":
        return v - zr * c.v_threshold
    if spec.detach_reset:
        return jnp.where(zr != 0, c.v_reset, v)
    # Products with exact 0/1 spikes round nothing, so this equals the runtime's select.
    return v * (1.0 - zr) + zr * c.v_reset


def step(
    spec: NeuronSpec, spike: SpikeFn, c: Coefficients, state: NeuronState, x: jax.Array, method: str
) -> tuple[NeuronState, jax.Array]:
    """Advance one step on input ``x`` (batch, *shape); return (new state, spikes or membrane).

    ``method`` is the one ``c`` was computed with: under "zoh" and "euler" a synaptic
    membrane sees the previous step's current (and ``g_x`` times the input), and under
    "zoh" the input moves the adaptation too (``h_w``), as in the engine.
    """
    v, i, w, z = state
    coupled = spec.has_synapse and method in COUPLED
    drive = x
    if spec.has_synapse:
        if not coupled:
            i = i * c.a_syn
            i = i + c.g_syn * x
        drive = i
    if spec.has_adaptation:
        w = w * c.a_w
        w = w + c.c_w * (v - c.v_leak)
        w = w + c.b_w * z
        if method == "zoh":
            w = w + c.h_w * x
    v_new = c.a_v * v + c.k_v
    v_new = v_new + c.g_v * drive
    if coupled:
        v_new = v_new + c.g_x * x
        i = i * c.a_syn
        i = i + c.g_syn * x
    if spec.has_adaptation:
        v_new = v_new - c.g_w * w
    if not spec.spiking:
        return NeuronState(v_new, i, w, z), v_new
    if spec.reset_timing == "next_step":
        v_new = _reset(spec, v_new, z, c)
    z_new = spike(v_new, c.v_threshold)
    if spec.reset_timing == "immediate":
        v_new = _reset(spec, v_new, z_new, c)
    return NeuronState(v_new, i, w, z_new), z_new
