"""The three-factor rule on Lava's learning engine (lava-nc 0.10.0 in the bridge venv) against edgesnn.learn.rule.

floating_pt: Lava's weights after every epoch are the runtime's (learn_example on the
same spikes) to float32 rounding (one rounding per epoch), when no feature spikes on an epoch's last step and
none twice in an epoch. Spikes on a last step reach the readout one step late (Lava's
synaptic delay): the test accounts for the exact term they leave out of the error.
fixed_pt: within Lava's integer traces, 7-bit third factor and stochastically rounded
integer weights (at most 2 weight units per entry per epoch here).
"""

from __future__ import annotations

import json
import pathlib
import subprocess

import numpy as np
import pytest

from edgesnn.errors import OptionError
from edgesnn.learn.config import LearningConfig
from edgesnn.learn.rule import (
    coefficients,
    gate,
    initial_state,
    learn_example,
    next_threshold,
    presynaptic_traces,
    readout_potentials,
    targets_and_rates,
)
from tests.loihi_helpers import ROOT, require_bridge

DT = 1e-3
T, EPOCHS, FEATURES, CLASSES, ROW = 5, 3, 16, 3, 1


def _spikes(seed: int, last_step: bool) -> np.ndarray:
    """(EPOCHS*T, FEATURES) spikes, each feature at most once per epoch; on a last step only if ``last_step``."""
    rng = np.random.default_rng(seed)
    s = np.zeros((EPOCHS * T, FEATURES), np.float32)
    for k in range(EPOCHS):
        for f in np.flatnonzero(rng.random(FEATURES) < 0.7):
            s[k * T + rng.integers(0, T if last_step else T - 1), f] = 1.0
    return s


def _config(**kw) -> LearningConfig:
    base = dict(t_epoch=T, learning_rate=0.5, learning_rate_other=0.2, readout_tau_s=0.01, trace_tau_s=0.02,
                bias="none", step="constant")  # fmt: skip
    return LearningConfig(feature_node="features", **{**base, **kw})


def _weights() -> np.ndarray:
    return (0.2 * np.random.default_rng(0).standard_normal((CLASSES, FEATURES))).astype(np.float32)


def _lava_learn(tmp: pathlib.Path, w: np.ndarray, s: np.ndarray, config: LearningConfig, tag: str, seed: int = 1):
    """Lava's weights after each epoch (EPOCHS+1, C, F), its third factors (EPOCHS, C) and the fixed_pt scales."""
    python = require_bridge()
    example, out = tmp / f"example-{tag}.npz", tmp / f"lava-{tag}-{seed}.npz"
    np.savez(example, weights=w, spikes=s, row=ROW, dt_s=DT, config=json.dumps(config.to_dict()))
    cmd = [str(python), "-m", "firmware_bridges.loihi2.learning", str(example), str(out), "--tag", tag,
           "--seed", str(seed)]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise AssertionError(f"Lava learning failed ({done.returncode}):\n{done.stderr[-4000:]}")
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def _runtime(w0: np.ndarray, s: np.ndarray, config: LearningConfig) -> np.ndarray:
    """The runtime rule's weights after 0..EPOCHS epochs (learning from rest on each prefix)."""
    coeffs = coefficients(config, DT)
    w = [np.asarray(w0, np.float32)]
    for k in range(1, EPOCHS + 1):
        w.append(learn_example(w0, s[: k * T], ROW, initial_state(config), config, coeffs)[0])
    return np.stack(w)


@pytest.mark.parametrize(
    "config",
    [_config(), _config(error_mode="sign", threshold_mode="adaptive", threshold=0.2, threshold_step=0.1)],
    ids=["value-fixed-threshold", "sign-adaptive-threshold"],
)
def test_floating_point_updates_are_the_runtime_rule(config: LearningConfig, tmp_path: pathlib.Path) -> None:
    w0, s = _weights(), _spikes(seed=3, last_step=False)
    lava = _lava_learn(tmp_path, w0, s, config, "floating_pt")
    want = _runtime(w0, s, config)
    # Lava keeps float64 weights; the runtime rounds them to float32 after every epoch's update.
    for k in range(EPOCHS + 1):
        ulp = float(np.spacing(np.abs(want[k]).max()))
        np.testing.assert_allclose(lava["weights"][k], want[k], rtol=0, atol=(k + 1) * ulp, err_msg=f"epoch {k}")
    assert np.abs(want[-1, ROW] - w0[ROW]).max() > 0.05  # the taught row learned


