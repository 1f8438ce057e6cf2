"""Tiny decoder-only models and a full-sequence numpy reference for the transformer tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgesnn.graph.decoder import decoder_graph
from edgesnn.model import Model

F32 = np.float32


def tiny_params(*, vocab: int = 11, d: int = 16, layers: int = 2, max_len: int = 24, seed: int = 0) -> dict[str, Any]:
    """Random GPT-2-shaped arrays, scaled so activations stay O(1)."""
    rng = np.random.default_rng(seed)

    def w(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (scale * rng.standard_normal(shape)).astype(F32)

    blocks = [
        {"ln_1_w": 1 + w(d, scale=0.1), "ln_1_b": w(d, scale=0.1), "w_qkv": w(3 * d, d), "b_qkv": w(3 * d, scale=0.1),
         "w_out": w(d, d), "b_out": w(d, scale=0.1), "ln_2_w": 1 + w(d, scale=0.1), "ln_2_b": w(d, scale=0.1),
         "w_fc": w(4 * d, d), "b_fc": w(4 * d, scale=0.1), "w_proj": w(d, 4 * d), "b_proj": w(d, scale=0.1)}
        for _ in range(layers)
    ]  # fmt: skip
    return {"wte": w(vocab, d, scale=1.0), "wpe": w(max_len, d), "ln_f_w": 1 + w(d, scale=0.1),
            "ln_f_b": w(d, scale=0.1), "blocks": blocks}  # fmt: skip


def tiny_model(*, heads: int = 2, window: int = 24, activation: str = "gelu", attention=None, **kw: Any) -> Model:
    """A tiny LM as a Model (dt 1 ms per token)."""
    graph = decoder_graph(tiny_params(**kw), num_heads=heads, window=window, activation=activation,
                          attention=attention)  # fmt: skip
    return Model(graph, dt_s=1e-3)


def _ln(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * w + b


def reference_logits(params: dict[str, Any], tokens: np.ndarray, *, heads: int, window: int,
                     activation: str = "gelu") -> np.ndarray:  # fmt: skip
    """Logits (B, T, vocab) of the whole sequences at once: causal softmax attention masked to the window (float64)."""
    p = {k: (np.asarray(v, np.float64) if k != "blocks" else v) for k, v in params.items()}
    b, t = tokens.shape
    x = p["wte"][tokens] + p["wpe"][:t]
    i, j = np.arange(t)[:, None], np.arange(t)[None, :]
    allowed = (j <= i) & (j > i - window)
    for blk in p["blocks"]:
        blk = {k: np.asarray(v, np.float64) for k, v in blk.items()}
        h = _ln(x, blk["ln_1_w"], blk["ln_1_b"])
        q, k, v = np.split(h @ blk["w_qkv"].T + blk["b_qkv"], 3, axis=-1)
        d = q.shape[-1]
        q, k, v = (a.reshape(b, t, heads, d // heads).transpose(0, 2, 1, 3) for a in (q, k, v))
        s = np.where(allowed, q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // heads), -np.inf)
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        y = (a @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
        x = x + y @ blk["w_out"].T + blk["b_out"]
        h = _ln(x, blk["ln_2_w"], blk["ln_2_b"]) @ blk["w_fc"].T + blk["b_fc"]
        if activation == "gelu":
            h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3)))
        else:
            h = np.maximum(h, 0)
        x = x + h @ blk["w_proj"].T + blk["b_proj"]
    return _ln(x, p["ln_f_w"], p["ln_f_b"]) @ p["wte"].T


def token_feed(tokens: np.ndarray) -> np.ndarray:
    """(B, T) ids as the (T, B, 1) float32 sequence ``Session.run`` takes."""
    return np.ascontiguousarray(tokens.T[:, :, None], F32)
