"""Sparse spike products: the same currents and gradients as XLA's dense products, skipping the zeros."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402

from tools.train import config_from_dict  # noqa: E402
from tools.train import native as sparse  # noqa: E402
from tools.train.models import build_network, forward, init_params  # noqa: E402
from tools.train.surrogate import make_spike_fn  # noqa: E402

pytestmark = pytest.mark.skipif(not sparse.available(), reason="no C++ compiler for the spike kernels")


def _spikes(shape, p, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) < p).astype(np.float32) * rng.integers(1, 3, shape).astype(np.float32)


@pytest.mark.parametrize("input_grad", [True, False])
def test_the_product_and_its_gradients_equal_the_dense_ones(input_grad):
    x = _spikes((300, 37), 0.05)  # 37: a tail after the groups of eight
    w = np.random.default_rng(1).normal(size=(19, 37)).astype(np.float32)

    def loss(fn):
        return lambda x, w: jnp.sum(jnp.sin(fn(x, w)))

    dense = jax.grad(loss(lambda x, w: x @ w.T), argnums=(0, 1))(x, w)
    got = jax.jit(jax.grad(loss(lambda x, w: sparse.spike_project(x, w, input_grad=input_grad)), argnums=(0, 1)))(x, w)
    np.testing.assert_allclose(sparse.spike_project(x, w), x @ w.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1], dense[1], rtol=1e-4, atol=1e-4)
    if input_grad:
        np.testing.assert_allclose(got[0], dense[0], rtol=1e-4, atol=1e-4)
    else:
        assert not np.any(got[0])  # data: no gradient flows to it


def test_the_recurrent_product_inside_a_time_loop_has_the_dense_gradients():
    z = _spikes((50, 8, 33), 0.05)  # (T, B, N): the spikes each step feeds back
    wt = np.random.default_rng(2).normal(size=(33, 33)).astype(np.float32)

    def loss(fn):
        def run(z, wt):
            _, out = jax.lax.scan(lambda c, zt: (c + jnp.tanh(fn(zt, wt)), jnp.sum(c)), jnp.zeros((8, 33)), z)
            return jnp.sum(out)

        return run

    dense = jax.grad(loss(lambda z, wt: z @ wt), argnums=(0, 1))(z, wt)
    got = jax.jit(jax.grad(loss(sparse.spike_matmul), argnums=(0, 1)))(z, wt)
    for a, b in zip(got, dense, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


def test_nan_counts_and_negative_zero_does_not():
    x = np.zeros((2, 9), np.float32)
    x[0, 8], x[1, 3] = np.nan, -0.0
    out = np.asarray(sparse.spike_project(x, np.ones((4, 9), np.float32)))
    assert np.all(np.isnan(out[0])) and np.all(out[1] == 0)


def test_a_network_trains_to_the_same_gradients_with_either_product():
    cfg = {"dt_s": 1e-3, "model": {"hidden": [24, 16], "kind": "recurrent", "neuron": "adlif", "weight_scale": 20.0}}
    x = jnp.asarray(_spikes((40, 6, 30), 0.05))
    grads = []
    for flag in (True, False):
        c = config_from_dict({**cfg, "model": {**cfg["model"], "native_kernels": flag}})
        net = build_network(c, (30,), 5)
        params = init_params(net, c, jax.random.key(0))
        spike = make_spike_fn("fast_sigmoid", 10.0)

        def loss(p, net=net, spike=spike):
            return jnp.sum(forward(net, spike, p, x)[0] ** 2)

        grads.append(jax.grad(loss)(params))
    for a, b in zip(jax.tree_util.tree_leaves(grads[0]), jax.tree_util.tree_leaves(grads[1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)


def test_the_dense_switch_is_honoured(monkeypatch):
    monkeypatch.setenv("EDGESNN_DENSE_PRODUCTS", "1")
    sparse.available.cache_clear()
    try:
        assert not sparse.available()
    finally:
        monkeypatch.delenv("EDGESNN_DENSE_PRODUCTS")
        sparse.available.cache_clear()
    assert sparse.available()