def test_last_step_spikes_miss_the_epoch_error_by_the_synaptic_delay(tmp_path: pathlib.Path) -> None:
    config = _config()
    w0, s = _weights(), _spikes(seed=4, last_step=True)
    assert np.any(s[T - 1 :: T])  # the case under test: spikes on epochs' last steps
    lava = _lava_learn(tmp_path, w0, s, config, "floating_pt")
    coeffs = coefficients(config, DT)
    target, rates = targets_and_rates(CLASSES, ROW, config)
    weights = lava["weights"]  # W_k in force during epoch k
    currents = np.concatenate([s[k * T : (k + 1) * T] @ weights[k].T for k in range(EPOCHS)])
    scores = readout_potentials(currents, np.eye(CLASSES), coeffs.beta).reshape(EPOCHS, T, CLASSES)
    traces = presynaptic_traces(s, coeffs.alpha)[T - 1 :: T]
    threshold, offset_seen = config.threshold, False
    for k in range(EPOCHS):
        # The readout sees W_k s_{kT} one step after the engine runs: the mean lacks (1-beta) W_k s_{kT} / T.
        missing = (1.0 - coeffs.beta) * weights[k] @ s[(k + 1) * T - 1] / T
        third = rates * gate(target - (scores[k].mean(axis=0) - missing), threshold, config.error_mode)
        runtime_third = rates * gate(target - scores[k].mean(axis=0), threshold, config.error_mode)
        offset_seen |= not np.allclose(third, runtime_third, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(lava["third"][k], third, rtol=1e-12, atol=1e-14, err_msg=f"epoch {k}")
        np.testing.assert_allclose(weights[k + 1], weights[k] + np.outer(third, traces[k]), rtol=1e-12, atol=1e-14)
        threshold = next_threshold(threshold, bool(np.any(third)), config)
    assert offset_seen  # the delayed term mattered in at least one epoch


def test_fixed_point_updates_are_the_runtime_rule_within_lavas_rounding(tmp_path: pathlib.Path) -> None:
    config = _config()
    w0, s = _weights(), _spikes(seed=3, last_step=False)
    for seed in (1, 2):  # the engine's stochastic rounding, two draws
        lava = _lava_learn(tmp_path, w0, s, config, "fixed_pt", seed=seed)
        lsb = 2.0 ** int(lava["weight_exp"])
        # Lava starts from weights rounded to its even integers; the runtime starts from the same values.
        want = _runtime(lava["weights"][0].astype(np.float32), s, config)
        error = np.abs(lava["weights"] - want).reshape(EPOCHS + 1, -1).max(axis=1) / lsb
        # Per epoch, under 1 unit from rounding the update stochastically and under 1 from the 7-bit trace and
        # third factor (x1 ~ x * 2**x_exp, y = round(third * 2**y_exp), the product's 3 dropped bits).
        assert np.all(error <= 2.0 * np.arange(EPOCHS + 1)), error
        assert np.abs(want[-1] - want[0]).max() / lsb > 4 * 2.0 * EPOCHS  # learning moved weights well past that


def test_modes_lava_cannot_run_are_refused_naming_the_field(tmp_path: pathlib.Path) -> None:
    from firmware_bridges.loihi2.learning import learn_on_lava

    w0, s = _weights(), _spikes(seed=3, last_step=False)
    with pytest.raises(OptionError, match="learning/bias: Lava's learning engine cannot run bias 'prototype'"):
        learn_on_lava(w0, s, ROW, _config(bias="prototype"), DT, "floating_pt")
    with pytest.raises(OptionError, match="learning/step: this bridge does not run step 'normalised'"):
        learn_on_lava(w0, s, ROW, _config(step="normalised"), DT, "floating_pt")
