r"""Neuron nodes in continuous time, with NIR's parameter names and units.

Every neuron holds per-neuron float32 arrays of one common shape (scalars are
broadcast). Time constants are in seconds; discretisation for a step ``dt`` is
done by :mod:`edgesnn.neurons`, never stored here.

Spiking neurons fire when :math:`v > v_{th}` (strictly) and are then reset:

* ``reset_mode="to_value"``: :math:`v \leftarrow v_{reset}`;
  ``reset_mode="subtract"``: :math:`v \leftarrow v - v_{th}`.
* ``reset_timing="immediate"``: the reset is applied in the step that fired;
  ``"next_step"``: it is applied at the start of the next step (snnTorch's
  convention), so the membrane reported for the firing step is not reset.
* ``threshold_inclusive=True`` fires at :math:`v \ge v_{th}` (Sinabs, Rockpool, Lava-dl).
* ``max_spikes_per_step=K > 1`` emits graded spikes, the count
  :math:`\min(K, \lfloor v / v_{th} \rfloor)`, and a subtractive reset removes
  that many thresholds (Sinabs' ``MultiSpike``, Rockpool's ``max_spikes_per_dt``).
* ``min_spike_interval_s=T > 0``: after a spike the neuron does not fire again for ``T``
  seconds (rounded to whole steps); unlike a classic refractory period the membrane keeps
  integrating, and the reset happens only when a spike is emitted. This is what one
  spike per step at most means for a network trained at step ``T``, and what
  :mod:`edgesnn.adapt` keeps when it maps such a network to a finer step.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from edgesnn.errors import NodeValidationError
from edgesnn.graph._node import Node, Shape, array_field, as_param, check_choice, check_elements
from edgesnn.units import check_time_s

RESET_MODES = ("to_value", "subtract")
RESET_TIMINGS = ("immediate", "next_step")
#: Largest spike count per neuron and step the engine represents (graded spikes).
MAX_SPIKES_PER_STEP = 1 << 15

# Defaults used when an optional parameter array is omitted.
_DEFAULTS = {"v_reset": 0.0, "v_leak": 0.0, "w_in": 1.0, "r": 1.0, "a_coupling": 0.0, "b_spike": 0.0, "g_adapt": 1.0}


@dataclasses.dataclass(frozen=True, eq=False)
class _Neuron(Node):
    """Shared checks: one common shape, positive time constants, valid options."""

    stateful = True
    #: State variables the engine keeps for this neuron type, besides ``v``.
    has_synapse: ClassVar[bool] = False
    has_adaptation: ClassVar[bool] = False

    def __post_init__(self) -> None:
        arrays = {}
        for name in self.array_fields():
            value = getattr(self, name)
            if value is None:
                if name not in _DEFAULTS:
                    raise NodeValidationError("required parameter is missing", path=name)
                value = _DEFAULTS[name]
            arrays[name] = as_param(value, name)
        try:
            shape = np.broadcast_shapes(*(a.shape for a in arrays.values()))
        except ValueError as exc:
            shapes = ", ".join(f"{k}{v.shape}" for k, v in arrays.items())
            raise NodeValidationError(f"parameter shapes do not broadcast: {shapes}", path=next(iter(arrays))) from exc
        # Checked before broadcasting: (n, 1) and (1, n) parameters would otherwise allocate n * n values.
        check_elements(shape, next(iter(arrays)))
        for name, arr in arrays.items():
            if arr.shape != shape:
                arr = np.ascontiguousarray(np.broadcast_to(arr, shape))
                arr.setflags(write=False)
            if name.startswith("tau") and arr.size:
                if np.any(arr <= 0):
                    raise NodeValidationError(f"expected time constants > 0 s, got min {float(arr.min())}", path=name)
                check_time_s(float(arr.min()), name=name, what="a time constant", upper=False)
            self._set(name, arr)
        if hasattr(self, "reset_mode"):
            check_choice(self.reset_mode, RESET_MODES, "reset_mode")
            check_choice(self.reset_timing, RESET_TIMINGS, "reset_timing")
            self._check_spike_options()

    def _check_spike_options(self) -> None:
        if not isinstance(self.threshold_inclusive, (bool, np.bool_)):
            raise NodeValidationError(
                f"expected true or false, got {self.threshold_inclusive!r}", path="threshold_inclusive"
            )
        self._set("threshold_inclusive", bool(self.threshold_inclusive))
        k = self.max_spikes_per_step
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_SPIKES_PER_STEP:
            raise NodeValidationError(
                f"expected an int in 1..{MAX_SPIKES_PER_STEP}, got {k!r}", path="max_spikes_per_step"
            )
        self._set("max_spikes_per_step", int(k))
        t = self.min_spike_interval_s
        if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)) or not 0 <= t < np.inf:
            raise NodeValidationError(f"expected seconds >= 0, got {t!r}", path="min_spike_interval_s")
        interval = check_time_s(t, name="min_spike_interval_s", what="a minimum spike interval", zero=True)
        self._set("min_spike_interval_s", interval)
        if k > 1:
            # A spike count floor(v / v_th) counts v == v_th as one spike, so it is inclusive by definition.
            if not self.threshold_inclusive:
                raise NodeValidationError("graded spikes (max_spikes_per_step > 1) need threshold_inclusive=True",
                                          path="max_spikes_per_step")  # fmt: skip
            if np.any(self.v_threshold <= 0):
                raise NodeValidationError("graded spikes need v_threshold > 0", path="v_threshold")

    @property
    def shape(self) -> Shape:
        """Shape of the neuron population (no batch dimension)."""
        return getattr(self, self.array_fields()[0]).shape

    @property
    def size(self) -> int:
        """Number of neurons."""
        return int(np.prod(self.shape))

    def output_shape(self, input_shape: Shape) -> Shape:
        """Input and output have the population's shape."""
        if tuple(input_shape) != self.shape:
            raise NodeValidationError(f"expected input {self.shape}, got {tuple(input_shape)}", path="input")
        return self.shape

    @classmethod
    def uniform(cls, shape: int | Shape, **params: Any) -> _Neuron:
        """Build a population of ``shape`` neurons sharing scalar ``params``."""
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        full = {
            k: (np.full(shape, v, np.float32) if np.ndim(v) == 0 and k in cls.array_fields() else v)
            for k, v in params.items()
        }
        first = cls.array_fields()[0]
        if first not in full:
            raise NodeValidationError("required parameter is missing", path=first)
        return cls(**full)


