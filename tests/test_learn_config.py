"""Learning configuration: defaults, JSON round trip, and errors that name the field."""

import numpy as np
import pytest

from edgesnn.bundle import read_bundle, write_bundle
from edgesnn.errors import OptionError
from edgesnn.learn import LearningConfig, enable_learning, learning_config
from tools.bench.learn_task import ToyTask


@pytest.fixture(scope="module")
def model():
    return ToyTask(n_features=32).model()


def test_defaults_round_trip_through_the_model_dict(model):
    m = enable_learning(model, "features", threshold=0.1, weight_bits=8, initial_weights=np.zeros(32), init="weights")
    cfg = learning_config(m)
    assert cfg.threshold == 0.1 and cfg.weight_bits == 8 and cfg.initial_weights == (0.0,) * 32
    assert m.learning["rule"] == "three-factor" and m.learning["version"] == 2
    assert LearningConfig.from_dict(m.learning) == cfg
    assert model.learning is None  # the original model is unchanged


def test_learning_config_survives_a_bundle(model, tmp_path):
    m = enable_learning(model, "features", t_epoch=10, threshold_mode="adaptive")
    write_bundle(m, tmp_path / "m.esnn")
    assert learning_config(read_bundle(tmp_path / "m.esnn")) == learning_config(m)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("threshold", -0.1, "expected a finite number in [0, inf)"),
        ("threshold", float("nan"), "expected a finite number"),
        ("readout_tau_s", 0.0, "expected a finite number in (0, inf)"),
        ("trace_tau_s", "fast", "expected a number, got str"),
        ("t_epoch", 0, "expected an int in [1,"),
        ("t_epoch", 2.5, "expected an int, got float"),
        ("error_mode", "magnitude", "expected one of 'value', 'sign'"),
        ("threshold_mode", "auto", "expected one of 'fixed', 'adaptive'"),
        ("weight_bits", 1, "expected an int in [2, 24]"),
        ("learning_rate", True, "expected a number, got bool"),
        ("init", "random", "expected one of 'mean_trace', 'zeros', 'weights'"),
        ("initial_weights", [[1.0]], "expected a non-empty 1-D list"),
        ("passes", 0, "expected an int in [1, 1000]"),
    ],
)
def test_bad_values_are_refused_naming_the_field(model, field, value, expected):
    with pytest.raises(OptionError, match=r"^learning/" + field + ": ") as err:
        enable_learning(model, "features", **{field: value})
    assert expected in str(err.value)


def test_relations_between_fields(model):
    with pytest.raises(OptionError, match="learning/target_on: expected target_on > target_off"):
        enable_learning(model, "features", target_on=0.0, target_off=0.5)
    with pytest.raises(OptionError, match='learning/initial_weights: init "weights" needs initial_weights'):
        enable_learning(model, "features", init="weights")
    with pytest.raises(OptionError, match="learning/threshold: expected threshold >= threshold_min"):
        enable_learning(model, "features", threshold=0.01, threshold_min=0.1)
    with pytest.raises(OptionError, match="learning/initial_weights: expected 32 values"):
        enable_learning(model, "features", init="weights", initial_weights=[0.0] * 31)


def test_feature_node_must_exist_and_spike(model):
    with pytest.raises(OptionError, match="learning/feature_node: no node named 'nope'; nodes are x, fc"):
        enable_learning(model, "nope")
    with pytest.raises(
        OptionError, match="learning/feature_node: 'li' is a LI, not a spiking node; spiking nodes are features"
    ):
        enable_learning(model, "li")


def test_bundle_dicts_with_unknown_keys_other_rules_or_newer_versions_are_refused(model):
    good = enable_learning(model, "features").learning
    with pytest.raises(OptionError, match=r"learning: unknown keys \['tresh'\]"):
        LearningConfig.from_dict({**good, "tresh": 1})
    with pytest.raises(OptionError, match="learning/rule: expected rule 'three-factor'"):
        LearningConfig.from_dict({**good, "rule": "stdp"})
    with pytest.raises(OptionError, match="learning/version: expected a version in 1..2, got 3"):
        LearningConfig.from_dict({**good, "version": 3})
    with pytest.raises(OptionError, match="learning/feature_node: missing"):
        LearningConfig.from_dict({"threshold": 0.1})
    with pytest.raises(OptionError, match="learning: unknown hyperparameters"):
        enable_learning(model, "features", learnig_rate=1.0)


def test_version_1_dicts_load_with_version_1_behaviour_and_write_back_unchanged(model):
    # What an older edgesnn wrote: version 1, no bias / shots / step fields.
    old = {k: v for k, v in enable_learning(model, "features", learning_rate=0.3).learning.items()
           if k not in ("bias", "shots", "step")}  # fmt: skip
    old["version"] = 1
    cfg = LearningConfig.from_dict(old)
    assert (cfg.bias, cfg.shots, cfg.step, cfg.learning_rate) == ("none", "first", "constant", 0.3)
    assert cfg.to_dict() == old  # same dict, so the same store key for its learned classes
    del old["learning_rate"]
    assert LearningConfig.from_dict(old).learning_rate == 1.0  # version 1's default
    with pytest.raises(OptionError, match="learning/version: version 1 has no bias"):
        LearningConfig.from_dict({**old, "bias": "prototype"})
    new = LearningConfig(feature_node="features")
    assert (new.bias, new.shots, new.step) == ("prototype", "mean", "normalised")
    assert new.to_dict()["version"] == 2 and LearningConfig.from_dict(new.to_dict()) == new
    with pytest.raises(OptionError, match='learning/init_scale: bias "prototype" divides by init_scale'):
        LearningConfig(feature_node="features", init_scale=0.0)
