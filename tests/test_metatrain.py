"""The meta-trainer (tools.metatrain): its JAX rule is the runtime rule, it improves few-shot accuracy, configs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the meta-trainer needs the train extra (pip install 'edgesnn[train]')")
pytest.importorskip("optax", reason="the meta-trainer needs the train extra (pip install 'edgesnn[train]')")

import jax.numpy as jnp  # noqa: E402

from edgesnn.bundle import read_bundle  # noqa: E402
from edgesnn.errors import OptionError  # noqa: E402
from edgesnn.learn import LearningConfig, learning_config  # noqa: E402
from edgesnn.learn import rule as runtime  # noqa: E402
from tools.metatrain import config_from_dict, load_config  # noqa: E402
from tools.metatrain import rule as R  # noqa: E402
from tools.metatrain.__main__ import main  # noqa: E402
from tools.metatrain.config import MetaSection  # noqa: E402
from tools.metatrain.episodes import fixed_episodes, sample_episode, sequential_episode  # noqa: E402
from tools.metatrain.features import FeatureSplit  # noqa: E402
from tools.metatrain.meta import episode_accuracy, meta_train_grid  # noqa: E402

DT_S = 1e-3


def runtime_adapt(config: LearningConfig, support: np.ndarray, rows: list[int]) -> tuple[np.ndarray, float]:
    """What PlasticReadout.partial_fit does for a support set, with the runtime's own functions."""
    coeffs = runtime.coefficients(config, DT_S)
    w = np.zeros((0, support.shape[2]), np.float32)
    state = runtime.initial_state(config)
    seen: dict[int, int] = {}
    for x, r in zip(support, rows, strict=True):
        w = runtime.add_example_row(w, r, seen.get(r, 0), x, config, coeffs)
        seen[r] = seen.get(r, 0) + 1
        w, stats = runtime.learn_example(w, x, r, state, config, coeffs)
        state = stats.state
    return w, state.threshold


def jax_adapt(config: LearningConfig, support: np.ndarray, rows: list[int], dtype) -> tuple[np.ndarray, float]:
    hyper, static = R.split_config(config, DT_S, dtype=dtype)
    w, threshold = R.adapt(hyper, static, jnp.asarray(support, dtype), rows, max(rows) + 1)
    return np.asarray(w), float(threshold)


def random_support(seed: int, n: int = 7, steps: int = 53, features: int = 24) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, steps, features)) < 0.2).astype(np.float32)


#: Version 1's rule (no bias, later shots to the rule alone, constant step).
V1 = {"bias": "none", "shots": "first", "step": "constant"}
RULES = [
    {},  # version 2's defaults: prototype bias, class mean of the shots, normalised step
    {
        "weight_bits": 8,
        "learning_rate_other": 0.3,
        "threshold_mode": "adaptive",
        "threshold": 0.1,
        "threshold_step": 0.05,
        "init": "zeros",
    },  # fmt: skip
    {**V1},
    {**V1, "weight_bits": 8},
    {**V1, "weight_bits": 4, "learning_rate_other": 0.2},
    {
        **V1,
        "weight_bits": 8,
        "threshold_mode": "adaptive",
        "threshold": 0.2,
        "threshold_step": 0.1,
        "threshold_min": 0.05,
    },  # fmt: skip
    {**V1, "error_mode": "sign", "learning_rate": 0.05, "init": "zeros", "passes": 3},
    {**V1, "weight_bits": 8, "init": "weights", "initial_weights": list(np.linspace(-0.5, 0.5, 24)), "t_epoch": 9},
]


