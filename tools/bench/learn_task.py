"""A small one-shot task for the plastic readout: class-specific input spike patterns through a fixed LIF layer.

Each class is a rate pattern over the inputs (a random subset of inputs fires
often, the rest rarely); an example is Bernoulli spikes from its class's
pattern, with a few of the active inputs swapped per example so that examples
of one class differ in more than noise. The static graph is
``x -> Affine -> LIF "features" -> Affine -> LI -> y``; learning attaches to
``features``. Used by the learning tests, the kill -9 store test's writer and
``tools/bench/learn.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgesnn.graph import LI, LIF, Affine, Graph, Input, Output
from edgesnn.model import Model

DT_S = 1e-3


@dataclasses.dataclass(frozen=True)
class ToyTask:
    """Patterns of ``n_classes`` classes over ``n_inputs`` inputs; examples last ``steps`` steps."""

    n_classes: int = 10
    n_inputs: int = 64
    n_features: int = 256
    steps: int = 100
    active: int = 12  # inputs that fire often in a class's pattern
    rate_on: float = 0.3
    rate_off: float = 0.02
    swaps: int = 2  # active inputs replaced per example
    seed: int = 0

    def model(self) -> Model:
        """The static graph (fixed random weights, deterministic in ``seed``)."""
        rng = np.random.default_rng(self.seed)
        w_in = rng.normal(0.0, 1.0, (self.n_features, self.n_inputs)) * 1.5
        g = Graph(
            {
                "x": Input((self.n_inputs,), unit="spikes"),
                "fc": Affine(w_in.astype(np.float32), np.zeros(self.n_features, np.float32)),
                "features": LIF.uniform(self.n_features, tau_mem_s=0.02, r=1.0, v_threshold=1.0),
                "fc_out": Affine(rng.normal(0, 0.3, (4, self.n_features)).astype(np.float32), np.zeros(4, np.float32)),
                "li": LI.uniform(4, tau_mem_s=0.02),
                "y": Output((4,)),
            },
            [("x", "fc"), ("fc", "features"), ("features", "fc_out"), ("fc_out", "li"), ("li", "y")],
        )
        return Model(g, dt_s=DT_S)

    def patterns(self) -> np.ndarray:
        """Active-input sets, (n_classes, active) indices."""
        rng = np.random.default_rng(self.seed + 1)
        return np.stack([rng.choice(self.n_inputs, self.active, replace=False) for _ in range(self.n_classes)])

    def example(self, label: int, rng: np.random.Generator) -> np.ndarray:
        """One example of class ``label``: spikes (steps, n_inputs) float32."""
        active = self.patterns()[label].copy()
        others = np.setdiff1d(np.arange(self.n_inputs), active)
        swap = rng.choice(self.active, self.swaps, replace=False)
        active[swap] = rng.choice(others, self.swaps, replace=False)
        rates = np.full(self.n_inputs, self.rate_off)
        rates[active] = self.rate_on
        return (rng.random((self.steps, self.n_inputs)) < rates).astype(np.float32)

    def batch(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Examples for many labels at once, (steps, len(labels), n_inputs), for one batched session run."""
        return np.stack([self.example(int(c), rng) for c in labels], axis=1)
