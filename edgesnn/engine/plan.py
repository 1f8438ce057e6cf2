"""Compile a graph, for one dt and batch size, into preallocated buffers and ops."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from edgesnn.engine import ops as O
from edgesnn.engine._plastic import build_plastic_op, runs_fixed_point
from edgesnn.engine._transformer import TRANSFORMER_NODES, build_op
from edgesnn.graph import (
    Affine,
    AvgPool2d,
    Conv1d,
    Conv2d,
    Delay,
    Flatten,
    Graph,
    Input,
    Linear,
    Onnx,
    Output,
    PlasticAttention,
    Scale,
    SumPool2d,
    Threshold,
    ThresholdUnit,
)  # fmt: skip
from edgesnn.graph.memory import check_session
from edgesnn.graph.neurons import NEURON_TYPES
from edgesnn.neurons import discretise

log = logging.getLogger("edgesnn.engine")


@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
    """Everything one session needs to step a graph: buffers, ops, state.

    ``buffers`` maps every node to its output (batch, *shape); ``state`` maps a
    key (``"<node>/v"``, ``"<node>/ring"``, ``"<node>/out"`` for values carried
    by back edges, ...) to the array that holds it, and ``initial`` gives each
    state key its reset value. ``records`` maps the names of the neuron states a
    user may record (``"<node>/v"``, ``"<node>/i"``, ``"<node>/w"``; Loihi numerics
    add its integers) to views (batch, *node shape) of the arrays holding them.
    """

    graph: Graph
    dt_s: float
    method: str
    batch: int
    buffers: dict[str, np.ndarray]
    ops: tuple[O.Op, ...]
    state: dict[str, np.ndarray]
    initial: dict[str, np.ndarray]
    records: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def reset(self) -> None:
        """Put every state array back to its initial value."""
        for buf in self.buffers.values():
            buf.fill(0)
        for key, arr in self.state.items():
            np.copyto(arr, self.initial[key])


def _flat2(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], -1)


def _is_binary(graph: Graph, name: str) -> bool:
    # 0/1 outputs: spiking nodes, and shape-only nodes fed by exactly one binary source.
    node = graph.nodes[name]
    if node.spiking:
        return getattr(node, "max_spikes_per_step", 1) == 1
    if isinstance(node, (Flatten, Output, Delay)):
        preds = graph.predecessors(name)
        return len(preds) == 1 and preds[0] != name and _is_binary(graph, preds[0])
    return False


NUMERICS = ("float", "loihi", "gaincell")


def resolve_aliases(graph: Graph, buffers: dict[str, np.ndarray], batch: int) -> None:
    """Give every node without a buffer a view of its single source's buffer (Flatten, Output).

    A loop, not a recursive closure: a closure that calls itself is a reference cycle, which
    would keep every buffer of a closed session alive until the cyclic collector runs.
    """
    for name in graph.order:
        chain = []
        node = name
        while node not in buffers:
            chain.append(node)
            (node,) = graph.predecessors(node)
        view = buffers[node]
        for alias in reversed(chain):
            view = buffers[alias] = view.reshape((batch, *graph.shape(alias)))


def compile_plan(
    graph: Graph,
    dt_s: float,
    method: str,
    batch: int,
    *,
    num_threads: int = 1,
    numerics: str = "float",
    loihi_network: object | None = None,
) -> Plan:
    """Allocate buffers and state for ``batch`` samples and list the ops of one step.

    ``numerics="loihi"`` runs Loihi's fixed-point CUBA LIF in integers
    (:mod:`edgesnn.engine._loihi`): ``loihi_network`` (an
    :class:`edgesnn.loihi.LoihiNetwork`) as it is, or else the graph quantised.
    ``numerics="gaincell"`` runs attention layers on the gain-cell device model
    (:mod:`edgesnn.engine._gaincell`) and every other node as under ``"float"``.
    """
    check_session(graph, dt_s, batch)  # refuse before allocating: shapes x batch x delays within limits
    if numerics == "loihi" and not runs_fixed_point(graph):  # plastic attention: its own integers, below
        from edgesnn.engine._loihi import compile_loihi_plan

        return compile_loihi_plan(graph, dt_s, method, batch, network=loihi_network)
    buffers: dict[str, np.ndarray] = {}
    state: dict[str, np.ndarray] = {}
    initial: dict[str, np.ndarray] = {}
    records: dict[str, np.ndarray] = {}
    ops: list[O.Op] = []

    def alloc(shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros((batch, *shape), np.float32)

    # Nodes that only reshape or pass through alias their single source's buffer.
    def aliases(name: str) -> bool:
        node = graph.nodes[name]
        preds = graph.predecessors(name)
        return isinstance(node, (Flatten, Output)) and len(preds) == 1

    # Back-edge consumers may run before their source, so every non-alias buffer
    # must exist before ops are built: allocate in order, aliases resolved lazily.
    for name in graph.order:
        if not aliases(name):
            buffers[name] = alloc(graph.shape(name))

    resolve_aliases(graph, buffers, batch)

    for name in graph.order:
        node = graph.nodes[name]
        if isinstance(node, Input) or aliases(name):
            continue
        preds = graph.predecessors(name)
        in_shape = graph.input_shape(name)
        if len(preds) == 1:
            x = buffers[preds[0]].reshape((batch, *in_shape))
            binary = _is_binary(graph, preds[0])
        else:
            x = alloc(in_shape)
            ops.append(O.SumOp(name, tuple(buffers[p].reshape((batch, *in_shape)) for p in preds), x))
            binary = False
        out = buffers[name]
        if isinstance(node, (Affine, Linear)):
            bias = node.bias if isinstance(node, Affine) else None
            wt = np.ascontiguousarray(node.weight.T)
            ops.append(O.DenseOp(name, _flat2(x), wt, bias, _flat2(out), binary))
        elif isinstance(node, Conv2d):
            ops.append(
                O.ConvOp(
                    name, x, node.weight, node.bias, out, node.stride, node.padding, node.dilation, node.groups, binary
                )
            )
        elif isinstance(node, Conv1d):
            c, n = in_shape
            ops.append(
                O.ConvOp(
                    name, x.reshape(batch, c, 1, n), node.weight[:, :, None, :], node.bias,
                    out.reshape(batch, out.shape[1], 1, out.shape[2]), (1, node.stride), (0, node.padding),
                    (1, node.dilation), node.groups, binary,
                )
            )  # fmt: skip
        elif isinstance(node, (SumPool2d, AvgPool2d)):
            ops.append(O.PoolOp(name, x, out, node.kernel_size, node.stride, node.padding, node.divisor))
        elif isinstance(node, Scale):
            s = np.ascontiguousarray(np.broadcast_to(node.scale, in_shape), np.float32).reshape(-1)
            ops.append(O.ScaleOp(name, _flat2(x), s, _flat2(out)))
        elif isinstance(node, Threshold):
            t = np.ascontiguousarray(np.broadcast_to(node.threshold, in_shape), np.float32).reshape(-1)
            ops.append(O.ThresholdOp(name, _flat2(x), t, _flat2(out)))
        elif isinstance(node, Delay):
            steps = node.steps(dt_s)
            if not math.isclose(steps * dt_s, node.delay_s, rel_tol=1e-6, abs_tol=1e-12):
                log.warning(
                    "%s: delay %g s is not a whole number of %g s steps; using %d", name, node.delay_s, dt_s, steps
                )
            if steps == 0:
                ops.append(O.CopyOp(name, _flat2(x), _flat2(out)))
            else:
                ring = np.zeros((steps, batch, math.prod(in_shape)), np.float32)
                cursor = np.zeros(1, np.int64)
                state[f"{name}/ring"], initial[f"{name}/ring"] = ring, np.zeros_like(ring)
                state[f"{name}/cursor"], initial[f"{name}/cursor"] = cursor, np.zeros_like(cursor)
                ops.append(O.DelayOp(name, _flat2(x), _flat2(out), ring, cursor))
        elif isinstance(node, NEURON_TYPES):
            c = discretise(node, dt_s, method)
            # Kernels see (batch, n) views, so per-neuron coefficients are flattened too.
            c = dataclasses.replace(
                c,
                **{
                    f.name: getattr(c, f.name).reshape(-1)
                    for f in dataclasses.fields(c)
                    if isinstance(getattr(c, f.name), np.ndarray)
                },
            )
            n = c.a_v.size
            v = np.empty((batch, n), np.float32)
            state[f"{name}/v"] = v
            initial[f"{name}/v"] = np.broadcast_to(c.v_leak.reshape(1, n), (batch, n)).copy()
            i = w = None
            if c.has_synapse:
                i = np.zeros((batch, n), np.float32)
                state[f"{name}/i"], initial[f"{name}/i"] = i, np.zeros_like(i)
            if c.has_adaptation:
                w = np.zeros((batch, n), np.float32)
                state[f"{name}/w"], initial[f"{name}/w"] = w, np.zeros_like(w)
            z = np.zeros((batch, n), np.float32)
            state[f"{name}/z"], initial[f"{name}/z"] = z, np.zeros_like(z)
            hold = None
            if c.hold_steps > 0:
                hold = np.zeros((batch, n), np.float32)
                state[f"{name}/hold"], initial[f"{name}/hold"] = hold, np.zeros_like(hold)
            ops.append(O.NeuronOp(name, _flat2(x), _flat2(out), c, v, i, w, z, hold))
            for key, arr in (("v", v), ("i", i), ("w", w)):
                if arr is not None:
                    records[f"{name}/{key}"] = arr.reshape((batch, *node.shape))
        elif isinstance(node, ThresholdUnit):
            n = node.size
            z = out  # (batch, n): the units' output is their state, read back by the recurrent edge
            step = np.zeros(1, np.int64)
            state[f"{name}/z"], initial[f"{name}/z"] = z, np.broadcast_to(node.initial, (batch, n)).copy()
            state[f"{name}/step"], initial[f"{name}/step"] = step, np.zeros_like(step)
            records[f"{name}/z"] = out
            ops.append(O.UnitOp(name, _flat2(x), z, node.threshold, node.activation, node.k_active,
                                node.update_probability, node.seed, step))  # fmt: skip
        elif isinstance(node, TRANSFORMER_NODES):  # attention runs the gain-cell model under "gaincell"
            ops.append(build_op(name, node, _flat2(x), _flat2(out), state, initial, numerics))  # type: ignore[arg-type]
        elif isinstance(node, PlasticAttention):  # integers under "loihi" (edgesnn.engine._plastic)
            ops.append(build_plastic_op(name, node, _flat2(x), _flat2(out), state, initial, numerics))
        elif isinstance(node, Onnx):
            ops.append(O.OnnxOp(name, x, out, node.model, node.input_name, node.output_name, num_threads))
        elif isinstance(node, Output):
            ops.append(O.CopyOp(name, _flat2(x), _flat2(out)))
        else:  # pragma: no cover - every registered node type is handled above
            raise TypeError(f"no engine operation for {type(node).__name__}")

    # Values carried across steps by back edges are state too.
    for src, _dst in sorted(graph.back_edges):
        key = f"{src}/out"
        if key not in state and not any(arr is buffers[src] for arr in state.values()):  # a unit's own state
            state[key] = buffers[src]
            initial[key] = np.zeros_like(buffers[src])
    plan = Plan(graph, float(dt_s), method, batch, buffers, tuple(ops), state, initial, records)
    plan.reset()
    return plan
