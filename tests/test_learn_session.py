"""Sessions that learn: one-shot classes, live scores, forgetting, persistence across restarts, failure handling."""

import os

import numpy as np
import pytest

from edgesnn.engine import SessionOptions
from edgesnn.errors import InputError, NotFoundError, StateError, UnsupportedError
from edgesnn.learn import ClassStore, enable_learning, rule
from tools.bench.learn_task import ToyTask

TASK = ToyTask()


@pytest.fixture(scope="module")
def model():
    return enable_learning(TASK.model(), "features")


def accuracy(model, store, classes, per_class=60, seed=7) -> float:
    """Held-out accuracy (%) over ``classes``: one batched session restored from the store."""
    labels = np.repeat(classes, per_class)
    session = model.session(batch=len(labels), store=store)
    scores = session.run(TASK.batch(labels, np.random.default_rng(seed)), outputs=["classes"])["classes"]
    predicted = np.array(session.classes())[scores.mean(axis=0).argmax(axis=1)]
    return 100.0 * float(np.mean(predicted == np.array([f"c{c}" for c in labels])))


def test_one_shot_learning_of_five_classes_and_little_forgetting_after_five_more(model, tmp_path):
    rng = np.random.default_rng(1)
    session = model.session(store=tmp_path)
    for c in range(5):
        info = session.learn(f"c{c}", TASK.example(c, rng))
        assert info["new"] and info["action"] == "added"
    first = accuracy(model, tmp_path, np.arange(5))
    assert first >= 95.0
    for c in range(5, 10):
        session.learn(f"c{c}", TASK.example(c, rng))
    after = accuracy(model, tmp_path, np.arange(5))
    assert first - after <= 2.0, (first, after)  # the bound on forgetting
    assert accuracy(model, tmp_path, np.arange(10)) >= 90.0


def test_learning_leaves_the_live_stream_alone(model):
    rng = np.random.default_rng(2)
    xs = TASK.example(3, rng)[:, None]
    plain = model.session().run(xs)["y"]
    s = model.session()
    first = s.run(xs[:50])
    before = s.state()
    s.learn("c0", TASK.example(0, rng))
    assert s.state() != before  # the scores gained a column...
    rest = s.run(xs[50:])
    np.testing.assert_array_equal(np.concatenate([first["y"], rest["y"]]), plain)  # ...the static graph did not move
    assert first["classes"].shape == (50, 1, 0) and rest["classes"].shape == (50, 1, 1)
    assert s.step(xs[0])["classes"].shape == (1, 1)


def test_class_scores_are_the_leaky_readout_of_the_feature_spikes(model):
    rng = np.random.default_rng(3)
    s = model.session()
    s.learn("c1", TASK.example(1, rng))
    s.learn("c2", TASK.example(2, rng))
    s.reset()
    out = s.run(TASK.example(1, rng)[:, None], outputs=["features", "classes"])
    readout = s._head.readout
    # The prototype bias enters as a constant current per class: -|w_c|^2 / (2 init_scale).
    bias = -(readout.coef_.astype(np.float64) ** 2).sum(axis=1) / (2 * readout.config.init_scale)
    np.testing.assert_allclose(readout.intercept_, bias, rtol=1e-6)
    expected = rule.readout_potentials(
        out["features"][:, 0], readout.coef_, rule.coefficients(readout.config, 1e-3).beta, bias
    )
    np.testing.assert_allclose(out["classes"][:, 0], expected, rtol=1e-4, atol=1e-6)
    assert s.decide() == ["c1"]
    assert [o.name for o in s.outputs] == ["y", "classes"] and s.outputs[1].shape == (2,)


def test_reinforcing_and_forgetting(model, tmp_path):
    rng = np.random.default_rng(4)
    s = model.session(store=tmp_path)
    s.learn("a", TASK.example(0, rng))
    s.learn("b", TASK.example(1, rng))
    info = s.learn("a", TASK.example(0, rng))
    assert not info["new"] and info["action"] == "reinforced" and info["classes"] == 2
    assert ClassStore(tmp_path).read().examples == (2, 1)
    s.step(TASK.example(1, rng)[0])
    assert s.forget("a") == {"label": "a", "classes": 1}
    assert s.classes() == ["b"] and s.step(TASK.example(1, rng)[0])["classes"].shape == (1, 1)
    assert ClassStore(tmp_path).read().labels == ("b",)
    with pytest.raises(NotFoundError, match=r"label: no class 'a'; classes are \['b'\]"):
        s.forget("a")


def test_learned_classes_survive_a_restart(model, tmp_path):
    rng = np.random.default_rng(5)
    s = model.session(store=tmp_path)
    for c in range(3):
        s.learn(f"c{c}", TASK.example(c, rng))
    xs = TASK.example(2, rng)[:, None]
    s.reset()
    before = s.run(xs)["classes"]
    restarted = model.session(options=SessionOptions(store=str(tmp_path)))  # the options form works as well
    assert restarted.classes() == ["c0", "c1", "c2"]
    np.testing.assert_array_equal(restarted.run(xs)["classes"], before)
    np.testing.assert_array_equal(restarted._head.readout.coef_, s._head.readout.coef_)


