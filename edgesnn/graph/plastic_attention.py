r"""Attention as plasticity: a layer whose memory is a weight matrix written token by token by a local rule.

After Finkbeiner and Neftci (arXiv 2410.08711), who read causal self-attention as a
feed-forward layer whose weights the sequence writes, and run those writes on Loihi 2's
learning engine. Their nonlinearity and rule are not public; this is our design.

Per head, token t projects to q, k, v (width D) and a gate :math:`g_t` (the third factor).
The memory is two plastic matrices of ``slots`` rows, ``W_K`` (slot x key: the synapses from
the key inputs to one slot neuron each) and ``W_V`` (slot x value: from the slot neurons to
the value outputs). A token with :math:`g_t > 0` is written into slot :math:`s_t`, the next
one of a ring counting the writes of its stream (a token with :math:`g_t = 0` neither writes
nor advances the ring, so queries do not evict what the stream stored):

.. math::

    g_t &= \mathrm{clip}(w_g \cdot x_t + b_g, 0, 1) \\
    \Delta W_K &= g_t\, e_{s_t} (k_t - W_K^\top e_{s_t})^\top,\qquad
    \Delta W_V = g_t\, e_{s_t} (v_t - W_V^\top e_{s_t})^\top \\
    a_s &= \mathrm{clip}\big((W_K q_t)_s / S_{sat}, 0, 1\big),\qquad
    o_t = W_V^\top a,\qquad y_t = W_o\, o_t + b_o

The update is a three-factor outer product: post (the one-hot slot neuron :math:`e_s`) times
pre (the input minus the stored weight, the ``x1*y1 - y1*w`` form Loihi's rule language
writes) times the gate. With :math:`g = 1` it overwrites the slot (a K/V cache of the last
``slots`` written tokens); with :math:`0 < g < 1` the slot blends.

The nonlinearity is the clamp (a hard sigmoid through 0): no exponential, no division by a
sum over slots, so it is one multiply-shift and two comparisons per slot on a fixed-point
neuron; empty slots (all-zero rows) score 0 and so contribute nothing, with no mask; and the
output is bounded by ``slots`` times the largest value, where ReLU's grows with the scores.

Numerics: ``weight_bits = 0`` keeps ``W_K`` and ``W_V`` in float32; ``weight_bits = n``
rounds each (per stream and head) to signed n-bit mantissas with one shared exponent after
every write (:func:`edgesnn.engine._plastic.quantise`). The session option
``numerics="loihi"`` runs the layer in integers (:mod:`edgesnn.engine._plastic`) with Loihi
2's widths: 8-bit signed plastic weights, 8-bit graded inputs with ``frac_bits`` fraction
bits, a gate and clamped scores in [0, 2^7] (2^7 is 1, a full overwrite: 8 unsigned bits),
24-bit dendritic sums and a 12-bit multiplier for the clamp's scale (``weight_bits`` does
not apply there); the nodes around it (embeddings, layer norms) stay float32, and a graph
that also holds neuron layers is refused. Other numerics ("gaincell") run the layer as
under "float". Lava's learning engine runs the float rule
(:mod:`firmware_bridges.loihi2.plastic`); its fixed-point engine rounds stochastically, so no
integer rule is bit-exact with it (measured there).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgesnn import limits
from edgesnn.errors import NodeValidationError
from edgesnn.graph._node import Node, Shape, array_field, as_int
from edgesnn.graph.attention import set_projections
from edgesnn.graph.transformer import as_number, expect_vector

#: Widest mantissa ``weight_bits`` may ask for (float32 holds 24-bit mantissas exactly).
MAX_WEIGHT_BITS = 16


@dataclasses.dataclass(frozen=True, eq=False)
class PlasticAttention(Node):
    """Causal attention whose K/V memory is ``slots`` rows of plastic weights per head, session state.

    ``w_qkv`` (3d, d), ``b_qkv`` (3d,) give q, k, v (heads side by side); ``w_out`` (d, d),
    ``b_out`` (d,) project the heads' outputs; ``w_gate`` (d,) and ``b_gate`` give the write
    gate (default: 0 and 1, every token written). See the module for the rule.
    """

    w_qkv: np.ndarray = array_field()
    b_qkv: np.ndarray = array_field()
    w_out: np.ndarray = array_field()
    b_out: np.ndarray = array_field()
    w_gate: np.ndarray | None = array_field(default=None)
    b_gate: float = 1.0
    num_heads: int = 1
    slots: int = 16
    score_saturation: float = 1.0
    weight_bits: int = 0
    frac_bits: int = 4

    def __post_init__(self) -> None:
        d = np.shape(self.w_qkv)[-1] if np.ndim(self.w_qkv) == 2 else 0  # a bad w_qkv is named by set_projections
        gate = np.zeros(d, np.float32) if self.w_gate is None else self.w_gate
        set_projections(self, (("w_gate", gate),))
        self._set("b_gate", as_number(self.b_gate, "b_gate"))
        self._set("slots", as_int(self.slots, "slots", minimum=1))
        limits.current().check("delay_steps", self.slots, "a number of slots", path="slots")
        self._set("score_saturation", as_number(self.score_saturation, "score_saturation", low=0.0, open_low=True))
        bits = as_int(self.weight_bits, "weight_bits", minimum=0)
        if bits == 1 or bits > MAX_WEIGHT_BITS:
            raise NodeValidationError(f"expected 0 (float) or 2 to {MAX_WEIGHT_BITS} bits, got {bits}",
                                      path="weight_bits")  # fmt: skip
        self._set("weight_bits", bits)
        self._set("frac_bits", as_int(self.frac_bits, "frac_bits", minimum=0))
        if self.frac_bits > 7:
            raise NodeValidationError(f"expected at most 7 fraction bits of an 8-bit input, got {self.frac_bits}",
                                      path="frac_bits")  # fmt: skip

    @property
    def d_model(self) -> int:
        """Width d of the token vectors."""
        return self.w_qkv.shape[1]

    @property
    def head_dim(self) -> int:
        """Width D = d / num_heads of one head."""
        return self.d_model // self.num_heads

    def output_shape(self, input_shape: Shape) -> Shape:
        """(d,) -> (d,)."""
        expect_vector(self.d_model, input_shape)
        return tuple(input_shape)


def plastic_node_bytes(node: PlasticAttention, batch: int) -> int:
    """Bytes a session of ``batch`` streams allocates for the layer beyond its output buffer.

    The transposed projections, W_K and W_V with their reset copies (8-byte worst case:
    float32 or int32, plus a step's int64/float64 temporaries of the same size), the
    cursors, and a step's (batch, 3d) and (batch, heads, slots) temporaries.
    """
    d = node.d_model
    memory = batch * node.num_heads * node.slots * node.head_dim
    return 4 * d * d * 4 + 2 * 2 * memory * 4 + 2 * memory * 8 + batch * (3 * d + node.num_heads * node.slots) * 8 \
        + 16 * batch + 64  # fmt: skip


__all__ = ["MAX_WEIGHT_BITS", "PlasticAttention", "plastic_node_bytes"]
