"""Gradient checkpointing of the trainer's time loop: every scheme gives plain BPTT's loss and gradients,
the planner's formulas and choices, and the configuration's errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the trainer needs the train extra (pip install 'edgesnn[train]')")
pytest.importorskip("optax", reason="the trainer needs the train extra (pip install 'edgesnn[train]')")

import jax.numpy as jnp  # noqa: E402

from edgesnn.errors import OptionError  # noqa: E402
from tools.train import Trainer, config_from_dict, memplan, timeloop  # noqa: E402
from tools.train import loss as L  # noqa: E402
from tools.train.models import (  # noqa: E402
    build_network,
    forward,
    init_params,
    memory_model,
    plan_report,
    resolve_checkpointing,
)
from tools.train.surrogate import make_spike_fn  # noqa: E402

NETWORKS = {
    "lif": ({"kind": "feedforward", "neuron": "lif", "hidden": [24, 16], "weight_scale": 30.0}, (20,)),
    "adlif": ({"kind": "feedforward", "neuron": "adlif", "hidden": [24], "weight_scale": 30.0}, (20,)),
    "recurrent": ({"kind": "recurrent", "neuron": "adlif", "hidden": [24], "weight_scale": 30.0,
                   "recurrent_scale": 2.0}, (20,)),
    # the CPU spike kernels of tools.train.native (sparse products, the one-product recurrent gradient)
    "recurrent-native": ({"kind": "recurrent", "neuron": "lif", "hidden": [24, 16], "weight_scale": 30.0,
                          "recurrent_scale": 2.0, "native_kernels": True}, (20,)),
    "conv": ({"kind": "conv", "neuron": "cubalif", "hidden": [12], "input_shape": [2, 6, 6], "weight_scale": 60.0,
              "conv": [{"channels": 4, "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1]}]}, (72,)),
}  # fmt: skip
SCHEMES = [
    {"scheme": "standard", "chunks": [5]},
    {"scheme": "hierarchical", "chunks": [12, 4]},
    {"scheme": "remote", "chunks": [6]},
    {"scheme": "remote", "chunks": [8], "remote": "mmap"},
    {"scheme": "double", "chunks": [10, 3]},
]
STEPS, BATCH, CLASSES = 37, 3, 4  # 37 is prime: every scheme has a partial last chunk


def loss_and_grads(model: dict, shape: tuple[int, ...], checkpointing: dict | None, *, record: bool = False):
    raw = {"model": {"native_kernels": False, **model, "readout_scale": 4.0}, "loss": {"readout": "mean"}}
    if checkpointing is not None:
        raw["train"] = {"checkpointing": checkpointing}
    cfg = config_from_dict(raw)
    net = build_network(cfg, shape, CLASSES)
    params = init_params(net, cfg, jax.random.key(0))
    x = (jax.random.uniform(jax.random.key(1), (STEPS, BATCH, math.prod(shape))) < 0.3).astype(jnp.float32)
    spike = make_spike_fn("fast_sigmoid", 10.0)

    def f(p):
        trace, spikes = forward(net, spike, p, x, record=record)
        value = L.cross_entropy(L.logits(trace, "mean"), jnp.arange(BATCH) % CLASSES)
        if record:
            value = value + sum(jnp.mean(jnp.sum(z, axis=0) if z.ndim > 2 and checkpointing is None else z)
                                for z in spikes.values()) * 1e-3  # fmt: skip
        return value

    return jax.jit(jax.value_and_grad(f))(params)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_every_scheme_gives_plain_bptt_gradients(name):
    model, shape = NETWORKS[name]
    want_value, want = loss_and_grads(model, shape, None)
    assert abs(float(want_value) - math.log(CLASSES)) > 1e-3  # the network is active: the loss is not chance
    leaves = jax.tree_util.tree_leaves(want)
    weights = [g for path, g in jax.tree_util.tree_leaves_with_path(want) if str(path[-1]) in ("['w']", "['w_rec']")]
    assert weights and all(float(jnp.max(jnp.abs(g))) > 0 for g in weights)  # every weight gets a gradient
    for scheme in SCHEMES:
        if scheme.get("remote") == "mmap":
            continue  # the same loop as host memory; tested on the closed form below
        value, got = loss_and_grads(model, shape, scheme)
        np.testing.assert_allclose(float(value), float(want_value), rtol=1e-5, err_msg=str(scheme))
        for g, w in zip(jax.tree_util.tree_leaves(got), leaves, strict=True):
            scale = float(jnp.max(jnp.abs(w))) + 1e-12
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-5 * scale, err_msg=str(scheme))


def test_recorded_spikes_are_counts_under_checkpointing():
    model, shape = NETWORKS["recurrent"]
    _, want = loss_and_grads(model, shape, None, record=True)
    _, got = loss_and_grads(model, shape, {"scheme": "double", "chunks": [9, 3]}, record=True)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-6)


def test_timeloop_scan_equals_lax_scan_on_a_closed_form():
    # c_t = a c_{t-1} + x_t: the loop's value and its gradient in a have closed forms
    def body(a, c, x):
        c = a * c + x
        return c, c

    a, xs = jnp.float32(0.9), jnp.arange(1.0, 24.0, dtype=jnp.float32)
    for scheme in SCHEMES:
        plan = timeloop.Checkpointing(scheme["scheme"], tuple(scheme["chunks"]), scheme.get("remote", "host"))

        def total(a, plan=plan):
            return jnp.sum(timeloop.scan(body, a, jnp.float32(0.0), xs, plan)[1])

        t = np.arange(1, 24)
        # sum_t c_t with c_t = sum_{s<=t} a^(t-s) x_s
        c = np.array([sum(0.9 ** (n - s) * (s + 1) for s in range(n + 1)) for n in range(23)])
        np.testing.assert_allclose(float(total(a)), c.sum(), rtol=1e-5)
        dc = np.array([sum((n - s) * 0.9 ** (n - s - 1) * (s + 1) for s in range(n)) for n in range(23)])
        np.testing.assert_allclose(float(jax.grad(total)(a)), dc.sum(), rtol=1e-4)
        assert len(t) == 23


def test_planner_formulas_and_optimum():
    m = memplan.MemoryModel(state_bytes=100.0, residual_bytes_per_step=400.0)
    t = 10_000
    plain = memplan.predict(timeloop.Checkpointing(), t, 1, m)
    assert plain.local_bytes == t * 400 and plain.extra_forwards == 0 and plain.time_factor == 1.0
    k = round(math.sqrt(t * 100 / 400))  # 50: minimises T/k s + k r
    std = memplan.predict(timeloop.Checkpointing("standard", (k,)), t, 1, m)
    assert std.local_bytes == pytest.approx(2 * math.sqrt(t * 100 * 400), rel=1e-9)
    assert memplan.default_chunks("standard", t, m) == (k,)
    assert std.time_factor == pytest.approx(4 / 3)
    double = memplan.predict(timeloop.Checkpointing("double", (1000, 16)), t, 2, m)
    assert double.local_bytes == 2 * (2 * 100 + math.ceil(1000 / 16) * 100 + 16 * 400)
    assert double.remote_bytes == 2 * 10 * 100 and double.extra_forwards == 2


def test_nested_schemes_pay_for_inner_checkpoints_and_the_outer_chunks_input():
    m = memplan.MemoryModel(state_bytes=100.0, residual_bytes_per_step=400.0, inner_state_bytes=250.0,
                            input_bytes_per_step=30.0, stream_bytes_per_step=8.0, fixed_bytes=500.0)  # fmt: skip
    h = memplan.predict(timeloop.Checkpointing("hierarchical", (100, 10)), 1000, 3, m)
    assert h.local_bytes == 3 * (10 * 100 + 10 * 250 + 10 * 400 + 100 * 30 + 1000 * 8) + 500
    r = memplan.predict(timeloop.Checkpointing("remote", (50,)), 1000, 3, m)
    assert r.local_bytes == 3 * (2 * 100 + 50 * 400 + 1000 * 8) + 500 and r.remote_bytes == 3 * 20 * 100


def test_the_fit_recovers_the_terms_of_a_known_loop():
    truth = {"inner_state_bytes": 700.0, "residual_bytes_per_step": 3000.0, "input_bytes_per_step": 1200.0,
             "stream_bytes_per_step": 40.0, "fixed_bytes": 2e5}  # fmt: skip
    model = memplan.MemoryModel(state_bytes=500.0, **truth)

    def measure(plan, steps):
        return memplan.predict(plan, steps, 4, model).local_bytes

    got = memplan.fit(measure, 4, 500.0)
    for name, value in truth.items():
        assert got[name] == pytest.approx(value, rel=1e-6), name


def test_planner_picks_the_cheapest_scheme_that_fits():
    m = memplan.MemoryModel(state_bytes=100.0, residual_bytes_per_step=400.0, fixed_bytes=1000.0)
    t = 10_000
    assert memplan.choose(t, 1, m, 1e9).plan.scheme == "none"
    assert memplan.choose(t, 1, m, 50_000).plan.scheme == "standard"  # 2 sqrt(T s r) = 40,000 fits
    remote = memplan.choose(t, 1, m, 30_000)  # below standard's least: a remote chunk of (budget - 2 s) / r
    assert remote.plan.scheme == "remote" and remote.local_bytes <= 30_000
    (k,) = remote.plan.chunks  # the longest that fits is 72; 50 divides T, so no partial chunk
    assert k == 50 and t % k == 0
    tight = memplan.choose(t, 1, m, 5_000, schemes=["double", "hierarchical"])
    assert tight.plan.scheme in ("double", "hierarchical") and tight.local_bytes <= 5_000
    with pytest.raises(OptionError, match="below what any scheme needs"):
        memplan.choose(t, 1, m, 1_500)


def test_auto_plans_from_the_network_and_logs_a_prediction():
    model, shape = NETWORKS["recurrent"]
    cfg = config_from_dict({"model": {**model, "native_kernels": False},
                            "train": {"checkpointing": {"scheme": "auto", "budget_mib": 3.0}}})  # fmt: skip
    net = build_network(cfg, shape, CLASSES)
    plan = resolve_checkpointing(net, 2000, 8)
    assert plan.scheme != "none"
    report = plan_report(net, 2000, 8)
    plain = memplan.predict(timeloop.Checkpointing(), 2000, 8, memory_model(net, 8))
    assert report.local_bytes <= 3.0 * memplan.MIB < plain.local_bytes  # plain BPTT would not fit
    assert "checkpointing" in report.describe() and "MiB local" in report.describe()
    short = config_from_dict({"model": {**model, "native_kernels": False}, "train": {"checkpointing": "double"}})
    net = build_network(short, shape, CLASSES)
    k1, k2 = resolve_checkpointing(net, 400, 4).chunks
    assert 1 <= k2 <= k1 <= 400


def test_trainer_api_trains_under_double_checkpointing():
    cfg = config_from_dict({"model": {"hidden": [8], "native_kernels": False, "dropout": 0.1},
                            "train": {"checkpointing": {"scheme": "double", "chunks": [8, 2]}}})  # fmt: skip
    t = Trainer(cfg, (6,), 3, total_steps=2)
    x = (np.random.default_rng(0).random((4, 20, 6)) < 0.3).astype(np.float32)
    first = t.step(x, np.array([0, 1, 2, 0]))
    second = t.step(x, np.array([0, 1, 2, 0]))
    assert np.isfinite(first["loss"]) and np.isfinite(second["loss"])


@pytest.mark.parametrize(
    ("train", "path", "message"),
    [
        ({"checkpointing": {"scheme": "triple"}}, "train/checkpointing/scheme", "expected one of none, standard"),
        ({"checkpointing": {"scheme": "auto"}}, "train/checkpointing/budget_mib", "needs budget_mib"),
        ({"checkpointing": {"scheme": "standard", "chunks": [0]}}, "train/checkpointing/chunks/0", ">= 1"),
        ({"checkpointing": {"scheme": "double", "chunks": [4]}}, "train/checkpointing/chunks", "2 chunk size"),
        ({"checkpointing": {"scheme": "double", "chunks": [4, 8]}}, "train/checkpointing/chunks", "inner chunk"),
        ({"checkpointing": {"scheme": "remote", "remote": "disk"}}, "train/checkpointing/remote", "host, mmap"),
        ({"checkpoint": "standard"}, "train", "unknown key"),
    ],
)
def test_bad_checkpointing_options_name_the_key(train, path, message):
    with pytest.raises(OptionError, match=message) as info:
        build_network(config_from_dict({"model": {"hidden": [4]}, "train": train}), (3,), 2)
    assert info.value.path.startswith(path)


def test_a_training_run_under_checkpointing_logs_its_plan(tmp_path, caplog):
    from tools.train import train

    data = {"kind": "synthetic", "n_classes": 3, "channels": 12, "segments": 3, "duration_s": 0.05,
            "n_train": 32, "n_val": 16, "n_test": 16}  # fmt: skip
    cfg = config_from_dict({"data": data, "epochs": 1, "batch_size": 16,
                            "model": {"kind": "recurrent", "hidden": [8], "native_kernels": False},
                            "loss": {"max_rate_hz": 20.0, "rate_weight": 0.1},
                            "train": {"checkpointing": {"scheme": "double", "chunks": [16, 4]}}})  # fmt: skip
    with caplog.at_level("INFO", logger="edgesnn.train"):
        summary = train(cfg, tmp_path, quiet=True)
    assert np.isfinite(summary["history"][-1]["train_loss"])
    assert any("checkpointing double chunks [16, 4]" in r.getMessage() for r in caplog.records)


def test_time_major_batches_hold_the_same_samples():
    from tools.train.data import take_batch

    x = np.arange(5 * 7 * 3, dtype=np.float32).reshape(5, 7, 3)
    idx = np.array([4, 0, 2])
    tm = take_batch(x, idx, time_major=True)
    assert tm.shape == (7, 3, 3) and tm.ctypes.data % 64 == 0
    np.testing.assert_array_equal(tm, np.swapaxes(x[idx], 0, 1))


def test_remote_schemes_are_refused_for_data_parallel_training():
    import optax
    from jax.sharding import Mesh

    from tools.train.config import LossConfig, SurrogateConfig
    from tools.train.trainer import make_steps

    cfg = config_from_dict({"model": {"hidden": [4]}, "train": {"checkpointing": "double"}})
    net = build_network(cfg, (3,), 2)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    with pytest.raises(OptionError, match="one process") as info:
        make_steps(net, SurrogateConfig(), LossConfig(), optax.adam(1e-3), mesh)
    assert info.value.path == "train/checkpointing/scheme"
