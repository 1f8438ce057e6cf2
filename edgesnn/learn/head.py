"""The plastic head a session attaches to a feature node: live class scores, learn, forget, persistence.

The static graph stays as it is. After every step the head reads the feature
node's spikes ``s`` (batch, F) and advances its leaky readout
``u <- beta * u + (1 - beta) * s @ W.T`` (batch, C): the class scores. Learning
runs the example through a private batch-1 plan (:class:`FeatureRecorder`), so
the live stream's state is not touched, teaches the :class:`PlasticReadout`,
writes the class store if there is one, and only then changes the live weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgesnn.engine.learner import Learner
from edgesnn.errors import UnsupportedError
from edgesnn.learn import rule
from edgesnn.learn._recorder import FeatureRecorder
from edgesnn.learn.config import SCORES, learning_config
from edgesnn.learn.readout import PlasticReadout
from edgesnn.learn.store import ClassStore, StoreRecord, store_key

if TYPE_CHECKING:
    from edgesnn.engine.plan import Plan
    from edgesnn.engine.session import SessionOptions
    from edgesnn.model import Model

log = logging.getLogger("edgesnn.learn")

#: Key of the readout's membrane in the session state (saved and reset with the rest).
STATE_KEY = f"{SCORES}/u"


class PlasticHead(Learner):
    """Learned classes of one session; the session calls :meth:`attach` whenever it (re)builds its plan."""

    output_name = SCORES

    def __init__(self, model: Model, plan: Plan, options: SessionOptions, store: str | Path | None = None) -> None:
        if options.numerics != "float":
            raise UnsupportedError(
                "on-device learning runs with float numerics only; open the session with numerics='float'",
                path="numerics",
            )
        self.config = learning_config(model)
        self._n_features = self.config.feature_size(model)
        self._key = store_key(model, self.config)  # bound to the model as the session opened it
        self._options = options
        self.readout = PlasticReadout(self.config, dt_s=model.dt_s)
        self.store = ClassStore(Path(store)) if store is not None else None
        self._generation = 0
        self._recorder: FeatureRecorder | None = None
        if self.store is not None:
            self.store.remove_leftovers()
            record = self.store.load(self._key, self._n_features)
            if record is not None:
                self.readout.restore(record.labels, record.weights, record.threshold, np.array(record.examples))
                self._generation = record.generation
                log.info("%s: restored %d learned classes", self.store.file, len(record.labels))
        self.attach(plan, model)

    # -- wiring ------------------------------------------------------------------
    def attach(self, plan: Plan, model: Model) -> None:
        """Read features from ``plan`` and keep the scores in its state; called on build and retime."""
        self._plan, self._model = plan, model
        self.readout.set_params(dt_s=plan.dt_s)
        self._beta = self.readout._coefficients().beta
        self._features = plan.buffers[self.config.feature_node].reshape(plan.batch, -1)
        self._recorder = None  # built on first learn, at this plan's dt
        old = plan.state.get(STATE_KEY)
        self._set_scores(np.zeros((plan.batch, len(self.classes())), np.float32) if old is None else old)
        self._refresh_weights()

    def advance(self) -> None:
        """One readout step on the feature spikes the plan just produced."""
        u = self.scores
        u *= self._beta
        if u.shape[1]:
            u += self._features @ self._wt
            if self._bt is not None:  # the prototype bias: a constant input current per class
                u += self._bt

    def _set_scores(self, scores: np.ndarray) -> None:
        self.scores = scores
        self._plan.state[STATE_KEY] = scores
        self._plan.initial[STATE_KEY] = np.zeros_like(scores)

    def _refresh_weights(self) -> None:
        coef = getattr(self.readout, "coef_", np.zeros((0, self._n_features), np.float32))
        self._wt = np.ascontiguousarray(((1.0 - self._beta) * coef.astype(np.float64)).T, np.float32)
        bias = rule.bias(coef, self.config) if self.config.bias != "none" else None
        self._bt = None if bias is None else ((1.0 - self._beta) * bias).astype(np.float32)

    # -- learning ------------------------------------------------------------------
    def classes(self) -> list[str]:
        """Learned labels in score-column order."""
        return list(getattr(self.readout, "classes_", ()))

    def learn(self, label: str, example: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Teach ``label`` one example; durable in the store (if any) before this returns."""
        t0 = time.perf_counter()
        if self._recorder is None:
            self._recorder = FeatureRecorder(self._model, self._plan.dt_s, self.config.feature_node, self._options)
        spikes = self._recorder.record(example)
        t1 = time.perf_counter()
        before = self.classes()
        snapshot = self.readout._snapshot()
        self.readout.partial_fit(spikes, label)
        t2 = time.perf_counter()
        self._commit(snapshot)
        t3 = time.perf_counter()
        self._reshape_scores(before)
        update = self.readout.last_update_
        return {
            "label": label,
            "new": update.new,
            "action": "added" if update.new else "reinforced",
            "epochs": update.epochs,
            "updates": update.updates,
            "score_before": update.score_before,
            "score_after": update.score_after,
            "target": update.target,
            "overshot": update.overshot,
            "classes": len(self.classes()),
            "steps": len(spikes),
            "elapsed_us": (time.perf_counter() - t0) * 1e6,
            "forward_us": (t1 - t0) * 1e6,
            "rule_us": (t2 - t1) * 1e6,
            "store_us": (t3 - t2) * 1e6,
        }

    def forget(self, label: str) -> dict[str, Any]:
        """Remove a class; durable in the store (if any) before this returns."""
        before = self.classes()
        snapshot = self.readout._snapshot()
        self.readout.forget(label)
        self._commit(snapshot)
        self._reshape_scores(before)
        return {"label": label, "classes": len(self.classes())}

    def decide(self) -> list[str | None]:
        """Per stream, the label with the highest current score (None before any class)."""
        labels = self.classes()
        if not labels:
            return [None] * self.scores.shape[0]
        return [labels[int(i)] for i in np.argmax(self.scores, axis=1)]

    def _commit(self, snapshot: dict[str, Any]) -> None:
        """Write the store; if that fails, put the readout back so memory never runs ahead of the disk."""
        if self.store is None:
            return
        r = self.readout
        record = StoreRecord(
            self._key, tuple(r.classes_), tuple(int(n) for n in r.n_examples_), r.coef_, r.threshold_,
            self._generation + 1,
        )  # fmt: skip
        try:
            self.store.write(record)
        except BaseException:
            r._rollback(snapshot)
            raise
        self._generation += 1

    def _reshape_scores(self, before: list[str]) -> None:
        # Surviving classes keep their live score; a new class starts at rest.
        after = self.classes()
        scores = np.zeros((self.scores.shape[0], len(after)), np.float32)
        for j, label in enumerate(after):
            if label in before:
                scores[:, j] = self.scores[:, before.index(label)]
        self._set_scores(scores)
        self._refresh_weights()


def open_plastic_head(model: Model, plan: Plan, options: SessionOptions) -> PlasticHead:
    """The learner factory of the three-factor rule: a head with the session's store (if any)."""
    return PlasticHead(model, plan, options, options.store)