@pytest.mark.parametrize(
    "hyper",
    RULES,
    ids=lambda h: (
        ",".join(
            ["v1"] * (h.get("bias") == "none") + [f"{k}={v}" for k, v in h.items() if k not in ("initial_weights", *V1)]
        )
        or "defaults"
    ),
)
def test_jax_rule_equals_the_runtime_rule_in_float64(hyper):
    # Exactly the same arithmetic: weights and threshold agree to rounding of float64 sums (1e-12 relative),
    # so every gate decision and every quantised mantissa is the same.
    config = LearningConfig(feature_node="f", **{"learning_rate": 0.4, "t_epoch": 11, **hyper})
    support = random_support(len(RULES))
    rows = [0, 1, 2, 0, 1, 3, 2]
    w_rt, thr_rt = runtime_adapt(config, support, rows)
    with jax.enable_x64(True):
        w_jax, thr_jax = jax_adapt(config, support, rows, jnp.float64)
    assert np.any(w_rt != 0)
    np.testing.assert_allclose(w_jax, w_rt, rtol=1e-12, atol=1e-12)
    assert thr_jax == pytest.approx(thr_rt, rel=1e-12)


@pytest.mark.parametrize("bits", [None, 8])
def test_jax_rule_equals_the_runtime_rule_after_every_epoch(bits):
    # The state after epoch n is the state after learning the first n epochs' steps (epochs run from rest).
    config = LearningConfig(feature_node="f", t_epoch=6, learning_rate=0.5, learning_rate_other=0.1, weight_bits=bits)
    support = random_support(3, n=2, steps=36)
    w0, _ = runtime_adapt(config, support[:1], [0])
    coeffs = runtime.coefficients(config, DT_S)
    first = runtime.quantise_weights(np.vstack([w0, runtime.initial_row(support[1], config, coeffs)[None]]), bits)
    for n in range(1, 7):
        x = support[1, : 6 * n]
        w_rt, _ = runtime.learn_example(first, x, 1, runtime.initial_state(config), config, coeffs)
        with jax.enable_x64(True):
            hyper, static = R.split_config(config, DT_S, dtype=jnp.float64)
            w_jax, _ = R.learn_example(jnp.asarray(first, jnp.float64), jnp.asarray(x, jnp.float64), 1,
                                       jnp.ones(2), hyper["threshold"], hyper, static)  # fmt: skip
        np.testing.assert_allclose(np.asarray(w_jax), w_rt, rtol=1e-12, atol=1e-12, err_msg=f"after epoch {n}")


def test_jax_rule_in_float32_is_close_to_the_runtime_rule():
    # Meta-training runs in float32: float weights agree to ~1e-6; quantised ones may differ where a value
    # sits within float32 rounding of a mantissa tie, by at most one quantisation step (2**exponent).
    support = random_support(5)
    rows = [0, 1, 2, 0, 1, 3, 2]
    config = LearningConfig(feature_node="f", learning_rate=0.4, t_epoch=11)
    w_rt, _ = runtime_adapt(config, support, rows)
    np.testing.assert_allclose(jax_adapt(config, support, rows, jnp.float32)[0], w_rt, rtol=1e-4, atol=1e-5)
    config = dataclasses.replace(config, weight_bits=8)
    w_rt, _ = runtime_adapt(config, support, rows)
    step = 2.0 ** runtime.quantise(w_rt, 8)[1]
    w_jax = jax_adapt(config, support, rows, jnp.float32)[0]
    assert np.max(np.abs(w_jax - w_rt)) <= step * (1 + 1e-6)
    assert np.mean(w_jax == w_rt) >= 0.99


def test_quantisation_and_gate_pass_gradients_straight_through():
    w = jnp.array([[0.3, -0.71, 0.0], [1.2, 0.05, -0.4]])
    np.testing.assert_array_equal(np.asarray(R.quantise(w, 4)), runtime.quantise_weights(np.asarray(w), 4))
    np.testing.assert_allclose(np.asarray(jax.grad(lambda v: jnp.sum(R.quantise(v, 4) * 2.0))(w)), 2.0)
    e = jnp.array([0.5, -0.02, 0.2])
    np.testing.assert_array_equal(np.asarray(R.gate(e, jnp.float32(0.1), "value", 20.0)), np.asarray(e) * [1, 0, 1])
    assert float(jax.grad(lambda t: jnp.sum(R.gate(e, t, "value", 20.0)))(jnp.float32(0.1))) < 0.0


