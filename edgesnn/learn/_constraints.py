"""Allowed values as data: small checkers that normalise a value or raise an error naming the field."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from edgesnn.errors import OptionError


@dataclasses.dataclass(frozen=True)
class Real:
    """A finite float in an interval; ``open_low`` / ``open_high`` exclude the bounds."""

    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False

    def check(self, value: Any, path: str) -> float:
        """Return ``value`` as a float, or raise :class:`OptionError` at ``path``."""
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise OptionError(f"expected a number, got {type(value).__name__} {value!r}", path=path)
        x = float(value)
        too_low = x <= self.low if self.open_low else x < self.low
        too_high = x >= self.high if self.open_high else x > self.high
        if not math.isfinite(x) or too_low or too_high:
            raise OptionError(f"expected a finite number in {self.describe()}, got {value!r}", path=path)
        return x

    def describe(self) -> str:
        """The interval in mathematical notation."""
        lo = "(" if self.open_low or self.low == -math.inf else "["
        hi = ")" if self.open_high or self.high == math.inf else "]"
        return f"{lo}{self.low:g}, {self.high:g}{hi}"


@dataclasses.dataclass(frozen=True)
class Integer:
    """An int in a closed interval."""

    low: int
    high: int

    def check(self, value: Any, path: str) -> int:
        """Return ``value`` as an int, or raise :class:`OptionError` at ``path``."""
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise OptionError(f"expected an int, got {type(value).__name__} {value!r}", path=path)
        if not self.low <= int(value) <= self.high:
            raise OptionError(f"expected an int in [{self.low}, {self.high}], got {value!r}", path=path)
        return int(value)


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of a fixed set of strings."""

    options: tuple[str, ...]

    def check(self, value: Any, path: str) -> str:
        """Return ``value`` if it is one of the options, else raise :class:`OptionError` at ``path``."""
        if not isinstance(value, str) or value not in self.options:
            raise OptionError(f"expected one of {', '.join(map(repr, self.options))}, got {value!r}", path=path)
        return value


@dataclasses.dataclass(frozen=True)
class Name:
    """A non-empty string (a node name)."""

    def check(self, value: Any, path: str) -> str:
        """Return ``value`` if it is a non-empty string, else raise :class:`OptionError` at ``path``."""
        if not isinstance(value, str) or not value:
            raise OptionError(f"expected a non-empty string, got {value!r}", path=path)
        return value


@dataclasses.dataclass(frozen=True)
class Vector:
    """A non-empty sequence of finite floats, kept as a tuple (JSON-friendly, hashable)."""

    def check(self, value: Any, path: str) -> tuple[float, ...]:
        """Return ``value`` as a tuple of floats, or raise :class:`OptionError` at ``path``."""
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"expected a list of numbers, got {type(value).__name__}", path=path) from exc
        if arr.ndim != 1 or arr.size == 0 or isinstance(value, (str, bytes)):
            raise OptionError(f"expected a non-empty 1-D list of numbers, got shape {arr.shape}", path=path)
        if not np.all(np.isfinite(arr)):
            raise OptionError("expected finite values, got NaN or Inf", path=path)
        return tuple(float(v) for v in arr)


@dataclasses.dataclass(frozen=True)
class Nullable:
    """``None``, or a value accepted by ``inner``."""

    inner: Real | Integer | Vector

    def check(self, value: Any, path: str) -> Any:
        """Return ``None`` or the inner checker's result."""
        return None if value is None else self.inner.check(value, path)


Constraint = Real | Integer | Choice | Name | Vector | Nullable