@dataclasses.dataclass(frozen=True, eq=False)
class Integrator(_Neuron):
    r"""Perfect integrator without threshold (NIR ``I``); output is ``v``.

    .. math:: \frac{dv}{dt} = R\, I(t)
    """

    r: np.ndarray = array_field("ohm")


@dataclasses.dataclass(frozen=True, eq=False)
class IF(_Neuron):
    r"""Integrate-and-fire neuron; output is spikes.

    .. math:: \frac{dv}{dt} = R\, I(t), \qquad z = H(v - v_{th})
    """

    spiking = True
    r: np.ndarray = array_field("ohm")
    v_threshold: np.ndarray = array_field("V")
    v_reset: np.ndarray | None = array_field("V", default=None)
    reset_mode: str = "to_value"
    reset_timing: str = "immediate"
    threshold_inclusive: bool = False
    max_spikes_per_step: int = 1
    min_spike_interval_s: float = 0.0


@dataclasses.dataclass(frozen=True, eq=False)
class LI(_Neuron):
    r"""Leaky integrator (non-spiking readout); output is ``v``.

    .. math:: \tau_{mem} \frac{dv}{dt} = (v_{leak} - v) + R\, I(t)
    """

    tau_mem_s: np.ndarray = array_field("s")
    r: np.ndarray | None = array_field("ohm", default=None)
    v_leak: np.ndarray | None = array_field("V", default=None)


@dataclasses.dataclass(frozen=True, eq=False)
class LIF(_Neuron):
    r"""Leaky integrate-and-fire neuron; output is spikes.

    .. math:: \tau_{mem} \frac{dv}{dt} = (v_{leak} - v) + R\, I(t), \qquad z = H(v - v_{th})
    """

    spiking = True
    tau_mem_s: np.ndarray = array_field("s")
    r: np.ndarray | None = array_field("ohm", default=None)
    v_leak: np.ndarray | None = array_field("V", default=None)
    v_threshold: np.ndarray | None = array_field("V", default=None)
    v_reset: np.ndarray | None = array_field("V", default=None)
    reset_mode: str = "to_value"
    reset_timing: str = "immediate"
    threshold_inclusive: bool = False
    max_spikes_per_step: int = 1
    min_spike_interval_s: float = 0.0

    def __post_init__(self) -> None:
        if self.v_threshold is None:
            raise NodeValidationError("required parameter is missing", path="v_threshold")
        super().__post_init__()


