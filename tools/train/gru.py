"""The non-spiking reference: a stacked GRU with a linear read-out, trained by the same trainer on the same input.

The cell follows PyTorch's ``torch.nn.GRU`` (gates r, z, n; ``h' = (1 - z) n + z h``) with
parameters per layer::

    {"w_x": (3n, in), "w_h": (3n, n), "b_x": (3n,), "b_h": (3n,)}   rows: reset, update, new

Inputs are the binned spike counts the spiking networks see; the read-out ``h_t W^T + b``
gives a trace (T, B, classes) that the loss reduces over time exactly as it reduces a
spiking read-out's membrane trace. It trains and evaluates in JAX only: the runtime has no
GRU node, so there is nothing to export.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

Params = dict[str, Any]


def init_gru(key: jax.Array, n_in: int, hidden: Sequence[int], n_classes: int) -> Params:
    """Uniform(-1/sqrt(n), 1/sqrt(n)) weights and biases, as PyTorch initialises GRU and Linear."""
    layers = []
    for n in hidden:
        key, kx, kh, kbx, kbh = jax.random.split(key, 5)
        bound = 1.0 / math.sqrt(n)
        u = lambda k, shape, b=bound: jax.random.uniform(k, shape, jnp.float32, -b, b)  # noqa: E731
        layers.append({"w_x": u(kx, (3 * n, n_in)), "w_h": u(kh, (3 * n, n)), "b_x": u(kbx, (3 * n,)),
                       "b_h": u(kbh, (3 * n,))})  # fmt: skip
        n_in = n
    key, kw, kb = jax.random.split(key, 3)
    bound = 1.0 / math.sqrt(n_in)
    readout = {"w": jax.random.uniform(kw, (n_classes, n_in), jnp.float32, -bound, bound),
               "b": jax.random.uniform(kb, (n_classes,), jnp.float32, -bound, bound)}  # fmt: skip
    return {"layers": layers, "readout": readout}


def gru_layer(p: Params, x: jax.Array) -> jax.Array:
    """One GRU layer over a sequence (T, B, in) -> (T, B, n); the input gates for all steps are one product."""
    n = p["w_h"].shape[1]
    gx = x @ p["w_x"].T + p["b_x"]  # (T, B, 3n): nothing here depends on the recurrence

    def cell(h: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
        gh = h @ p["w_h"].T + p["b_h"]
        r = jax.nn.sigmoid(g[..., :n] + gh[..., :n])
        z = jax.nn.sigmoid(g[..., n : 2 * n] + gh[..., n : 2 * n])
        c = jnp.tanh(g[..., 2 * n :] + r * gh[..., 2 * n :])
        h = (1.0 - z) * c + z * h
        return h, h

    _, hs = jax.lax.scan(cell, jnp.zeros((x.shape[1], n), x.dtype), gx)
    return hs


def gru_forward(params: Params, x: jax.Array) -> jax.Array:
    """The read-out trace (T, B, classes) of the stacked GRU on inputs (T, B, channels)."""
    h = x.reshape(*x.shape[:2], -1)
    for p in params["layers"]:
        h = gru_layer(p, h)
    r = params["readout"]
    return h @ r["w"].T + r["b"]
