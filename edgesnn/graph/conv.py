"""Convolutions, pooling and flattening (PyTorch semantics, no batch dimension)."""

from __future__ import annotations

import abc
import dataclasses
import math

import numpy as np

from edgesnn.errors import NodeValidationError
from edgesnn.graph._node import Node, Shape, array_field, as_int, as_int_tuple, as_param, check_elements


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution or pooling along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _spatial_out(channels: int, in_hw: Shape, kernel: Shape, stride: Shape, padding: Shape, dilation: Shape) -> Shape:
    # The numpy kernel pads each sample before windowing it, so the padded input is memory too.
    check_elements((channels, *(s + 2 * p for s, p in zip(in_hw, padding, strict=True))), "padding")
    out = tuple(
        conv_output_size(s, k, st, p, d)
        for s, k, st, p, d in zip(in_hw, kernel, stride, padding, dilation, strict=True)
    )
    if any(o <= 0 for o in out):
        raise NodeValidationError(f"input {tuple(in_hw)} is too small for kernel {tuple(kernel)}", path="input")
    return out


def _check_weight(node: Node, ndim: int, groups: int) -> tuple[np.ndarray, np.ndarray]:
    w = as_param(node.weight, "weight")  # type: ignore[attr-defined]
    if w.ndim != ndim or 0 in w.shape:
        raise NodeValidationError(
            f"expected a non-empty {ndim}-d weight (C_out, C_in/groups, ...), got shape {w.shape}", path="weight"
        )
    if w.shape[0] % groups:
        raise NodeValidationError(f"C_out {w.shape[0]} is not divisible by groups {groups}", path="weight")
    b = node.bias  # type: ignore[attr-defined]
    b = np.zeros(w.shape[0], np.float32) if b is None else as_param(b, "bias")
    if b.shape != (w.shape[0],):
        raise NodeValidationError(f"expected shape ({w.shape[0]},), got {b.shape}", path="bias")
    return w, b


@dataclasses.dataclass(frozen=True, eq=False)
class Conv2d(Node):
    r"""2-d cross-correlation, as ``torch.nn.Conv2d``.

    .. math:: y_{o,i,j} = b_o + \sum_{c,k,l} W_{o,c,k,l}\, x_{g(o) c,\; s_0 i + d_0 k - p_0,\; s_1 j + d_1 l - p_1}

    ``weight`` (C_out, C_in/groups, KH, KW); input (C_in, H, W); zero padding.
    """

    weight: np.ndarray = array_field()
    bias: np.ndarray | None = array_field(default=None)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def __post_init__(self) -> None:
        self._set("groups", as_int(self.groups, "groups", minimum=1))
        w, b = _check_weight(self, 4, self.groups)
        self._set("weight", w)
        self._set("bias", b)
        self._set("stride", as_int_tuple(self.stride, 2, "stride", minimum=1))
        self._set("padding", as_int_tuple(self.padding, 2, "padding"))
        self._set("dilation", as_int_tuple(self.dilation, 2, "dilation", minimum=1))

    def output_shape(self, input_shape: Shape) -> Shape:
        """(C_in, H, W) -> (C_out, H_out, W_out)."""
        if len(input_shape) != 3 or input_shape[0] != self.weight.shape[1] * self.groups:
            raise NodeValidationError(
                f"expected input (C_in={self.weight.shape[1] * self.groups}, H, W), got {tuple(input_shape)}",
                path="input",
            )
        hw = _spatial_out(
            input_shape[0], input_shape[1:], self.weight.shape[2:], self.stride, self.padding, self.dilation
        )
        return (self.weight.shape[0], *hw)


