"""Sparse BPTT (config train.sparse): spikes as capacity-bounded id buffers, the two-threshold surrogate,
gather-accumulate products forward and backward; gradients equal the dense ones while nothing overflows."""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the trainer needs the train extra (pip install 'edgesnn[train]')")
pytest.importorskip("optax", reason="the trainer needs the train extra (pip install 'edgesnn[train]')")

import jax.numpy as jnp  # noqa: E402

from edgesnn.errors import OptionError  # noqa: E402
from tools.train import Trainer, config_from_dict, native  # noqa: E402
from tools.train.models import build_network, forward, forward_tallies, init_params  # noqa: E402
from tools.train.surrogate import make_spike_fn  # noqa: E402

kernels = pytest.mark.skipif(not native.available(), reason="no C++ compiler for the spike kernels")

NETWORKS = {
    "lif": ({"kind": "feedforward", "neuron": "lif", "hidden": [24, 16], "weight_scale": 30.0}, (20,)),
    "adlif": ({"kind": "feedforward", "neuron": "adlif", "hidden": [24, 16], "weight_scale": 30.0}, (20,)),
    "recurrent": ({"kind": "recurrent", "neuron": "lif", "hidden": [24, 16], "weight_scale": 30.0,
                   "recurrent_scale": 2.0}, (20,)),
    "conv": ({"kind": "conv", "neuron": "cubalif", "hidden": [12], "input_shape": [2, 6, 6], "weight_scale": 60.0,
              "conv": [{"channels": 4, "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1]}]}, (72,)),
}  # fmt: skip
STEPS, BATCH, CLASSES = 30, 3, 4


def _spikes(shape, p, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) < p).astype(np.float32) * rng.integers(1, 3, shape).astype(np.float32)


@kernels
@pytest.mark.parametrize("capacity", [37, 5, 2])  # 37: room for everything; 5 and 2 overflow
@pytest.mark.parametrize("gated", [True, False])
def test_the_kernels_select_and_compute_what_the_dense_reference_does(capacity, gated):
    x = _spikes((300, 37), 0.1)  # 37 columns: two groups of sixteen and a tail
    near = (np.random.default_rng(1).random((300, 37)) < 0.2).astype(np.uint8) if gated else None
    w = np.random.default_rng(2).normal(size=(19, 37)).astype(np.float32)

    def run(use_kernels):
        def f(x, w):
            y, tally = native.sparse_project(x, w, capacity, near, kernels=use_kernels)
            return jnp.sum(jnp.sin(y)), tally

        return jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))(x, w)

    (mine, tally), (dx, dw) = run(True)
    (ref, ref_tally), (ref_dx, ref_dw) = run(False)
    np.testing.assert_array_equal(tally, ref_tally)
    assert tally[0] == np.count_nonzero(x)
    assert (tally[1] > 0) == (capacity < 37)
    np.testing.assert_allclose(mine, ref, rtol=1e-5)
    np.testing.assert_allclose(dw, ref_dw, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-4, atol=1e-4)
    if not gated:
        assert not np.any(dx)  # the data gets no gradient


def test_the_buffer_keeps_the_first_spikes_then_the_second_thresholds_list():
    x = np.array([[0, 2, 0, 1, 1, 0]], np.float32)
    near = np.array([[1, 1, 0, 0, 0, 1]], np.uint8)
    kept, entries, tally = native.buffer_masks(jnp.asarray(x), jnp.asarray(near), 4)
    np.testing.assert_array_equal(kept, [[0, 1, 0, 1, 1, 0]])  # three spikes fit
    np.testing.assert_array_equal(entries, [[1, 1, 0, 1, 1, 0]])  # one of two near-only neurons fits
    np.testing.assert_array_equal(tally, [3, 0, 2, 1])
    kept, _, tally = native.buffer_masks(jnp.asarray(x), None, 2)
    np.testing.assert_array_equal(kept, [[0, 1, 0, 1, 0, 0]])
    np.testing.assert_array_equal(tally, [3, 1, 0, 0])


def test_the_gated_surrogate_is_zero_at_and_below_the_second_threshold():
    v = jnp.linspace(0.0, 1.5, 31)
    plain = jax.vmap(jax.grad(lambda v: make_spike_fn("fast_sigmoid", 10.0)(v, 1.0)))(v)
    gated = jax.vmap(jax.grad(lambda v: make_spike_fn("fast_sigmoid", 10.0, 0.9)(v, 1.0)))(v)
    np.testing.assert_array_equal(gated, np.where(v > 0.9, plain, 0.0))
    np.testing.assert_array_equal(make_spike_fn(gate=0.9)(v, 1.0), v > 1.0)  # the forward pass is unchanged


def _sparse_and_dense(model, shape, capacity):
    cfg = config_from_dict({"model": {**model, "readout_scale": 4.0}, "loss": {"readout": "mean"},
                            "train": {"sparse": {"enabled": True, "max_activity": capacity}}})  # fmt: skip
    net = build_network(cfg, shape, CLASSES)
    params = init_params(net, cfg, jax.random.key(0))
    x = (jax.random.uniform(jax.random.key(1), (STEPS, BATCH, math.prod(shape))) < 0.3).astype(jnp.float32)
    spike = make_spike_fn("fast_sigmoid", 10.0, net.gate)  # both with the second threshold's surrogate

    def grads(net):
        def f(p):
            trace, _, tallies = forward_tallies(net, spike, p, x)
            return jnp.sum(jnp.sin(trace)), tallies

        return jax.jit(jax.value_and_grad(f, has_aux=True))(params)

    return grads(net), grads(dataclasses.replace(net, sparse=None))


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_sparse_gradients_equal_the_dense_ones_when_nothing_overflows(name):
    model, shape = NETWORKS[name]
    ((value, tallies), g), ((ref, none), ref_g) = _sparse_and_dense(model, shape, 1.0)
    assert none == {}
    hidden = [t for layer, t in tallies.items() if layer != "hidden0" or name == "conv"]
    assert all(int(t[0]) > 0 and int(t[2]) > 0 for t in hidden)  # spikes and gradient entries to list
    assert not any(int(t[1]) or int(t[3]) for t in tallies.values())
    np.testing.assert_allclose(value, ref, rtol=1e-5)
    for mine, theirs in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(ref_g), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5 * float(np.max(np.abs(theirs)) + 1e-30))


