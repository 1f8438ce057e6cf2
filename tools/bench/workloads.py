"""The benchmark networks of issue 2 (W1, W2, W3) as edgesnn models, plus their input streams.

Weights are random but scaled so every LIF layer fires at a realistic rate
(a few percent of neurons per step); the benchmark reports the rates it saw.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgesnn.graph import LI, LIF, Affine, Conv2d, Flatten, Graph, Input, Linear, Output
from edgesnn.model import Model

DT_S = 1e-3
TAU_MEM_S = 20e-3
TAU_OUT_S = 10e-3


@dataclasses.dataclass(frozen=True)
class Workload:
    """A benchmark network, its step count, input density and the LIF layers whose rates are reported."""

    name: str
    model: Model
    steps: int
    input_shape: tuple[int, ...]
    input_density: float
    lif_layers: tuple[str, ...]
    description: str

    def inputs(self, rng: np.random.Generator, batch: int = 1, steps: int | None = None) -> np.ndarray:
        """Bernoulli spike input (steps, batch, *input_shape), float32 0/1."""
        t = self.steps if steps is None else steps
        return (rng.random((t, batch, *self.input_shape), dtype=np.float32) < self.input_density).astype(np.float32)


def _lif(n: int | tuple[int, ...]) -> LIF:
    return LIF.uniform(n, tau_mem_s=TAU_MEM_S, r=1.0, v_leak=0.0, v_threshold=1.0, v_reset=0.0)


def _li(n: int) -> LI:
    return LI.uniform(n, tau_mem_s=TAU_OUT_S, r=1.0, v_leak=0.0)


def _normal(rng: np.random.Generator, shape: tuple[int, ...], mean: float, std: float) -> np.ndarray:
    return (mean + std * rng.standard_normal(shape)).astype(np.float32)


def w1(rng: np.random.Generator) -> Workload:
    """700 spike inputs -> 256 recurrent LIF -> 20 LI."""
    nodes = {
        "in": Input((700,)),
        "fc_in": Linear(_normal(rng, (256, 700), 0.1, 0.5)),
        "lif": _lif(256),
        "fc_rec": Linear(_normal(rng, (256, 256), 0.0, 0.3)),
        "fc_out": Affine(_normal(rng, (20, 256), 0.0, 0.3), np.zeros(20, np.float32)),
        "li": _li(20),
        "out": Output((20,)),
    }
    edges = [("in", "fc_in"), ("fc_in", "lif"), ("lif", "fc_rec"), ("fc_rec", "lif"), ("lif", "fc_out"),
             ("fc_out", "li"), ("li", "out")]  # fmt: skip
    model = Model(Graph(nodes, tuple(edges)), DT_S)
    return Workload("W1", model, 1000, (700,), 0.02, ("lif",), "700 -> 256 recurrent LIF -> 20 LI")


def w2(rng: np.random.Generator) -> Workload:
    """700 spike inputs -> 512 LIF -> 512 LIF -> 20 LI."""
    nodes = {
        "in": Input((700,)),
        "fc1": Linear(_normal(rng, (512, 700), 0.1, 0.5)),
        "lif1": _lif(512),
        "fc2": Linear(_normal(rng, (512, 512), 0.06, 0.4)),
        "lif2": _lif(512),
        "fc_out": Affine(_normal(rng, (20, 512), 0.0, 0.3), np.zeros(20, np.float32)),
        "li": _li(20),
        "out": Output((20,)),
    }
    edges = [("in", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "fc_out"), ("fc_out", "li"),
             ("li", "out")]  # fmt: skip
    model = Model(Graph(nodes, tuple(edges)), DT_S)
    return Workload("W2", model, 1000, (700,), 0.02, ("lif1", "lif2"), "700 -> 512 LIF -> 512 LIF -> 20 LI")


def w3(rng: np.random.Generator) -> Workload:
    """2x64x64 events -> conv3x3/2 16 LIF -> conv3x3/2 32 LIF -> flatten -> dense 10 LI."""
    nodes = {
        "in": Input((2, 64, 64)),
        "conv1": Conv2d(_normal(rng, (16, 2, 3, 3), 8.0, 4.0), np.zeros(16, np.float32), stride=(2, 2), padding=(1, 1)),
        "lif1": _lif((16, 32, 32)),
        "conv2": Conv2d(
            _normal(rng, (32, 16, 3, 3), 0.2, 0.5), np.zeros(32, np.float32), stride=(2, 2), padding=(1, 1)
        ),
        "lif2": _lif((32, 16, 16)),
        "flat": Flatten(),
        "fc": Affine(_normal(rng, (10, 32 * 16 * 16), 0.0, 0.1), np.zeros(10, np.float32)),
        "li": _li(10),
        "out": Output((10,)),
    }
    edges = [("in", "conv1"), ("conv1", "lif1"), ("lif1", "conv2"), ("conv2", "lif2"), ("lif2", "flat"), ("flat", "fc"),
             ("fc", "li"), ("li", "out")]  # fmt: skip
    model = Model(Graph(nodes, tuple(edges)), DT_S)
    desc = "2x64x64 -> conv3x3 s2 p1 16 LIF -> conv3x3 s2 p1 32 LIF -> flatten -> 10 LI"
    return Workload("W3", model, 300, (2, 64, 64), 0.01, ("lif1", "lif2"), desc)


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3}
