"""The trainer's native kernels (XLA FFI custom calls on the CPU): products with spike matrices.

They skip the zeros: ``x @ w.T`` and its weight gradient by gather-accumulate.

A dense layer's input current for all T steps is one product ``x (T*B, C) @ w.T``; with spikes most of
``x`` is zero. XLA's own CPU gather and scatter are slower than its dense product at the benchmarks'
2 % activity (36 ms against 8.6 ms for 3200x700 @ 700x256, one thread), and a ``pure_callback`` costs
more in copies than it saves, so the two products that only read ``x`` (the forward current and the
weight gradient ``x.T @ dI``) are XLA FFI custom calls (``kernels/spikes.cc``) that visit each
non-zero once: 2.7 ms against 4.6 ms forward on that shape. The input gradient ``dI @ w`` (needed
when ``x`` is a hidden layer's spikes) is dense and stays in XLA. The sums are the dense product's,
added in another order (float32 rounding apart).

A LIF population fused over the whole sequence (forward and backward in one custom call, in
place of the ``lax.scan``) was built and measured, and is not here: its gradients matched the scan's,
but at 32x256 neurons and T = 1000 the step is bound by memory traffic (each (T, B, N) float32
tensor is 32 MB; XLA writing two such outputs takes 15 ms on this machine), and end to end it was
no faster than XLA's scan (700-256-20 at T = 1000: 5.2 steps/s either way).

Sparse BPTT (:func:`sparse_project`, config ``train.sparse``) goes further, after Finkbeiner et al.
(AAAI-24): each (step, sample) row of spikes becomes a buffer of at most ``capacity`` neuron ids, the
spikes first and then the neurons above the second threshold (whose surrogate gradient is non-zero),
and all three products visit only the listed ids: the current gathers rows of ``w.T``, the weight
gradient scatters rows of the output gradient, and the input gradient is one dot product per listed
id (zero elsewhere, where the input's surrogate derivative is zero anyway). What does not fit is
dropped and counted, never silently.

The kernels are compiled on first use with the C++ compiler (``$CXX``, else ``g++``) against the
headers jaxlib ships, into ``$XDG_CACHE_HOME/edgesnn`` (default ``~/.cache/edgesnn``), keyed by the
source and jax's version; without a compiler the products are XLA's dense ones, with one log line.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp

log = logging.getLogger("edgesnn.train")

SOURCE = Path(__file__).with_name("kernels") / "spikes.cc"
TARGETS = {
    "matmul": "edgesnn_spike_matmul",
    "outer": "edgesnn_spike_outer",
    "buffer": "edgesnn_spike_buffer",
    "gather": "edgesnn_gather_accumulate",
    "scatter": "edgesnn_scatter_outer",
    "dot": "edgesnn_gather_dot",
}
SYMBOLS = {
    "matmul": "SpikeMatmul",
    "outer": "SpikeOuter",
    "buffer": "SpikeBuffer",
    "gather": "GatherAccumulate",
    "scatter": "ScatterOuter",
    "dot": "GatherDot",
}


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgesnn"


def _build(source: Path, out: Path) -> None:
    """Compile ``source`` into the shared library ``out`` (written atomically)."""
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        raise OSError("no C++ compiler (g++) found")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".spikes-", suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        cmd = [cxx, "-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w",
               f"-I{jax.ffi.include_dir()}", str(source), "-o", tmp]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise OSError(f"{cxx} failed: {done.stderr.strip()[-500:]}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def available() -> bool:
    """Whether the kernels are built and registered (else :func:`spike_project` is XLA's dense product)."""
    if os.environ.get("EDGESNN_DENSE_PRODUCTS") == "1":
        return False
    key = hashlib.sha256(SOURCE.read_bytes() + jax.__version__.encode()).hexdigest()[:16]
    lib_path = _cache_dir() / f"train-kernels-{key}.so"
    try:
        if not lib_path.exists():
            _build(SOURCE, lib_path)
        lib = ctypes.cdll.LoadLibrary(str(lib_path))
    except OSError as exc:
        log.info("sparse spike products unavailable (%s); using dense products", exc)
        return False
    for name, target in TARGETS.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, SYMBOLS[name])), platform="cpu")
    return True


