"""Stateless element-wise and dense connections: Affine, Linear, Scale, Threshold."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from edgesnn import limits
from edgesnn.errors import NodeValidationError
from edgesnn.graph._node import Node, Shape, array_field, as_param, shown
from edgesnn.units import check_time_s


def _expect_input(expected: Shape, got: Shape) -> None:
    if tuple(got) != tuple(expected):
        raise NodeValidationError(f"expected input {tuple(expected)}, got {tuple(got)}", path="input")


@dataclasses.dataclass(frozen=True, eq=False)
class Affine(Node):
    r"""Dense connection with bias.

    .. math:: y = W x + b

    ``weight`` has shape (n_out, n_in), ``bias`` (n_out,).
    """

    weight: np.ndarray = array_field()
    bias: np.ndarray = array_field()

    def __post_init__(self) -> None:
        w = as_param(self.weight, "weight")
        b = as_param(self.bias, "bias")
        if w.ndim != 2:
            raise NodeValidationError(f"expected 2-d (n_out, n_in), got shape {w.shape}", path="weight")
        if b.shape != (w.shape[0],):
            raise NodeValidationError(f"expected shape ({w.shape[0]},), got {b.shape}", path="bias")
        self._set("weight", w)
        self._set("bias", b)

    def output_shape(self, input_shape: Shape) -> Shape:
        """(n_in,) -> (n_out,)."""
        _expect_input((self.weight.shape[1],), input_shape)
        return (self.weight.shape[0],)


@dataclasses.dataclass(frozen=True, eq=False)
class Linear(Node):
    r"""Dense connection without bias.

    .. math:: y = W x

    ``weight`` has shape (n_out, n_in).
    """

    weight: np.ndarray = array_field()

    def __post_init__(self) -> None:
        w = as_param(self.weight, "weight")
        if w.ndim != 2:
            raise NodeValidationError(f"expected 2-d (n_out, n_in), got shape {w.shape}", path="weight")
        self._set("weight", w)

    def output_shape(self, input_shape: Shape) -> Shape:
        """(n_in,) -> (n_out,)."""
        _expect_input((self.weight.shape[1],), input_shape)
        return (self.weight.shape[0],)


@dataclasses.dataclass(frozen=True, eq=False)
class Scale(Node):
    r"""Element-wise gain.

    .. math:: y = s \odot x
    """

    scale: np.ndarray = array_field()

    def __post_init__(self) -> None:
        self._set("scale", as_param(self.scale, "scale"))

    def output_shape(self, input_shape: Shape) -> Shape:
        """The scale broadcasts against the input; the shape is unchanged."""
        try:
            out = np.broadcast_shapes(tuple(input_shape), self.scale.shape)
        except ValueError as exc:
            raise NodeValidationError(
                f"shape {self.scale.shape} does not broadcast to input {tuple(input_shape)}", path="scale"
            ) from exc
        _expect_input(out, input_shape)
        return tuple(input_shape)


@dataclasses.dataclass(frozen=True, eq=False)
class Threshold(Node):
    r"""Heaviside step, strictly above the threshold.

    .. math:: z = H(x - \theta), \quad H(u) = 1 \text{ if } u > 0 \text{ else } 0
    """

    spiking = True
    threshold: np.ndarray = array_field()

    def __post_init__(self) -> None:
        self._set("threshold", as_param(self.threshold, "threshold"))

    def output_shape(self, input_shape: Shape) -> Shape:
        """The threshold broadcasts against the input; the shape is unchanged."""
        try:
            out = np.broadcast_shapes(tuple(input_shape), self.threshold.shape)
        except ValueError as exc:
            raise NodeValidationError(
                f"shape {self.threshold.shape} does not broadcast to input {tuple(input_shape)}", path="threshold"
            ) from exc
        _expect_input(out, input_shape)
        return tuple(input_shape)


def _is_number(value: object) -> bool:
    # bool is an int to Python, and a string converts to a float in numpy: neither is a delay.
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))


@dataclasses.dataclass(frozen=True, eq=False)
class Delay(Node):
    r"""Pure transmission delay.

    .. math:: y(t) = x(t - d)

    ``delay_s`` is one delay for all elements, in seconds; at a step ``dt`` it
    becomes ``round(delay_s / dt)`` steps.
    """

    stateful = True
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        raw = np.asarray(self.delay_s) if isinstance(self.delay_s, (list, tuple, np.ndarray)) else self.delay_s
        values = raw.reshape(-1) if isinstance(raw, np.ndarray) else np.asarray([raw], dtype=object)
        if not all(_is_number(v) for v in values):
            raise NodeValidationError(f"expected a number of seconds, got {shown(self.delay_s)}", path="delay_s")
        if values.size == 0 or not np.all(values == values[0]):
            raise NodeValidationError("expected one delay for all elements", path="delay_s")
        d = values[0]
        if not (0 <= d < np.inf):
            raise NodeValidationError(f"expected a finite delay >= 0 s, got {shown(d)}", path="delay_s")
        self._set("delay_s", check_time_s(d, name="delay_s", what="a delay", zero=True))

    def output_shape(self, input_shape: Shape) -> Shape:
        """Shape is unchanged."""
        return tuple(input_shape)

    def steps(self, dt_s: float) -> int:
        """Number of whole steps the delay spans at step ``dt_s``, at most ``limits.delay_steps``.

        A session allocates a ring of that many copies of the input, so a delay too long for
        the step is refused here, before any allocation, with a LimitError.
        """
        ratio = self.delay_s / dt_s
        steps = round(ratio) if math.isfinite(ratio) else ratio
        limits.current().check("delay_steps", steps, f"a delay of {self.delay_s:g} s at a step of {dt_s:g} s, in steps",
                               path="delay_s")  # fmt: skip
        return int(steps)
