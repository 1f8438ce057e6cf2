r"""Binary threshold units: the neurons of attractor networks (Hopfield nets, finite-state machines).

A :class:`ThresholdUnit` population outputs 0/1 and keeps its output from one step to the
next (it is the state of the network, carried by a recurrent edge):

* ``activation="step"``: :math:`z_i \leftarrow H(u_i - \theta_i)` with :math:`H(0) = 1`, so
  :math:`u_i \ge \theta_i` fires. A bipolar sign unit :math:`\mathrm{sgn}(u)` (zero resolving to
  +1) is this unit at :math:`\theta = 0` in 0/1 coding, :math:`\mathrm{sgn} = 2z - 1`.
* ``activation="kwta"``: k-winners-take-all, :math:`z_i \leftarrow 1` for the ``k_active``
  largest :math:`u_i` of the population; among equal inputs at the boundary the lower index wins.
* ``update_probability=p < 1``: asynchronous updates. At step ``t`` (counted from the session's
  start or reset) neuron ``i`` of stream ``b`` takes its new value only where
  :func:`update_mask` draws it (probability ``p``); the others keep their output.
  The draw is a counter-based hash of (``seed``, ``t``, ``b``, ``i``), so every
  implementation and every run reproduces it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgesnn.errors import NodeValidationError
from edgesnn.graph._node import Node, Shape, array_field, as_int, as_param, check_choice, check_elements, shown

ACTIVATIONS = ("step", "kwta")
_MASK64 = (1 << 64) - 1


def _mix64(x: np.ndarray) -> np.ndarray:
    # splitmix64's finaliser: a bijection on uint64 whose output bits all depend on every input bit.
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def update_mask(seed: int, step: int, batch: int, n: int, probability: float) -> np.ndarray:
    """Which units update at ``step``: bool (batch, n), each True with ``probability``, from a counter hash."""
    if probability >= 1.0:
        return np.ones((batch, n), bool)
    key = np.uint64((seed * 0x9E3779B97F4A7C15 + step * 0xD1B54A32D192ED03) & _MASK64)
    idx = np.arange(batch * n, dtype=np.uint64).reshape(batch, n)
    with np.errstate(over="ignore"):
        bits = _mix64(_mix64(idx ^ key) + key) >> np.uint64(40)  # 24 uniform bits
    return bits < np.uint64(round(probability * (1 << 24)))


def kwta(u: np.ndarray, k: int) -> np.ndarray:
    """0/1 float32 of the ``k`` largest entries of each row of ``u`` (batch, n); ties go to the lower index."""
    order = np.argsort(-u, axis=1, kind="stable")[:, :k]
    out = np.zeros(u.shape, np.float32)
    np.put_along_axis(out, order, 1.0, axis=1)
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class ThresholdUnit(Node):
    r"""A population of binary threshold units with memory of their last output.

    .. math:: z_{t} = m_t \circ f(u_t) + (1 - m_t) \circ z_{t-1}

    ``f`` is the step :math:`H(u - \theta)` (``activation="step"``) or k-winners-take-all
    (``"kwta"``, ``k_active`` winners); ``m_t`` is all ones, or the asynchronous update mask
    of :func:`update_mask` when ``update_probability < 1``. ``initial`` is the output
    before the first step (the attractor the network starts in), one 0/1 value per unit.
    """

    stateful = True
    spiking = True
    threshold: np.ndarray = array_field()
    initial: np.ndarray | None = array_field(default=None)
    activation: str = "step"
    k_active: int = 0
    update_probability: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        th = as_param(self.threshold, "threshold")
        if th.ndim != 1:
            raise NodeValidationError(f"expected one threshold per unit (n,), got shape {th.shape}", path="threshold")
        check_elements(th.shape, "threshold")
        self._set("threshold", th)
        init = np.zeros(th.shape, np.float32) if self.initial is None else as_param(self.initial, "initial")
        if init.shape != th.shape:
            raise NodeValidationError(f"expected shape {th.shape}, got {init.shape}", path="initial")
        if np.any((init != 0) & (init != 1)):
            raise NodeValidationError("expected 0/1 values", path="initial")
        init.setflags(write=False)
        self._set("initial", init)
        check_choice(self.activation, ACTIVATIONS, "activation")
        n = th.shape[0]
        self._set("k_active", as_int(self.k_active, "k_active", minimum=0))
        if self.activation == "kwta" and not 1 <= self.k_active <= n:
            raise NodeValidationError(f"expected 1..{n} winners for kwta, got {self.k_active}", path="k_active")
        if self.activation == "step" and self.k_active:
            raise NodeValidationError("k_active is for activation 'kwta'; expected 0 for 'step'", path="k_active")
        p = self.update_probability
        if (
            isinstance(p, (bool, np.bool_))
            or not isinstance(p, (int, float, np.integer, np.floating))
            or not (0 < p <= 1)
        ):
            raise NodeValidationError(f"expected a probability in (0, 1], got {shown(p)}", path="update_probability")
        self._set("update_probability", float(p))
        self._set("seed", as_int(self.seed, "seed", minimum=0))

    @property
    def shape(self) -> Shape:
        """Shape of the population."""
        return self.threshold.shape

    @property
    def size(self) -> int:
        """Number of units."""
        return int(self.threshold.shape[0])

    def output_shape(self, input_shape: Shape) -> Shape:
        """Input and output have the population's shape."""
        if tuple(input_shape) != self.shape:
            raise NodeValidationError(f"expected input {self.shape}, got {tuple(input_shape)}", path="input")
        return self.shape


__all__ = ["ACTIVATIONS", "ThresholdUnit", "kwta", "update_mask"]
