"""What a session of a graph will allocate, estimated from shapes alone, before anything is allocated.

A bundle of a few kilobytes can describe a session of gigabytes: an ``Input`` of a
billion elements, a Delay whose ring holds a million steps of its input, a batch of
thousands. :func:`check_session` lets the engine refuse such a session with a
:class:`~edgesnn.errors.LimitError` (``limits.session_bytes``) naming the node that
needs the most, instead of failing with MemoryError half way through allocating it.

The estimate mirrors :func:`edgesnn.engine.plan.compile_plan` and both backends: every
node's output buffer (batch, *shape) unless it aliases its source (Flatten, Output),
the sum buffer of a node with several inputs, neuron states and their reset copies,
delay rings and their reset copies, the copies of weights the kernels keep, the
native kernel's scratch and the numpy kernel's per-step im2col matrix. It leaves out
what onnxruntime allocates inside an ONNX part (beyond twice its model bytes) and a
learning head's class scores. All sizes are float32 (4 bytes) unless noted.
"""

from __future__ import annotations

import math

from edgesnn import limits
from edgesnn.errors import LimitError
from edgesnn.graph._node import Node, prefixed
from edgesnn.graph.attention import TRANSFORMER_TYPES, transformer_node_bytes
from edgesnn.graph.conv import AvgPool2d, Conv1d, Conv2d, Flatten, SumPool2d
from edgesnn.graph.graph import Graph
from edgesnn.graph.io_nodes import Input, Output
from edgesnn.graph.neurons import NEURON_TYPES
from edgesnn.graph.onnx_node import Onnx
from edgesnn.graph.plastic_attention import PlasticAttention, plastic_node_bytes
from edgesnn.graph.synapses import Affine, Delay, Linear, Scale, Threshold
from edgesnn.graph.units import ThresholdUnit

_F32 = 4
#: Per-neuron float32 coefficients of the discrete update (edgesnn.neurons.NeuronCoefficients).
_COEFFICIENTS = 14
#: float64 arrays of the population's size alive at once while discretising (parameters and temporaries).
_DISCRETISE_F64 = 16
#: (batch, n) temporaries the numpy neuron kernel makes per step.
_STEP_TEMPORARIES = 4
#: Fraction of inputs at which the kernels switch to the sparse path (engine SPARSE_DENSITY, rounded up).
_SPARSE = 0.25
#: What a session holds beyond its arrays (op records, dicts, the numpy step's closures), and the
#: Python objects threadpoolctl makes while it scans the loaded libraries for each numpy session
#: (measured at 0.4 MiB in a process that has loaded onnxruntime, JAX, h5py and gRPC).
_SESSION_OVERHEAD = 1 << 20
_NODE_OVERHEAD = 1 << 10


