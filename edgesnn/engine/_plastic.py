r"""Plasticity attention's step: the gated outer-product write, the clamped read, in float or in integers.

The equations are in :mod:`edgesnn.graph.plastic_attention`. State per layer: ``<node>/keys``
(W_K) and ``<node>/values`` (W_V), (batch, heads, slots, D), and ``<node>/cursor`` (batch,),
the writes each stream has made (its next slot is ``cursor mod slots``).

Under ``numerics="loihi"`` (integers, the layer's part that Loihi 2's plasticity processor
holds; the projections around it stay float32):

.. math::

    \bar q, \bar k, \bar v &= \mathrm{clip}(\mathrm{rint}(2^{f} \cdot), -127, 127), \qquad
        \bar g = \mathrm{clip}(\mathrm{rint}(2^{7} g), 0, 2^{7}) \\
    W[s_t] &\leftarrow W[s_t] + \lfloor \bar g\,(\bar k - W[s_t]) / 2^{7} \rfloor
        \quad\text{(idem } W_V \text{ with } \bar v\text{; stays in [-127, 127])} \\
    S &= \mathrm{wrap}_{24}(W_K \bar q), \qquad
        \bar a = \mathrm{clip}(\lfloor S\, m / 2^{r} \rfloor, 0, 2^{7}) \\
    o &= 2^{-(f + 7)}\, \mathrm{wrap}_{24}(W_V^\top \bar a)

with ``f = frac_bits`` and :math:`m / 2^r \approx 2^{7 - 2f} / S_{sat}` a 12-bit multiplier
(:func:`clamp_gain`). Rounding is nearest, ties to even, for the inputs; the floors are
arithmetic right shifts, as Loihi's integer units shift.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from edgesnn.errors import UnsupportedError
from edgesnn.graph.plastic_attention import PlasticAttention

GATE_BITS = 7  # gate and clamped scores in [0, 2**7]: 2**7 is 1 (a full overwrite), so 8 unsigned bits
GATE_UNITY = 1 << GATE_BITS
INPUT_MAX = 127  # 8-bit signed graded inputs and plastic weights, symmetric
SUM_BITS = 24  # Loihi 2's dendritic accumulators
GAIN_BITS = 12


def _clamp(x: np.ndarray, low: object, high: object) -> np.ndarray:
    # Two ufuncs: np.clip's Python wrapper costs more than the work on arrays this small.
    return np.minimum(np.maximum(x, low), high)


def quantise(w: np.ndarray, bits: int) -> np.ndarray:
    """``w`` (..., slots, D) rounded to signed ``bits``-bit mantissas with one exponent per leading index.

    The exponent of each (slots, D) block is the smallest with ``max|w| <= M 2**e``,
    ``M = 2**(bits-1) - 1``; mantissas round to nearest, ties to even; an all-zero
    block stays zero. Returns ``mantissa * 2**e`` in float32 (exact).
    """
    w = np.asarray(w, np.float64)
    m_max = float((1 << (bits - 1)) - 1)
    amax = np.max(np.abs(w), axis=(-2, -1), keepdims=True)
    safe = np.where(amax > 0, amax, 1.0)
    frac, e = np.frexp(safe / m_max)  # safe / M = frac 2**e, frac in [0.5, 1)
    e = np.where(frac == 0.5, e - 1, e)
    # The division rounds: settle on the smallest exponent that fits (powers of two are exact in float64).
    step = np.ldexp(1.0, e)
    grow = safe > m_max * step
    shrink = safe <= m_max * step * 0.5
    step = np.where(grow, step * 2.0, np.where(shrink, step * 0.5, step))
    mantissa = _clamp(np.rint(w / step), -m_max, m_max)  # dividing by a power of two is exact
    return (mantissa * step).astype(np.float32)


def clamp_gain(score_saturation: float, frac_bits: int) -> tuple[int, int]:
    """(m, r) with ``m / 2**r`` the nearest 12-bit-mantissa value to ``2**(7 - 2 frac_bits) / score_saturation``."""
    factor = math.ldexp(1.0 / score_saturation, GATE_BITS - 2 * frac_bits)
    r = GAIN_BITS - 1 - math.floor(math.log2(factor))
    m = round(math.ldexp(factor, r))
    if m >= 1 << GAIN_BITS:  # rounded up to the next power of two
        m, r = m >> 1, r - 1
    return m, r


def to_fixed(x: np.ndarray, frac_bits: int) -> np.ndarray:
    """Float inputs as 8-bit graded values with ``frac_bits`` fraction bits (int64)."""
    return _clamp(np.rint(np.asarray(x, np.float64) * 2.0**frac_bits), -INPUT_MAX, INPUT_MAX).astype(np.int64)


def wrap(x: np.ndarray, bits: int = SUM_BITS) -> np.ndarray:
    """Two's-complement wrap of integers to ``bits`` bits."""
    base = 1 << bits
    return (np.asarray(x, np.int64) + base // 2) % base - base // 2


def _scale(x: np.ndarray, m: int, r: int) -> np.ndarray:
    p = x * np.int64(m)
    return p >> r if r >= 0 else p << -r


@dataclasses.dataclass(frozen=True, eq=False)
class PlasticAttentionOp:
    """One token of plasticity attention; ``fixed`` selects the integer numerics.

    x, out (batch, d); keys, values (batch, heads, slots, D), float32 or (fixed) int32; cursor int64 (batch,).
    """

    node: str
    x: np.ndarray
    w_qkv_t: np.ndarray  # (d, 3d)
    b_qkv: np.ndarray
    w_gate: np.ndarray  # (d,)
    b_gate: float
    w_out_t: np.ndarray  # (d, d)
    b_out: np.ndarray
    keys: np.ndarray
    values: np.ndarray
    cursor: np.ndarray
    out: np.ndarray
    score_saturation: float
    weight_bits: int
    fixed: bool
    frac_bits: int
    gain: tuple[int, int]


def _write_float(op: PlasticAttentionOp, rows: np.ndarray, slot: np.ndarray, g: np.ndarray, k: np.ndarray,
                 v: np.ndarray) -> None:  # fmt: skip
    gain = g[rows, None, None]
    for mem, new in ((op.keys, k), (op.values, v)):
        old = mem[rows, :, slot]  # (n, heads, D)
        mem[rows, :, slot] = old + gain * (new[rows] - old)
        if op.weight_bits:
            mem[rows] = quantise(mem[rows], op.weight_bits)


def _write_fixed(op: PlasticAttentionOp, rows: np.ndarray, slot: np.ndarray, g: np.ndarray, k: np.ndarray,
                 v: np.ndarray) -> None:  # fmt: skip
    gain = g[rows, None, None]
    for mem, new in ((op.keys, k), (op.values, v)):
        old = mem[rows, :, slot].astype(np.int64)
        mem[rows, :, slot] = old + ((gain * (new[rows] - old)) >> GATE_BITS)


def plastic_attention_op(op: PlasticAttentionOp) -> None:
    """Project; write k, v into each gated stream's next slot; read with the clamped scores; project out."""
    batch, heads, _, dh = op.keys.shape
    qkv = op.x @ op.w_qkv_t
    qkv += op.b_qkv
    q, k, v = (qkv[:, i * heads * dh : (i + 1) * heads * dh].reshape(batch, heads, dh) for i in range(3))
    g = _clamp(op.x @ op.w_gate + np.float32(op.b_gate), np.float32(0), np.float32(1))
    slots = op.keys.shape[2]
    if op.fixed:
        g_int = _clamp(np.rint(g.astype(np.float64) * GATE_UNITY), 0, GATE_UNITY).astype(np.int64)
        rows = np.flatnonzero(g_int > 0)
        if rows.size:
            _write_fixed(op, rows, op.cursor[rows] % slots, g_int, to_fixed(k, op.frac_bits),
                         to_fixed(v, op.frac_bits))  # fmt: skip
        # Integer sums in float64 matmuls: |terms| <= 2**14 and far fewer than 2**39 of them, so exact.
        q_int = to_fixed(q, op.frac_bits).astype(np.float64)
        scores = wrap(np.matmul(op.keys.astype(np.float64), q_int[..., None])[..., 0].astype(np.int64))
        a = _clamp(_scale(scores, *op.gain), 0, GATE_UNITY)
        o_sum = np.matmul(a.astype(np.float64)[:, :, None, :], op.values.astype(np.float64))[:, :, 0]
        o_int = wrap(o_sum.astype(np.int64))
        o = np.ldexp(o_int.astype(np.float64), -(op.frac_bits + GATE_BITS)).astype(np.float32)
    else:
        rows = np.flatnonzero(g > 0)
        if rows.size:
            _write_float(op, rows, op.cursor[rows] % slots, g, k, v)
        scores = np.matmul(op.keys, q[..., None])[..., 0]
        a = _clamp(scores / np.float32(op.score_saturation), np.float32(0), np.float32(1))
        o = np.matmul(a[:, :, None, :], op.values)[:, :, 0]
    op.cursor[rows] += 1
    out = op.out
    np.matmul(o.reshape(batch, heads * dh), op.w_out_t, out=out)
    out += op.b_out


KERNELS = {PlasticAttentionOp: plastic_attention_op}


def runs_fixed_point(graph: object) -> bool:
    """Whether ``numerics="loihi"`` means this module's integers for ``graph``: it has plastic attention.

    Such a graph may not also hold neuron layers (their CUBA integers are another plan, and the
    two are not combined); that is refused, naming the first neuron node.
    """
    from edgesnn.graph.neurons import NEURON_TYPES

    nodes = graph.nodes  # type: ignore[attr-defined]
    if not any(isinstance(n, PlasticAttention) for n in nodes.values()):
        return False
    neuron = next((name for name, n in nodes.items() if isinstance(n, NEURON_TYPES)), None)
    if neuron is not None:
        raise UnsupportedError(
            f"Loihi numerics run plasticity attention on its own: node {neuron!r} is a"
            f" {type(nodes[neuron]).__name__}, and a graph mixing neurons with plastic attention has no"
            " Loihi plan; run it with numerics='float'",
            path=f"nodes/{neuron}",
        )
    return True


def build_plastic_op(
    name: str,
    node: PlasticAttention,
    x: np.ndarray,
    out: np.ndarray,
    state: dict[str, np.ndarray],
    initial: dict[str, np.ndarray],
    numerics: str,
) -> PlasticAttentionOp:
    """The op of one plastic attention node over its (batch, d) buffers, adding its state arrays."""
    batch = out.shape[0]
    fixed = numerics == "loihi"

    def keep(key: str, arr: np.ndarray) -> np.ndarray:
        state[f"{name}/{key}"], initial[f"{name}/{key}"] = arr, np.zeros_like(arr)
        return arr

    memory = (batch, node.num_heads, node.slots, node.head_dim)
    dtype = np.int32 if fixed else np.float32
    return PlasticAttentionOp(
        name, x, np.ascontiguousarray(node.w_qkv.T), node.b_qkv, node.w_gate, node.b_gate,
        np.ascontiguousarray(node.w_out.T), node.b_out, keep("keys", np.zeros(memory, dtype)),
        keep("values", np.zeros(memory, dtype)), keep("cursor", np.zeros(batch, np.int64)), out,
        node.score_saturation, node.weight_bits, fixed, node.frac_bits,
        clamp_gain(node.score_saturation, node.frac_bits),
    )  # fmt: skip


__all__ = ["KERNELS", "PlasticAttentionOp", "build_plastic_op", "clamp_gain", "quantise", "runs_fixed_point",
           "to_fixed", "wrap"]  # fmt: skip
