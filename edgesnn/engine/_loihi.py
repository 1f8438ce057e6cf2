"""Loihi fixed-point execution (``numerics="loihi"``): ops, numpy kernels and the plan that uses them.

The network is the model's own (``Model.loihi``, run as it is) or the model quantised by
:func:`edgesnn.loihi.quantize`; each weighted connection becomes a :class:`LoihiDenseOp`
or :class:`LoihiConvOp` producing int32 synaptic messages from the weights as Lava
stores them (:attr:`edgesnn.loihi.Connection.lava_weight`), each neuron layer a
:class:`LoihiCubaOp` stepping Lava's integer CUBA LIF (:mod:`edgesnn.loihi.fixed`). As in
Lava, every connection delivers its message one step after the spikes that caused it,
so a step first advances every neuron layer on the messages held from the previous step,
then every connection turns this step's spikes into the messages of the next (its state
``<node>/a_buf``, Lava's ``a_buff``). The native backend has no kernels for these ops and
runs them through the numpy kernels here (see ``_native.make_step``).

Outputs: spiking layers give 0/1 spikes; non-spiking readouts give the integer
voltage in model units (``v_int * 2**-scale_exp``, exact in float32). Recordable
states per layer: ``<node>/u`` and ``<node>/v``, the int32 integers as Lava holds them
(its Vars ``u`` and ``v``), and ``<node>/u_float``, ``<node>/v_float``, the same in the
model's units as float32 (``* 2**-scale_exp``; ``u_float`` is the current's drive of the
voltage per step, the float model's ``g_v * I``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from edgesnn.engine.plan import Plan, resolve_aliases
from edgesnn.errors import GraphError, InputError, UnsupportedError
from edgesnn.graph import Flatten, Graph, Input, Output
from edgesnn.loihi import fixed
from edgesnn.loihi.network import LoihiNetwork
from edgesnn.loihi.quantize import quantize_graph

#: Integer sums below this magnitude are exact in float32 (any summation order).
_F32_EXACT = 1 << 24


@dataclasses.dataclass(frozen=True, eq=False)
class LoihiDenseOp:
    """Integer dense synapse: next step's message ``a_buf = wrap32(shift(W @ (x != 0), exp))``."""

    node: str
    x: np.ndarray  # float32 (batch, n_in): the source's spikes
    weight_t: np.ndarray  # (n_in, n_out) integer-valued float32/float64 (exact sums)
    exp: int
    a_buf: np.ndarray  # int32 (batch, n_out): the message the target reads next step
    out: np.ndarray  # float32 (batch, n_out): the message delivered this step, for recording
    check_binary: bool  # the source is an Input: refuse values other than 0/1


@dataclasses.dataclass(frozen=True, eq=False)
class LoihiConvOp:
    """Integer 2-d convolution (PyTorch semantics) of binary spikes, wrapped to 24 bits, one step late."""

    node: str
    x: np.ndarray  # float32 (batch, C, H, W)
    weight: np.ndarray  # float64 (C_out, C_in/g, KH, KW), integer-valued
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    out_hw: tuple[int, int]
    a_buf: np.ndarray  # int32 (batch, C_out*Ho*Wo)
    out: np.ndarray  # float32 (batch, C_out*Ho*Wo)
    check_binary: bool


@dataclasses.dataclass(frozen=True, eq=False)
class LoihiCubaOp:
    """One step of Lava's fixed-point CUBA LIF over the int32 messages of its connections."""

    node: str
    srcs: tuple[np.ndarray, ...]  # int32 (batch, n): the a_buf of each incoming connection
    out: np.ndarray  # float32 (batch, n)
    u: np.ndarray  # int32 (batch, n)
    v: np.ndarray  # int32 (batch, n)
    du: int
    dv: int
    vth: int
    bias: np.ndarray  # int64 (n,)
    spiking: bool
    inv_scale: float  # 2**-scale_exp
    u_float: np.ndarray  # float32 (batch, n): u in model units after the step, for recording
    v_float: np.ndarray  # float32 (batch, n)


def _spikes(x: np.ndarray, check: bool, node: str) -> np.ndarray:
    if check and np.any((x != 0) & (x != 1)):
        raise InputError(f"Loihi numerics take binary spikes (0/1) into {node!r}; got other values", path="inputs")
    return x != 0


