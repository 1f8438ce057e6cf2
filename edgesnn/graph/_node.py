"""The node base class and the field helpers every node type shares."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import numpy as np

from edgesnn.errors import NodeValidationError

Shape = tuple[int, ...]


def array_field(unit: str = "", *, default: Any = dataclasses.MISSING) -> Any:
    """Declare a float32 parameter array; ``unit`` is documentation and schema."""
    meta = {"array": True, "unit": unit}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def as_param(value: Any, name: str, *, finite: bool = True) -> np.ndarray:
    """Coerce ``value`` to a C-ordered float32 array, refusing NaN/Inf."""
    try:
        arr = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
    except (TypeError, ValueError) as exc:
        raise NodeValidationError(f"expected a float array, got {type(value).__name__}", path=name) from exc
    if finite and arr.size and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise NodeValidationError(f"expected finite values, got {bad} NaN/Inf", path=name)
    arr.setflags(write=False)
    return arr


def as_int_tuple(value: Any, n: int, name: str, *, minimum: int = 0) -> tuple[int, ...]:
    """Normalise an int or a sequence of ``n`` ints (PyTorch style)."""
    if isinstance(value, (int, np.integer)):
        out = (int(value),) * n
    else:
        try:
            out = tuple(int(v) for v in np.asarray(value).reshape(-1))
        except (TypeError, ValueError) as exc:
            raise NodeValidationError(f"expected int or {n} ints, got {value!r}", path=name) from exc
        if len(out) == 1:
            out = out * n
    if len(out) != n:
        raise NodeValidationError(f"expected int or {n} ints, got {value!r}", path=name)
    if any(v < minimum for v in out):
        raise NodeValidationError(f"expected values >= {minimum}, got {out}", path=name)
    return out


def check_choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    """Refuse a string option outside ``allowed``, listing the allowed ones."""
    if value not in allowed:
        raise NodeValidationError(f"expected one of {', '.join(allowed)}, got {value!r}", path=name)
    return value


@dataclasses.dataclass(frozen=True, eq=False)
class Node(abc.ABC):
    """A node of the graph IR: an immutable set of parameters plus shape rules.

    Equality is identity (as in NIR), because ``==`` on array fields is ambiguous.
    Subclasses declare float32 arrays with :func:`array_field`; ``to_dict`` and
    ``from_dict`` serialise every dataclass field generically.
    """

    #: True when the node keeps memory between steps (breaks an algebraic loop).
    stateful: ClassVar[bool] = False
    #: True when the node's output is 0/1 spikes (lets the engine skip multiplies).
    spiking: ClassVar[bool] = False

    @abc.abstractmethod
    def output_shape(self, input_shape: Shape) -> Shape:
        """Return the output shape (no batch dimension) for ``input_shape``."""

    # -- serialisation --------------------------------------------------------
    @classmethod
    def type_name(cls) -> str:
        """The tag written as ``type`` in bundles."""
        return cls.__name__

    @classmethod
    def array_fields(cls) -> tuple[str, ...]:
        """Names of the float32 parameter arrays of this node type."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("array"))

    @classmethod
    def field_units(cls) -> dict[str, str]:
        """Unit of each array field ('' when dimensionless)."""
        return {f.name: f.metadata.get("unit", "") for f in dataclasses.fields(cls) if f.metadata.get("array")}

    def to_dict(self) -> dict[str, Any]:
        """Serialise to ``{"type": name, field: value}``; arrays stay numpy arrays."""
        out: dict[str, Any] = {"type": self.type_name()}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Node:
        """Build a node from ``to_dict`` output; unknown keys are refused."""
        data = dict(data)
        data.pop("type", None)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise NodeValidationError(f"unknown field(s) {', '.join(unknown)} for {cls.type_name()}", path=unknown[0])
        missing = sorted(
            f.name
            for f in dataclasses.fields(cls)
            if f.name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
        if missing:
            raise NodeValidationError(f"missing field for {cls.type_name()}", path=missing[0])
        return cls(**data)

    def replace(self, **changes: Any) -> Node:
        """Return a copy with some fields changed (validation runs again)."""
        return dataclasses.replace(self, **changes)

    def _set(self, name: str, value: Any) -> None:
        # Frozen dataclasses need this to normalise fields inside __post_init__.
        object.__setattr__(self, name, value)
