"""The token-stepped parts of a decoder-only transformer: embeddings, layer norm, GELU and ReLU.

A session steps such a model one token per ``step``: the graph's Input is the
token id (shape (1,), a whole number held in float32), the output the logits of
the next token. Attention lives in :mod:`edgesnn.graph.attention`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from edgesnn.errors import NodeValidationError
from edgesnn.graph._node import Node, Shape, array_field, as_param, shown


def expect_vector(d: int, got: Shape) -> None:
    """Refuse an input other than a vector of ``d`` values."""
    if tuple(got) != (d,):
        raise NodeValidationError(f"expected input ({d},), got {tuple(got)}", path="input")


def as_number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
              open_low: bool = False) -> float:  # fmt: skip
    """``value`` as a finite float within [low, high] (``open_low``: strictly above low); bools and text refused."""
    ok = not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))
    if not ok or not math.isfinite(float(value)):
        raise NodeValidationError(f"expected a finite number, got {shown(value)}", path=name)
    v = float(value)
    if low is not None and (v <= low if open_low else v < low):
        raise NodeValidationError(f"expected a number {'>' if open_low else '>='} {low:g}, got {v:g}", path=name)
    if high is not None and v > high:
        raise NodeValidationError(f"expected a number <= {high:g}, got {v:g}", path=name)
    return v


def _table(node: Node, name: str, what: str) -> np.ndarray:
    w = as_param(getattr(node, name), name)
    if w.ndim != 2 or 0 in w.shape:
        raise NodeValidationError(f"expected a non-empty 2-d table ({what}, d), got shape {w.shape}", path=name)
    return w


@dataclasses.dataclass(frozen=True, eq=False)
class TokenEmbedding(Node):
    r"""The vector of a token.

    .. math:: y = E_{x}

    ``weight`` E has shape (vocab, d); the input is one token id in [0, vocab).
    """

    weight: np.ndarray = array_field()

    def __post_init__(self) -> None:
        self._set("weight", _table(self, "weight", "vocab"))

    def output_shape(self, input_shape: Shape) -> Shape:
        """(1,) token id -> (d,)."""
        if tuple(input_shape) != (1,):
            raise NodeValidationError(f"expected input (1,), one token id, got {tuple(input_shape)}", path="input")
        return (self.weight.shape[1],)


@dataclasses.dataclass(frozen=True, eq=False)
class PositionEmbedding(Node):
    r"""Adds the learned vector of the token's position, as GPT-2 does.

    .. math:: y_t = x_t + P_t

    ``weight`` P has shape (max_len, d); t counts the steps since the session
    started or was reset (session state ``<node>/position``). A session stepped
    past ``max_len`` tokens refuses the next one: reset it.
    """

    weight: np.ndarray = array_field()

    def __post_init__(self) -> None:
        self._set("weight", _table(self, "weight", "max_len"))

    def output_shape(self, input_shape: Shape) -> Shape:
        """(d,) -> (d,)."""
        expect_vector(self.weight.shape[1], input_shape)
        return tuple(input_shape)


@dataclasses.dataclass(frozen=True, eq=False)
class LayerNorm(Node):
    r"""Layer normalisation over the vector.

    .. math:: y = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

    with :math:`\mu`, :math:`\sigma^2` the mean and (biased) variance of x;
    ``weight`` :math:`\gamma` and ``bias`` :math:`\beta` have shape (d,).
    """

    weight: np.ndarray = array_field()
    bias: np.ndarray = array_field()
    eps: float = 1e-5

    def __post_init__(self) -> None:
        w = as_param(self.weight, "weight")
        b = as_param(self.bias, "bias")
        if w.ndim != 1 or w.size == 0:
            raise NodeValidationError(f"expected a non-empty 1-d weight (d,), got shape {w.shape}", path="weight")
        if b.shape != w.shape:
            raise NodeValidationError(f"expected shape {w.shape}, got {b.shape}", path="bias")
        self._set("weight", w)
        self._set("bias", b)
        self._set("eps", as_number(self.eps, "eps", low=0.0, open_low=True))

    def output_shape(self, input_shape: Shape) -> Shape:
        """(d,) -> (d,)."""
        expect_vector(self.weight.size, input_shape)
        return tuple(input_shape)


@dataclasses.dataclass(frozen=True, eq=False)
class GELU(Node):
    r"""GELU in its tanh form (GPT-2's), element-wise.

    .. math:: y = \tfrac12 x \left(1 + \tanh\!\left(\sqrt{2/\pi}\,(x + 0.044715\,x^3)\right)\right)
    """

    def output_shape(self, input_shape: Shape) -> Shape:
        """Shape is unchanged."""
        return tuple(input_shape)


@dataclasses.dataclass(frozen=True, eq=False)
class ReLU(Node):
    r"""Rectifier, element-wise.

    .. math:: y = \max(x, 0)
    """

    def output_shape(self, input_shape: Shape) -> Shape:
        """Shape is unchanged."""
        return tuple(input_shape)


__all__ = ["GELU", "LayerNorm", "PositionEmbedding", "ReLU", "TokenEmbedding", "as_number", "expect_vector"]