def _deliver(a_new: np.ndarray, a_buf: np.ndarray, out: np.ndarray) -> None:
    np.copyto(out, a_buf, casting="unsafe")  # what the target read this step
    np.copyto(a_buf, a_new)


def dense_op(op: LoihiDenseOp) -> None:
    """Sum the weights of active inputs (exact), apply the exponent, wrap to int32, deliver."""
    s = _spikes(op.x, op.check_binary, op.node)
    acc = np.empty((s.shape[0], op.weight_t.shape[1]), op.weight_t.dtype)
    for b in range(s.shape[0]):
        idx = np.flatnonzero(s[b])
        np.sum(op.weight_t[idx], axis=0, out=acc[b])
    _deliver(fixed.wrap32(fixed.shift(acc.astype(np.int64), op.exp)), op.a_buf, op.out)


def conv_op(op: LoihiConvOp) -> None:
    """Integer convolution of the spikes, 24-bit wrap (as Lava's fixed-point Conv), deliver."""
    from edgesnn.engine._numpy_kernels import _windows

    s = _spikes(op.x, op.check_binary, op.node).astype(np.float64)
    b = s.shape[0]
    c_out, c_in_g, kh, kw = op.weight.shape
    ho, wo = op.out_hw
    win = _windows(s, (kh, kw), op.stride, op.padding, op.dilation, (ho, wo))
    res = np.empty((b, c_out, ho, wo), np.float64)
    g_out = c_out // op.groups
    for g in range(op.groups):
        cols = win[:, g * c_in_g : (g + 1) * c_in_g].transpose(0, 2, 3, 1, 4, 5).reshape(b * ho * wo, -1)
        w = op.weight[g * g_out : (g + 1) * g_out].reshape(g_out, -1)
        res[:, g * g_out : (g + 1) * g_out] = (cols @ w.T).reshape(b, ho, wo, g_out).transpose(0, 3, 1, 2)
    _deliver(fixed.signed_wrap(np.rint(res).astype(np.int64), 24).reshape(b, -1), op.a_buf, op.out)


def cuba_op(op: LoihiCubaOp) -> None:
    """Lava's bit-accurate CUBA LIF step (edgesnn.loihi.fixed.cuba_step) over the summed messages."""
    a = np.zeros(op.u.shape, np.int64)
    for src in op.srcs:
        a = fixed.wrap32(a + src).astype(np.int64)  # Lava adds the int32 messages in int32
    u, v, spikes = fixed.cuba_step(op.u, op.v, a, op.du, op.dv, op.vth, op.bias)
    np.copyto(op.u, u)
    np.copyto(op.v, v)
    # |u| may exceed 2**24 (Lava folds it only once), so scale in float64 before rounding to float32.
    np.multiply(op.u, op.inv_scale, out=op.u_float, casting="unsafe")
    np.multiply(op.v, op.inv_scale, out=op.v_float, casting="unsafe")
    if op.spiking:
        np.copyto(op.out, spikes, casting="unsafe")
    else:
        np.copyto(op.out, op.v_float)


KERNELS = {LoihiDenseOp: dense_op, LoihiConvOp: conv_op, LoihiCubaOp: cuba_op}


def check_network_step(net: LoihiNetwork, dt_s: float) -> None:
    """Refuse running ``net`` at another step than the one its integers were made for."""
    if not math.isclose(net.dt_s, dt_s, rel_tol=1e-9, abs_tol=0.0):
        raise UnsupportedError(
            f"the model's Loihi network was made for a step of {net.dt_s:g} s, the session steps at {dt_s:g} s;"
            " integer decays are per step and are not retimed: build the network for this step (quantize the"
            " float model at it, or read the netx file with dt_s)",
            path="dt",
        )


def check_network_graph(net: LoihiNetwork, graph: Graph) -> None:
    """Refuse a network whose inputs, layers, connections or outputs are not the graph's (names and shapes)."""
    for name, shape in net.inputs.items():
        node = graph.nodes.get(name)
        if not isinstance(node, Input) or tuple(node.shape) != tuple(shape):
            raise GraphError(f"the Loihi network has an input {name!r} {shape}; the graph has no such Input", path=name)
    for name, layer in net.neurons.items():
        if name not in graph.nodes or graph.shape(name) != layer.shape:
            raise GraphError(f"the Loihi network has a layer {name!r} {layer.shape}; the graph has no such node",
                             path=name)  # fmt: skip
    for name in net.connections:
        if name not in graph.nodes or len(graph.predecessors(name)) != 1:
            raise GraphError(f"the Loihi network has a connection {name!r}; the graph has no such node with one"
                             " source", path=name)  # fmt: skip
    for name in graph.outputs:
        if net.outputs.get(name) is None:
            raise GraphError("the graph's output is not one of the Loihi network's outputs", path=name)


