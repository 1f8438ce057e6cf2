"""The three-factor rule as pure functions: closed forms, gating, thresholds, quantisation."""

import math

import numpy as np
import pytest

from edgesnn.learn import LearningConfig, rule

DT = 1e-3
HALF = DT / math.log(2.0)  # a time constant whose per-step decay is exactly 0.5


#: Version 1's rule (no bias, later shots to the rule alone, constant step), which the closed forms below spell out.
V1 = {"bias": "none", "shots": "first", "step": "constant", "learning_rate": 1.0}


def config(**kw) -> LearningConfig:
    return LearningConfig(feature_node="f", **{**V1, **kw})


def test_one_epoch_matches_the_hand_computed_update():
    # Two features, one class, alpha = beta = 0.5, one epoch of two steps, spikes [1,0] then [1,1].
    cfg = config(trace_tau_s=HALF, readout_tau_s=HALF, t_epoch=2, learning_rate=1.0, init="zeros")
    coeffs = rule.coefficients(cfg, DT)
    assert (coeffs.alpha, coeffs.beta) == pytest.approx((0.5, 0.5))
    spikes = np.array([[1.0, 0.0], [1.0, 1.0]])
    # From zero weights: the mean score is 0, so the error is target_on = 1 and
    # the update is the trace at the epoch's end: x1 = [0.5, 0], x2 = [0.75, 0.5].
    w1, stats = rule.learn_example(np.zeros((1, 2)), spikes, 0, rule.initial_state(cfg), cfg, coeffs)
    np.testing.assert_allclose(w1, [[0.75, 0.5]])
    assert (stats.epochs, stats.updates) == (1, 1)
    # Again from w1: u1 = 0.5 * 0.75 = 0.375, u2 = 0.5 * 0.375 + 0.5 * 1.25 = 0.8125,
    # mean 0.59375, error 0.40625, update 0.40625 * [0.75, 0.5].
    w2, _ = rule.learn_example(w1, spikes, 0, rule.initial_state(cfg), cfg, coeffs)
    np.testing.assert_allclose(w2, [[0.75 + 0.3046875, 0.5 + 0.203125]])


def test_closed_form_epochs_equal_a_step_by_step_simulation():
    rng = np.random.default_rng(0)
    cfg = config(t_epoch=7, trace_tau_s=0.005, readout_tau_s=0.03, learning_rate=0.8, learning_rate_other=0.3,
                 threshold=0.02, init="zeros", passes=2)  # fmt: skip
    coeffs = rule.coefficients(cfg, DT)
    spikes = (rng.random((25, 6)) < 0.3).astype(np.float64)  # 25 = three whole epochs and a short one
    w0 = rng.normal(0, 0.5, (3, 6))
    got, stats = rule.learn_example(w0, spikes, 1, rule.initial_state(cfg), cfg, coeffs)

    # The same rule written as a plain loop over steps.
    w = w0.copy()
    target, rates = np.array([0.0, 1.0, 0.0]), np.array([0.3, 0.8, 0.3])
    for _ in range(cfg.passes):
        u, x = np.zeros(3), np.zeros(6)
        for start in range(0, 25, cfg.t_epoch):
            ys = []
            for s in spikes[start : start + cfg.t_epoch]:
                x = coeffs.alpha * x + (1 - coeffs.alpha) * s
                u = coeffs.beta * u + (1 - coeffs.beta) * (w @ s)
                ys.append(u)
            err = target - np.mean(ys, axis=0)
            w = w + np.outer(rates * np.where(np.abs(err) > cfg.threshold, err, 0.0), x)
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)
    assert stats.epochs == 2 * 4


def test_traces_and_readout_follow_their_recurrences():
    spikes = np.array([[1.0], [0.0], [1.0]])
    np.testing.assert_allclose(rule.presynaptic_traces(spikes, 0.5)[:, 0], [0.5, 0.25, 0.625])
    np.testing.assert_allclose(rule.readout_potentials(spikes, np.array([[2.0]]), 0.5)[:, 0], [1.0, 0.5, 1.25])