def _conv_bytes(node: Conv1d | Conv2d, in_shape: tuple[int, ...], out_shape: tuple[int, ...], batch: int) -> int:
    c_in, *in_hw = in_shape
    c_out, *out_hw = out_shape
    kernel = node.weight.shape[2:]
    padding = node.padding if isinstance(node, Conv2d) else (node.padding,)
    n_in, n_out = math.prod(in_shape), math.prod(out_shape)
    taps = math.prod(kernel)
    # Native: the weight re-laid per input channel, an output accumulator, the tap tables of
    # each axis and the sparse path's (pixel, tap) lists of int32, int32 and float32.
    native = node.weight.size * _F32 + n_out * _F32
    native += sum((s + 2 * s * k) * 4 for s, k in zip(in_hw, kernel, strict=True))
    native += min(math.floor(_SPARSE * batch * n_in), n_in) * taps * 12
    # numpy: the padded input, the im2col matrix of one group and its product, every step.
    padded = batch * c_in * math.prod(s + 2 * p for s, p in zip(in_hw, padding, strict=True)) * _F32
    cols = batch * math.prod(out_hw) * node.weight.shape[1] * taps * _F32
    result = batch * math.prod(out_hw) * (c_out // node.groups) * _F32
    return native + padded + cols + result


def _neuron_bytes(node: Node, dt_s: float, batch: int) -> int:
    from edgesnn.neurons.discretise import hold_steps  # late: edgesnn.neurons builds on edgesnn.graph

    n = math.prod(node.shape)  # type: ignore[attr-defined]
    held = node.spiking and hold_steps(float(getattr(node, "min_spike_interval_s", 0.0)), dt_s) > 0
    states = 2 + int(node.has_synapse) + int(node.has_adaptation) + int(held)  # type: ignore[attr-defined]
    per_step = 2 * states + _STEP_TEMPORARIES  # each state and its reset value, and the kernel's temporaries
    return batch * n * per_step * _F32 + n * (_COEFFICIENTS * _F32 + _DISCRETISE_F64 * 8)


def node_session_bytes(graph: Graph, name: str, dt_s: float, batch: int) -> int:
    """Bytes a session of ``batch`` streams at step ``dt_s`` allocates for node ``name`` (buffers, state, scratch).

    Raises :class:`~edgesnn.errors.LimitError` for a Delay longer than ``limits.delay_steps`` steps.
    """
    node = graph.nodes[name]
    preds = graph.predecessors(name)
    n_in, n_out = math.prod(graph.input_shape(name)), math.prod(graph.shape(name))
    total = _NODE_OVERHEAD
    if not (isinstance(node, (Flatten, Output)) and len(preds) == 1):  # those alias their source's buffer
        total += batch * n_out * _F32
    if len(preds) > 1:
        total += batch * n_in * _F32  # the sum of the incoming edges
    if any(a == name for a, _ in graph.back_edges):
        total += batch * n_out * _F32  # reset value of an output carried to the next step
    if isinstance(node, (Affine, Linear)):
        # The transposed weight, and the native kernel's list of active inputs (int32) and counts (int64).
        total += node.weight.size * _F32 + batch * (n_in * 4 + 8)
    elif isinstance(node, (Conv1d, Conv2d)):
        total += _conv_bytes(node, graph.input_shape(name), graph.shape(name), batch)
    elif isinstance(node, (SumPool2d, AvgPool2d)):
        c, h, w = graph.input_shape(name)
        total += batch * c * (h + 2 * node.padding[0]) * (w + 2 * node.padding[1]) * _F32
    elif isinstance(node, (Scale, Threshold)):
        total += n_in * _F32
    elif isinstance(node, Delay):
        try:
            steps = node.steps(dt_s)
        except LimitError as exc:
            raise prefixed(exc, f"nodes/{name}") from exc
        total += 2 * steps * batch * n_in * _F32 + 16  # the ring and its reset value, a cursor
    elif isinstance(node, NEURON_TYPES):
        total += _neuron_bytes(node, dt_s, batch)
    elif isinstance(node, ThresholdUnit):
        # The reset value of the output, and per step: the new output, the k-WTA sort (int64) and
        # the asynchronous mask's uint64 hashes and bools.
        total += batch * n_out * (_F32 + _F32 + 8 + 3 * 8 + 1) + 64
    elif isinstance(node, Onnx):
        total += 2 * len(node.model)
    elif isinstance(node, TRANSFORMER_TYPES):
        total += transformer_node_bytes(node, graph.input_shape(name), batch)
    elif isinstance(node, PlasticAttention):
        total += plastic_node_bytes(node, batch)
    elif not isinstance(node, (Input, Output, Flatten)):  # pragma: no cover - every node type is listed above
        raise TypeError(f"no memory estimate for {type(node).__name__}")
    return total


def session_bytes_by_node(graph: Graph, dt_s: float, batch: int) -> dict[str, int]:
    """:func:`node_session_bytes` of every node, in execution order."""
    return {name: node_session_bytes(graph, name, dt_s, batch) for name in graph.order}


def session_bytes(graph: Graph, dt_s: float, batch: int) -> int:
    """Bytes a session of ``batch`` streams of ``graph`` at step ``dt_s`` allocates, estimated from shapes."""
    return _SESSION_OVERHEAD + sum(session_bytes_by_node(graph, dt_s, batch).values())


def check_session(graph: Graph, dt_s: float, batch: int) -> int:
    """Refuse a session over ``limits.batch``, ``delay_steps`` or ``session_bytes`` (LimitError); return its bytes.

    The error names the node that needs the most, and how much. Call it before
    allocating anything for the session.
    """
    bounds = limits.current()
    bounds.check("batch", batch, "a batch", path="batch")
    need = session_bytes_by_node(graph, dt_s, batch)
    total = _SESSION_OVERHEAD + sum(need.values())
    if total > bounds.session_bytes:
        worst = max(need, key=need.__getitem__)
        share = f"{need[worst] / total:.0%}"
        bounds.check("session_bytes", total, f"a session of batch {batch} at a step of {dt_s:g} s ({share} of it"
                     f" for node {worst}, a {type(graph.nodes[worst]).__name__}) needing",
                     path=f"nodes/{worst}")  # fmt: skip
    return total


__all__ = ["check_session", "node_session_bytes", "session_bytes", "session_bytes_by_node"]