@pytest.mark.parametrize("rule", [V1, {"init": "zeros"}], ids=["v1", "prototype-normalised"])
def test_every_tunable_hyperparameter_gets_a_finite_gradient(rule):
    config = LearningConfig(feature_node="f", learning_rate=0.3, learning_rate_other=0.1, weight_bits=8,
                            threshold=0.2, **rule)  # fmt: skip
    hyper, static = R.split_config(config, DT_S)
    support = jnp.asarray(random_support(2, n=3))
    query = jnp.asarray(random_support(4, n=3))

    def loss(h):
        w, _ = R.adapt(h, static, support, [0, 1, 2], 3)
        return -jnp.mean(jax.nn.log_softmax(10.0 * R.scores(w, query, h, static))[jnp.arange(3), jnp.arange(3)])

    grads = jax.grad(loss)(hyper)
    for name in ("learning_rate", "learning_rate_other", "threshold", "trace_tau_s", "readout_tau_s", "target_on",
                 "target_off", "init_scale"):  # fmt: skip
        assert np.isfinite(float(grads[name])) and float(grads[name]) != 0.0, name


# -- meta-training on a synthetic task ---------------------------------------------------------------------


def synthetic_features(seed: int, n_classes: int, per_class: int = 8, steps: int = 40, features: int = 32):
    """Feature spikes whose classes differ in which features fire more, and in how many (a stand-in for a network)."""
    rng = np.random.default_rng(seed)
    patterns = rng.random((n_classes, features)) < rng.uniform(0.1, 0.6, n_classes)[:, None]
    y = np.repeat(np.arange(n_classes), per_class)
    rates = np.where(patterns[y], 0.35, 0.05)[:, None, :]
    spikes = (rng.random((len(y), steps, features)) < rates).astype(np.uint8)
    return FeatureSplit(spikes, y, tuple(f"c{c}" for c in range(n_classes)))


def test_meta_training_improves_episode_accuracy_on_a_synthetic_task():
    cfg = config_from_dict({
        "data": {"kind": "synthetic"}, "features": {"feature_node": "f", "bundle": "unused.esnn"},
        "episodes": {"n_way": 3, "k_shot": [1], "n_query": 3},
        # A poor start: learning so slowly that rows stay imprinted mean traces, and raw dot products favour
        # the classes whose patterns have many active features.
        "rule": {"learning_rate": 0.002, "weight_bits": 8, **V1},
        "meta": {"iterations": 60, "batch": 4, "lr": 0.1, "t_epoch_grid": [10], "val_episodes": 40,
                 "learn": ["learning_rate", "learning_rate_other", "threshold", "target_on", "init_scale"]},
    })  # fmt: skip
    splits = {"meta_train": synthetic_features(1, 10), "meta_val": synthetic_features(2, 10)}
    (result,) = meta_train_grid(cfg.start_rule(32), DT_S, splits, cfg.episodes, cfg.meta, seed=0)
    assert result.val_after[1] >= result.val_before[1] + 0.1, (result.val_before, result.val_after)
    assert result.config.learning_rate > 0.002
    # The exported values are what the simulation scores: re-evaluate them on fresh held-out classes.
    test = synthetic_features(3, 6)
    eps = fixed_episodes(test.y, 60, n_way=3, k_shot=1, n_query=3, seed=5)
    tuned = episode_accuracy(result.config, DT_S, test, eps, 3, 1).mean()
    untuned = episode_accuracy(cfg.base_rule(32), DT_S, test, eps, 3, 1).mean()
    assert tuned >= untuned + 0.05, (tuned, untuned)


