"""Compiled operations of one step: what to compute, on which preallocated arrays.

A :class:`~edgesnn.engine.plan.Plan` is a list of these records in execution
order. They hold only references to arrays owned by the plan; kernels (numpy
or native) read inputs and write outputs in place, so a step allocates nothing.
All arrays are float32, C-contiguous, with the batch dimension first.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from edgesnn.neurons import NeuronCoefficients


@dataclasses.dataclass(frozen=True, eq=False)
class SumOp:
    """out = sum(srcs): a node with several incoming edges."""

    node: str
    srcs: tuple[np.ndarray, ...]
    out: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class CopyOp:
    """out = x: a pass-through that cannot alias (zero-step delay)."""

    node: str
    x: np.ndarray
    out: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class DenseOp:
    """out = x @ wt + bias, with x (batch, n_in), wt (n_in, n_out).

    ``binary`` says the input is 0/1 spikes, so active rows of ``wt`` are added
    without multiplying; the kernel gathers only the non-zero inputs when they
    are sparse.
    """

    node: str
    x: np.ndarray
    wt: np.ndarray
    bias: np.ndarray | None
    out: np.ndarray
    binary: bool


@dataclasses.dataclass(frozen=True, eq=False)
class ConvOp:
    """2-d convolution (Conv1d runs as height 1), x (batch, C, H, W), weight (C_out, C_in/g, KH, KW)."""

    node: str
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    out: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    binary: bool


@dataclasses.dataclass(frozen=True, eq=False)
class PoolOp:
    """Window sum divided by ``divisor``; x (batch, C, H, W)."""

    node: str
    x: np.ndarray
    out: np.ndarray
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    divisor: float


@dataclasses.dataclass(frozen=True, eq=False)
class ScaleOp:
    """out = x * scale (scale broadcast to one sample, flattened)."""

    node: str
    x: np.ndarray
    scale: np.ndarray
    out: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class ThresholdOp:
    """out = (x > threshold) as 0/1 (threshold broadcast to one sample, flattened)."""

    node: str
    x: np.ndarray
    threshold: np.ndarray
    out: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class DelayOp:
    """out = x from ``steps`` steps ago, through a ring (steps, batch, n) and a cursor."""

    node: str
    x: np.ndarray
    out: np.ndarray
    ring: np.ndarray
    cursor: np.ndarray  # int64 (1,): next slot to read and overwrite


@dataclasses.dataclass(frozen=True, eq=False)
class NeuronOp:
    """One step of the unified neuron update of :mod:`edgesnn.neurons.discretise`.

    x, out, v, z are (batch, n); i, w and hold are (batch, n) or None when absent.
    ``out`` receives spikes for spiking neurons and ``v`` for readouts; ``hold``
    counts the steps a neuron that fired must still wait (``coeffs.hold_steps > 0``).
    """

    node: str
    x: np.ndarray
    out: np.ndarray
    coeffs: NeuronCoefficients
    v: np.ndarray
    i: np.ndarray | None
    w: np.ndarray | None
    z: np.ndarray
    hold: np.ndarray | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class OnnxOp:
    """out = f(x) for an ONNX part run by onnxruntime; x and out keep their sample shapes."""

    node: str
    x: np.ndarray
    out: np.ndarray
    model: bytes
    input_name: str
    output_name: str
    num_threads: int
    runtime: dict[str, Any] = dataclasses.field(default_factory=dict)  # lazily holds the ORT session


@dataclasses.dataclass(frozen=True, eq=False)
class UnitOp:
    """One step of a :class:`~edgesnn.graph.ThresholdUnit` population: x (batch, n) in, out (batch, n) 0/1 held.

    ``out`` is also the units' state (their last output); ``step`` (int64 (1,)) counts the
    steps since reset, for the asynchronous update mask.
    """

    node: str
    x: np.ndarray
    out: np.ndarray
    threshold: np.ndarray
    activation: str
    k_active: int
    update_probability: float
    seed: int
    step: np.ndarray


Op = SumOp | CopyOp | DenseOp | ConvOp | PoolOp | ScaleOp | ThresholdOp | DelayOp | NeuronOp | OnnxOp | UnitOp
