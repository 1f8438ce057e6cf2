"""A learner is a plug-in of the session: the engine imports none; a new one is a new module and a registry entry."""

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

import edgesnn
import edgesnn.learn
from edgesnn.engine.learner import Learner
from edgesnn.engine.session import Session, SessionOptions
from edgesnn.errors import OptionError, UnsupportedError
from edgesnn.learn._recorder import FeatureRecorder
from tools.bench.learn_task import ToyTask

ENGINE = Path(edgesnn.__file__).parent / "engine"
TASK = ToyTask()


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_engine_imports_no_learner():
    offenders = {p.name: m for p in ENGINE.glob("*.py") for m in imported_modules(p) if m.startswith("edgesnn.learn")}
    assert offenders == {}


class NearestMean(Learner):
    """Scores = minus the squared distance of the features' moving average to each class's mean features."""

    output_name = "nearest"

    def __init__(self, model, plan, options):
        self._model, self._means, self._labels = model, [], []
        self.attach(plan, model)

    def attach(self, plan, model):
        self._plan = plan
        self._features = plan.buffers["features"].reshape(plan.batch, -1)
        # Kept in the plan's state, so that reset, save and restore cover it like a membrane.
        plan.state["nearest/avg"] = np.zeros(self._features.shape, np.float32)
        plan.initial["nearest/avg"] = np.zeros(self._features.shape, np.float32)
        self.scores = np.zeros((plan.batch, len(self._labels)), np.float32)

    def advance(self):
        avg = self._plan.state["nearest/avg"]
        avg += 0.05 * (self._features - avg)
        if self._labels:
            self.scores[...] = -((avg[:, None, :] - np.asarray(self._means)[None]) ** 2).sum(-1)

    def learn(self, label, example):
        spikes = FeatureRecorder(self._model, self._plan.dt_s, "features", SessionOptions()).record(example)
        self._labels.append(label)
        self._means.append(spikes[len(spikes) // 2 :].mean(axis=0))
        self.scores = np.zeros((self._plan.batch, len(self._labels)), np.float32)
        return {"label": label}

    def forget(self, label):
        i = self._labels.index(label)
        del self._labels[i], self._means[i]
        return {"label": label}

    def classes(self):
        return list(self._labels)

    def decide(self):
        return [self._labels[i] for i in self.scores.argmax(axis=1)] if self._labels else [None] * len(self.scores)


@pytest.fixture
def nearest_mean(monkeypatch):
    monkeypatch.setitem(edgesnn.learn.LEARNERS, "nearest-mean", NearestMean)
    return dataclasses.replace(TASK.model(), learning={"rule": "nearest-mean"})


def test_a_new_learner_runs_in_sessions_through_the_registry(nearest_mean):
    rng = np.random.default_rng(3)
    session = nearest_mean.session()
    for c in range(3):
        session.learn(f"c{c}", TASK.example(c, rng))
    assert session.classes() == ["c0", "c1", "c2"]
    assert [s.name for s in session.outputs][-1] == "nearest"
    for c in range(3):
        session.reset()
        out = session.run(TASK.example(c, rng)[:, None], outputs=["nearest"])["nearest"]
        assert out.shape[-1] == 3
        assert session.decide() == [f"c{c}"]


def test_an_unknown_learner_is_named():
    model = dataclasses.replace(TASK.model(), learning={"rule": "hebbian-dreams"})
    with pytest.raises(OptionError, match="learning/rule.*three-factor.*hebbian-dreams"):
        model.session()


def test_a_session_opened_without_its_learner_says_how_to_open_it():
    model = edgesnn.learn.enable_learning(TASK.model(), "features")
    with pytest.raises(UnsupportedError, match="model.session"):
        Session(model, dt_s=model.dt_s)


def test_the_three_factor_learner_still_refuses_fixed_point_numerics():
    model = edgesnn.learn.enable_learning(TASK.model(), "features")
    with pytest.raises(UnsupportedError, match="float numerics"):
        model.session(numerics="loihi")
