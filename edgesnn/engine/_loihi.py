"""Loihi fixed-point execution (``numerics="loihi"``): ops, numpy kernels and the plan that uses them.

The model is quantised by :func:`edgesnn.loihi.quantize`; each weighted connection
becomes a :class:`LoihiDenseOp` or :class:`LoihiConvOp` producing int32 synaptic
messages, each neuron layer a :class:`LoihiCubaOp` stepping Lava's integer CUBA LIF
(:mod:`edgesnn.loihi.fixed`). As in Lava, every connection delivers its message one
step after the spikes that caused it, so a step first advances every neuron layer on
the messages held from the previous step, then every connection turns this step's
spikes into the messages of the next (its state ``<node>/a_buf``, Lava's ``a_buff``).
The native backend has no kernels for these ops and runs them
through the numpy kernels here (see ``_native.make_step``).

Outputs: spiking layers give 0/1 spikes; non-spiking readouts give the integer
voltage in model units (``v_int * 2**-scale_exp``, exact in float32).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgesnn.engine.plan import Plan
from edgesnn.errors import InputError
from edgesnn.graph import Flatten, Graph, Output
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
    inv_scale: float


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
    if op.spiking:
        np.copyto(op.out, spikes, casting="unsafe")
    else:
        np.multiply(op.v, np.float32(op.inv_scale), out=op.out, casting="unsafe")


KERNELS = {LoihiDenseOp: dense_op, LoihiConvOp: conv_op, LoihiCubaOp: cuba_op}


def compile_loihi_plan(
    graph: Graph, dt_s: float, method: str, batch: int, *, network: LoihiNetwork | None = None
) -> Plan:
    """Lay out buffers, integer state and Loihi ops for ``batch`` streams of ``network`` (default: ``graph`` quantised)."""
    net = quantize_graph(graph, dt_s, method) if network is None else network
    return plan_for(net, graph, batch)


def plan_for(net: LoihiNetwork, graph: Graph, batch: int) -> Plan:
    """Buffers, state and ops that step ``net`` (quantised from ``graph``)."""
    buffers: dict[str, np.ndarray] = {}
    state: dict[str, np.ndarray] = {}
    initial: dict[str, np.ndarray] = {}

    def buffer(name: str) -> np.ndarray:
        if name not in buffers:
            node = graph.nodes[name]
            if isinstance(node, (Flatten, Output)):
                (src,) = graph.predecessors(name)
                buffers[name] = buffer(src).reshape((batch, *graph.shape(name)))
            else:
                buffers[name] = np.zeros((batch, *graph.shape(name)), np.float32)
        return buffers[name]

    for name in graph.order:
        buffer(name)
    a_bufs = {name: np.zeros((batch, int(np.prod(c.out_shape))), np.int32) for name, c in net.connections.items()}
    neuron_ops, conn_ops = [], []
    for name, layer in net.neurons.items():
        n = layer.size
        u = np.zeros((batch, n), np.int32)
        v = np.zeros((batch, n), np.int32)
        state[f"{name}/u"], initial[f"{name}/u"] = u, np.zeros_like(u)
        state[f"{name}/v"], initial[f"{name}/v"] = v, np.broadcast_to(layer.v_init, (batch, n)).copy()
        srcs = tuple(a_bufs[c.node] for c in net.incoming(name))
        bias = fixed.effective_bias(layer.bias_mant, layer.bias_exp)
        neuron_ops.append(LoihiCubaOp(name, srcs, buffer(name).reshape(batch, -1), u, v, layer.du, layer.dv,
                                      layer.vth, bias, layer.spiking, 2.0**-layer.scale_exp))  # fmt: skip
    for name, c in net.connections.items():
        a_buf = a_bufs[name]
        state[f"{name}/a_buf"], initial[f"{name}/a_buf"] = a_buf, np.zeros_like(a_buf)
        out = buffer(name).reshape(batch, -1)
        (pred,) = graph.predecessors(name)
        x = buffer(pred)
        check = c.source in net.inputs
        if c.kind == "dense":
            bound = float(np.max(np.abs(c.weight).sum(axis=1), initial=0))
            wt = np.ascontiguousarray(c.weight.T, np.float32 if bound < _F32_EXACT else np.float64)
            conn_ops.append(LoihiDenseOp(name, x.reshape(batch, -1), wt, c.weight_exp, a_buf, out, check))
        else:
            xs = x.reshape(batch, *c.in_shape)
            conn_ops.append(LoihiConvOp(name, xs, c.weight.astype(np.float64), c.stride, c.padding, c.dilation,
                                        c.groups, c.out_shape[1:], a_buf, out, check))  # fmt: skip
    # Neurons first, on last step's messages; then the connections make the next step's.
    plan = Plan(graph, float(net.dt_s), net.method, batch, buffers, (*neuron_ops, *conn_ops), state, initial)
    plan.reset()
    return plan
