"""The JAX trainer (tools.train): same dynamics as the runtime, deterministic, resumable, and it learns."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the trainer needs the train extra (pip install 'edgesnn[train]')")
pytest.importorskip("optax", reason="the trainer needs the train extra (pip install 'edgesnn[train]')")
pytest.importorskip("tqdm", reason="the trainer needs the train extra (pip install 'edgesnn[train]')")

import jax.numpy as jnp  # noqa: E402

from edgesnn.bundle import read_bundle, write_bundle  # noqa: E402
from edgesnn.engine import SessionOptions, available_backends  # noqa: E402
from edgesnn.errors import OptionError, StateError  # noqa: E402
from edgesnn.graph import LI, LIF, AdaptiveLIF, CubaLIF  # noqa: E402
from edgesnn.neurons import discretise  # noqa: E402
from tools.train import config_from_dict, load_config, to_model, train  # noqa: E402
from tools.train import neurons as N  # noqa: E402
from tools.train.__main__ import main  # noqa: E402
from tools.train.checkpoint import load_checkpoint  # noqa: E402
from tools.train.data import load_dataset  # noqa: E402
from tools.train.models import build_network, forward, init_params  # noqa: E402
from tools.train.surrogate import make_spike_fn  # noqa: E402
from tools.train.trainer import BUNDLE, CHECKPOINT, SUMMARY, make_optimizer  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(__file__), os.pardir, "tools", "train", "configs")
TINY_DATA = {"kind": "synthetic", "n_classes": 3, "channels": 12, "segments": 3, "duration_s": 0.05,
             "n_train": 64, "n_val": 32, "n_test": 32}  # fmt: skip


def tiny_config(epochs: int = 2, **model: object) -> dict:
    """A small synthetic experiment that compiles and trains in about a second."""
    return {"name": "tiny", "seed": 3, "dt_s": 1e-3, "epochs": epochs, "batch_size": 16, "eval_batch_size": 32,
            "data": TINY_DATA,
            "model": {"hidden": [16], "weight_scale": 5.0, "readout_scale": 10.0, "tau_jitter": 0.5, **model},
            "optimizer": {"lr": 0.02}}  # fmt: skip


# -- the discrete dynamics are the runtime's ------------------------------------------------------


@pytest.mark.parametrize("method", ["zoh", "euler", "cascade", "cascade-euler"])
@pytest.mark.parametrize("kind", ["li", "lif", "cubalif", "adlif"])
def test_coefficients_equal_the_runtime_discretisation(kind: str, method: str) -> None:
    rng = np.random.default_rng(0)
    n = 64
    p = {"tau_mem_s": rng.uniform(2e-3, 0.2, n).astype(np.float32),
         "tau_syn_s": rng.uniform(2e-3, 0.05, n).astype(np.float32),
         "tau_adapt_s": rng.uniform(0.01, 1.0, n).astype(np.float32),
         "a_coupling": rng.normal(0, 1, n).astype(np.float32), "b_spike": rng.uniform(0, 2, n).astype(np.float32),
         "v_threshold": rng.uniform(0.5, 2, n).astype(np.float32)}  # fmt: skip
    node = {
        "li": lambda: LI(tau_mem_s=p["tau_mem_s"]),
        "lif": lambda: LIF(tau_mem_s=p["tau_mem_s"], v_threshold=p["v_threshold"]),
        "cubalif": lambda: CubaLIF(tau_syn_s=p["tau_syn_s"], tau_mem_s=p["tau_mem_s"], v_threshold=p["v_threshold"]),
        "adlif": lambda: AdaptiveLIF(tau_mem_s=p["tau_mem_s"], tau_adapt_s=p["tau_adapt_s"],
                                     v_threshold=p["v_threshold"], a_coupling=p["a_coupling"], b_spike=p["b_spike"]),
    }[kind]()  # fmt: skip
    runtime = discretise(node, 1e-3, method)
    mine = N.coefficients(N.NeuronSpec(kind), {k: jnp.asarray(v) for k, v in p.items()}, 1e-3, method)
    for name in N.Coefficients._fields:
        got, want = np.asarray(getattr(mine, name)), getattr(runtime, name)
        assert got.dtype == np.float32
        if method == "zoh" and kind in ("cubalif", "adlif"):
            # The coupled system's matrix exponential, summed in float32: a few float32 roundings apart.
            np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-12, err_msg=name)
        else:
            # Same formulas; float32 arithmetic here vs float64 rounded once in the runtime: a few ulp apart.
            np.testing.assert_array_max_ulp(got, want, maxulp=4)


CASES = {
    "lif": {"neuron": "lif"},
    "cubalif": {"neuron": "cubalif", "reset_mode": "to_value"},
    "adlif": {"neuron": "adlif", "reset_timing": "next_step"},
    "recurrent": {"kind": "recurrent", "neuron": "adlif", "hidden": [24]},
    "weights_for_another_step": {"kind": "recurrent", "hidden": [24], "weight_dt_s": 4e-3, "weight_scale": 5.0},
    # the keyword recipe: two recurrent adaptive layers, bounded parameters, dropout (training only)
    "bounded_recurrent_adlif": {"kind": "recurrent", "neuron": "adlif", "hidden": [24, 20], "weight_scale": 30.0,
                                "tau_mem_range_s": [0.005, 0.025], "tau_adapt_range_s": [0.03, 0.35],
                                "a_coupling_range": [-1.0, 1.0], "b_spike_range": [0.0, 0.5], "dropout": 0.1},
    "conv": {"kind": "conv", "neuron": "lif", "input_shape": [2, 3, 4], "hidden": [16],
             "conv": [{"channels": 4, "kernel": [3, 3], "stride": [1, 2], "padding": [1, 1]}]},
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_jax_forward_matches_the_runtime_on_the_exported_bundle(case: str) -> None:
    cfg = config_from_dict({"data": {"kind": "synthetic"}, "model": {"hidden": [20], "weight_scale": 20.0,
                                                                     "tau_jitter": 0.5, **CASES[case]}})  # fmt: skip
    net = build_network(cfg, (24,), 5)
    params = init_params(net, cfg, jax.random.key(1))
    steps, batch = 60, 3
    x = (np.random.default_rng(2).random((steps, batch, 24)) < 0.2).astype(np.float32)
    trace, spikes = jax.jit(lambda p, x: forward(net, make_spike_fn(), p, x, record=True))(params, x)
    buf = io.BytesIO()
    write_bundle(to_model(net, params, labels=tuple("abcde")), buf)
    buf.seek(0)
    model = read_bundle(buf)
    layers = [layer.name for layer in net.layers]
    backends = [b for b in ("numpy", "native") if b in available_backends()]
    assert "numpy" in backends
    for backend in backends:
        session = model.session(batch=batch, options=SessionOptions(backends=(backend,)))
        assert session.backend == backend
        out = session.run(x.reshape(steps, batch, *net.input_shape), outputs=["output", *layers])
        np.testing.assert_allclose(out["output"], np.asarray(trace), rtol=1e-5, atol=1e-6)
        for name in layers:
            want = np.asarray(spikes[name])
            assert 0.005 < want.mean() < 0.5, f"{name} fires at rate {want.mean():.4f}: not a useful comparison"
            np.testing.assert_array_equal(out[name].reshape(want.shape), want, err_msg=f"{backend}: {name}")


def test_spike_is_strict_and_has_the_surrogate_gradient() -> None:
    spike = make_spike_fn("fast_sigmoid", 10.0)
    v = jnp.asarray([0.5, 1.0, 1.5], jnp.float32)
    assert np.asarray(spike(v, jnp.float32(1.0))).tolist() == [0.0, 0.0, 1.0]  # v == threshold does not fire
    grad = jax.grad(lambda v: jnp.sum(spike(v, jnp.float32(1.0))))(v)
    np.testing.assert_allclose(np.asarray(grad), 1.0 / (1.0 + 10.0 * np.abs([-0.5, 0.0, 0.5])) ** 2, rtol=1e-6)
    box = jax.grad(lambda v: jnp.sum(make_spike_fn("boxcar", 4.0)(v, jnp.float32(1.0))))(v)
    assert np.asarray(box).tolist() == [0.0, 2.0, 0.0]


# -- configuration ---------------------------------------------------------------------------------


def test_config_errors_name_the_key(tmp_path) -> None:
    with pytest.raises(OptionError, match=r"model: unknown key\(s\) 'hiden'"):
        config_from_dict({"data": {"kind": "synthetic"}, "model": {"hiden": [3]}})
    with pytest.raises(OptionError, match=r"model/hidden/1: expected a value >= 1"):
        config_from_dict({"data": {"kind": "synthetic"}, "model": {"hidden": [3, 0]}})
    with pytest.raises(OptionError, match="forward Euler needs model/tau_min_s >= dt_s"):
        config_from_dict({"data": {"kind": "synthetic"}, "method": "euler", "model": {"tau_min_s": 1e-4}})
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": {"kind": "synthetic"}, "method": "rk4"}')
    with pytest.raises(OptionError, match=r"bad.json/method: expected one of zoh, euler, cascade, cascade-euler, got"):
        load_config(bad)


def test_recurrent_weights_have_their_own_initial_scale() -> None:
    def rec_std(**model: object) -> float:
        cfg = config_from_dict(tiny_config(kind="recurrent", hidden=[400], **model))
        net = build_network(cfg, (12,), 3)
        return float(np.std(np.asarray(init_params(net, cfg, jax.random.key(0))["layers"][0]["w_rec"])))

    # std = scale / sqrt(n): the feed-forward scale by default, recurrent_scale when given.
    assert rec_std() == pytest.approx(5.0 / 20.0, rel=0.02)
    assert rec_std(recurrent_scale=1.0) == pytest.approx(1.0 / 20.0, rel=0.02)
    with pytest.raises(OptionError, match="model/recurrent_scale: expected a value >= 0"):
        config_from_dict(tiny_config(recurrent_scale=-1.0))


def test_rate_penalty_counts_only_the_excess_over_the_bound_in_hz() -> None:
    from tools.train.loss import rate_penalty

    # 100 steps of 1 ms: 10 spikes = 100 Hz, 2 spikes = 20 Hz; bound 50 Hz.
    z = np.zeros((100, 1, 2), np.float32)
    z[::10, 0, 0] = 1.0
    z[:2, 0, 1] = 1.0
    value = float(rate_penalty({"h": jnp.asarray(z)}, 1e-3, 50.0))
    assert value == pytest.approx(((100 / 50 - 1) ** 2 + 0.0) / 2)
    # The same spikes binned at 2 ms over the same second give the same penalty.
    coarse = z.reshape(50, 2, 1, 2).sum(axis=1)
    assert float(rate_penalty({"h": jnp.asarray(coarse)}, 2e-3, 50.0)) == pytest.approx(value)
    with pytest.raises(OptionError, match="loss/max_rate_hz: expected a rate > 0 Hz"):
        config_from_dict({"data": {"kind": "synthetic"}, "loss": {"max_rate_hz": 0.0}})


def test_rate_penalty_lowers_the_trained_firing_rate(tmp_path) -> None:
    def rate(**loss: object) -> float:
        raw = tiny_config(epochs=3)
        raw["loss"] = {"readout": "max", **loss}
        cfg = config_from_dict(raw)
        data = load_dataset(cfg.data, cfg.dt_s, cfg.seed)
        train(cfg, tmp_path / str(sorted(loss.items())), quiet=True, data=data)
        model = read_bundle(tmp_path / str(sorted(loss.items())) / BUNDLE)
        x = data.splits["val"].x
        out = model.session(batch=len(x)).run(np.ascontiguousarray(x.transpose(1, 0, 2)), outputs=["hidden0"])
        return float(out["hidden0"].mean() / cfg.dt_s)

    free = rate()
    assert rate(max_rate_hz=5.0, rate_weight=10.0) < 0.5 * free


def test_example_configs_are_valid() -> None:
    names = sorted(f for f in os.listdir(CONFIGS) if f.endswith(".json"))
    assert {"synthetic_lif.json", "synthetic_recurrent_adlif.json", "synthetic_conv_cubalif.json"} <= set(names)
    for name in names:
        assert load_config(os.path.join(CONFIGS, name)).name == name.removesuffix(".json")


def test_synthetic_data_is_deterministic_and_binnable_at_any_step() -> None:
    cfg = config_from_dict(tiny_config())
    a, b = load_dataset(cfg.data, 1e-3, 3), load_dataset(cfg.data, 1e-3, 3)
    assert a.sha256 == b.sha256 and a.labels == b.labels
    fine = load_dataset(cfg.data, 0.5e-3, 3)
    train = a.splits["train"]
    assert train.x.shape == (64, 50, 12) and fine.splits["train"].x.shape == (64, 100, 12)
    # The same spikes, binned twice as finely, sum back to the coarse counts.
    np.testing.assert_array_equal(fine.splits["train"].x.reshape(64, 50, 2, 12).sum(2), train.x)
    assert load_dataset(cfg.data, 1e-3, 4).sha256 != a.sha256


@pytest.mark.slow
def test_keywords_data_plugs_in_through_the_config(tmp_path) -> None:
    pytest.importorskip("tools.datasets.keywords", reason="the spoken-keyword dataset tools are not present")
    path = os.path.join(os.path.dirname(__file__), "data", "keywords")
    raw = {**tiny_config(epochs=1), "batch_size": 11}
    raw["data"] = {"kind": "keywords", "path": path, "duration_s": 0.2}
    cfg = config_from_dict(raw)
    data = load_dataset(cfg.data, cfg.dt_s, cfg.seed)
    assert data.labels[:3] == ("yes", "no", "up") and data.splits["train"].x.shape[1:] == (200, 64)
    summary = train(cfg, tmp_path, quiet=True, data=data)
    assert read_bundle(tmp_path / BUNDLE).labels == data.labels and summary["dataset_sha256"] == data.sha256
    with pytest.raises(OptionError, match="data/path"):
        load_dataset(config_from_dict({**raw, "data": {"kind": "keywords"}}).data, 1e-3, 0)


# -- training, checkpoints, export ---------------------------------------------------------------------


@pytest.mark.slow
def test_resume_continues_bit_identically(tmp_path) -> None:
    cfg = config_from_dict(tiny_config(epochs=2, neuron="cubalif"))
    data = load_dataset(cfg.data, cfg.dt_s, cfg.seed)
    whole = train(cfg, tmp_path / "whole", quiet=True, data=data)
    first = train(cfg, tmp_path / "split", quiet=True, data=data, stop_after=1)
    assert first["epochs_completed"] == 1 and not first["finished"]
    assert not (tmp_path / "split" / BUNDLE).exists()
    resumed = train(cfg, tmp_path / "split", resume=True, quiet=True, data=data)
    assert resumed["history"] == [{**h, "train_s": r["train_s"], "samples_per_s": r["samples_per_s"]}
                                  for h, r in zip(whole["history"], resumed["history"], strict=True)]  # fmt: skip
    net = build_network(cfg, (data.n_channels,), data.n_classes)
    skeleton = init_params(net, cfg, jax.random.key(0))
    opt_skeleton = make_optimizer(cfg.optimizer, cfg.epochs, 4).init(skeleton)
    a = load_checkpoint(tmp_path / "whole" / CHECKPOINT, skeleton, opt_skeleton)
    b = load_checkpoint(tmp_path / "split" / CHECKPOINT, skeleton, opt_skeleton)
    leaves = jax.tree_util.tree_leaves
    for x, y in zip(leaves((a.params, a.opt_state)), leaves((b.params, b.opt_state)), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # Deterministic bundles: the same bytes from both runs.
    assert (tmp_path / "whole" / BUNDLE).read_bytes() == (tmp_path / "split" / BUNDLE).read_bytes()

    other = config_from_dict({**tiny_config(epochs=2, neuron="cubalif"), "optimizer": {"lr": 0.01}})
    with pytest.raises(StateError, match="another configuration .*optimizer"):
        train(other, tmp_path / "split", resume=True, quiet=True, data=data)
    (tmp_path / "split" / CHECKPOINT).write_bytes(b"\x93garbage")
    with pytest.raises(StateError, match="checkpoint.msgpack"):
        train(cfg, tmp_path / "split", resume=True, quiet=True, data=data)


@pytest.mark.slow
def test_training_reduces_the_loss_and_the_bundle_scores_the_same(tmp_path) -> None:
    raw = tiny_config(epochs=6, tau_mem_s=0.05, tau_out_s=0.05, hidden=[32])
    raw["data"] = {**TINY_DATA, "channels": 24, "n_train": 192, "duration_s": 0.06}
    cfg = config_from_dict({**raw, "optimizer": {"lr": 0.03}})
    summary = train(cfg, tmp_path, quiet=True)
    losses = [h["train_loss"] for h in summary["history"]]
    assert losses[-1] < 0.8 * losses[0]
    assert summary["test_accuracy"] > 0.6  # three classes: chance is 1/3
    assert summary["throughput_samples_per_s"] > 0 and summary["peak_rss_mib"] > 0
    model = read_bundle(tmp_path / BUNDLE)
    assert model.dt_s == cfg.dt_s and model.method == "zoh" and len(model.labels) == 3
    producer = model.producer
    assert producer["accuracy"]["test"] == summary["test_accuracy"]
    assert producer["dataset_sha256"] == summary["dataset_sha256"] and producer["config"]["name"] == "tiny"
    # The runtime classifies the test split as well as the trainer said it would.
    test = load_dataset(cfg.data, cfg.dt_s, cfg.seed).splits["test"]
    session = model.session(batch=len(test))
    trace = session.run(np.swapaxes(test.x, 0, 1))["output"]
    accuracy = float(np.mean(trace.max(axis=0).argmax(axis=1) == test.y))
    assert accuracy == pytest.approx(summary["test_accuracy"], abs=1.5 / len(test))


def test_cli_writes_checkpoint_bundle_and_summary(tmp_path, capsys) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_config(epochs=1, kind="recurrent", neuron="lif")))
    assert main([str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "run" / SUMMARY).read_text())
    assert printed["bundle"] == saved["bundle"] and saved["epochs_completed"] == 1
    assert saved["throughput_samples_per_s"] > 0 and saved["peak_rss_mib"] > 0
    assert (tmp_path / "run" / CHECKPOINT).exists() and read_bundle(tmp_path / "run" / BUNDLE).labels
    config.write_text(json.dumps({**tiny_config(), "batch_size": 0}))
    assert main([str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "batch_size: expected a value >= 1" in err


def test_a_run_no_longer_than_its_warmup_only_warms_up(caplog):
    from tools.train.config import OptimizerConfig

    opt = make_optimizer(OptimizerConfig(lr=0.1, schedule="warmup_cosine", warmup_epochs=1), 1, 4)
    state = opt.init({"w": jnp.ones(3)})
    updates, _ = opt.update({"w": jnp.ones(3)}, state, {"w": jnp.ones(3)})
    assert np.all(np.isfinite(np.asarray(updates["w"])))
    assert "the whole run warms up" in caplog.text


def test_configuration_overrides_set_nested_keys_and_name_bad_ones(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"name": "x", "data": {"kind": "synthetic"}, "epochs": 3}))
    cfg = load_config(path, ["epochs=1", "model/hidden=[8]", "optimizer/schedule=constant"])
    assert (cfg.epochs, cfg.model.hidden, cfg.optimizer.schedule) == (1, (8,), "constant")
    with pytest.raises(OptionError, match="--set"):
        load_config(path, ["epochs"])
    with pytest.raises(OptionError, match="epochs is not a section"):
        load_config(path, ["epochs/x=1"])
    with pytest.raises(OptionError, match="c.json"):
        load_config(path, ["modle/hidden=[8]"])
