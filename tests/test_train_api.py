"""tools.train.Trainer: a network trained batch by batch from the caller's arrays, evaluated and exported."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

import edgesnn  # noqa: E402
from edgesnn.errors import InputError, OptionError  # noqa: E402
from tools.train import Trainer, config_from_dict, train  # noqa: E402
from tools.train.data import synthetic_patterns  # noqa: E402

SYNTH = {"n_classes": 3, "channels": 8, "segments": 4, "duration_s": 0.05, "n_train": 96, "n_val": 48, "n_test": 48}
CFG = {"name": "api", "dt_s": 1e-3, "epochs": 3, "batch_size": 16,
       "model": {"hidden": [32], "weight_scale": 40.0, "tau_mem_s": 0.05, "tau_out_s": 0.05, "readout_scale": 10.0},
       "loss": {"readout": "max"}, "optimizer": {"lr": 0.02, "schedule": "cosine"}}  # fmt: skip


def test_the_docstring_loop_trains_evaluates_and_exports_without_a_dataset_section(tmp_path):
    data = synthetic_patterns(SYNTH, 1e-3, seed=0)
    tr, val = data.splits["train"], data.splits["val"]
    trainer = Trainer(config_from_dict(CFG), input_shape=(8,), n_classes=3, total_steps=3 * 6)
    before = trainer.evaluate(val.x, val.y)
    for epoch in range(3):
        order = np.random.default_rng([0, epoch]).permutation(len(tr))
        for start in range(0, len(tr), 16):
            metrics = trainer.step(tr.x[order[start : start + 16]], tr.y[order[start : start + 16]])
    assert set(metrics) == {"loss", "accuracy"} and trainer.steps_done == 18
    after = trainer.evaluate(val.x, val.y)
    assert after["loss"] < before["loss"]
    trainer.export(tmp_path / "api.esnn", labels=data.labels)
    model = edgesnn.load(tmp_path / "api.esnn")
    assert model.labels == data.labels and model.producer["steps"] == 18
    # the runtime computes what the trainer computed: the same decisions on the validation set
    s = model.session(batch=len(val))
    scores = s.run({"input": np.swapaxes(val.x, 0, 1)})[model.outputs[0].name]
    runtime_acc = float(np.mean(np.argmax(scores.max(axis=0), -1) == val.y))
    assert runtime_acc == pytest.approx(after["accuracy"], abs=1.5 / len(val))


def test_the_trainer_takes_the_cli_steps_and_reaches_the_same_parameters(tmp_path):
    cfg = config_from_dict({**CFG, "data": {"kind": "synthetic", **SYNTH}})
    summary = train(cfg, tmp_path / "cli", quiet=True)
    data = synthetic_patterns(SYNTH, 1e-3, seed=cfg.seed)
    tr = data.splits["train"]
    trainer = Trainer(cfg, input_shape=(8,), n_classes=3, total_steps=cfg.epochs * (len(tr) // cfg.batch_size))
    for epoch in range(cfg.epochs):
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(tr))
        for start in range(0, len(tr) - cfg.batch_size + 1, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            trainer.step(tr.x[idx], tr.y[idx])
    got = trainer.evaluate(data.splits["val"].x, data.splits["val"].y)
    assert got["accuracy"] == pytest.approx(summary["history"][-1]["val_accuracy"])


def test_bad_batches_name_the_argument():
    trainer = Trainer(config_from_dict(CFG), input_shape=(8,), n_classes=3)
    with pytest.raises(InputError, match="x"):
        trainer.step(np.zeros((4, 10, 7)), np.zeros(4, int))
    with pytest.raises(InputError, match="y"):
        trainer.step(np.zeros((4, 10, 8)), np.zeros(4))
    with pytest.raises(InputError, match="0 .. 2"):
        trainer.step(np.zeros((4, 10, 8)), np.full(4, 3))
    assert "0 steps" in repr(trainer)


def test_train_without_data_says_what_to_do(tmp_path):
    with pytest.raises(OptionError, match="Trainer"):
        train(config_from_dict(CFG), tmp_path)
