"""PlasticReadout follows the incremental estimator contract."""

import inspect

import numpy as np
import pytest

from edgesnn.errors import CapacityError, InputError, NotFittedError, NotFoundError
from edgesnn.learn import LearningConfig, PlasticReadout, rule


def trace(seed, n_features=8, steps=40, hot=(0, 1, 2)):
    rng = np.random.default_rng(seed)
    rates = np.full(n_features, 0.05)
    rates[list(hot)] = 0.6
    return (rng.random((steps, n_features)) < rates).astype(np.float32)


def readout(**kw):
    return PlasticReadout(LearningConfig(feature_node="f", **kw), dt_s=1e-3)


def test_init_only_stores_configuration():
    r = readout()
    assert set(vars(r)) == {"config", "dt_s"}
    assert list(inspect.signature(PlasticReadout).parameters) == ["config", "dt_s"]
    assert r.get_params()["dt_s"] == 1e-3


def test_not_fitted_before_the_first_example():
    r = readout()
    with pytest.raises(NotFittedError, match="classes_: this PlasticReadout has learned nothing yet"):
        r.decision_function(trace(0))
    with pytest.raises(AttributeError):  # NotFittedError is an AttributeError too, as in scikit-learn
        r.predict(trace(0))


def test_partial_fit_returns_self_and_grows_a_row_per_new_label():
    r = readout()
    assert r.partial_fit(trace(0), "a") is r
    r.partial_fit(trace(1, hot=(5, 6, 7)), "b").partial_fit(trace(2), "a")
    assert r.classes_ == ("a", "b")
    assert r.coef_.shape == (2, 8) and r.coef_.dtype == np.float32
    np.testing.assert_array_equal(r.n_examples_, [2, 1])
    assert r.n_features_in_ == 8
    assert r.last_update_.label == "a" and not r.last_update_.new
    assert r.predict(trace(10)) == "a" and r.predict(trace(11, hot=(5, 6, 7))) == "b"
    assert r.decision_function(trace(3)).shape == (40, 2)


def test_the_first_example_fixes_the_number_of_features():
    r = readout().partial_fit(trace(0), "a")
    with pytest.raises(InputError, match="features_trace: expected 8 features per step"):
        r.partial_fit(trace(1, n_features=9), "b")
    with pytest.raises(InputError, match="features_trace: expected a numeric array"):
        r.partial_fit(np.zeros(8), "b")
    with pytest.raises(InputError, match="label: expected a non-empty string"):
        r.partial_fit(trace(1), "")
    bad = trace(1)
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="features_trace: expected finite values"):
        r.partial_fit(bad, "b")
    assert r.classes_ == ("a",)  # failed calls changed nothing


def test_forget_removes_one_row_and_leaves_the_others():
    r = readout().partial_fit(trace(0), "a").partial_fit(trace(1, hot=(5, 6, 7)), "b")
    row_b = r.coef_[1].copy()
    assert r.forget("a") is r
    assert r.classes_ == ("b",)
    np.testing.assert_array_equal(r.coef_, row_b[None])
    with pytest.raises(NotFoundError, match=r"label: no class 'a'; classes are \['b'\]"):
        r.forget("a")
    r.forget("b")
    with pytest.raises(NotFittedError, match="holds no classes"):
        r.predict(trace(0))


def test_capacity_is_bounded():
    r = readout(max_classes=2).partial_fit(trace(0), "a").partial_fit(trace(1), "b")
    with pytest.raises(CapacityError, match="learning/max_classes: the readout holds max_classes = 2"):
        r.partial_fit(trace(2), "c")
    r.partial_fit(trace(2), "a")  # reinforcing needs no room


#: Version 1's rule: no bias, later shots to the rule alone, a constant step.
V1 = {"bias": "none", "shots": "first", "step": "constant"}


def test_last_update_reports_the_taught_score_moving_toward_its_target():
    r = readout(init="zeros", learning_rate=0.05, **V1).partial_fit(trace(0), "a")
    u = r.last_update_
    assert u.score_before == 0.0 and 0.0 < u.score_after < u.target == 1.0
    assert not u.overshot


def test_a_step_too_large_for_the_features_is_reported_not_silent(caplog):
    # A unit step on an imprinted row with 40 busy features carries the score far past target_on.
    with caplog.at_level("WARNING", logger="edgesnn.learn"):
        r = readout(learning_rate=1.0, t_epoch=40, **V1).partial_fit(trace(0, n_features=64, hot=range(40)), "a")
    u = r.last_update_
    assert u.overshot and (u.score_before - u.target) * (u.score_after - u.target) < 0
    assert "learning/learning_rate" in caplog.text and "meta-train the rule" in caplog.text


def test_the_normalised_step_does_not_overshoot_on_features_of_any_scale():
    # Busy and sparse features, rows from zero (the rule does all the work) or imprinted: with the prototype
    # bias, the unit normalised step moves the taught score toward its target and never past it.
    for n_features, hot, init in [(64, range(40), "zeros"), (64, range(40), "mean_trace"), (8, (0,), "zeros")]:
        for seed in range(3):
            r = readout(learning_rate=1.0, t_epoch=10, init=init)
            u = r.partial_fit(trace(seed, n_features=n_features, hot=hot), "a").last_update_
            assert not u.overshot, (n_features, init, seed, u)
            assert abs(u.score_after - u.target) <= abs(u.score_before - u.target) + 1e-9
            assert init == "zeros" or u.score_before == pytest.approx(u.target)  # an imprint meets its target


def test_further_shots_move_a_row_to_the_class_mean_first():
    shots = [trace(s, hot=(0, 1, 2, 3)) for s in range(4)]
    r = readout(learning_rate=0.0)  # imprinting alone: the row is init_scale times the mean of the mean traces
    for x in shots:
        r.partial_fit(x, "a")
    mean = np.mean([rule.imprint_row(x, r.config, rule.coefficients(r.config, 1e-3)) for x in shots], axis=0)
    np.testing.assert_allclose(r.coef_[0], mean, rtol=1e-5)
    first = readout(learning_rate=0.0, shots="first")
    for x in shots:
        first.partial_fit(x, "a")
    np.testing.assert_allclose(first.coef_[0], rule.imprint_row(shots[0], r.config, rule.coefficients(r.config, 1e-3)),
                               rtol=1e-6)  # fmt: skip


def test_the_prototype_readout_with_imprinted_rows_is_nearest_class_mean():
    # Two classes whose mean traces differ in size: the dot product prefers the larger one for queries that
    # are closer to the smaller; the prototype bias -|w|^2/2 makes the readout nearest-class-mean.
    rng = np.random.default_rng(5)
    big, small = trace(0, hot=(0, 1, 2, 3, 4, 5)), trace(1, hot=(0, 1))
    protos = readout(learning_rate=0.0).partial_fit(big, "big").partial_fit(small, "small")
    dots = readout(learning_rate=0.0, bias="none").partial_fit(big, "big").partial_fit(small, "small")
    beta = rule.coefficients(protos.config, 1e-3).beta
    agree = dot_agree = 0
    for seed in range(20):
        q = trace(100 + seed, hot=tuple(rng.choice(6, size=rng.integers(1, 6), replace=False)))
        rate = rule.mean_input(q, beta) / rule.epoch_kernels(beta, len(q))[0].sum()  # the readout's rate estimate
        nearest = protos.classes_[int(np.argmin(((protos.coef_ - rate) ** 2).sum(axis=1)))]
        agree += protos.predict(q) == nearest
        dot_agree += dots.predict(q) == nearest
    assert agree == 20 and dot_agree < 20