@dataclasses.dataclass(frozen=True, eq=False)
class Conv1d(Node):
    r"""1-d cross-correlation, as ``torch.nn.Conv1d``.

    .. math:: y_{o,i} = b_o + \sum_{c,k} W_{o,c,k}\, x_{g(o) c,\; s i + d k - p}

    ``weight`` (C_out, C_in/groups, K); input (C_in, N); zero padding.
    """

    weight: np.ndarray = array_field()
    bias: np.ndarray | None = array_field(default=None)
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1

    def __post_init__(self) -> None:
        self._set("groups", as_int(self.groups, "groups", minimum=1))
        w, b = _check_weight(self, 3, self.groups)
        self._set("weight", w)
        self._set("bias", b)
        self._set("stride", as_int_tuple(self.stride, 1, "stride", minimum=1)[0])
        self._set("padding", as_int_tuple(self.padding, 1, "padding")[0])
        self._set("dilation", as_int_tuple(self.dilation, 1, "dilation", minimum=1)[0])

    def output_shape(self, input_shape: Shape) -> Shape:
        """(C_in, N) -> (C_out, N_out)."""
        if len(input_shape) != 2 or input_shape[0] != self.weight.shape[1] * self.groups:
            raise NodeValidationError(
                f"expected input (C_in={self.weight.shape[1] * self.groups}, N), got {tuple(input_shape)}", path="input"
            )
        (n,) = _spatial_out(
            input_shape[0], input_shape[1:], self.weight.shape[2:], (self.stride,), (self.padding,), (self.dilation,)
        )
        return (self.weight.shape[0], n)


@dataclasses.dataclass(frozen=True, eq=False)
class _Pool2d(Node):
    """Window geometry shared by the pooling nodes."""

    kernel_size: tuple[int, int] = (2, 2)
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        self._set("kernel_size", as_int_tuple(self.kernel_size, 2, "kernel_size", minimum=1))
        stride = self.kernel_size if self.stride is None else self.stride
        self._set("stride", as_int_tuple(stride, 2, "stride", minimum=1))
        self._set("padding", as_int_tuple(self.padding, 2, "padding"))

    def output_shape(self, input_shape: Shape) -> Shape:
        """(C, H, W) -> (C, H_out, W_out)."""
        if len(input_shape) != 3:
            raise NodeValidationError(f"expected input (C, H, W), got {tuple(input_shape)}", path="input")
        hw = _spatial_out(input_shape[0], input_shape[1:], self.kernel_size, self.stride, self.padding, (1, 1))
        return (input_shape[0], *hw)

    @property
    @abc.abstractmethod
    def divisor(self) -> float:
        """Factor the window sum is divided by."""


@dataclasses.dataclass(frozen=True, eq=False)
class SumPool2d(_Pool2d):
    r"""Sum over each window, per channel; zero padding.

    .. math:: y_{c,i,j} = \sum_{k,l} x_{c,\; s_0 i + k - p_0,\; s_1 j + l - p_1}
    """

    @property
    def divisor(self) -> float:
        """A sum pool divides by 1."""
        return 1.0


@dataclasses.dataclass(frozen=True, eq=False)
class AvgPool2d(_Pool2d):
    r"""Mean over each window, padding counted (``count_include_pad=True``).

    .. math:: y = \frac{1}{k_0 k_1}\,\mathrm{SumPool2d}(x)
    """

    @property
    def divisor(self) -> float:
        """Window size the sum is divided by."""
        return float(math.prod(self.kernel_size))


@dataclasses.dataclass(frozen=True, eq=False)
class Flatten(Node):
    """Merge dimensions ``start_dim..end_dim`` of the (unbatched) input into one."""

    start_dim: int = 0
    end_dim: int = -1

    def __post_init__(self) -> None:
        self._set("start_dim", as_int(self.start_dim, "start_dim"))
        self._set("end_dim", as_int(self.end_dim, "end_dim"))

    def output_shape(self, input_shape: Shape) -> Shape:
        """Flatten dims start_dim..end_dim (negative indices count from the end)."""
        nd = len(input_shape)
        start = self.start_dim + nd if self.start_dim < 0 else self.start_dim
        end = self.end_dim + nd if self.end_dim < 0 else self.end_dim
        if not (0 <= start <= end < nd):
            raise NodeValidationError(
                f"dims {self.start_dim}..{self.end_dim} are out of range for input {tuple(input_shape)}",
                path="start_dim",
            )
        merged = math.prod(input_shape[start : end + 1])
        return (*input_shape[:start], merged, *input_shape[end + 1 :])
