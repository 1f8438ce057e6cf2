r"""Discretisation of the continuous-time neuron models for a step ``dt``.

Every neuron the runtime runs is one instance of a single discrete update,
applied per neuron with input :math:`x[t]` held constant over the step
(zero-order hold on the input):

.. math::

    I[t] &= a_{syn} I[t-1] + g_{syn} x[t]                                   && \text{(synaptic current)} \\
    d[t] &= I[t] \text{ if there is a synapse, else } x[t]                  && \text{(drive)} \\
    w[t] &= a_w w[t-1] + c_w (v[t-1] - v_{leak}) + b_w z[t-1]             && \text{(adaptation, AdaptiveLIF)} \\
    \tilde v[t] &= a_v v[t-1] + k_v + g_v d[t] - g_w w[t]                   && \text{(membrane)} \\
    z[t] &= H(\tilde v[t] - v_{th}) \text{ (strict)}, \text{ then reset}    &&

With ``threshold_inclusive`` the comparison is :math:`\ge`; with ``max_spikes_per_step = K > 1``
the output is a spike count :math:`z = \min(K, \max(0, \lfloor \tilde v / v_{th} \rfloor))`
and a subtractive reset removes :math:`z\,v_{th}`. With ``min_spike_interval_s = T`` a neuron
that fired holds its spikes for ``hold_steps = round(T / dt) - 1`` steps (:math:`z = 0` while
the membrane goes on integrating).

States are updated in that order (the membrane sees this step's current and
adaptation, as snnTorch, Lava and sparch do). Reset with ``reset_timing =
"immediate"`` uses :math:`z[t]`; with ``"next_step"`` it uses :math:`z[t-1]`
and is applied to :math:`\tilde v[t]` before thresholding (snnTorch's
``reset_delay=True``).

Methods, per first-order ODE :math:`\tau \dot u = -u + c\,x` with
:math:`\alpha = e^{-\Delta t/\tau}`:

* ``"zoh"`` (exact exponential): :math:`u \leftarrow \alpha u + (1-\alpha) c x`;
* ``"euler"`` (forward Euler): :math:`u \leftarrow (1 - \Delta t/\tau) u + (\Delta t/\tau) c x`.

Integrators (:math:`\dot v = R x`) get :math:`v \leftarrow v + \Delta t R x` in both.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgesnn.errors import OptionError
from edgesnn.graph import IF, LI, LIF, AdaptiveLIF, CubaLI, CubaLIF, Integrator
from edgesnn.graph._node import Node
from edgesnn.units import check_step_s

METHODS = ("zoh", "euler")
NeuronNode = Integrator | IF | LI | LIF | CubaLI | CubaLIF | AdaptiveLIF


@dataclasses.dataclass(frozen=True, eq=False)
class NeuronCoefficients:
    """Per-neuron float32 coefficients of the discrete update above, for one dt."""

    dt_s: float
    method: str
    spiking: bool
    has_synapse: bool
    has_adaptation: bool
    reset_mode: str
    reset_timing: str
    threshold_inclusive: bool
    max_spikes: int
    hold_steps: int
    a_syn: np.ndarray
    g_syn: np.ndarray
    a_w: np.ndarray
    c_w: np.ndarray
    b_w: np.ndarray
    a_v: np.ndarray
    k_v: np.ndarray
    g_v: np.ndarray
    g_w: np.ndarray
    v_leak: np.ndarray
    v_threshold: np.ndarray
    v_reset: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the neuron population."""
        return self.a_v.shape


