"""The runtime's unified neuron update (edgesnn.neurons.discretise), written in jax.numpy.

:func:`coefficients` turns continuous-time parameters into the discrete
coefficients with the formulas of :func:`edgesnn.neurons.discretise`, and
:func:`step` applies the update in the order of the engine's reference kernel:
synaptic current, adaptation, membrane, next-step reset, strict threshold,
immediate reset. Everything is float32 (jax's default), as in the runtime.

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
    v_leak: jax.Array
    v_threshold: jax.Array
    v_reset: jax.Array


class NeuronState(NamedTuple):
    """State of a population for a batch: membrane, current, adaptation, last spikes."""

    v: jax.Array
    i: jax.Array
    w: jax.Array
    z: jax.Array


def decay_and_gain(tau_s: jax.Array, dt_s: float, method: str) -> tuple[jax.Array, jax.Array]:
    """Return (decay, input gain) of ``tau du/dt = -u + x`` over one step, as discretise does."""
    ratio = dt_s / tau_s
    if method == "zoh":
        # 1 - exp(-r) computed as -expm1(-r): the float64 reference's value, without float32 cancellation.
        return jnp.exp(-ratio), -jnp.expm1(-ratio)
    if method == "euler":
        return 1.0 - ratio, ratio
    raise OptionError(f"expected one of zoh, euler, got {method!r}", path="method")


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
    a_syn = g_syn = a_w = c_w = b_w = g_w = zeros
    if spec.has_synapse:
        a_syn, s_gain = decay_and_gain(get("tau_syn_s", np.nan), dt_s, method)
        g_syn = s_gain * get("w_in", 1.0)
    if spec.has_adaptation:
        a_w, w_gain = decay_and_gain(get("tau_adapt_s", np.nan), dt_s, method)
        c_w = w_gain * get("a_coupling", 0.0)
        b_w = get("b_spike", 0.0)
        g_w = gain * get("g_adapt", 1.0)
    v_th = get("v_threshold", np.inf) if spec.spiking else jnp.full_like(tau_mem, jnp.inf)
    return Coefficients(a_syn, g_syn, a_w, c_w, b_w, a_v, gain * v_leak, gain * r, g_w, v_leak, v_th,
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
    spec: NeuronSpec, spike: SpikeFn, c: Coefficients, state: NeuronState, x: jax.Array
) -> tuple[NeuronState, jax.Array]:
    """Advance one step on input ``x`` (batch, *shape); return (new state, spikes or membrane)."""
    v, i, w, z = state
    drive = x
    if spec.has_synapse:
        i = i * c.a_syn
        i = i + c.g_syn * x
        drive = i
    if spec.has_adaptation:
        w = w * c.a_w
        w = w + c.c_w * (v - c.v_leak)
        w = w + c.b_w * z
    v_new = c.a_v * v + c.k_v
    v_new = v_new + c.g_v * drive
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
