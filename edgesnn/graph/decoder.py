"""A decoder-only language model (GPT-2's layout) as a graph of transformer nodes.

``tokens (1,) -> wte -> wpe -> [block] x L -> ln_f -> head -> logits (vocab,)``, each block
``x + attn(ln_1(x))`` then ``+ mlp(ln_2(.))`` with the residual sums as ``Scale(1)`` nodes
(a node's input is the sum of its incoming edges). The head is the token table again
(tied, as GPT-2's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgesnn.errors import NodeValidationError
from edgesnn.graph._node import Node
from edgesnn.graph.attention import SlidingWindowAttention
from edgesnn.graph.graph import Graph
from edgesnn.graph.io_nodes import Input, Output
from edgesnn.graph.synapses import Affine, Linear, Scale
from edgesnn.graph.transformer import GELU, LayerNorm, PositionEmbedding, ReLU, TokenEmbedding

#: The arrays of one block, by name, and their shapes in terms of d (GPT-2's names, weights as (out, in)).
BLOCK_ARRAYS = ("ln_1_w", "ln_1_b", "w_qkv", "b_qkv", "w_out", "b_out", "ln_2_w", "ln_2_b", "w_fc", "b_fc",
                "w_proj", "b_proj")  # fmt: skip


def _get(params: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in params:
        raise NodeValidationError(f"missing array {key!r}", path=f"{where}{key}")
    return params[key]


def decoder_graph(
    params: Mapping[str, Any],
    *,
    num_heads: int,
    window: int,
    activation: str = "gelu",
    attention: Sequence[Mapping[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Graph:
    """The graph of a decoder-only LM from its arrays.

    ``params`` has ``wte`` (vocab, d), ``wpe`` (max_len, d), ``ln_f_w``, ``ln_f_b`` (d,) and
    ``blocks``, a list of mappings with :data:`BLOCK_ARRAYS`. ``attention`` gives per block
    further fields of its :class:`SlidingWindowAttention` (calibration scalers, device
    constants). Node names: ``wte``, ``wpe``, ``b<i>.ln_1``, ``b<i>.attn``, ``b<i>.res_attn``,
    ``b<i>.ln_2``, ``b<i>.fc``, ``b<i>.act``, ``b<i>.proj``, ``b<i>.res_mlp``, ``ln_f``, ``head``.
    """
    if activation not in ("gelu", "relu"):
        raise NodeValidationError(f"expected gelu or relu, got {activation!r}", path="activation")
    wte = np.asarray(_get(params, "wte", ""), np.float32)
    nodes: dict[str, Node] = {
        "tokens": Input((1,), unit="token"),
        "wte": TokenEmbedding(wte),
        "wpe": PositionEmbedding(_get(params, "wpe", "")),
    }
    edges: list[tuple[str, str]] = [("tokens", "wte"), ("wte", "wpe")]
    last = "wpe"
    blocks = _get(params, "blocks", "")
    for i, block in enumerate(blocks):
        p, at = f"b{i}.", f"blocks/{i}/"
        extra = dict(attention[i]) if attention is not None else {}
        nodes[p + "ln_1"] = LayerNorm(_get(block, "ln_1_w", at), _get(block, "ln_1_b", at))
        nodes[p + "attn"] = SlidingWindowAttention(
            _get(block, "w_qkv", at), _get(block, "b_qkv", at), _get(block, "w_out", at), _get(block, "b_out", at),
            num_heads=num_heads, window=window, **extra,
        )  # fmt: skip
        nodes[p + "res_attn"] = Scale(np.ones(1, np.float32))
        nodes[p + "ln_2"] = LayerNorm(_get(block, "ln_2_w", at), _get(block, "ln_2_b", at))
        nodes[p + "fc"] = Affine(_get(block, "w_fc", at), _get(block, "b_fc", at))
        nodes[p + "act"] = GELU() if activation == "gelu" else ReLU()
        nodes[p + "proj"] = Affine(_get(block, "w_proj", at), _get(block, "b_proj", at))
        nodes[p + "res_mlp"] = Scale(np.ones(1, np.float32))
        edges += [(last, p + "ln_1"), (p + "ln_1", p + "attn"), (p + "attn", p + "res_attn"), (last, p + "res_attn"),
                  (p + "res_attn", p + "ln_2"), (p + "ln_2", p + "fc"), (p + "fc", p + "act"), (p + "act", p + "proj"),
                  (p + "proj", p + "res_mlp"), (p + "res_attn", p + "res_mlp")]  # fmt: skip
        last = p + "res_mlp"
    nodes["ln_f"] = LayerNorm(_get(params, "ln_f_w", ""), _get(params, "ln_f_b", ""))
    nodes["head"] = Linear(wte)
    nodes["logits"] = Output((wte.shape[0],), unit="logit")
    edges += [(last, "ln_f"), ("ln_f", "head"), ("head", "logits")]
    return Graph(nodes, edges, metadata=dict(metadata or {}))


__all__ = ["BLOCK_ARRAYS", "decoder_graph"]