def test_gate_passes_only_errors_above_threshold():
    err = np.array([0.3, -0.3, 0.05, -0.01, 0.0])
    np.testing.assert_array_equal(rule.gate(err, 0.05, "value"), [0.3, -0.3, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(rule.gate(err, 0.05, "sign"), [1.0, -1.0, 0.0, 0.0, 0.0])


def test_adaptive_threshold_steps_up_after_an_update_and_down_to_its_floor():
    cfg = config(threshold_mode="adaptive", threshold=0.2, threshold_step=0.1, threshold_min=0.05)
    assert rule.next_threshold(0.2, True, cfg) == pytest.approx(0.3)
    assert rule.next_threshold(0.2, False, cfg) == pytest.approx(0.1)
    assert rule.next_threshold(0.1, False, cfg) == pytest.approx(0.05)
    assert rule.next_threshold(0.2, True, config(threshold=0.2)) == 0.2  # fixed


def test_error_below_threshold_changes_nothing():
    cfg = config(threshold=10.0, init="zeros")
    spikes = np.ones((40, 3))
    w0 = np.full((2, 3), 0.1, np.float32)
    w, stats = rule.learn_example(w0, spikes, 0, rule.initial_state(cfg), cfg, rule.coefficients(cfg, DT))
    np.testing.assert_array_equal(w, w0)
    assert stats.updates == 0


def test_initial_rows():
    spikes = np.array([[1.0, 0.0], [1.0, 0.0]])
    coeffs = rule.coefficients(config(trace_tau_s=HALF), DT)
    # Mean trace of [0.5, 0.75] on feature 0 is 0.625.
    np.testing.assert_allclose(rule.initial_row(spikes, config(trace_tau_s=HALF, init_scale=2.0), coeffs), [1.25, 0])
    np.testing.assert_array_equal(rule.initial_row(spikes, config(init="zeros"), coeffs), [0, 0])
    cfg = config(init="weights", initial_weights=[0.1, -0.2])
    np.testing.assert_allclose(rule.initial_row(spikes, cfg, coeffs), [0.1, -0.2])


def test_quantisation_uses_a_shared_power_of_two_and_round_half_even():
    w = np.array([[1.0, -0.5, 0.0126], [0.25, 0.0, -1.0]])
    m, e = rule.quantise(w, 8)
    assert e == -6  # 1.0 / 2**-6 = 64 <= 127 < 128 = 1.0 / 2**-7
    np.testing.assert_array_equal(m, [[64, -32, 1], [16, 0, -64]])  # 0.0126 * 64 = 0.806 -> 1
    np.testing.assert_array_equal(rule.quantise(np.array([2.5 / 64, 1.0]), 8)[0], [2, 64])  # a tie goes to even
    assert rule.quantise(np.array([127.0, 0.5]), 8) == (pytest.approx([127, 0]), 0)  # 0.5 rounds to 0
    assert rule.quantise(np.zeros((2, 2)), 8)[1] == 0


@pytest.mark.parametrize("bits", [2, 4, 8, 12])
def test_quantisation_round_trip_is_stable_and_close(bits):
    rng = np.random.default_rng(bits)
    w = rng.normal(0, 3.0, (5, 40)).astype(np.float32)
    q = rule.quantise_weights(w, bits)
    step = 2.0 ** rule.quantise(w, bits)[1]
    assert np.max(np.abs(q - w)) <= step / 2 + 1e-6  # at most half a step away
    m, _ = rule.quantise(w, bits)
    assert np.max(np.abs(m)) <= 2 ** (bits - 1) - 1
    np.testing.assert_array_equal(rule.quantise_weights(q, bits), q)  # quantised weights stay put
    np.testing.assert_array_equal(rule.dequantise(*rule.quantise(q, bits)), q)
    np.testing.assert_array_equal(rule.quantise_weights(w, None), w)


def test_learning_with_quantisation_keeps_weights_on_the_grid():
    rng = np.random.default_rng(3)
    cfg = config(weight_bits=8, init="zeros")
    w, _ = rule.learn_example(np.zeros((2, 16)), (rng.random((60, 16)) < 0.3), 1, rule.initial_state(cfg), cfg,
                              rule.coefficients(cfg, DT))  # fmt: skip
    m, e = rule.quantise(w, 8)
    np.testing.assert_array_equal(rule.dequantise(m, e), w)
    assert np.any(w[1] != 0) and not np.any(w[0])  # only the taught row moved (learning_rate_other = 0)


def test_weights_times_mean_input_are_the_time_average_of_the_readout():
    rng = np.random.default_rng(4)
    spikes = (rng.random((37, 5)) < 0.3).astype(np.float64)
    weights = rng.normal(size=(3, 5))
    beta = rule.coefficients(config(), DT).beta
    np.testing.assert_allclose(weights @ rule.mean_input(spikes, beta),
                               rule.readout_potentials(spikes, weights, beta).mean(axis=0), rtol=1e-12)  # fmt: skip
