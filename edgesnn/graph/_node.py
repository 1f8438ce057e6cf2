"""The node base class and the field helpers every node type shares."""

from __future__ import annotations

import abc
import dataclasses
import math
import unicodedata
from typing import Any, ClassVar

import numpy as np

from edgesnn import limits
from edgesnn.errors import EdgeSNNError, NodeValidationError

Shape = tuple[int, ...]


def array_field(unit: str = "", *, default: Any = dataclasses.MISSING) -> Any:
    """Declare a float32 parameter array; ``unit`` is documentation and schema."""
    meta = {"array": True, "unit": unit}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def as_param(value: Any, name: str, *, finite: bool = True) -> np.ndarray:
    """Coerce ``value`` to a C-ordered float32 array, refusing NaN/Inf, text, objects and too many dimensions."""
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise NodeValidationError(f"expected a float array, got {type(value).__name__}", path=name) from exc
    # Strings, bools and objects would convert silently ("0.5" -> 0.5, True -> 1.0) or not at all.
    if raw.dtype.kind not in "iuf":
        raise NodeValidationError(f"expected a float array, got {_kind_name(raw)}", path=name)
    check_rank(raw.ndim, name)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, naming the field
        arr = np.ascontiguousarray(raw, dtype=np.float32)
    if finite and arr.size and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        if raw.dtype.kind == "f" and np.all(np.isfinite(raw)):
            raise NodeValidationError(f"expected values within float32's range, got {bad} beyond it", path=name)
        raise NodeValidationError(f"expected finite values, got {bad} NaN/Inf", path=name)
    arr.setflags(write=False)
    return arr


def _kind_name(arr: np.ndarray) -> str:
    return {"U": "text", "S": "bytes", "O": "objects", "b": "booleans", "c": "complex numbers"}.get(
        arr.dtype.kind, str(arr.dtype)
    )


def check_rank(ndim: int, name: str) -> None:
    """Refuse more dimensions than ``limits.max_rank``."""
    limits.current().check("max_rank", ndim, "a rank", path=name)


def check_elements(shape: Shape, name: str) -> None:
    """Refuse a shape with more dimensions than ``limits.max_rank`` or more elements than ``limits.node_elements``."""
    check_rank(len(shape), name)
    limits.current().check("node_elements", math.prod(shape), f"shape {tuple(shape)} with a count of elements",
                           path=name)  # fmt: skip


def as_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """``value`` as an int, refusing bools, floats and strings (which int() would quietly accept)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise NodeValidationError(f"expected an integer, got {shown(value)}", path=name)
    if minimum is not None and value < minimum:
        raise NodeValidationError(f"expected an integer >= {minimum}, got {int(value)}", path=name)
    return int(value)


def shown(value: Any) -> str:
    """``repr(value)`` cut to 40 characters, for error messages."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _int_items(value: Any, name: str) -> list[Any]:
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iu":
            raise NodeValidationError(f"expected integers, got an array of {_kind_name(value)}", path=name)
        return list(value.reshape(-1))
    if not isinstance(value, (list, tuple)):
        raise NodeValidationError(f"expected a list of integers, got {shown(value)}", path=name)
    return list(value)


def as_int_tuple(value: Any, n: int, name: str, *, minimum: int = 0) -> tuple[int, ...]:
    """Normalise an int or a sequence of ``n`` ints (PyTorch style); bools, floats and strings are refused."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        out = (int(value),) * n
    else:
        items = _int_items(value, name)
        out = tuple(as_int(v, f"{name}/{i}") for i, v in enumerate(items))
        if len(out) == 1:
            out = out * n
    if len(out) != n:
        raise NodeValidationError(f"expected int or {n} ints, got {shown(value)}", path=name)
    if any(v < minimum for v in out):
        raise NodeValidationError(f"expected values >= {minimum}, got {out}", path=name)
    return out


def as_shape(value: Any, name: str) -> Shape:
    """A node shape: a sequence of integers > 0 (no bools, floats or strings) within the rank and size limits."""
    items = _int_items(value, name)
    shape = tuple(as_int(v, f"{name}/{i}") for i, v in enumerate(items))
    if any(v <= 0 for v in shape):
        raise NodeValidationError(f"expected positive sizes, got {shape}", path=name)
    check_elements(shape, name)
    return shape


def check_text(value: Any, name: str, *, what: str = "a string") -> str:
    """Refuse a non-string, or one that is not printable UTF-8 text (lone surrogates, control characters)."""
    if not isinstance(value, str):
        raise NodeValidationError(f"expected {what}, got {shown(value)}", path=name)
    bad = next((c for c in value if unicodedata.category(c) in ("Cs", "Cc")), None)
    if bad is not None:
        kind = "a lone surrogate" if unicodedata.category(bad) == "Cs" else "a control character"
        raise NodeValidationError(
            f"expected printable UTF-8 text, got {kind} (U+{ord(bad):04X}) in {shown(value)}", path=name
        )
    return value


def prefixed(exc: EdgeSNNError, prefix: str) -> EdgeSNNError:
    """``exc.with_prefix(prefix)``, keeping the attributes a subclass adds (a LimitError's limit and value)."""
    new = exc.with_prefix(prefix)
    for key, value in vars(exc).items():
        if key not in ("path", "message"):
            setattr(new, key, value)
    return new


def check_choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    """Refuse a string option outside ``allowed``, listing the allowed ones."""
    if not isinstance(value, str) or value not in allowed:
        raise NodeValidationError(f"expected one of {', '.join(allowed)}, got {shown(value)}", path=name)
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