def compile_loihi_plan(
    graph: Graph, dt_s: float, method: str, batch: int, *, network: LoihiNetwork | None = None
) -> Plan:
    """Lay out buffers, integer state and Loihi ops for ``batch`` streams of ``network`` (default: ``graph`` quantised).

    A given network runs as it is, so it must have been made for ``dt_s`` and match the graph.
    """
    if network is None:
        return plan_for(quantize_graph(graph, dt_s, method), graph, batch)
    check_network_step(network, dt_s)
    check_network_graph(network, graph)
    return plan_for(network, graph, batch)


def plan_for(net: LoihiNetwork, graph: Graph, batch: int) -> Plan:
    """Buffers, state and ops that step ``net`` (quantised from ``graph``)."""
    buffers: dict[str, np.ndarray] = {}
    state: dict[str, np.ndarray] = {}
    initial: dict[str, np.ndarray] = {}
    records: dict[str, np.ndarray] = {}

    for name in graph.order:
        node = graph.nodes[name]
        if not isinstance(node, (Flatten, Output)):
            buffers[name] = np.zeros((batch, *graph.shape(name)), np.float32)
    resolve_aliases(graph, buffers, batch)
    a_bufs = {name: np.zeros((batch, int(np.prod(c.out_shape))), np.int32) for name, c in net.connections.items()}
    neuron_ops, conn_ops = [], []
    for name, layer in net.neurons.items():
        n = layer.size
        u = np.zeros((batch, n), np.int32)
        v = np.zeros((batch, n), np.int32)
        state[f"{name}/u"], initial[f"{name}/u"] = u, np.broadcast_to(layer.u_init, (batch, n)).copy()
        state[f"{name}/v"], initial[f"{name}/v"] = v, np.broadcast_to(layer.v_init, (batch, n)).copy()
        u_float, v_float = np.zeros((batch, n), np.float32), np.zeros((batch, n), np.float32)
        srcs = tuple(a_bufs[c.node] for c in net.incoming(name))
        neuron_ops.append(LoihiCubaOp(name, srcs, buffers[name].reshape(batch, -1), u, v, layer.du, layer.dv,
                                      layer.vth, layer.bias, layer.spiking, 2.0**-layer.scale_exp, u_float,
                                      v_float))  # fmt: skip
        shape = (batch, *layer.shape)
        for key, arr in (("u", u), ("v", v), ("u_float", u_float), ("v_float", v_float)):
            records[f"{name}/{key}"] = arr.reshape(shape)
    for name, c in net.connections.items():
        a_buf = a_bufs[name]
        state[f"{name}/a_buf"], initial[f"{name}/a_buf"] = a_buf, np.zeros_like(a_buf)
        out = buffers[name].reshape(batch, -1)
        (pred,) = graph.predecessors(name)
        x = buffers[pred]
        check = c.source in net.inputs
        if c.kind == "dense":
            w = c.lava_weight  # as Lava's fixed-point model stores it: clipped, truncated
            bound = float(np.max(np.abs(w.astype(np.int64)).sum(axis=1), initial=0))
            wt = np.ascontiguousarray(w.T, np.float32 if bound < _F32_EXACT else np.float64)
            conn_ops.append(LoihiDenseOp(name, x.reshape(batch, -1), wt, c.weight_exp, a_buf, out, check))
        else:
            xs = x.reshape(batch, *c.in_shape)
            conn_ops.append(LoihiConvOp(name, xs, c.weight.astype(np.float64), c.stride, c.padding, c.dilation,
                                        c.groups, c.out_shape[1:], a_buf, out, check))  # fmt: skip
    # Neurons first, on last step's messages; then the connections make the next step's.
    ops = (*neuron_ops, *conn_ops)
    plan = Plan(graph, float(net.dt_s), net.method, batch, buffers, ops, state, initial, records)
    plan.reset()
    return plan
