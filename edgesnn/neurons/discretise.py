r"""Discretisation of the continuous-time neuron models for a step ``dt``.

Every neuron the runtime runs is one instance of a single discrete update,
applied per neuron with input :math:`x[t]` held constant over the step
(zero-order hold on the input):

.. math::

    w[t] &= a_w w[t-1] + c_w (v[t-1] - v_{leak}) + b_w z[t-1] + h_w x[t]   && \text{(adaptation, AdaptiveLIF)} \\
    d[t] &= x[t], \text{ or } I[t] \text{ (cascade) or } I[t-1] \text{ (coupled) with a synapse} && \text{(drive)} \\
    \tilde v[t] &= a_v v[t-1] + k_v + g_v d[t] + g_x x[t] - g_w w[t]          && \text{(membrane)} \\
    I[t] &= a_{syn} I[t-1] + g_{syn} x[t]                                   && \text{(synaptic current)} \\
    z[t] &= H(\tilde v[t] - v_{th}) \text{ (strict)}, \text{ then reset}    &&

With ``threshold_inclusive`` the comparison is :math:`\ge`; with ``max_spikes_per_step = K > 1``
the output is a spike count :math:`z = \min(K, \max(0, \lfloor \tilde v / v_{th} \rfloor))`
and a subtractive reset removes :math:`z\,v_{th}`. With ``min_spike_interval_s = T`` a neuron
that fired holds its spikes for ``hold_steps = round(T / dt) - 1`` steps (:math:`z = 0` while
the membrane goes on integrating). Reset with ``reset_timing = "immediate"`` uses :math:`z[t]`;
with ``"next_step"`` it uses :math:`z[t-1]` and is applied to :math:`\tilde v[t]` before
thresholding (snnTorch's ``reset_delay=True``). A spike's jump of the adaptation, ``b_spike``,
lands at the spike time, the end of the step that fired.

Methods (``METHODS``):

* ``"zoh"``: exact zero-order hold of the neuron's linear system. A synapse and its membrane
  (CubaLI, CubaLIF), or a membrane and its adaptation (AdaptiveLIF), are solved together:
  :math:`s[t] = e^{A\Delta t} s[t-1] + A^{-1}(e^{A\Delta t} - I) B x[t]`. The membrane sees the
  previous step's current and, through ``g_x`` (``h_w``), the current step's input as it
  charges the synapse (moves the adaptation) during the step.
* ``"euler"``: forward Euler of the same linear system,
  :math:`s[t] = s[t-1] + \Delta t (A s[t-1] + B x[t])`: the membrane sees the previous step's
  current (and adaptation), so an input reaches a CubaLIF membrane one step later.
* ``"cascade"``: each state decays by its own exact exponential and the downstream state is
  driven by the updated upstream one, as if held over the step (:math:`d = I[t]`, the
  adaptation enters the membrane after its update): the form snnTorch, Rockpool, Sinabs and
  Lava's CUBA neurons compute. Not the exact solution of the coupled system.
* ``"cascade-euler"``: the cascade with forward-Euler decays :math:`1 - \Delta t/\tau` and
  gains :math:`\Delta t/\tau` (snnTorch's and Norse's exports, Lava-dl's CUBA at unit gains).

For neurons with one state (Integrator, IF, LI, LIF) ``"zoh"`` and ``"cascade"`` are the same
update, and so are ``"euler"`` and ``"cascade-euler"``: per first-order ODE
:math:`\tau \dot u = -u + c\,x` with :math:`\alpha = e^{-\Delta t/\tau}`,
:math:`u \leftarrow \alpha u + (1-\alpha) c x` (exponential) or
:math:`u \leftarrow (1 - \Delta t/\tau) u + (\Delta t/\tau) c x` (Euler). Integrators
(:math:`\dot v = R x`) get :math:`v \leftarrow v + \Delta t R x` in all four.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from edgesnn.errors import OptionError
from edgesnn.graph import IF, LI, LIF, AdaptiveLIF, CubaLI, CubaLIF, Integrator
from edgesnn.graph._node import Node
from edgesnn.neurons._linear import held_input_response, synapse_membrane_gain
from edgesnn.units import check_step_s

METHODS = ("zoh", "euler", "cascade", "cascade-euler")
#: The decay of one state on its own under each method: exponential or forward Euler.
SECTION_RULE = {"zoh": "zoh", "cascade": "zoh", "euler": "euler", "cascade-euler": "euler"}
#: The cascade method with the same per-state decays and DC gains as each method.
CASCADE_OF = {"zoh": "cascade", "cascade": "cascade", "euler": "cascade-euler", "cascade-euler": "cascade-euler"}
#: Neuron types whose states are coupled, where "zoh" differs from "cascade" and "euler" from "cascade-euler".
COUPLED_TYPES = ("CubaLI", "CubaLIF", "AdaptiveLIF")
#: Until bundle schema 2 (edgesnn 0.2), "zoh" and "euler" named the cascades.
_LEGACY = {"zoh": "cascade", "euler": "cascade-euler"}


def legacy_method(method: str, node_types: Iterable[str]) -> str:
    """The method a file written before the cascades had their own names means (schema 1 bundles, NIR records)."""
    return _LEGACY.get(method, method) if any(t in COUPLED_TYPES for t in node_types) else method


def method_token(method: str, node_types: Iterable[str]) -> str:
    """The name under which a model's method enters its fingerprint.

    Fingerprints bind class stores and saved states in the field; this keeps them as they were
    before the cascades had their own names (a cascade hashes as its old name), and gives the
    exact coupled methods new ones.
    """
    if not any(t in COUPLED_TYPES for t in node_types):
        return SECTION_RULE.get(method, method)
    return _TOKENS.get(method, method)


_TOKENS = {"cascade": "zoh", "cascade-euler": "euler", "zoh": "zoh-exact", "euler": "euler-forward"}
NeuronNode = Integrator | IF | LI | LIF | CubaLI | CubaLIF | AdaptiveLIF


@dataclasses.dataclass(frozen=True, eq=False)
class NeuronCoefficients:
    """Per-neuron float32 coefficients of the discrete update above, for one dt.

    ``coupled`` says the membrane is driven by the previous step's synaptic current
    (``"zoh"``, ``"euler"``) rather than the updated one (the cascades).
    """

    dt_s: float
    method: str
    spiking: bool
    has_synapse: bool
    has_adaptation: bool
    coupled: bool
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
    g_x: np.ndarray
    h_w: np.ndarray
    v_leak: np.ndarray
    v_threshold: np.ndarray
    v_reset: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the neuron population."""
        return self.a_v.shape