def test_a_store_of_another_model_or_configuration_is_refused(model, tmp_path):
    model.session(store=tmp_path).learn("a", TASK.example(0, np.random.default_rng(0)))
    store_file = str(tmp_path / "classes.msgpack")
    other_model = enable_learning(ToyTask(seed=1).model(), "features")
    with pytest.raises(StateError, match=f"^{store_file}/model: the store belongs to another model"):
        other_model.session(store=tmp_path)
    other_config = enable_learning(TASK.model(), "features", threshold=0.2)
    with pytest.raises(StateError, match=f"^{store_file}/model"):
        other_config.session(store=tmp_path)


def test_a_failed_store_write_changes_nothing(model, tmp_path, monkeypatch):
    rng = np.random.default_rng(6)
    s = model.session(store=tmp_path)
    s.learn("a", TASK.example(0, rng))
    saved = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    # A change is a journal append (pwrite, fdatasync); every compact_every changes a snapshot (replace, fsync).
    for target, compact_every in (("pwrite", 64), ("fdatasync", 64), ("replace", 0), ("fsync", 0)):
        s._head.store.compact_every = compact_every
        with monkeypatch.context() as m:
            m.setattr(os, target, disk_full)
            with pytest.raises(OSError, match="No space left"):
                s.learn("b", TASK.example(1, rng))
            with pytest.raises(OSError, match="No space left"):
                s.forget("a")
        assert s.classes() == ["a"]  # memory did not run ahead of the disk
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == saved, target
        assert model.session(store=tmp_path).classes() == ["a"]
    assert s.step(TASK.example(0, rng)[0])["classes"].shape == (1, 1)
    s.learn("b", TASK.example(1, rng))  # and it works again once the disk does
    assert model.session(store=tmp_path).classes() == ["a", "b"]


def test_state_reset_and_retime_carry_the_scores(model):
    rng = np.random.default_rng(7)
    s = model.session()
    s.learn("a", TASK.example(0, rng))
    xs = TASK.example(0, rng)[:, None]
    s.run(xs[:30])
    saved = s.state()
    tail = s.run(xs[30:])["classes"]
    s.load_state(saved)
    np.testing.assert_array_equal(s.run(xs[30:])["classes"], tail)
    s.reset()
    beta = rule.coefficients(model_config := s._head.config, 1e-3).beta
    # From rest, without input, one step holds only the bias current's share (zero without the bias).
    np.testing.assert_allclose(s.step(np.zeros((1, TASK.n_inputs), np.float32))["classes"][0],
                               (1 - beta) * rule.bias(s._head.readout.coef_, model_config), rtol=1e-5)  # fmt: skip
    s.retime(0.5e-3)
    assert s.classes() == ["a"] and s.dt_s == 0.5e-3
    assert s.learn("b", np.repeat(TASK.example(1, rng), 2, axis=0))["classes"] == 2


def test_models_without_learning_are_unchanged_and_say_so(tmp_path):
    plain = TASK.model()
    s = plain.session()
    assert set(s.step(np.zeros(TASK.n_inputs, np.float32))) == {"y"}
    with pytest.raises(UnsupportedError, match="learning: the model has no learning configuration"):
        s.learn("a", TASK.example(0, np.random.default_rng(0)))
    with pytest.raises(UnsupportedError, match="store: the model has no learning configuration"):
        plain.session(store=tmp_path)


def test_bad_examples_are_refused(model):
    s = model.session()
    with pytest.raises(InputError, match=r"example: expected shape \(T, 64\) or \(T, 1, ...\)"):
        s.learn("a", np.zeros((10, 63), np.float32))
    with pytest.raises(InputError, match="example: expected finite values"):
        s.learn("a", np.full((10, 64), np.nan, np.float32))
    with pytest.raises(InputError, match="example: expected a numeric array"):
        s.learn("a", np.array([["x"] * 64] * 3))
    assert s.classes() == []
    s.learn("a", np.zeros((10, 1, 64), np.float32))  # (T, 1, ...) works too; silence is a valid example
    assert s.classes() == ["a"]


def test_store_leftovers_from_a_crash_are_cleared_on_open(model, tmp_path):
    model.session(store=tmp_path).learn("a", TASK.example(0, np.random.default_rng(0)))
    (tmp_path / ".classes.abc123.tmp").write_bytes(b"half a write")
    assert model.session(store=tmp_path).classes() == ["a"]
    assert not list(tmp_path.glob(".classes.*.tmp"))


def test_a_batched_session_learns_from_one_example_and_scores_every_stream(model):
    s = model.session(batch=3)
    s.learn("a", TASK.example(0, np.random.default_rng(8)))
    out = s.run(TASK.batch(np.array([0, 1, 2]), np.random.default_rng(9)))
    assert out["classes"].shape == (TASK.steps, 3, 1) and out["y"].shape == (TASK.steps, 3, 4)
    assert s.decide() == ["a", "a", "a"]
