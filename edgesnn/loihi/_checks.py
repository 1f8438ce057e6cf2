"""Checks shared by the Loihi network's dataclasses: every error names ``<node>/<field>`` and what was expected."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgesnn.errors import NodeValidationError
from edgesnn.loihi import fixed

#: Lava's 24-bit state range, for initial values of u and v.
STATE_MIN, STATE_MAX = -fixed.UV_LIMIT + 1, fixed.UV_LIMIT - 1


def check_name(value: object, path: str) -> str:
    if not isinstance(value, str) or not value or "/" in value:
        raise NodeValidationError(f"expected a non-empty name without '/', got {value!r}", path=path)
    return value


def check_int(value: object, lo: int, hi: int, path: str, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise NodeValidationError(f"expected an integer in [{lo}, {hi}] ({what}), got {value!r}", path=path)
    if not lo <= int(value) <= hi:
        raise NodeValidationError(f"expected an integer in [{lo}, {hi}] ({what}), got {int(value)}", path=path)
    return int(value)


def int_array(value: object, path: str, what: str, lo: int, hi: int) -> np.ndarray:
    """Integer-valued array (int64), range-checked; read-only."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or arr.dtype.kind == "b":
        raise NodeValidationError(f"expected integers ({what}), got dtype {arr.dtype}", path=path)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.rint(arr)):
            raise NodeValidationError(f"expected integers ({what}), got non-integer values", path=path)
        if arr.size and (arr.min() < lo or arr.max() > hi):
            raise NodeValidationError(f"expected integers in [{lo}, {hi}] ({what}), got {arr.min():g}..{arr.max():g}",
                                      path=path)  # fmt: skip
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise NodeValidationError(f"expected integers in [{lo}, {hi}] ({what}), got {arr.min()}..{arr.max()}",
                                  path=path)  # fmt: skip
    return arr


def per_neuron(value: object, shape: tuple[int, ...], path: str, what: str, lo: int, hi: int) -> np.ndarray:
    """A scalar or one value per neuron (flat or in the layer's shape) -> read-only int32 (n,)."""
    n = math.prod(shape)
    arr = int_array(value, path, what, lo, hi)
    if arr.ndim == 0 or arr.shape == (1,):
        arr = np.full(n, arr.reshape(-1)[0] if arr.ndim else arr, np.int64)
    elif arr.shape not in ((n,), tuple(shape)):
        raise NodeValidationError(f"expected a scalar, shape ({n},) or {tuple(shape)}, got {arr.shape}", path=path)
    out = np.ascontiguousarray(arr.reshape(n), np.int32)
    out.setflags(write=False)
    return out


def check_shape(value: object, path: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise NodeValidationError(f"expected a tuple of sizes, got {value!r}", path=path) from None
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise NodeValidationError(f"expected (n,) or (channels, height, width) with sizes >= 1, got {shape}",
                                  path=path)  # fmt: skip
    return shape


def check_pair(value: object, path: str, minimum: int) -> tuple[int, int]:
    try:
        pair = tuple(int(s) for s in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise NodeValidationError(f"expected two integers (height, width), got {value!r}", path=path) from None
    if len(pair) != 2 or min(pair) < minimum:
        raise NodeValidationError(f"expected two integers >= {minimum} (height, width), got {value!r}", path=path)
    return pair  # type: ignore[return-value]


def set_fields(obj: object, **values: Any) -> None:
    for key, value in values.items():
        object.__setattr__(obj, key, value)
