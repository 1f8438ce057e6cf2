"""PlasticReadout follows the incremental estimator contract."""

import inspect

import numpy as np
import pytest

from edgesnn.errors import CapacityError, InputError, NotFittedError, NotFoundError
from edgesnn.learn import LearningConfig, PlasticReadout


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


def test_last_update_reports_the_taught_score_moving_toward_its_target():
    r = readout(init="zeros", learning_rate=0.05).partial_fit(trace(0), "a")
    u = r.last_update_
    assert u.score_before == 0.0 and 0.0 < u.score_after < u.target == 1.0
    assert not u.overshot


def test_a_step_too_large_for_the_features_is_reported_not_silent(caplog):
    # A unit step on an imprinted row with 40 busy features carries the score far past target_on.
    with caplog.at_level("WARNING", logger="edgesnn.learn"):
        r = readout(learning_rate=1.0, t_epoch=40).partial_fit(trace(0, n_features=64, hot=range(40)), "a")
    u = r.last_update_
    assert u.overshot and (u.score_before - u.target) * (u.score_after - u.target) < 0
    assert "learning/learning_rate" in caplog.text and "meta-train the rule" in caplog.text