def test_overflow_is_counted_and_changes_the_result():
    model, shape = NETWORKS["lif"]
    ((value, tallies), _), ((ref, _), _) = _sparse_and_dense(model, shape, 0.05)
    assert int(tallies["hidden0"][1]) > 0  # 30 % input activity in buffers of 5 %
    assert not np.isclose(value, ref)


@pytest.mark.parametrize(
    ("train", "model", "path", "message"),
    [
        ({"sparse": {"enabled": True, "max_activity": 0}}, {}, "train/sparse/max_activity", "in (0, 1]"),
        ({"sparse": {"enabled": True, "second_threshold": 1.5}}, {}, "train/sparse/second_threshold", "[0, 1]"),
        ({"sparse": {"enabled": "yes"}}, {}, "train/sparse/enabled", "true or false"),
        ({"sparse": True, "checkpointing": "double"}, {}, "train/sparse/enabled", "checkpointing/scheme none"),
        ({"sparse": True}, {"kind": "gru"}, "train/sparse/enabled", "GRU"),
        ({"sparse": {"capacity": 3}}, {}, "train/sparse", "unknown key"),
    ],
)
def test_bad_sparse_options_name_the_key(train, model, path, message):
    with pytest.raises(OptionError, match=re.escape(message)) as info:
        build_network(config_from_dict({"model": {"hidden": [4], **model}, "train": train}), (3,), 2)
    assert info.value.path.startswith(path)


def test_the_trainer_reports_buffer_tallies_and_exports_the_dense_network(tmp_path):
    import edgesnn

    cfg = config_from_dict({"model": {"hidden": [16], "weight_scale": 20.0}, "train": {"sparse": True}})
    t = Trainer(cfg, (6,), 3, total_steps=2)
    x = (np.random.default_rng(0).random((4, 20, 6)) < 0.3).astype(np.float32)
    out = t.step(x, np.array([0, 1, 2, 0]))
    assert np.isfinite(out["loss"])
    assert set(out["sparse_buffers"]) == {"hidden0", "readout"}
    assert out["sparse_buffers"]["hidden0"]["spikes"] == int(np.count_nonzero(x))
    t.export(tmp_path / "m.esnn")
    model = edgesnn.load(tmp_path / "m.esnn")
    scores = model.session(batch=4).run({"input": np.swapaxes(x, 0, 1)})[model.outputs[0].name]
    # the bundle runs the ordinary dense network: the runtime's trace is the trainer's dense forward pass
    dense = dataclasses.replace(t.net, sparse=None)
    trace, _ = forward(dense, make_spike_fn(), t.params, jnp.swapaxes(x, 0, 1))
    np.testing.assert_allclose(scores, trace, rtol=1e-4, atol=1e-5)


def test_a_training_run_logs_overflowing_buffers(tmp_path, caplog):
    from tools.train import train

    data = {"kind": "synthetic", "n_classes": 3, "channels": 12, "segments": 3, "duration_s": 0.05,
            "n_train": 32, "n_val": 16, "n_test": 16}  # fmt: skip
    cfg = config_from_dict({"data": data, "epochs": 1, "batch_size": 16, "model": {"hidden": [8]},
                            "train": {"sparse": {"enabled": True, "max_activity": 0.2,
                                                 "input_max_activity": 0.01}}})  # fmt: skip
    with caplog.at_level("INFO", logger="edgesnn.train"):
        summary = train(cfg, tmp_path, quiet=True)
    buffers = summary["history"][-1]["sparse_buffers"]
    assert buffers["hidden0"]["spikes_dropped"] > 0  # one id per step for the data
    assert any("overflowed" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert any("sparse buffers (dropped/seen)" in r.getMessage() for r in caplog.records)


def test_the_trainer_process_keeps_freed_memory():
    code = "from tools.train.allocator import keep_freed_memory as k; print(k())"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "EDGESNN_KEEP_MEMORY": "0"})  # fmt: skip
    assert on.stdout.strip() == ("True" if sys.platform.startswith("linux") else "False")
    assert off.stdout.strip() == "False"
