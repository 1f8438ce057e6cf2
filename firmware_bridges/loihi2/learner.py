"""Learned classes of a Lava session: rows taught by Lava's learning engine, kept durably in a store on the host.

A model that learns (its ``learning`` configuration, the three-factor rule of
:mod:`edgesnn.learn.rule`) runs on the bridge as on the CPU device, with one
difference in where each part runs:

- the feature layer's spikes come from the Lava network itself (the example is
  stepped through the live network from rest, and the stream's state is put
  back afterwards), so they are Loihi's fixed-point spikes;
- a new class's row is imprinted, and a known one moved to its examples' mean
  with ``shots="mean"``, on the host as the runtime does
  (:func:`edgesnn.learn.rule.add_example_row`); then the rule's epochs run on Lava's
  learning engine (:func:`firmware_bridges.loihi2.learning.learn_on_lava`:
  ``LearningDense`` with ``Loihi3FLearningRule``), whose last weights, in model
  units, become the class rows;
- the class scores, ``u <- beta u + (1 - beta) W s``, are computed by the bridge
  on the host from the features Lava returns each step (a float readout);
- the store (:class:`edgesnn.learn.store.ClassStore`) is written on the host
  before ``learn`` or ``forget`` returns, with the same atomic journal as the CPU
  device, so a learned class survives a crash of the bridge.

Lava's engine runs one pass over whole epochs, with no class bias and constant
steps: a configuration with ``passes > 1``, ``bias`` other than ``"none"`` or
``step`` other than ``"constant"`` is refused when the model loads, and an example
whose length is not a multiple of ``t_epoch`` is refused naming it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgesnn.errors import CapacityError, InputError, NotFoundError, OptionError
from edgesnn.learn import rule
from edgesnn.learn.config import SCORES, LearningConfig, learning_config
from edgesnn.learn.store import ClassStore, StoreRecord, store_key

if TYPE_CHECKING:
    from edgesnn.model import Model

log = logging.getLogger("edgesnn.loihi2.learn")


def check_learning(model: Model) -> LearningConfig:
    """The model's learning configuration if Lava's learning engine can run it; a named error otherwise."""
    config = learning_config(model)
    if config.passes != 1:
        raise OptionError(
            f"Lava's learning engine runs one pass over an example, got passes = {config.passes}",
            path="learning/passes",
        )
    if config.bias != "none":
        raise OptionError(f"Lava's learning engine runs no class bias, got bias {config.bias!r}; use 'none'",
                          path="learning/bias")  # fmt: skip
    if config.step != "constant":
        raise OptionError(f"Lava's learning engine runs constant steps, got step {config.step!r}; use 'constant'",
                          path="learning/step")  # fmt: skip
    return config


class LavaLearner:
    """Class rows of one session; ``teach`` runs the rule on Lava, ``step`` advances the host readout."""

    output_name = SCORES

    def __init__(self, model: Model, tag: str, store: str | Path | None = None) -> None:
        self.config = check_learning(model)
        self._tag = tag
        self._n_features = self.config.feature_size(model)
        self._key = store_key(model, self.config)
        self.labels: tuple[str, ...] = ()
        self.weights = np.zeros((0, self._n_features), np.float32)
        self.examples: tuple[int, ...] = ()
        self.threshold = float(self.config.threshold)
        self._generation = 0
        self.store = ClassStore(Path(store)) if store is not None else None
        if self.store is not None:
            self.store.remove_leftovers()
            record = self.store.load(self._key, self._n_features)
            if record is not None:
                self.labels, self.examples = tuple(record.labels), tuple(int(n) for n in record.examples)
                self.weights, self.threshold = np.asarray(record.weights, np.float32), float(record.threshold)
                self._generation = record.generation
                log.info("%s: restored %d learned classes", self.store.file, len(self.labels))
        self.set_dt(model.dt_s)

    @property
    def feature_node(self) -> str:
        """The spiking layer whose spikes the readout reads."""
        return self.config.feature_node

    def set_dt(self, dt_s: float) -> None:
        """Decays of the trace and the readout at step ``dt_s`` (on open and after a retime)."""
        self.dt_s = dt_s
        self._coeffs = rule.coefficients(self.config, dt_s)

    def step(self, scores: np.ndarray, features: np.ndarray) -> None:
        """One readout step in place: ``scores`` (C,) from the layer's spikes ``features`` (F,)."""
        beta = self._coeffs.beta
        scores *= beta
        if len(self.labels):
            scores += (1.0 - beta) * (self.weights.astype(np.float64) @ features.reshape(-1)).astype(np.float32)

    def teach(self, label: str, spikes: np.ndarray) -> dict[str, Any]:
        """Teach ``label`` from the example's feature spikes (T, F) on Lava's engine; stored before it returns."""
        from firmware_bridges.loihi2.learning import learn_on_lava

        if not isinstance(label, str) or not label:
            raise InputError(f"expected a non-empty string, got {label!r}", path="label")
        t0 = time.perf_counter()
        s = np.asarray(spikes, np.float64)
        new = label not in self.labels
        if new and len(self.labels) >= self.config.max_classes:
            raise CapacityError(
                f"the readout holds max_classes = {self.config.max_classes} classes; forget one first",
                path="learning/max_classes",
            )
        labels, examples = ((*self.labels, label), (*self.examples, 0)) if new else (self.labels, self.examples)
        row = labels.index(label)
        weights = rule.add_example_row(self.weights, row, examples[row], s, self.config, self._coeffs)
        mean_in = rule.mean_input(s, self._coeffs.beta)
        before = float(weights[row].astype(np.float64) @ mean_in)
        got = learn_on_lava(weights, s, row, self.config, self.dt_s, self._tag)
        learned = got.weights[-1].astype(np.float32)
        threshold = self.threshold
        for third in got.third:  # the adaptive threshold follows the epochs Lava triggered
            threshold = rule.next_threshold(threshold, bool(np.any(third)), self.config)
        after = float(learned[row].astype(np.float64) @ mean_in)
        examples = tuple(n + (i == row) for i, n in enumerate(examples))
        t1 = time.perf_counter()
        self._commit(labels, examples, learned, threshold)
        t2 = time.perf_counter()
        return {
            "label": label, "new": new, "action": "added" if new else "reinforced",
            "epochs": int(len(got.third)), "updates": int(np.count_nonzero(got.third)),
            "score_before": before, "score_after": after, "target": float(self.config.target_on),
            "classes": len(self.labels), "steps": int(len(s)), "engine": f"lava-{self._tag}",
            "rule_us": (t1 - t0) * 1e6, "store_us": (t2 - t1) * 1e6,
        }  # fmt: skip

    def forget(self, label: str) -> dict[str, Any]:
        """Remove a class and its row; stored before it returns."""
        if label not in self.labels:
            raise NotFoundError(f"no class {label!r}; classes are {list(self.labels)}", path="label")
        row = self.labels.index(label)
        weights = rule.quantise_weights(np.delete(self.weights, row, axis=0), self.config.weight_bits)
        labels = self.labels[:row] + self.labels[row + 1 :]
        examples = self.examples[:row] + self.examples[row + 1 :]
        self._commit(labels, examples, weights, self.threshold)
        return {"label": label, "classes": len(self.labels)}

    def _commit(
        self, labels: tuple[str, ...], examples: tuple[int, ...], weights: np.ndarray, threshold: float
    ) -> None:
        # The store first: memory never runs ahead of the disk.
        if self.store is not None:
            record = StoreRecord(self._key, labels, examples, weights, threshold, self._generation + 1)
            self.store.write(record)
            self._generation += 1
        self.labels, self.examples, self.weights, self.threshold = labels, examples, weights, threshold