def test_retention_term_scores_class_incremental_episodes():
    y = np.repeat(np.arange(8), 6)
    e = sequential_episode(y, 3, 2, 2, np.random.default_rng(0))
    # Classes 0..2 (both shots) are taught before 3..5; queries cover all six.
    np.testing.assert_array_equal(e.support_rows, R.sequential_order(3, 2))
    np.testing.assert_array_equal(e.support_rows, [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5])
    np.testing.assert_array_equal(y[e.support], e.classes[e.support_rows])
    np.testing.assert_array_equal(y[e.query], np.repeat(e.classes, 2))
    cfg = config_from_dict({
        "data": {"kind": "synthetic"}, "features": {"feature_node": "f", "bundle": "unused.esnn"},
        "episodes": {"n_way": 3, "k_shot": [1], "n_query": 3},
        "rule": {"weight_bits": 8, "learning_rate_other": 0.05},
        "meta": {"iterations": 4, "batch": 2, "t_epoch_grid": [10], "val_episodes": 6, "retention": 2.0,
                 "learn": ["learning_rate", "learning_rate_other"]},
    })  # fmt: skip
    splits = {"meta_train": synthetic_features(1, 10), "meta_val": synthetic_features(2, 10)}
    (r,) = meta_train_grid(cfg.start_rule(32), DT_S, splits, cfg.episodes, cfg.meta, seed=0)
    assert set(r.sequential_before) == set(r.sequential_after) == {1}
    assert r.score == pytest.approx((r.val_after[1] + 2.0 * r.sequential_after[1]) / 3.0)
    with pytest.raises(OptionError, match="meta/retention: expected a number >= 0"):
        config_from_dict({**BASE, "meta": {"retention": -1}})


def test_episodes_list_the_support_shot_by_shot():
    y = np.repeat(np.arange(6), 5)
    e = sample_episode(y, 3, 2, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(e.support_rows, [0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(y[e.support], np.tile(e.classes, 2))
    np.testing.assert_array_equal(y[e.query], np.repeat(e.classes, 2))
    assert not set(e.support) & set(e.query)
    with pytest.raises(OptionError, match="episodes/n_way"):
        sample_episode(y, 7, 1, 1, np.random.default_rng(0))
    assert tuple(R.presentation_order(3, 2)) == tuple(e.support_rows)


# -- configuration -------------------------------------------------------------------------------------------

BASE = {"data": {"kind": "keywords", "path": "data/keywords", "meta_train_classes": ["yes", "no"],
                 "test_classes": ["one", "two"]},
        "features": {"feature_node": "hidden1", "bundle": "features.esnn"}}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"epochs": 3}, "<root>"),
        ({"data": {**BASE["data"], "test_classes": ["yes", "two"]}}, "data/test_classes"),
        ({"data": {**BASE["data"], "kind": "images"}}, "data/kind"),
        ({"features": {"feature_node": "hidden1"}}, "features/bundle"),
        ({"episodes": {"n_way": 1}}, "episodes/n_way"),
        ({"episodes": {"k_shot": [1, 0]}}, "episodes/k_shot/1"),
        ({"meta": {"learn": ["learning_rate", "t_epoch"]}}, "meta/learn/1"),
        ({"meta": {"t_epoch_grid": [20, 0]}}, "meta/t_epoch_grid/1"),
        ({"meta": {"start": {"learning_rat": 0.1}}}, "meta/start"),
        ({"meta": {"start": {"learning_rate": -1.0}}}, "meta/start/learning_rate"),
        ({"rule": {"threshold": -0.5}}, "rule/threshold"),
        ({"rule": {"feature_node": "x"}}, "rule/feature_node"),
        ({"meta": {"learn": ["initial_weights"]}}, "meta/learn"),
    ],
)
def test_config_errors_name_the_key(change, path):
    with pytest.raises(OptionError) as err:
        config_from_dict({**BASE, **change})
    assert err.value.path == path, str(err.value)


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**BASE, "meta": {"iterations": -1}}))
    with pytest.raises(OptionError, match=r"bad\.json/meta/iterations: expected an integer"):
        load_config(bad)
    assert main([str(tmp_path / "missing.json"), "--out", str(tmp_path)]) == 2
    assert MetaSection().t_epoch_grid == (20,)


