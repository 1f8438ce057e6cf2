"""Engine ops and numpy kernels of the transformer nodes: one token per step, batched, K/V window as state.

State keys: ``<node>/position`` (int64 (1,), tokens seen by a PositionEmbedding),
``<node>/keys`` and ``<node>/values`` ((batch, heads, window, D), the attention's ring
of the last ``window`` tokens: raw k, v in float32 under float numerics, the
cells' voltages in float64 under gain-cell numerics) and ``<node>/count`` (int64 (1,),
tokens written; the newest sits in slot ``(count - 1) mod window``). Every
stream of a batch steps the same token position.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from edgesnn.engine._gaincell import DeviceModel, LocalCells
from edgesnn.errors import InputError
from edgesnn.graph.attention import SlidingWindowAttention
from edgesnn.graph.transformer import GELU, LayerNorm, PositionEmbedding, ReLU, TokenEmbedding

try:
    from edgesnn.engine import _tkernels as _TK
except ImportError:  # built optionally (setup.py); the numpy kernels take over
    _TK = None

_GELU_C = np.float32(np.sqrt(2.0 / np.pi))
#: Batches up to this size take the C attention step; larger ones numpy's BLAS projections. Measured on
#: the bench's model (d 64, 3 layers, a loaded 2-core machine): batch 1 steps 2.1x faster in C; from
#: batch 8 on, C was no faster and at 64 up to 2.4x slower.
C_ATTENTION_MAX_BATCH = 4


@dataclasses.dataclass(frozen=True, eq=False)
class EmbeddingOp:
    """out = weight[x] for token ids x (batch, 1)."""

    node: str
    x: np.ndarray
    weight: np.ndarray  # (vocab, d)
    out: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class PositionOp:
    """out = x + weight[position]; position += 1."""

    node: str
    x: np.ndarray
    weight: np.ndarray  # (max_len, d)
    out: np.ndarray
    position: np.ndarray  # int64 (1,)


@dataclasses.dataclass(frozen=True, eq=False)
class LayerNormOp:
    """out = (x - mean) / sqrt(var + eps) * weight + bias over the last axis."""

    node: str
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    eps: float
    out: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class ActivationOp:
    """out = gelu(x) (tanh form) or relu(x)."""

    node: str
    x: np.ndarray
    out: np.ndarray
    function: str


@dataclasses.dataclass(frozen=True, eq=False)
class AttentionOp:
    """One token of sliding-window attention; ``cells`` is None under float numerics.

    x, out (batch, d); keys, values (batch, heads, window, D); count int64 (1,).
    ``runtime["cells"]``, when set (:func:`edgesnn.engine._gaincell.attach_cells`),
    replaces ``cells``.
    """

    node: str
    x: np.ndarray
    w_qkv_t: np.ndarray  # (d, 3d)
    b_qkv: np.ndarray
    w_out_t: np.ndarray  # (d, d)
    b_out: np.ndarray
    keys: np.ndarray
    values: np.ndarray
    count: np.ndarray
    out: np.ndarray
    cells: LocalCells | None
    runtime: dict[str, Any] = dataclasses.field(default_factory=dict)


def embedding_op(op: EmbeddingOp) -> None:
    """Look the tokens up, refusing ids that are not whole numbers in [0, vocab)."""
    ids = op.x[:, 0]
    vocab = op.weight.shape[0]
    ok = (ids >= 0) & (ids < vocab) & (np.floor(ids) == ids)  # NaN fails every comparison
    if not ok.all():
        bad = ids[~ok][0]
        raise InputError(f"{op.node} takes token ids, whole numbers in [0, {vocab}); got {bad:g}", path="inputs")
    np.take(op.weight, ids.astype(np.intp), axis=0, out=op.out)


def position_op(op: PositionOp) -> None:
    """Add the position's vector; refuse a token past the table's end."""
    t = int(op.position[0])
    if t >= op.weight.shape[0]:
        raise InputError(
            f"{op.node} has positions for {op.weight.shape[0]} tokens and the session has stepped {t};"
            " reset the session (or load an earlier state) to go on",
            path="inputs",
        )
    np.add(op.x, op.weight[t], out=op.out)
    op.position[0] = t + 1


def layer_norm_op(op: LayerNormOp) -> None:
    """Normalise each vector, then scale and shift."""
    # ufuncs called directly: ndarray.mean's Python layer costs more than the sums at these sizes
    inv_d = np.float32(1.0 / op.x.shape[-1])
    centred = op.x - np.add.reduce(op.x, axis=-1, keepdims=True) * inv_d
    var = np.add.reduce(centred * centred, axis=-1, keepdims=True) * inv_d
    out = op.out
    np.multiply(centred, 1 / np.sqrt(var + np.float32(op.eps)), out=out)
    out *= op.weight
    out += op.bias


def activation_op(op: ActivationOp) -> None:
    """GELU (tanh form) or ReLU."""
    x = op.x
    if op.function == "relu":
        np.maximum(x, 0, out=op.out)
        return
    inner = np.tanh(_GELU_C * (x + np.float32(0.044715) * x * x * x))
    np.multiply(np.float32(0.5) * x, 1 + inner, out=op.out)


def _float_attend(op: AttentionOp, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    window = op.keys.shape[2]
    slot = int(op.count[0]) % window
    op.keys[:, :, slot] = k
    op.values[:, :, slot] = v
    op.count[0] += 1
    n = min(int(op.count[0]), window)  # slots fill from 0; the order within the window does not matter
    scores = np.matmul(op.keys[:, :, :n], q[..., None])[..., 0] * np.float32(q.shape[-1] ** -0.5)
    scores -= np.maximum.reduce(scores, axis=-1, keepdims=True)
    p = np.exp(scores)
    p /= np.add.reduce(p, axis=-1, keepdims=True)
    return np.matmul(p[:, :, None, :], op.values[:, :, :n])[:, :, 0]


def attention_op(op: AttentionOp) -> None:
    """Project q, k, v; write k, v into the window; attend (float or the gain cells); project out."""
    batch, heads, _, dh = op.keys.shape
    qkv = op.x @ op.w_qkv_t
    qkv += op.b_qkv
    q, k, v = (qkv[:, i * heads * dh : (i + 1) * heads * dh].reshape(batch, heads, dh) for i in range(3))
    cells = op.runtime.get("cells") or op.cells
    y = _float_attend(op, q, k, v) if cells is None else cells.step(op, q, k, v)
    out = op.out
    np.matmul(y.reshape(batch, heads * dh).astype(np.float32), op.w_out_t, out=out)
    out += op.b_out


def _c_layer_norm(op: LayerNormOp) -> None:
    _TK.layer_norm(op.x, op.weight, op.bias, op.eps, op.out, op.x.shape[-1])


def _c_activation(op: ActivationOp) -> None:
    if op.function == "gelu":
        _TK.gelu(op.x, op.out)
    else:
        activation_op(op)


def _c_attention(op: AttentionOp) -> None:
    batch, heads, window, _ = op.keys.shape
    if op.cells is not None or op.runtime.get("cells") is not None or batch > C_ATTENTION_MAX_BATCH:
        attention_op(op)  # the gain cells compute in float64 numpy, as the emulator and the JAX model
        return
    _TK.attention(op.x, op.w_qkv_t, op.b_qkv, op.keys, op.values, op.count, op.w_out_t, op.b_out, op.out, batch,
                  heads, window)  # fmt: skip


KERNELS = {
    EmbeddingOp: embedding_op,
    PositionOp: position_op,
    LayerNormOp: layer_norm_op,
    ActivationOp: activation_op,
    AttentionOp: attention_op,
}

#: What the native backend runs instead, when the C kernels (_tkernels.c) are built: one call per op.
NATIVE_KERNELS = {} if _TK is None else {LayerNormOp: _c_layer_norm, ActivationOp: _c_activation,
                                          AttentionOp: _c_attention}  # fmt: skip

TRANSFORMER_NODES = (TokenEmbedding, PositionEmbedding, LayerNorm, GELU, ReLU, SlidingWindowAttention)


def build_op(
    name: str,
    node: object,
    x: np.ndarray,
    out: np.ndarray,
    state: dict[str, np.ndarray],
    initial: dict[str, np.ndarray],
    numerics: str,
) -> object:
    """The op of one transformer node over its (batch, ...) buffers, adding its state arrays."""
    batch = out.shape[0]

    def keep(key: str, arr: np.ndarray) -> np.ndarray:
        state[f"{name}/{key}"], initial[f"{name}/{key}"] = arr, np.zeros_like(arr)
        return arr

    if isinstance(node, TokenEmbedding):
        return EmbeddingOp(name, x.reshape(batch, 1), node.weight, out)
    if isinstance(node, PositionEmbedding):
        return PositionOp(name, x, node.weight, out, keep("position", np.zeros(1, np.int64)))
    if isinstance(node, LayerNorm):
        return LayerNormOp(name, x, node.weight, node.bias, node.eps, out)
    if isinstance(node, (GELU, ReLU)):
        return ActivationOp(name, x, out, "gelu" if isinstance(node, GELU) else "relu")
    if isinstance(node, SlidingWindowAttention):
        ring = (batch, node.num_heads, node.window, node.head_dim)
        cells = LocalCells(DeviceModel.from_node(node)) if numerics == "gaincell" else None
        # Cell voltages in float64: the runtime, the emulator and the JAX model then round alike.
        dtype = np.float32 if cells is None else np.float64
        return AttentionOp(
            name, x, np.ascontiguousarray(node.w_qkv.T), node.b_qkv, np.ascontiguousarray(node.w_out.T), node.b_out,
            keep("keys", np.zeros(ring, dtype)), keep("values", np.zeros(ring, dtype)),
            keep("count", np.zeros(1, np.int64)), out, cells,
        )  # fmt: skip
    raise TypeError(f"no transformer op for {type(node).__name__}")  # pragma: no cover - TRANSFORMER_NODES only


__all__ = ["KERNELS", "NATIVE_KERNELS", "TRANSFORMER_NODES", "AttentionOp", "build_op"]
