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