def _matmul(x: jax.Array, wt: jax.Array) -> jax.Array:
    out = jax.ShapeDtypeStruct((x.shape[0], wt.shape[1]), jnp.float32)
    return jax.ffi.ffi_call(TARGETS["matmul"], out, vmap_method="sequential")(x, wt)


def _outer(x: jax.Array, g: jax.Array) -> jax.Array:
    out = jax.ShapeDtypeStruct((x.shape[1], g.shape[1]), jnp.float32)
    return jax.ffi.ffi_call(TARGETS["outer"], out, vmap_method="sequential")(x, g)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _project(x: jax.Array, w: jax.Array, input_grad: bool) -> jax.Array:
    return _matmul(x, w.T)


def _project_fwd(x: jax.Array, w: jax.Array, input_grad: bool):  # type: ignore[no-untyped-def]
    return _matmul(x, w.T), (x, w)


def _project_bwd(input_grad: bool, res, g):  # type: ignore[no-untyped-def]
    x, w = res
    dw = _outer(x, g).T
    dx = g @ w if input_grad else None  # data: no gradient, and no array of zeros made for it
    return dx, dw


_project.defvjp(_project_fwd, _project_bwd)


def spike_project(x: jax.Array, w: jax.Array, *, input_grad: bool = True) -> jax.Array:
    """``x (R, C) @ w (N, C).T`` over the non-zeros of ``x``; ``input_grad=False`` where ``x`` is data."""
    if jax.default_backend() != "cpu" or not available():
        return x @ w.T
    return _project(x.astype(jnp.float32), w.astype(jnp.float32), input_grad)


@jax.custom_vjp
def _matmul_t(x: jax.Array, wt: jax.Array) -> jax.Array:
    return _matmul(x, wt)


def _matmul_t_fwd(x: jax.Array, wt: jax.Array):  # type: ignore[no-untyped-def]
    return _matmul(x, wt), (x, wt)


def _matmul_t_bwd(res, g):  # type: ignore[no-untyped-def]
    x, wt = res
    return g @ wt.T, _outer(x, g)


_matmul_t.defvjp(_matmul_t_fwd, _matmul_t_bwd)


def spike_matmul(x: jax.Array, wt: jax.Array) -> jax.Array:
    """``x (R, C) @ wt (C, N)`` over the non-zeros of ``x`` (a recurrent edge's spikes, inside the time loop).

    ``wt`` is the transposed weight, made once outside the loop: a custom call takes its
    operands contiguous, so passing ``w.T`` here would copy the matrix at every step.
    The gradient to ``x`` is dense (``g @ wt.T``), the weight's skips the zeros of ``x``.
    """
    if jax.default_backend() != "cpu" or not available():
        return x @ wt
    return _matmul_t(x.astype(jnp.float32), wt.astype(jnp.float32))


def spike_outer(x: jax.Array, g: jax.Array) -> jax.Array:
    """``x (R, C).T @ g (R, N)`` over the non-zeros of ``x`` (a weight gradient; no gradient of its own)."""
    if jax.default_backend() != "cpu" or not available():
        return x.T @ g
    return _outer(x.astype(jnp.float32), g.astype(jnp.float32))


# -- sparse BPTT: capacity-bounded spike buffers ----------------------------------------------------
def capacity_of(size: int, max_activity: float) -> int:
    """Ids per (step, sample) buffer of a layer of ``size`` neurons at ``max_activity`` (at least 1)."""
    return max(1, min(size, math.ceil(max_activity * size)))


def _buffer(x: jax.Array, near: jax.Array, capacity: int) -> tuple[jax.Array, ...]:
    r = x.shape[0]
    out = (jax.ShapeDtypeStruct((r, capacity), jnp.int32), jax.ShapeDtypeStruct((r, capacity), jnp.float32),
           jax.ShapeDtypeStruct((r, 2), jnp.int32), jax.ShapeDtypeStruct((4,), jnp.int32))  # fmt: skip
    return jax.ffi.ffi_call(TARGETS["buffer"], out, vmap_method="sequential")(x, near)


def _call(target: str, shape: tuple[int, int], *args: jax.Array) -> jax.Array:
    out = jax.ShapeDtypeStruct(shape, jnp.float32)
    return jax.ffi.ffi_call(TARGETS[target], out, vmap_method="sequential")(*args)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _sparse(x: jax.Array, near: jax.Array, w: jax.Array, capacity: int) -> tuple[jax.Array, jax.Array]:
    (y, tally), _ = _sparse_fwd(x, near, w, capacity)
    return y, tally


