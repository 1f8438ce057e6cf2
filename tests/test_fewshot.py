"""The few-shot evaluation (tools.eval.fewshot): its baselines, and a whole run through the runtime on a tiny task."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("jax", reason="the meta-trainer needs the train extra (pip install 'edgesnn[train]')")
pytest.importorskip("matplotlib", reason="the report's plot needs matplotlib")

from tools.eval import fewshot  # noqa: E402
from tools.metatrain.__main__ import main as metatrain  # noqa: E402
from tools.metatrain.episodes import sample_episode  # noqa: E402


def test_ncm_and_sgd_readout_separate_well_separated_classes():
    rng = np.random.default_rng(0)
    centres = np.eye(4) * 3.0
    y = np.repeat(np.arange(4), 6)
    x = centres[y] + rng.normal(0, 0.3, (len(y), 4))
    e = sample_episode(y, 4, 1, 5, rng)
    assert fewshot.ncm_accuracy(x, e, 4) == 1.0
    assert fewshot.transfer_accuracy(x, e, 4, lr=1.0, steps=30) == 1.0
    w, b = fewshot.sgd_readout(x[e.support], e.support_rows, 4, lr=1.0, steps=0)
    assert not w.any() and not b.any()  # zero steps leave the new readout at its zero start


def test_interval_is_mean_and_half_width_in_percent():
    r = fewshot.interval(np.array([0.0, 1.0, 0.0, 1.0]))
    assert r["mean"] == 50.0 and r["episodes"] == 4
    assert r["ci95"] == pytest.approx(100 * 1.96 * np.std([0, 1, 0, 1], ddof=1) / 2)


def test_imprinting_keeps_each_class_row_at_its_examples_mean_trace():
    from edgesnn.learn import enable_learning, rule
    from edgesnn.learn.config import learning_config
    from tools.bench.learn_task import ToyTask

    task = ToyTask(steps=40)
    model = fewshot.imprinting(enable_learning(task.model(), "features", learning_rate=1.0, init_scale=2.0))
    assert model.learning["learning_rate"] == 0.0 and model.learning["init_scale"] == 2.0
    session = model.session()
    rng = np.random.default_rng(1)
    first, second = task.example(0, rng), task.example(0, rng)
    info = session.learn("a", first)
    assert info["updates"] == 0 and info["score_before"] == info["score_after"]
    spikes = session._head._recorder.record(first)
    expected = rule.initial_row(spikes, learning_config(model), rule.coefficients(learning_config(model), model.dt_s))
    np.testing.assert_allclose(session._head.readout.coef_[0], expected, rtol=1e-6)
    session.learn("a", second)  # a second example of the class changes nothing
    np.testing.assert_allclose(session._head.readout.coef_[0], expected, rtol=1e-6)


# A dense feature network, and a conv one that sees each sample's 32 channels as 2 x 4 x 4 frames (as glyphs).
FEATURE_MODELS = {
    "dense": {"hidden": [16], "weight_scale": 4.0},
    "conv": {"kind": "conv", "hidden": [16], "weight_scale": 4.0, "input_shape": [2, 4, 4],
             "conv": [{"channels": 4, "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1]}]},
}  # fmt: skip


@pytest.mark.parametrize("features", list(FEATURE_MODELS))
def test_a_run_is_evaluated_through_runtime_sessions(tmp_path, capsys, features):
    cfg = {"name": "tiny", "seed": 2, "data": {"kind": "synthetic", "dt_s": 0.001,
                                                "options": {"n_classes": 6, "n_test_classes": 10, "per_class": 6}},
           "features": {"feature_node": "hidden0", "train": {"epochs": 2, "batch_size": 8,
                                                              "model": FEATURE_MODELS[features]}},
           "episodes": {"n_way": 3, "k_shot": [1], "n_query": 2}, "rule": {"weight_bits": 8, "learning_rate": 0.1},
           "meta": {"iterations": 4, "batch": 2, "t_epoch_grid": [10], "val_episodes": 4}}  # fmt: skip
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    assert metatrain([str(tmp_path / "cfg.json"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "eval"
    assert fewshot.main([str(tmp_path / "run"), "--out", str(out), "--episodes", "4", "--shots", "1", "2",
                         "--n-query", "2", "--forget-repeats", "2", "--quiet"]) == 0  # fmt: skip
    report = json.loads((out / "fewshot.json").read_text())
    (run,) = report["runs"]
    assert set(run["results"]) == {"1", "2"}
    for k in ("1", "2"):
        assert set(run["results"][k]) == set(fewshot.METHODS)
        for cell in run["results"][k].values():
            assert cell["episodes"] == 4 and 0.0 <= cell["mean"] <= 100.0
    f = run["forgetting"]
    assert f["repeats"] == 2
    # The loss splits into learning order (forgetting proper) and competition from the new classes.
    assert f["loss_points"] == pytest.approx(f["order_loss_points"] + f["competition_points"])
    assert 0.0 <= f["ncm_after"] <= 100.0 and "Of that, learning order" in (out / "fewshot.md").read_text()
    # The same check for the untuned rule, on the same draws.
    u = run["forgetting_untuned"]
    assert u["repeats"] == 2 and u["loss_points"] == pytest.approx(u["order_loss_points"] + u["competition_points"])
    assert "Untuned rule, same draws" in (out / "fewshot.md").read_text()
    assert run["learn_cost_us"]["rule_us"] > 0
    assert set(run["overshot_percent"]["1"]) == {"meta-trained rule", "untuned rule", "imprinting"}
    assert run["overshot_percent"]["1"]["imprinting"] == 0.0  # no update, nothing to overshoot
    assert (out / "fewshot.png").stat().st_size > 0 and "| NCM |" in (out / "fewshot.md").read_text()
    assert fewshot.main([str(tmp_path / "run"), "--out", str(out), "--episodes", "1"]) == 2
