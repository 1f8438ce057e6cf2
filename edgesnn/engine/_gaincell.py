"""The gain-cell device model (``numerics="gaincell"``) as pure functions, and the cells a session writes to.

The equations are in :mod:`edgesnn.graph.attention`. Everything here computes in
float64, so that the runtime, the board emulator and the JAX hardware model (each
its own code) agree to the last level of every quantiser. :class:`LocalCells` runs
the model in process on the session's own K/V window; a bridge hands a session
cells of its own (:func:`attach_cells`) that compute on a board and keep the same
window as a mirror, so the session's state still saves, restores and moves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from edgesnn.graph.attention import SlidingWindowAttention

if TYPE_CHECKING:
    from edgesnn.engine._transformer import AttentionOp


@dataclasses.dataclass(frozen=True, eq=False)
class DeviceModel:
    """The constants of one attention layer's gain-cell arrays, taken from its node (float64)."""

    heads: int
    head_dim: int
    window: int
    q_levels: int
    q_max: float
    kv_levels: int
    kv_max_v: float
    out_levels: int
    out_max: float
    score_saturation: float
    out_saturation: float
    decay_per_step: float
    offset_v: float
    poly: tuple[float, ...]  # P_i of p(u) = sum_i P_i u^i
    array_width: int
    scalers: dict[str, np.ndarray]  # "q_scale", "q_offset", ... (heads,) float64

    @classmethod
    def from_node(cls, node: SlidingWindowAttention) -> DeviceModel:
        """The device model a node describes."""
        names = [f"{k}_{p}" for k in ("q", "k", "v", "out") for p in ("scale", "offset")]
        return cls(
            heads=node.num_heads, head_dim=node.head_dim, window=node.window, q_levels=node.q_levels,
            q_max=node.q_max, kv_levels=node.kv_levels, kv_max_v=node.kv_max_v, out_levels=node.out_levels,
            out_max=node.out_max, score_saturation=node.score_saturation, out_saturation=node.out_saturation,
            decay_per_step=node.decay_per_step, offset_v=node.offset_v, poly=tuple(node.mac_polynomial()),
            array_width=node.array_width,
            scalers={n: getattr(node, n).astype(np.float64) for n in names},
        )  # fmt: skip

    @property
    def tiles(self) -> int:
        """Arrays of ``array_width`` cells the window is tiled into."""
        return -(-self.window // self.array_width)


def quantise(x: np.ndarray, levels: int, span: float) -> np.ndarray:
    """Round to multiples of span/(levels - 1), half to even (the authors' ``quantization_custom``)."""
    step = span / (levels - 1)
    return np.rint(x / step) * step


def _scaled(m: DeviceModel, kind: str, x: np.ndarray) -> np.ndarray:
    # x (batch, heads, D): the per-head affine scaler
    return x * m.scalers[f"{kind}_scale"][:, None] + m.scalers[f"{kind}_offset"][:, None]


def query_pulses(m: DeviceModel, q: np.ndarray) -> np.ndarray:
    """Queries as the input pulse widths: scaled, clipped to [0, q_max], ``q_levels`` levels."""
    return quantise(np.clip(_scaled(m, "q", q), 0.0, m.q_max), m.q_levels, m.q_max)


def cell_voltages(m: DeviceModel, kind: str, x: np.ndarray) -> np.ndarray:
    """Keys or values (``kind`` "k" or "v") as written to the cells: scaled, clipped to [0, kv_max_v], quantised."""
    return quantise(np.clip(_scaled(m, kind, x), 0.0, m.kv_max_v), m.kv_levels, m.kv_max_v)


def cell_product(poly: tuple[float, ...], u: np.ndarray) -> np.ndarray:
    """p(u) = sum_i P_i u^i by Horner's rule: one cell's multiplication of a unit input by its stored deviation u."""
    out = np.full(u.shape, poly[-1])
    for c in reversed(poly[:-1]):
        out = out * u + c
    return out


def leakage(m: DeviceModel, ages: np.ndarray) -> np.ndarray:
    """exp(-decay_per_step * age) of cells written ``ages`` steps ago."""
    return np.exp(-m.decay_per_step * np.asarray(ages, np.float64))


def window_ages(count: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Age in steps of each cell after ``count`` tokens (token t sits in cell t mod window), and which hold one."""
    slots = np.arange(window)
    newest = (count - 1) % window
    return (newest - slots) % window, slots < min(count, window)


def attend(m: DeviceModel, q_hat: np.ndarray, keys: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """The heads' outputs (batch, heads, D), after the output scaler, of queries on the cells' K and V.

    ``q_hat`` (batch, heads, D) pulse widths; ``keys``, ``values`` (batch, heads, window, D)
    cell voltages; ``count`` tokens written so far (the newest included).
    """
    ages, valid = window_ages(count, m.window)
    delta = leakage(m, ages)[:, None]  # (window, 1)
    k_dev = cell_product(m.poly, delta * (keys - m.offset_v))  # (B, H, W, D)
    scores = np.einsum("bhd,bhwd->bhw", q_hat, k_dev)
    a = np.clip(scores / m.score_saturation, 0.0, 1.0) * valid  # the HardSigmoid; empty cells give nothing
    terms = a[..., None] * cell_product(m.poly, delta * (values - m.offset_v))  # (B, H, W, D)
    starts = np.arange(0, m.window, m.array_width)
    partial = np.add.reduceat(terms, starts, axis=2)  # one analog sum per array
    read = quantise(np.clip(partial / m.out_saturation, -m.out_max, m.out_max), m.out_levels, 2 * m.out_max)
    return _scaled(m, "out", read.sum(axis=2))  # digital sum across arrays


class Cells(Protocol):
    """Where a gain-cell attention op's analog products happen; the op's K/V window is their mirror."""

    def step(self, op: AttentionOp, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Write token k, v (batch, heads, D) into the op's next cell, query q; return outputs (batch, heads, D)."""


class LocalCells:
    """The device model computed in process on the op's own window."""

    def __init__(self, model: DeviceModel) -> None:
        self.model = model

    def step(self, op: AttentionOp, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Write the token's cells (slot ``count mod window``), then attend."""
        m = self.model
        write(op, cell_voltages(m, "k", k), cell_voltages(m, "v", v))
        return attend(m, query_pulses(m, q), op.keys, op.values, int(op.count[0]))


def write(op: AttentionOp, k_cells: np.ndarray, v_cells: np.ndarray) -> int:
    """Store one token's cell values in the op's window at slot ``count mod window``; return that slot."""
    slot = int(op.count[0]) % op.keys.shape[2]
    op.keys[:, :, slot] = k_cells
    op.values[:, :, slot] = v_cells
    op.count[0] += 1
    return slot


def gaincell_ops(plan_ops: tuple) -> list[AttentionOp]:
    """The gain-cell attention ops of a plan, in execution order."""
    from edgesnn.engine._transformer import AttentionOp

    return [op for op in plan_ops if isinstance(op, AttentionOp) and op.cells is not None]


def attach_cells(session: object, make: object) -> list[AttentionOp]:
    """Route a gain-cell session's attention layers to cells ``make(op, model)`` returns (a board's); returns the ops.

    The session must run ``numerics="gaincell"``. Its K/V windows stay session state:
    the new cells must keep them as their mirror.
    """
    from edgesnn.errors import UnsupportedError

    ops = gaincell_ops(session._plan.ops)  # type: ignore[attr-defined]
    if not ops and any(isinstance(n, SlidingWindowAttention) for n in session.model.graph.nodes.values()):  # type: ignore[attr-defined]
        raise UnsupportedError("the session does not run numerics='gaincell'", path="numerics")
    for op in ops:
        op.runtime["cells"] = make(op, op.cells.model)  # type: ignore[operator,union-attr]
    return ops


def step_snapshot(session: object) -> Callable[[], None]:
    """A function that puts the session's state back as it is now: what one step can change, copied cheaply.

    Every state array is copied except the attention windows, of which only the slot
    the next token overwrites is kept. Call it again after each restore.
    """
    plan = session._plan  # type: ignore[attr-defined]
    rings = {}
    for op in plan.ops:
        if type(op).__name__ == "AttentionOp":
            slot = int(op.count[0]) % op.keys.shape[2]
            rings[id(op.keys)] = (op.keys, slot, op.keys[:, :, slot].copy())
            rings[id(op.values)] = (op.values, slot, op.values[:, :, slot].copy())
    saved = [(arr, arr.copy()) for arr in plan.state.values() if id(arr) not in rings]

    def restore() -> None:
        for arr, copy in saved:
            np.copyto(arr, copy)
        for arr, slot, copy in rings.values():
            arr[:, :, slot] = copy

    return restore


__all__ = ["Cells", "DeviceModel", "LocalCells", "attach_cells", "attend", "cell_product", "cell_voltages",
           "gaincell_ops", "leakage", "query_pulses", "quantise", "step_snapshot", "window_ages", "write"]  # fmt: skip
