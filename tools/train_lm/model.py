"""The decoder-only LM in JAX over whole sequences: float attention, and the gain-cell hardware models.

Parameters are the pytree :func:`edgesnn.graph.decoder.decoder_graph` takes (GPT-2's layout,
weights (out, in)), each block with ``scalers``: the per-head affine scalers (a, b) of q,
k, v and the attention output. ``Config`` holds the architecture and the device constants
(the defaults of :class:`edgesnn.graph.SlidingWindowAttention`, which is the spec).

Hardware models (``attention`` = "linear" or "polynomial"), as the runtime's
``numerics="gaincell"`` but for all tokens at once: q, k, v scaled, clipped and quantised
(straight-through: rounding in the forward pass, identity in the backward pass);
the cells' multiplication p(delta * (w - 0.45)) summed as ``sum_n P_n delta^n (x @ (w - 0.45)^n)``;
the HardSigmoid; the window's cells in arrays of 64 by slot (token t in cell t mod window);
each array's read-out clipped and quantised, then summed. "polynomial" runs the cubic in the
forward pass and the linear model's gradient (slope 19.3) in the backward pass, the authors'
surrogate.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from edgesnn.graph.attention import MAC_COEFFICIENTS

Params = dict[str, Any]
KINDS = ("float", "linear", "polynomial")


@dataclasses.dataclass(frozen=True)
class Config:
    """Architecture, window and the gain-cell constants."""

    vocab: int = 97
    d: int = 128
    heads: int = 4
    layers: int = 4
    context: int = 128
    window: int = 128
    activation: str = "gelu"
    decay_per_step: float = 1.6e-4
    q_levels: int = 16
    kv_levels: int = 8
    out_levels: int = 32
    q_max: float = 1.0
    kv_max_v: float = 0.9
    out_max: float = 1.0
    score_saturation: float = 80.0
    out_saturation: float = 40.0
    offset_v: float = 0.45
    input_v: float = 0.9
    linear_gain: float = 19.3
    array_width: int = 64

    @property
    def head_dim(self) -> int:
        """Width of one head."""
        return self.d // self.heads

    def poly(self) -> np.ndarray:
        """P_i of the cubic p(u) at ``input_v`` (float32 coefficients, as the node stores them)."""
        c = np.float32(MAC_COEFFICIENTS).astype(np.float64)
        out, idx = np.zeros(4), 0
        for i in range(4):
            for j in range(4 - i):
                out[i] += c[idx] * self.input_v**j
                idx += 1
        return out

    def attention_fields(self, mac: str) -> dict[str, Any]:
        """The SlidingWindowAttention fields these constants give (besides weights and scalers)."""
        names = ("decay_per_step", "q_levels", "kv_levels", "out_levels", "q_max", "kv_max_v", "out_max",
                 "score_saturation", "out_saturation", "offset_v", "input_v", "linear_gain", "array_width")  # fmt: skip
        return {"mac": mac, **{n: getattr(self, n) for n in names}}


def default_scalers(heads: int) -> dict[str, np.ndarray]:
    """The scalers as the authors start them: a = 1; b = 0 for q and the output, 0.45 for k and v."""
    return {f"{k}_{p}": np.full(heads, (1.0 if p == "scale" else 0.45 if k in "kv" else 0.0), np.float32)
            for k in ("q", "k", "v", "out") for p in ("scale", "offset")}  # fmt: skip


def init_params(cfg: Config, seed: int = 0) -> Params:
    """GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 layers)."""
    rng = np.random.default_rng(seed)
    d = cfg.d

    def n(*shape: int, std: float = 0.02) -> np.ndarray:
        return (std * rng.standard_normal(shape)).astype(np.float32)

    z = lambda *s: np.zeros(s, np.float32)  # noqa: E731
    o = lambda *s: np.ones(s, np.float32)  # noqa: E731
    res = 0.02 / np.sqrt(2 * cfg.layers)
    blocks = [{"ln_1_w": o(d), "ln_1_b": z(d), "w_qkv": n(3 * d, d), "b_qkv": z(3 * d), "w_out": n(d, d, std=res),
               "b_out": z(d), "ln_2_w": o(d), "ln_2_b": z(d), "w_fc": n(4 * d, d), "b_fc": z(4 * d),
               "w_proj": n(d, 4 * d, std=res), "b_proj": z(d), "scalers": default_scalers(cfg.heads)}
              for _ in range(cfg.layers)]  # fmt: skip
    return {"wte": n(cfg.vocab, d), "wpe": n(cfg.context, d, std=0.01), "ln_f_w": o(d), "ln_f_b": z(d),
            "blocks": blocks}  # fmt: skip


def _ln(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / jnp.sqrt(var + 1e-5) * w + b


def _gelu(x: jax.Array) -> jax.Array:
    return 0.5 * x * (1 + jnp.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _ste(x: jax.Array, levels: int, span: float) -> jax.Array:
    step = span / (levels - 1)
    return x + jax.lax.stop_gradient(jnp.round(x / step) * step - x)


def _window(cfg: Config, t: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.arange(t)[:, None], np.arange(t)[None, :]
    mask = (j <= i) & (j > i - cfg.window)
    return mask, np.where(mask, i - j, 0)


def _float_attention(cfg: Config, q: jax.Array, k: jax.Array, v: jax.Array, stats: dict) -> jax.Array:
    mask, _ = _window(cfg, q.shape[2])
    s = jnp.where(mask, q @ jnp.swapaxes(k, -1, -2) / np.sqrt(cfg.head_dim), -jnp.inf)
    y = jax.nn.softmax(s, axis=-1) @ v
    stats["out"] = y
    return y


def _scale(x: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    return x * a[None, :, None, None] + b[None, :, None, None]


def _gaincell_attention(cfg: Config, kind: str, sc: dict, q: jax.Array, k: jax.Array, v: jax.Array,
                        stats: dict) -> jax.Array:  # fmt: skip
    t = q.shape[2]
    mask, ages = _window(cfg, t)
    delta = np.where(mask, np.exp(-cfg.decay_per_step * ages), 0.0)
    qs, ks, vs = _scale(q, sc["q_scale"], sc["q_offset"]), _scale(k, sc["k_scale"], sc["k_offset"]), _scale(
        v, sc["v_scale"], sc["v_offset"])  # fmt: skip
    stats.update(q=qs, k=ks, v=vs)
    qh = _ste(jnp.clip(qs, 0.0, cfg.q_max), cfg.q_levels, cfg.q_max)
    dk = _ste(jnp.clip(ks, 0.0, cfg.kv_max_v), cfg.kv_levels, cfg.kv_max_v) - cfg.offset_v
    dv = _ste(jnp.clip(vs, 0.0, cfg.kv_max_v), cfg.kv_levels, cfg.kv_max_v) - cfg.offset_v
    g = cfg.linear_gain
    lin_s = g * delta * (qh @ jnp.swapaxes(dk, -1, -2))
    if kind == "polynomial":
        p = cfg.poly()
        poly_s = sum(p[n] * delta**n * (qh @ jnp.swapaxes(dk**n, -1, -2)) for n in range(4))
        s = lin_s + jax.lax.stop_gradient(poly_s - lin_s)
    else:
        s = lin_s
    a = jnp.clip(s / cfg.score_saturation, 0.0, 1.0) * mask
    tile = (np.arange(t) % cfg.window) // cfg.array_width
    out = 0.0
    for gi in range(int(tile.max()) + 1):
        a_g = a * (tile == gi)[None, None, None, :]
        lin_o = g * ((a_g * delta) @ dv)
        if kind == "polynomial":
            poly_o = sum(p[n] * ((a_g * delta**n) @ dv**n) for n in range(4))
            o = lin_o + jax.lax.stop_gradient(poly_o - lin_o)
        else:
            o = lin_o
        clipped = jnp.clip(o / cfg.out_saturation, -cfg.out_max, cfg.out_max)
        out = out + _ste(clipped, cfg.out_levels, 2 * cfg.out_max)
    y = _scale(out, sc["out_scale"], sc["out_offset"])
    stats["out"] = y
    return y


def forward(params: Params, tokens: jax.Array, cfg: Config, kind: str = "float",
            compute_dtype: Any = None) -> tuple[jax.Array, list[dict]]:  # fmt: skip
    """Logits (B, T, vocab) of ``tokens`` (B, T), and per layer the attention's statistics arrays.

    ``compute_dtype`` (float64 with x64 on) is what q, k, v are cast to after the projection,
    for comparing with the runtime, which computes the gain cells in float64.
    """
    b, t = tokens.shape
    x = params["wte"][tokens] + params["wpe"][:t]
    layer_stats = []
    for blk in params["blocks"]:
        h = _ln(x, blk["ln_1_w"], blk["ln_1_b"])
        qkv = h @ blk["w_qkv"].T + blk["b_qkv"]
        q, k, v = (qkv[..., i * cfg.d : (i + 1) * cfg.d].reshape(b, t, cfg.heads, cfg.head_dim).transpose(0, 2, 1, 3)
                   for i in range(3))  # fmt: skip
        if compute_dtype is not None:
            q, k, v = q.astype(compute_dtype), k.astype(compute_dtype), v.astype(compute_dtype)
        stats: dict = {}
        if kind == "float":
            y = _float_attention(cfg, q, k, v, stats)
        else:
            sc = {key: val.astype(q.dtype) for key, val in blk["scalers"].items()}
            y = _gaincell_attention(cfg, kind, sc, q, k, v, stats)
        layer_stats.append(stats)
        y = y.astype(x.dtype).transpose(0, 2, 1, 3).reshape(b, t, cfg.d)
        x = x + y @ blk["w_out"].T + blk["b_out"]
        h = _ln(x, blk["ln_2_w"], blk["ln_2_b"]) @ blk["w_fc"].T + blk["b_fc"]
        h = _gelu(h) if cfg.activation == "gelu" else jax.nn.relu(h)
        x = x + h @ blk["w_proj"].T + blk["b_proj"]
    return _ln(x, params["ln_f_w"], params["ln_f_b"]) @ params["wte"].T, layer_stats


def loss_fn(params: Params, batch: jax.Array, cfg: Config, kind: str) -> jax.Array:
    """Mean next-character cross-entropy (nats) of a batch (B, T + 1)."""
    logits, _ = forward(params, batch[:, :-1], cfg, kind)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, batch[:, 1:, None], axis=-1).mean()


#: :func:`forward` compiled, for a given config, kind and compute dtype.
forward_jit = jax.jit(forward, static_argnames=("cfg", "kind", "compute_dtype"))
#: The gradient of :func:`loss_fn` with respect to the params, compiled.
grad_jit = jax.jit(jax.grad(loss_fn), static_argnames=("cfg", "kind"))

__all__ = ["KINDS", "Config", "Params", "default_scalers", "forward", "forward_jit", "grad_jit", "init_params",
           "loss_fn"]  # fmt: skip
