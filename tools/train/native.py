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

The kernels are compiled on first use with the C++ compiler (``$CXX``, else ``g++``) against the
headers jaxlib ships, into ``$XDG_CACHE_HOME/edgesnn`` (default ``~/.cache/edgesnn``), keyed by the
source and jax's version; without a compiler the products are XLA's dense ones, with one log line.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp

log = logging.getLogger("edgesnn.train")

SOURCE = Path(__file__).with_name("kernels") / "spikes.cc"
TARGETS = {"matmul": "edgesnn_spike_matmul", "outer": "edgesnn_spike_outer"}
SYMBOLS = {"matmul": "SpikeMatmul", "outer": "SpikeOuter"}


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