def run_tiny(tmp_path, capsys, *, features=None, meta_iterations=4) -> dict:
    """Meta-train a tiny synthetic configuration through the CLI into tmp_path/run; return its summary."""
    cfg = {"name": "tiny", "seed": 1, "data": {"kind": "synthetic", "dt_s": 0.001,
                                                "options": {"n_classes": 6, "n_test_classes": 3, "per_class": 6}},
           "features": {"feature_node": "hidden0", "train": {"epochs": 2, "batch_size": 8,
                                                              "model": {"hidden": [16], "weight_scale": 4.0}},
                        **(features or {})},
           "episodes": {"n_way": 3, "k_shot": [1], "n_query": 2}, "rule": {"weight_bits": 8, "learning_rate": 0.1},
           "meta": {"iterations": meta_iterations, "batch": 2, "t_epoch_grid": [10], "val_episodes": 4}}  # fmt: skip
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    assert main([str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_pretrains_meta_trains_and_writes_a_bundle_that_learns(tmp_path, capsys):
    summary = run_tiny(tmp_path, capsys)
    model = read_bundle(tmp_path / "run" / "model.esnn")
    tuned = learning_config(model)
    assert tuned.to_dict() == summary["tuned"]
    assert tuned.t_epoch == 10 and tuned.weight_bits == 8
    assert learning_config(read_bundle(tmp_path / "run" / "untuned.esnn")).learning_rate == 0.1
    assert sorted(p.name for p in (tmp_path / "run").glob("features_*.npz")) == [
        "features_meta_train.npz", "features_meta_val.npz", "features_test.npz"]  # fmt: skip
    session = model.session()
    x = np.zeros((40, 32), np.float32)
    x[::3, :8] = 1.0
    assert session.learn("a", x)["new"] and session.classes() == ["a"]


def test_feature_layers_can_be_meta_trained_through_the_rule(tmp_path, capsys):
    summary = run_tiny(tmp_path, capsys, features={"meta_iterations": 5, "meta_lr": 0.01}, meta_iterations=2)
    meta = summary["feature_meta"]
    assert [h["iteration"] for h in meta["history"]] == [0, 1, 2, 3, 4, 5]
    assert meta["val_1shot_after"] >= meta["val_1shot_before"]  # the best layers on meta-val are kept
    pretrained = read_bundle(tmp_path / "run" / "features" / "model.esnn").graph.nodes["hidden0_w"].weight
    shaped = read_bundle(tmp_path / "run" / "features_meta" / "model.esnn").graph.nodes["hidden0_w"].weight
    final = read_bundle(tmp_path / "run" / "model.esnn").graph.nodes["hidden0_w"].weight
    np.testing.assert_array_equal(final, shaped)  # the learning bundle carries the meta-trained layers
    if meta["val_1shot_after"] > meta["val_1shot_before"]:
        assert not np.array_equal(shaped, pretrained)


def test_meta_training_features_needs_the_pretraining_here():
    with pytest.raises(OptionError) as err:
        config_from_dict({**BASE, "features": {"feature_node": "hidden1", "bundle": "f.esnn", "meta_iterations": 3}})
    assert err.value.path == "features/meta_iterations"


def test_flattened_frames_are_recorded_through_a_conv_feature_network():
    from edgesnn.graph import LIF, Conv2d, Flatten, Graph, Input, Output
    from edgesnn.model import Model
    from tools.metatrain.features import record_features

    rng = np.random.default_rng(0)
    g = Graph(
        {"input": Input((2, 4, 4), unit="spikes"), "conv": Conv2d(rng.normal(1.0, 0.5, (3, 2, 3, 3))),
         "lif": LIF.uniform((3, 2, 2), tau_mem_s=0.02, v_threshold=0.5), "flat": Flatten(), "y": Output((12,))},
        [("input", "conv"), ("conv", "lif"), ("lif", "flat"), ("flat", "y")],
    )  # fmt: skip
    model = Model(g, dt_s=0.01)
    frames = (rng.random((5, 6, 2, 4, 4)) < 0.4).astype(np.float32)  # (N, T, 2, H, W) as glyphs load
    spikes = record_features(model, "lif", frames.reshape(5, 6, -1), batch=2)
    assert spikes.shape == (5, 6, 12) and spikes.dtype == np.uint8
    direct = model.session(batch=5).run(frames.transpose(1, 0, 2, 3, 4), outputs=["lif"])["lif"]
    np.testing.assert_array_equal(spikes, direct.reshape(6, 5, 12).transpose(1, 0, 2))