def _sparse_fwd(x: jax.Array, near: jax.Array, w: jax.Array, capacity: int):  # type: ignore[no-untyped-def]
    ids, vals, counts, tally = _buffer(x, near, capacity)
    y = _call("gather", (x.shape[0], w.shape[0]), ids, vals, counts, w.T)
    # the residuals are the buffers, not x: (R, capacity) ids and values instead of (R, C) floats
    return (y, tally), (ids, vals, counts, w, near.ndim == 2)


def _sparse_bwd(capacity: int, res, cts):  # type: ignore[no-untyped-def]
    ids, vals, counts, w, input_grad = res
    g = cts[0]
    dwt = _call("scatter", (w.shape[1], w.shape[0]), ids, vals, counts, g)
    dx = _call("dot", (g.shape[0], w.shape[1]), ids, counts, g, w.T) if input_grad else None
    return dx, None, dwt.T


_sparse.defvjp(_sparse_fwd, _sparse_bwd)


def buffer_masks(x: jax.Array, near: jax.Array | None, capacity: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The buffers' selection as dense masks: (spikes kept, entries kept, tally), in pure jax.numpy.

    The same rule as the kernel's: the first ``capacity`` non-zeros of a row by column, then the
    first gradient-only neurons the spikes leave room for.
    """
    nz = x != 0
    rank = jnp.cumsum(nz, axis=1, dtype=jnp.int32)
    kept = nz & (rank <= capacity)
    n_spikes = jnp.sum(nz, axis=1, dtype=jnp.int32)
    seen = jnp.sum(n_spikes)
    dropped = jnp.sum(jnp.maximum(n_spikes - capacity, 0))
    if near is None:
        zero = jnp.int32(0)
        return kept, kept, jnp.stack([seen, dropped, zero, zero])
    only = (near != 0) & ~nz
    room = capacity - jnp.minimum(n_spikes, capacity)
    g_rank = jnp.cumsum(only, axis=1, dtype=jnp.int32)
    g_kept = only & (g_rank <= room[:, None])
    n_only = jnp.sum(only, axis=1, dtype=jnp.int32)
    tally = jnp.stack([seen, dropped, jnp.sum(n_only), jnp.sum(jnp.maximum(n_only - room, 0))])
    return kept, kept | g_kept, tally


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _masked(x: jax.Array, near: jax.Array, w: jax.Array, capacity: int) -> tuple[jax.Array, jax.Array]:
    (y, tally), _ = _masked_fwd(x, near, w, capacity)
    return y, tally


def _masked_fwd(x: jax.Array, near: jax.Array, w: jax.Array, capacity: int):  # type: ignore[no-untyped-def]
    gated = near.ndim == 2
    kept, entries, tally = buffer_masks(x, near if gated else None, capacity)
    xk = jnp.where(kept, x, 0.0)
    return (xk @ w.T, tally), (xk, entries, w, gated)


def _masked_bwd(capacity: int, res, cts):  # type: ignore[no-untyped-def]
    xk, entries, w, gated = res
    g = cts[0]
    dx = jnp.where(entries, g @ w, 0.0) if gated else None
    return dx, None, (xk.T @ g).T


_masked.defvjp(_masked_fwd, _masked_bwd)


def sparse_project(
    x: jax.Array, w: jax.Array, capacity: int, near: jax.Array | None = None, *, kernels: bool | None = None
) -> tuple[jax.Array, jax.Array]:
    """``x (R, C) @ w (N, C).T`` through a buffer of ``capacity`` ids per row; returns (current, tally).

    ``near`` (R, C), non-zero where the input's surrogate gradient is non-zero, lists the ids the
    input gradient is computed at; without it ``x`` is data and gets no gradient. ``tally`` is
    (spikes seen, spikes dropped, gradient entries seen, gradient entries dropped), int32.
    ``kernels=False`` computes the same selection densely in XLA (other backends, and the tests'
    reference); the default uses the native kernels where they are available.
    """
    if kernels is None:
        kernels = jax.default_backend() == "cpu" and available()
    x = x.astype(jnp.float32)
    near = jnp.zeros((0,), jnp.uint8) if near is None else near.astype(jnp.uint8)
    fn = _sparse if kernels else _masked
    return fn(x, near, w.astype(jnp.float32), capacity)
