"""The recurrent adaptive-LIF recipe and its references: bounded parameters, dropout, the
softmax-mean read-out, the GRU trained by the same trainer, and the keyword evaluation."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the trainer needs the train extra (pip install 'edgesnn[train]')")
pytest.importorskip("optax", reason="the trainer needs the train extra (pip install 'edgesnn[train]')")

import jax.numpy as jnp  # noqa: E402

from edgesnn.errors import OptionError  # noqa: E402
from tools.eval.timeres import readout_scores  # noqa: E402
from tools.train import Trainer, config_from_dict, to_model, train  # noqa: E402
from tools.train.gru import gru_forward, init_gru  # noqa: E402
from tools.train.loss import logits  # noqa: E402
from tools.train.models import build_network, forward, init_params, neuron_params  # noqa: E402
from tools.train.surrogate import make_spike_fn  # noqa: E402

TINY_DATA = {"kind": "synthetic", "n_classes": 3, "channels": 12, "segments": 3, "duration_s": 0.05,
             "n_train": 64, "n_val": 32, "n_test": 32}  # fmt: skip
BOUNDED = {"kind": "recurrent", "neuron": "adlif", "hidden": [16], "tau_mem_range_s": [0.005, 0.025],
           "tau_adapt_range_s": [0.03, 0.35], "a_coupling_range": [-1.0, 1.0], "b_spike_range": [0.0, 2.0],
           "weight_scale": 5.0, "readout_scale": 10.0}  # fmt: skip


def numpy_gru(p: dict, x: np.ndarray) -> np.ndarray:
    """torch.nn.GRU's equations as its documentation writes them, one step at a time, in float64."""
    w_x, w_h, b_x, b_h = (np.asarray(p[k], np.float64) for k in ("w_x", "w_h", "b_x", "b_h"))
    (w_ir, w_iz, w_in), (w_hr, w_hz, w_hn) = np.split(w_x, 3), np.split(w_h, 3)
    (b_ir, b_iz, b_in), (b_hr, b_hz, b_hn) = np.split(b_x, 3), np.split(b_h, 3)
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    h = np.zeros((x.shape[1], w_h.shape[1]))
    out = []
    for xt in x:
        r = sig(xt @ w_ir.T + b_ir + h @ w_hr.T + b_hr)
        z = sig(xt @ w_iz.T + b_iz + h @ w_hz.T + b_hz)
        n = np.tanh(xt @ w_in.T + b_in + r * (h @ w_hn.T + b_hn))
        h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out)


def test_the_gru_reference_follows_pytorchs_equations():
    params = init_gru(jax.random.key(0), 6, (8, 5), 3)
    x = np.random.default_rng(1).poisson(0.5, (20, 4, 6)).astype(np.float32)
    h1 = numpy_gru(params["layers"][0], x.astype(np.float64))
    h2 = numpy_gru(params["layers"][1], h1)
    r = params["readout"]
    want = h2 @ np.asarray(r["w"], np.float64).T + np.asarray(r["b"])
    np.testing.assert_allclose(np.asarray(jax.jit(gru_forward)(params, x)), want, rtol=1e-4, atol=1e-5)


def test_the_gru_trains_by_the_same_trainer_and_refuses_export(tmp_path):
    cfg = config_from_dict({"seed": 0, "dt_s": 1e-3, "epochs": 4, "batch_size": 16, "data": TINY_DATA,
                            "model": {"kind": "gru", "hidden": [16]}, "loss": {"readout": "mean"},
                            "optimizer": {"lr": 0.02}})  # fmt: skip
    summary = train(cfg, tmp_path, quiet=True)
    losses = [h["train_loss"] for h in summary["history"]]
    assert losses[-1] < losses[0] and summary["test_accuracy"] > 1 / 3
    assert summary["bundle"] is None and not (tmp_path / "model.esnn").exists()
    net = build_network(cfg, (12,), 3)
    with pytest.raises(OptionError, match="model/kind.*no GRU"):
        to_model(net, init_params(net, cfg, jax.random.key(0)))


def test_bounded_parameters_start_inside_their_ranges_and_stay_there_in_training_and_export():
    cfg = config_from_dict({"dt_s": 1e-3, "model": BOUNDED, "optimizer": {"lr": 0.5, "clip_norm": None}})
    trainer = Trainer(cfg, input_shape=(12,), n_classes=3, total_steps=30)
    start = trainer.params["layers"][0]["neuron"]
    assert np.all((np.exp(start["log_tau_mem"]) >= 0.005 - 1e-9) & (np.exp(start["log_tau_mem"]) <= 0.025 + 1e-9))
    assert np.ptp(np.asarray(start["a_coupling"])) > 0.5  # spread over the range, not one value
    rng = np.random.default_rng(0)
    x = (rng.random((16, 40, 12)) < 0.2).astype(np.float32)
    for _ in range(30):  # a learning rate large enough to push raw parameters past the bounds
        trainer.step(x, rng.integers(0, 3, 16))
    raw = trainer.params["layers"][0]["neuron"]
    used = neuron_params(trainer.net, raw, (16,))
    for name, (lo, hi) in {"tau_mem_s": (0.005, 0.025), "tau_adapt_s": (0.03, 0.35), "a_coupling": (-1, 1),
                           "b_spike": (0, 2)}.items():  # fmt: skip
        v = np.asarray(used[name])
        assert v.min() >= lo - 1e-6 * abs(lo) and v.max() <= hi + 1e-6 * abs(hi), name
        assert np.any(np.isclose(v, lo) | np.isclose(v, hi)), f"{name}: training never reached a bound"
    node = trainer.to_model().graph.nodes["hidden0"]
    assert node.tau_mem_s.max() <= 0.025 * (1 + 1e-6) and node.b_spike.min() >= 0.0


