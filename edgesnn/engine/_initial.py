"""Where a session's neurons start: ``"rest"`` (membranes at v_leak), ``"zero"``, or given arrays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from edgesnn.errors import InputError, OptionError
from edgesnn.model import INITIAL_STATES

if TYPE_CHECKING:
    from edgesnn.engine.plan import Plan

InitialState = str | Mapping[str, Any] | tuple[str, Mapping[str, Any]] | None


def check_initial_state(spec: object) -> tuple[str | None, dict[str, Any]]:
    """(start or None for the model's own, states set over it) of an ``initial_state`` option.

    Accepts None, "rest", "zero", a mapping of state names to arrays, or a pair of both.
    """
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], Mapping):
        base, values = check_initial_state(spec[0])[0], check_initial_state(spec[1])[1]
        return base, values
    if spec is None or (isinstance(spec, str) and spec in INITIAL_STATES):
        return spec, {}  # type: ignore[return-value]
    if isinstance(spec, Mapping):
        bad = [k for k in spec if not isinstance(k, str)]
        if bad:
            raise OptionError(f"expected state names such as 'lif1/v' as keys, got {bad[0]!r}", path="initial_state")
        return None, dict(spec)
    raise OptionError(
        f"expected one of {', '.join(INITIAL_STATES)}, a mapping of state names ('lif1/v') to arrays, or a pair"
        f" of both, got {spec!r}",
        path="initial_state",
    )


def membrane_keys(plan: Plan) -> list[str]:
    """State keys of the membranes, the only states "rest" and "zero" disagree on."""
    return [f"{n}/v" for n in plan.graph.nodes if f"{n}/v" in plan.state]


def apply_initial_state(
    plan: Plan, rest: Mapping[str, np.ndarray], base: str, values: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Set the plan's reset values to ``base`` with ``values`` over it, reset it, and return the values as stored.

    ``rest`` holds the plan's reset values as compiled (membranes at v_leak); ``values``
    maps recordable state names (``plan.records``) to arrays of the node's shape, or
    (batch, *shape) for one start per stream.
    """
    for key, arr in rest.items():
        plan.initial[key] = arr
    if base == "zero":
        for key in membrane_keys(plan):
            plan.initial[key] = np.zeros_like(plan.state[key])
    stored: dict[str, np.ndarray] = {}
    for key, value in values.items():
        if key not in plan.records or key not in plan.state:
            settable = [k for k in plan.records if k in plan.state]
            raise InputError(
                f"no state named {key!r}; the states a session can start from are {', '.join(settable) or 'none'}",
                path=f"initial_state/{key}",
            )
        target = plan.state[key]
        node_shape = plan.records[key].shape[1:]
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise InputError(f"expected a numeric array, got dtype {arr.dtype}", path=f"initial_state/{key}")
        if arr.shape == node_shape:
            arr = np.broadcast_to(arr, (plan.batch, *node_shape))
        elif arr.shape != (plan.batch, *node_shape):
            raise InputError(
                f"expected shape {node_shape} or {(plan.batch, *node_shape)}, got {arr.shape}",
                path=f"initial_state/{key}",
            )
        if not np.all(np.isfinite(arr)):
            raise InputError("expected finite values", path=f"initial_state/{key}")
        cast = arr.astype(target.dtype).reshape(target.shape)
        if target.dtype.kind in "iu" and not np.array_equal(cast.reshape(arr.shape), arr):
            raise InputError(f"expected integers that fit {target.dtype}", path=f"initial_state/{key}")
        plan.initial[key] = cast
        stored[key] = cast
    plan.reset()
    return stored