def decay_and_gain(tau_s: np.ndarray, dt_s: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (decay, input gain) of ``tau du/dt = -u + x`` over one step of ``dt_s``, for one state alone."""
    tau = np.asarray(tau_s, dtype=np.float64)
    if method not in SECTION_RULE:
        raise OptionError(f"expected one of {', '.join(METHODS)}, got {method!r}", path="method")
    method = SECTION_RULE[method]
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
    raise AssertionError(method)  # pragma: no cover - SECTION_RULE has two rules


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
    get = lambda name, default: np.asarray(getattr(node, name, default), np.float64) * ones  # noqa: E731
    r = get("r", 1.0)
    v_leak = get("v_leak", 0.0)
    a_syn, g_syn, g_x = zeros, zeros, zeros
    a_w, c_w, b_w, g_w, h_w = zeros, zeros, zeros, zeros, zeros
    coupled = method in ("zoh", "euler") and isinstance(node, (CubaLI, CubaLIF))
    if isinstance(node, (Integrator, IF)):
        a_v, k_v, g_v = ones, zeros, dt * r
    elif isinstance(node, (LI, LIF)):
        a_v, gain = decay_and_gain(node.tau_mem_s, dt, method)
        k_v, g_v = gain * v_leak, gain * r
    elif isinstance(node, (CubaLI, CubaLIF)):
        a_v, gain = decay_and_gain(node.tau_mem_s, dt, method)
        a_syn, s_gain = decay_and_gain(node.tau_syn_s, dt, method)
        w_in = get("w_in", 1.0)
        g_syn = s_gain * w_in
        k_v = gain * v_leak
        if method == "zoh":
            # Exact: the previous current's decaying contribution over the step, and the
            # input's, which charges the synapse while the membrane integrates it.
            g_v = r * synapse_membrane_gain(node.tau_syn_s, node.tau_mem_s, dt)
            g_x = r * w_in * (gain - synapse_membrane_gain(node.tau_syn_s, node.tau_mem_s, dt))
        elif method == "euler":
            g_v = gain * r  # dt/tau_mem R I[t-1]; the input reaches v through I one step later
        else:
            g_v = gain * r
    elif isinstance(node, AdaptiveLIF):
        a_v, gain = decay_and_gain(node.tau_mem_s, dt, method)
        a_w, w_gain = decay_and_gain(node.tau_adapt_s, dt, method)
        coupling, kappa, b = get("a_coupling", 0.0), get("g_adapt", 1.0), get("b_spike", 0.0)
        k_v = gain * v_leak
        if method in ("zoh", "euler"):
            a_v, a_w, c_w, b_w, g_v, g_w, h_w = _adaptive_coupled(node, dt, method, r, coupling, kappa, b)
            k_v = (1.0 - a_v) * v_leak
        else:
            c_w, b_w = w_gain * coupling, b
            g_v, g_w = gain * r, gain * kappa
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
        coupled=coupled,
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
        g_x=f32(g_x),
        h_w=f32(h_w),
        v_leak=f32(v_leak),
        v_threshold=f32(get("v_threshold", np.inf) * ones) if spiking else f32(np.full(shape, np.inf)),
        v_reset=f32(get("v_reset", 0.0) * ones),
    )


def _adaptive_coupled(
    node: AdaptiveLIF, dt: float, method: str, r: np.ndarray, coupling: np.ndarray, kappa: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, ...]:
    """(a_v, a_w, c_w, b_w, g_v, g_w, h_w) of AdaptiveLIF solved as one linear system on (v - v_leak, w).

    With ``A = [[-1/tau_m, -kappa/tau_m], [a/tau_a, -1/tau_a]]``, ``B = [R/tau_m, 0]`` and the
    spike's jump ``w += b`` at the start of the step, the update is ``(u, w)' = Phi (u, w + b z)
    + Gamma x`` (``Phi = e^{A dt}`` exactly, ``I + A dt`` for Euler). The engine updates w first
    and v with the new w, which gives this map with ``g_w = -Phi12 / Phi22`` (see the module
    docstring); that needs ``Phi22 > 0``, true unless the step spans most of an oscillation.
    """
    n = r.size
    lam_m = (1.0 / np.asarray(node.tau_mem_s, np.float64)).reshape(n)
    lam_a = (1.0 / np.asarray(node.tau_adapt_s, np.float64)).reshape(n)
    a = np.empty((n, 2, 2))
    a[:, 0, 0], a[:, 0, 1] = -lam_m, -kappa.reshape(n) * lam_m
    a[:, 1, 0], a[:, 1, 1] = coupling.reshape(n) * lam_a, -lam_a
    bvec = np.stack([r.reshape(n) * lam_m, np.zeros(n)], axis=1)
    if method == "zoh":
        det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
        if np.any(np.abs(det) < 1e-12 * lam_m * lam_a):
            i = int(np.flatnonzero(np.abs(det) < 1e-12 * lam_m * lam_a)[0])
            raise OptionError(
                f"neuron {i} has a_coupling * g_adapt = -1: its linear system has no steady state and no exact"
                " zero-order hold here; use method 'cascade'",
                path="method",
            )
        phi, gamma = held_input_response(a, bvec, dt)
    else:
        phi, gamma = np.eye(2)[None] + a * dt, bvec * dt
    p11, p12, p21, p22 = phi[:, 0, 0], phi[:, 0, 1], phi[:, 1, 0], phi[:, 1, 1]
    if np.any(p22 <= 0):
        i = int(np.flatnonzero(p22 <= 0)[0])
        raise OptionError(
            f"neuron {i}'s adaptation decays to {float(p22[i]):.3g} over dt = {dt:g} s under {method!r}; the"
            " engine's update needs a positive decay: use a smaller dt or method 'cascade'",
            path="dt",
        )
    g_w = -p12 / p22
    shape = r.shape
    out = (p11 + g_w * p21, p22, p21, p22 * b.reshape(n), gamma[:, 0] + g_w * gamma[:, 1], g_w, gamma[:, 1])
    return tuple(x.reshape(shape) for x in out)