def decay_and_gain(tau_s: np.ndarray, dt_s: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (decay, input gain) of ``tau du/dt = -u + x`` over one step of ``dt_s``."""
    tau = np.asarray(tau_s, dtype=np.float64)
    if method == "zoh":
        decay = np.exp(-dt_s / tau)
        return decay, 1.0 - decay
    if method == "euler":
        ratio = dt_s / tau
        if np.any(ratio > 1.0):
            raise OptionError(
                f"forward Euler needs dt <= tau, but dt = {dt_s:g} s and the smallest tau = {float(tau.min()):g} s;"
                " use method 'zoh'",
                path="dt",
            )
        return 1.0 - ratio, ratio
    raise OptionError(f"expected one of {', '.join(METHODS)}, got {method!r}", path="method")


def hold_steps(min_spike_interval_s: float, dt_s: float) -> int:
    """Steps after a spike in which a neuron with this minimum interval may not fire again."""
    # Rounded to the nearest whole step, with slack for intervals that are a float multiple of dt.
    return max(0, int(np.floor(min_spike_interval_s / dt_s + 0.5 + 1e-9)) - 1)


def discretise(node: Node, dt_s: float, method: str = "zoh") -> NeuronCoefficients:
    """Compute the discrete update coefficients of a neuron node at step ``dt_s``."""
    dt = check_step_s(dt_s)
    if method not in METHODS:
        raise OptionError(f"expected one of {', '.join(METHODS)}, got {method!r}", path="method")
    shape = node.shape  # type: ignore[attr-defined]
    zeros = np.zeros(shape, np.float64)
    ones = np.ones(shape, np.float64)
    get = lambda name, default: np.asarray(getattr(node, name, default), np.float64)  # noqa: E731
    r = get("r", 1.0) * ones
    v_leak = get("v_leak", 0.0) * ones
    a_syn, g_syn = zeros, zeros
    a_w, c_w, b_w, g_w = zeros, zeros, zeros, zeros
    if isinstance(node, (Integrator, IF)):
        a_v, k_v, g_v = ones, zeros, dt * r
    elif isinstance(node, (LI, LIF, CubaLI, CubaLIF, AdaptiveLIF)):
        a_v, gain = decay_and_gain(node.tau_mem_s, dt, method)
        k_v, g_v = gain * v_leak, gain * r
        if isinstance(node, (CubaLI, CubaLIF)):
            a_syn, s_gain = decay_and_gain(node.tau_syn_s, dt, method)
            g_syn = s_gain * get("w_in", 1.0)
        if isinstance(node, AdaptiveLIF):
            a_w, w_gain = decay_and_gain(node.tau_adapt_s, dt, method)
            c_w = w_gain * get("a_coupling", 0.0)
            b_w = get("b_spike", 0.0) * ones
            g_w = gain * get("g_adapt", 1.0)
    else:
        raise OptionError(f"{type(node).__name__} is not a neuron model", path="node")
    f32 = lambda a: np.ascontiguousarray(np.broadcast_to(a, shape), dtype=np.float32)  # noqa: E731
    spiking = bool(node.spiking)
    return NeuronCoefficients(
        dt_s=dt,
        method=method,
        spiking=spiking,
        has_synapse=bool(node.has_synapse),  # type: ignore[attr-defined]
        has_adaptation=bool(node.has_adaptation),  # type: ignore[attr-defined]
        reset_mode=getattr(node, "reset_mode", "to_value"),
        reset_timing=getattr(node, "reset_timing", "immediate"),
        threshold_inclusive=bool(getattr(node, "threshold_inclusive", False)),
        max_spikes=int(getattr(node, "max_spikes_per_step", 1)),
        hold_steps=hold_steps(float(getattr(node, "min_spike_interval_s", 0.0)), dt) if spiking else 0,
        a_syn=f32(a_syn),
        g_syn=f32(g_syn),
        a_w=f32(a_w),
        c_w=f32(c_w),
        b_w=f32(b_w),
        a_v=f32(a_v),
        k_v=f32(k_v),
        g_v=f32(g_v),
        g_w=f32(g_w),
        v_leak=f32(v_leak),
        v_threshold=f32(get("v_threshold", np.inf) * ones) if spiking else f32(np.full(shape, np.inf)),
        v_reset=f32(get("v_reset", 0.0) * ones),
    )