def test_a_range_with_low_above_high_names_its_key():
    with pytest.raises(OptionError, match="model/tau_adapt_range_s.*low <= high"):
        config_from_dict({"model": {"tau_adapt_range_s": [0.3, 0.03]}})
    with pytest.raises(OptionError, match="model/dropout"):
        config_from_dict({"model": {"dropout": 1.0}})
    with pytest.raises(OptionError, match="model/tau_mem_range_s"):
        config_from_dict({"dt_s": 1e-3, "method": "euler", "model": {"tau_mem_range_s": [5e-4, 0.02]}})


def test_dropout_changes_training_only_and_is_reproducible():
    cfg = config_from_dict({"dt_s": 1e-3, "model": {**BOUNDED, "dropout": 0.5}})
    net = build_network(cfg, (12,), 3)
    params = init_params(net, cfg, jax.random.key(0))
    x = (np.random.default_rng(2).random((40, 4, 12)) < 0.2).astype(np.float32)
    spike = make_spike_fn()
    plain, _ = forward(net, spike, params, x)
    a, _ = forward(net, spike, params, x, dropout_key=jax.random.key(5))
    b, _ = forward(net, spike, params, x, dropout_key=jax.random.key(5))
    c, _ = forward(net, spike, params, x, dropout_key=jax.random.key(6))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(a), np.asarray(plain)) and not np.allclose(np.asarray(a), np.asarray(c))
    rng = np.random.default_rng(3)
    xs, ys = (rng.random((16, 40, 12)) < 0.2).astype(np.float32), rng.integers(0, 3, 16)
    runs = []
    for _ in range(2):
        t = Trainer(cfg, input_shape=(12,), n_classes=3, total_steps=3)
        for _ in range(3):
            t.step(xs, ys)
        runs.append(np.asarray(t.params["readout"]["w"]))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_softmax_mean_averages_every_steps_class_probabilities():
    trace = np.random.default_rng(4).normal(0, 2, (30, 5, 4)).astype(np.float32)
    p = np.exp(trace) / np.exp(trace).sum(-1, keepdims=True)
    want = np.log(p.mean(axis=0))
    np.testing.assert_allclose(np.asarray(logits(jnp.asarray(trace), "softmax_mean")), want, rtol=1e-5, atol=1e-6)
    # the runtime evaluation scores it the same way
    np.testing.assert_array_equal(readout_scores(trace, "softmax_mean").argmax(1), want.argmax(1))
    np.testing.assert_allclose(readout_scores(trace, "softmax_mean"), p.mean(axis=0), rtol=1e-5)


@pytest.mark.slow
def test_the_keyword_evaluation_trains_scores_and_compares(tmp_path, capsys):
    pytest.importorskip("scipy", reason="the logistic-regression baseline needs scipy")
    from tools.eval.keywords import main

    data = os.path.join(os.path.dirname(__file__), "data", "keywords")
    argv = ["--data", data, "--out", str(tmp_path), "--epochs", "1", "--batch-size", "11", "--limit", "8",
            "--kinds", "recurrent-adlif", "gru", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((tmp_path / "keywords.json").read_text())
    rec, gru = results["networks"]["recurrent-adlif"], results["networks"]["gru"]
    assert rec["spiking"] and not gru["spiking"] and 0 <= rec["test_accuracy"] <= 1
    assert math.isclose(results["checks"]["gru_90"], 0.9 * gru["test_accuracy"])
    md = (tmp_path / "keywords.md").read_text()
    assert "| recurrent-adlif | 4 ms |" in md and "runtime engine" in md and "logistic regression" in md
    assert "Best spiking network: recurrent-adlif" in capsys.readouterr().out
    assert main(argv) == 0  # a second invocation reuses the finished runs


def test_training_batches_reach_jax_in_place():
    from tools.train.data import ALIGN_BYTES, take_batch

    x = np.random.default_rng(0).random((50, 30, 7)).astype(np.float32)
    idx = np.array([4, 9, 1, 33])
    batch = take_batch(x, idx)
    np.testing.assert_array_equal(batch, x[idx])
    assert batch.ctypes.data % ALIGN_BYTES == 0
    # JAX on the CPU reads aligned memory where it lies: the batch is not copied a second time
    assert jax.device_put(batch).unsafe_buffer_pointer() == batch.ctypes.data


def test_the_keyword_evaluation_names_a_missing_dataset(tmp_path, capsys):
    from tools.eval.keywords import main

    assert main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "python -m tools.datasets.keywords" in err and "Traceback" not in err


def test_a_batch_that_is_not_numbers_is_refused_by_name():
    from edgesnn.errors import InputError

    trainer = Trainer(config_from_dict({"dt_s": 1e-3, "model": {"hidden": [4]}}), input_shape=(3,), n_classes=2)
    with pytest.raises(InputError, match="x: expected numbers"):
        trainer.step([[["a", "b", "c"]]], [0])
