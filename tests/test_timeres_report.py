"""The time-resolution evaluation's scoring and report (tools.eval.timeres)."""

import numpy as np

from edgesnn.graph import LI, Graph, Input, Linear, Output
from edgesnn.model import Model
from tools.eval.timeres import accuracy, markdown


def test_accuracy_scores_the_readout_as_the_trainer_does():
    # Two classes, one input channel each; the readout's membrane follows its own channel.
    g = Graph(
        {"x": Input((2,), unit="spikes"), "w": Linear(np.eye(2)), "r": LI.uniform(2, tau_mem_s=0.01),
         "y": Output((2,))},
        [("x", "w"), ("w", "r"), ("r", "y")],
    )  # fmt: skip
    model = Model(g, dt_s=1e-3)
    x = np.zeros((4, 50, 2), np.float32)
    x[[0, 1], :, 0] = 1.0
    x[[2, 3], :, 1] = 1.0
    assert accuracy(model, x, np.array([0, 0, 1, 1]), readout="mean", batch=3) == 1.0
    assert accuracy(model, x, np.array([1, 0, 1, 1]), readout="max") == 0.75


def test_markdown_has_one_row_per_method_and_marks_unreachable_steps():
    results = {
        "eval_dt_s": [0.5e-3, 1e-3],
        "methods": ["tau", "zoh-rate"],
        "runs": [{"network": "lif", "train_dt_s": 1e-3, "train_epochs": 3, "train_samples_per_s": 120.0,
                  "train_peak_rss_mib": 900.0,
                  "accuracy": {"tau@0.5ms": 0.1, "tau@1ms": 0.4, "zoh-rate@0.5ms": None, "zoh-rate@1ms": 0.4}}],
    }  # fmt: skip
    text = markdown(results)
    assert "| tau | 10.0 % | 40.0 % |" in text
    assert "| zoh-rate | n/a | 40.0 % |" in text
    assert "Training: 3 epochs, 120 samples/s, peak RSS 900 MiB." in text


def test_a_later_invocation_adds_its_networks_to_the_report(tmp_path):
    import json

    from tools.eval.timeres import merge_runs

    def run(network, dt, acc):
        return {"network": network, "train_dt_s": dt, "accuracy": {"tau@1ms": acc}}

    grid = {"eval_dt_s": [1e-3], "methods": ["tau"]}
    report = tmp_path / "timeres.json"
    report.write_text(json.dumps({**grid, "runs": [run("lif", 1e-3, 0.3), run("adlif", 1e-3, 0.2)]}))
    merged = merge_runs(report, {**grid, "runs": [run("adlif", 1e-3, 0.4), run("recurrent-adlif", 4e-3, 0.1)]})
    assert [(r["network"], r["accuracy"]["tau@1ms"]) for r in merged["runs"]] == [
        ("lif", 0.3), ("adlif", 0.4), ("recurrent-adlif", 0.1)]  # fmt: skip
    other_grid = {"eval_dt_s": [2e-3], "methods": ["tau"], "runs": [run("adlif", 1e-3, 0.5)]}
    assert merge_runs(report, other_grid)["runs"] == other_grid["runs"]
    assert merge_runs(tmp_path / "missing.json", other_grid) == other_grid