@dataclasses.dataclass(frozen=True, eq=False)
class CubaLI(_Neuron):
    r"""Current-based leaky integrator (non-spiking); output is ``v``.

    .. math::
        \tau_{syn} \frac{dI}{dt} = -I + w_{in}\, S(t), \qquad
        \tau_{mem} \frac{dv}{dt} = (v_{leak} - v) + R\, I
    """

    has_synapse = True
    tau_syn_s: np.ndarray = array_field("s")
    tau_mem_s: np.ndarray | None = array_field("s", default=None)
    r: np.ndarray | None = array_field("ohm", default=None)
    v_leak: np.ndarray | None = array_field("V", default=None)
    w_in: np.ndarray | None = array_field("", default=None)

    def __post_init__(self) -> None:
        if self.tau_mem_s is None:
            raise NodeValidationError("required parameter is missing", path="tau_mem_s")
        super().__post_init__()


@dataclasses.dataclass(frozen=True, eq=False)
class CubaLIF(_Neuron):
    r"""Current-based LIF neuron; output is spikes.

    .. math::
        \tau_{syn} \frac{dI}{dt} = -I + w_{in}\, S(t), \qquad
        \tau_{mem} \frac{dv}{dt} = (v_{leak} - v) + R\, I, \qquad z = H(v - v_{th})
    """

    spiking = True
    has_synapse = True
    tau_syn_s: np.ndarray = array_field("s")
    tau_mem_s: np.ndarray | None = array_field("s", default=None)
    r: np.ndarray | None = array_field("ohm", default=None)
    v_leak: np.ndarray | None = array_field("V", default=None)
    v_threshold: np.ndarray | None = array_field("V", default=None)
    v_reset: np.ndarray | None = array_field("V", default=None)
    w_in: np.ndarray | None = array_field("", default=None)
    reset_mode: str = "to_value"
    reset_timing: str = "immediate"
    threshold_inclusive: bool = False
    max_spikes_per_step: int = 1
    min_spike_interval_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("tau_mem_s", "v_threshold"):
            if getattr(self, name) is None:
                raise NodeValidationError("required parameter is missing", path=name)
        super().__post_init__()


@dataclasses.dataclass(frozen=True, eq=False)
class AdaptiveLIF(_Neuron):
    r"""LIF neuron with a second, adaptation state ``w`` (adLIF); output is spikes.

    .. math::
        \tau_{mem} \frac{dv}{dt} = (v_{leak} - v) + R\, I(t) - \kappa\, w, \qquad
        \tau_{adapt} \frac{dw}{dt} = -w + a\,(v - v_{leak}) + b\,\tau_{adapt} \sum_k \delta(t - t_k)

    ``a_coupling`` (a) is the sub-threshold coupling, ``b_spike`` (b) the jump of
    ``w`` at each spike time :math:`t_k`, ``g_adapt`` (:math:`\kappa`, default 1)
    the weight of ``w`` in the membrane equation; spikes when :math:`v > v_{th}`.
    (:math:`\kappa` is redundant in continuous time but lets a time-resolution
    adaptation represent any discrete 2x2 state matrix.)
    """

    spiking = True
    has_adaptation = True
    tau_mem_s: np.ndarray = array_field("s")
    tau_adapt_s: np.ndarray | None = array_field("s", default=None)
    r: np.ndarray | None = array_field("ohm", default=None)
    v_leak: np.ndarray | None = array_field("V", default=None)
    v_threshold: np.ndarray | None = array_field("V", default=None)
    v_reset: np.ndarray | None = array_field("V", default=None)
    a_coupling: np.ndarray | None = array_field("", default=None)
    b_spike: np.ndarray | None = array_field("V", default=None)
    g_adapt: np.ndarray | None = array_field("", default=None)
    reset_mode: str = "to_value"
    reset_timing: str = "immediate"
    threshold_inclusive: bool = False
    max_spikes_per_step: int = 1
    min_spike_interval_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("tau_adapt_s", "v_threshold"):
            if getattr(self, name) is None:
                raise NodeValidationError("required parameter is missing", path=name)
        super().__post_init__()


NEURON_TYPES = (Integrator, IF, LI, LIF, CubaLI, CubaLIF, AdaptiveLIF)
