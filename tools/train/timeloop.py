"""The training time loop under gradient checkpointing: which step states the backward pass keeps where.

Plain backpropagation through time keeps every step's residuals (what the backward pass of one
step needs), so memory grows with the sequence length T. Each scheme here keeps less and
recomputes the rest from a saved state (Bencheikh, Finkbeiner and Neftci, arXiv 2412.11810):

- ``standard`` (chunk k): the state at the start of every chunk of k steps; the backward pass
  recomputes one chunk at a time. Local memory ~ T/k states + k residuals; one extra forward.
- ``hierarchical`` (k1, k2): chunks of k1 steps, each checkpointed again in chunks of k2:
  T/k1 + k1/k2 states + k2 residuals; two extra forwards.
- ``remote`` (chunk k): as standard, but the chunk states leave the compiled computation for host
  memory (a numpy array, or a memory-mapped file) and come back one at a time in the backward
  pass, the way an accelerator's off-chip memory holds them: k residuals + two states locally.
- ``double`` (k1, k2): remote chunk states every k1 steps, and inside each remote chunk the
  standard scheme with chunks of k2: k1/k2 states + k2 residuals locally; two extra forwards.

:func:`scan` runs ``body(params, carry, x) -> (carry, y)`` over the leading axis of ``xs`` under
one of them and returns the stacked ``y``; every scheme computes the same values and gradients
as ``jax.lax.scan`` (only the order of recomputation differs). ``params`` are passed explicitly
(not closed over) because the remote schemes differentiate the loop with their own backward pass,
which treats ``xs`` as data: under them the loop gives no gradient to its inputs.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

# The schemes as data live in tools.train.schemes (no JAX there, for the planners); re-exported here.
from tools.train.schemes import CHUNK_LEVELS as CHUNK_LEVELS
from tools.train.schemes import RECOMPUTE as RECOMPUTE
from tools.train.schemes import REMOTE_STORES as REMOTE_STORES
from tools.train.schemes import SCHEMES as SCHEMES
from tools.train.schemes import Checkpointing as Checkpointing

Body = Callable[[Any, Any, Any], tuple[Any, Any]]


def _plain(body: Body, params: Any, carry: Any, xs: Any) -> tuple[Any, Any]:
    return jax.lax.scan(lambda c, x: body(params, c, x), carry, xs)


def _length(xs: Any) -> int:
    return int(jax.tree_util.tree_leaves(xs)[0].shape[0])


def _split(xs: Any, k: int) -> tuple[Any, Any, int]:
    """xs as (n, k, ...) chunks and the remaining tail (r < k steps)."""
    n = _length(xs) // k
    head = jax.tree_util.tree_map(lambda a: a[: n * k].reshape(n, k, *a.shape[1:]), xs)
    tail = jax.tree_util.tree_map(lambda a: a[n * k :], xs)
    return head, tail, n


def _join(head: Any, tail: Any) -> Any:
    return jax.tree_util.tree_map(lambda h, t: jnp.concatenate([h.reshape(-1, *h.shape[2:]), t]), head, tail)


def _collapse(chunks: tuple[int, ...]) -> tuple[int, ...]:
    """Chunk levels without repeats: an inner level as long as its outer one checkpoints nothing more
    (and a scan of length-one chunks would keep a copy of its inputs)."""
    out: list[int] = []
    for k in chunks:
        if not out or k != out[-1]:
            out.append(k)
    return tuple(out)


def _chunked(body: Body, params: Any, carry: Any, xs: Any, chunks: tuple[int, ...]) -> tuple[Any, Any]:
    """Nested checkpointed scans: chunks[0] steps per outer chunk, and so on inward."""
    chunks = _collapse(chunks)
    if not chunks or chunks[0] >= _length(xs):
        if chunks[1:]:
            return _chunked(body, params, carry, xs, chunks[1:])
        return _plain(body, params, carry, xs)
    k, inner = chunks[0], chunks[1:]
    if k == 1 and not inner:
        # every step on its own: checkpoint the body itself (a scan of length-1 chunks would keep a
        # copy of xs for the backward pass, where a scan over xs reads them in place)
        step = jax.checkpoint(body)
        return jax.lax.scan(lambda c, x: step(params, c, x), carry, xs)
    head, tail, _ = _split(xs, k)

    @jax.checkpoint
    def chunk(p: Any, c: Any, xc: Any) -> tuple[Any, Any]:
        return _chunked(body, p, c, xc, inner) if inner else _plain(body, p, c, xc)

    carry, ys_head = jax.lax.scan(lambda c, xc: chunk(params, c, xc), carry, head)
    carry, ys_tail = _plain(body, params, carry, tail)
    return carry, _join(ys_head, ys_tail)


class _Store:
    """Host-side chunk states of one compiled loop: (n_chunks, *leaf) per carry leaf."""

    def __init__(self, n: int, leaves: list[jax.ShapeDtypeStruct], where: str, directory: str | None) -> None:
        self.specs = leaves
        self.arrays: list[np.ndarray] = []
        self.paths: list[str] = []
        for leaf in leaves:
            shape = (n, *leaf.shape)
            if where == "mmap":
                fd, path = tempfile.mkstemp(prefix="edgesnn-ckpt-", suffix=".bin", dir=directory)
                os.close(fd)
                self.paths.append(path)
                self.arrays.append(np.lib.format.open_memmap(path, "w+", np.dtype(leaf.dtype), shape))
            else:
                self.arrays.append(np.zeros(shape, leaf.dtype))
        weakref.finalize(self, _remove, list(self.paths))

    def put(self, i: np.ndarray, *values: np.ndarray) -> np.ndarray:
        for arr, v in zip(self.arrays, values, strict=True):
            arr[int(i)] = v
        return np.zeros((), np.int32)

    def get(self, i: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(np.array(arr[int(i)]) for arr in self.arrays)


def _remove(paths: list[str]) -> None:
    for path in paths:
        try:
            os.remove(path)
        except OSError:
            pass


def _remote(body: Body, params: Any, carry: Any, xs: Any, plan: Checkpointing) -> tuple[Any, Any]:
    """Chunks of chunks[0] steps whose start states go to host memory; chunks[1:] checkpoint inside."""
    chunks = _collapse(plan.chunks)
    k, inner = chunks[0], chunks[1:]
    if k >= _length(xs):
        return _chunked(body, params, carry, xs, inner)
    single = k == 1 and not inner  # a chunk is one step: no reshape, the body runs on it directly
    head, tail, n = (xs, None, _length(xs)) if single else _split(xs, k)
    leaves, treedef = jax.tree_util.tree_flatten(carry)
    store = _Store(n, [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in leaves], plan.remote, plan.directory)
    out_spec = jax.ShapeDtypeStruct((), jnp.int32)
    get_spec = tuple(store.specs)

    def chunk(p: Any, c: Any, xc: Any) -> tuple[Any, Any]:
        return body(p, c, xc) if single else _chunked(body, p, c, xc, inner)

    @jax.custom_vjp
    def loop(p: Any, c0: Any, xs_head: Any) -> tuple[Any, Any]:
        return jax.lax.scan(lambda c, xc: chunk(p, c, xc), c0, xs_head)

    def loop_fwd(p: Any, c0: Any, xs_head: Any) -> tuple[tuple[Any, Any], Any]:
        def outer(state: tuple[Any, jax.Array], xc: Any) -> tuple[tuple[Any, jax.Array], Any]:
            c, i = state
            io_callback(store.put, out_spec, i, *jax.tree_util.tree_leaves(c), ordered=True)
            c, ys = chunk(p, c, xc)
            return (c, i + 1), ys

        (c_end, _), ys = jax.lax.scan(outer, (c0, jnp.int32(0)), xs_head)
        return (c_end, ys), (p, xs_head)

    def loop_bwd(res: Any, cotangents: tuple[Any, Any]) -> tuple[Any, Any, Any]:
        p, xs_head = res
        g_end, g_ys = cotangents

        def back(state: tuple[Any, Any, jax.Array], inputs: tuple[Any, Any]) -> tuple[tuple[Any, Any, jax.Array], Any]:
            g_p, g_c, i = state
            xc, gy = inputs
            c = jax.tree_util.tree_unflatten(treedef, io_callback(store.get, get_spec, i, ordered=True))
            _, vjp = jax.vjp(lambda p, c: chunk(p, c, xc), p, c)
            d_p, d_c = vjp((g_c, gy))
            return (jax.tree_util.tree_map(jnp.add, g_p, d_p), d_c, i - 1), None

        zeros = jax.tree_util.tree_map(jnp.zeros_like, p)
        (g_p, g_c0, _), _ = jax.lax.scan(back, (zeros, g_end, jnp.int32(n - 1)), (xs_head, g_ys), reverse=True)
        # xs are data (inputs, keys): no cotangent is computed for them, so none is stored per chunk
        return g_p, g_c0, None

    loop.defvjp(loop_fwd, loop_bwd)
    carry, ys_head = loop(params, carry, head)
    if single:
        return carry, ys_head
    carry, ys_tail = _chunked(body, params, carry, tail, inner)
    return carry, _join(ys_head, ys_tail)


def scan(body: Body, params: Any, carry: Any, xs: Any, plan: Checkpointing | None = None) -> tuple[Any, Any]:
    """``jax.lax.scan(lambda c, x: body(params, c, x), carry, xs)`` under the checkpointing ``plan``."""
    plan = plan or Checkpointing()
    if _length(xs) == 0 or plan.scheme == "none":
        return _plain(body, params, carry, xs)
    if plan.is_remote:
        return _remote(body, params, carry, xs, plan)
    return _chunked(body, params, carry, xs, plan.chunks)
