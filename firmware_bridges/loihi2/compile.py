"""Compile an edgesnn Loihi network (edgesnn.loihi.LoihiNetwork) into Lava processes.

Each neuron layer becomes a ``LIF`` (Lava's CUBA LIF), each dense connection a ``Dense``
(or a ``Sparse`` when most weights are zero), each convolution a ``Conv``. Inputs enter
through a source process: a ``RingBuffer`` holding a whole sequence for batch runs, or an
``Injector`` that the bridge feeds one step at a time. Spikes leave through a sink
(``RingBuffer``) or an ``Extractor``; a non-spiking readout's voltage is read with a
``Monitor`` (batch) or ``Var.get`` (streaming). Under fixed_pt each layer gets the network's
integers as they are (``u``/``v`` initial values, per-neuron ``bias_mant``/``bias_exp``)
and each dense connection its raw ``weight`` with ``weight_exp``, ``num_weight_bits`` and
``sign_mode``: Lava's own model clips and truncates them.

``tag`` picks Lava's process models: ``"fixed_pt"`` (bit-accurate integers, what
Loihi computes) or ``"floating_pt"`` (float64, same structure, float parameters).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from edgesnn.errors import OptionError, UnsupportedError
from edgesnn.graph import Graph
from edgesnn.loihi.network import Connection, LoihiNetwork, NeuronLayer
from firmware_bridges.loihi2.layout import conv_weight, flat_permutation, lava_shape, to_lava

log = logging.getLogger("edgesnn.loihi2")

TAGS = ("fixed_pt", "floating_pt")
#: Dense connections with at most this fraction of non-zero weights become Lava ``Sparse``.
SPARSE_DENSITY = 0.1


@dataclasses.dataclass
class LavaNetwork:
    """The Lava processes of one compiled network, by edgesnn node name."""

    net: LoihiNetwork
    graph: Graph
    tag: str
    sources: dict[str, Any]
    connections: dict[str, Any]
    neurons: dict[str, Any]
    sinks: dict[str, Any]  # spiking layer -> RingBuffer sink or Extractor
    monitors: dict[str, Any]  # readout layer -> Monitor (batch runs without record_state)

    def any_process(self) -> Any:
        """A process to call ``run``/``stop`` on (Lava runs the whole connected network)."""
        return next(iter(self.neurons.values()))


def _lif(layer: NeuronLayer, tag: str) -> Any:
    from lava.proc.lif.process import LIF

    shape = lava_shape(layer.shape)
    per_neuron = lambda a: to_lava(np.asarray(a).reshape(layer.shape), layer.shape)  # noqa: E731
    if tag == "fixed_pt":
        return LIF(shape=shape, u=per_neuron(layer.u_init), v=per_neuron(layer.v_init), du=layer.du, dv=layer.dv,
                   vth=layer.vth, bias_mant=per_neuron(layer.bias_mant), bias_exp=per_neuron(layer.bias_exp),
                   name=layer.node)  # fmt: skip
    u_float = np.ldexp(layer.u_init.astype(np.float64), -layer.scale_exp)
    return LIF(shape=shape, u=per_neuron(u_float), v=per_neuron(layer.float_v_init), du=layer.float_du,
               dv=layer.float_dv, vth=layer.float_vth, bias_mant=per_neuron(layer.float_bias), bias_exp=0,
               name=layer.node)  # fmt: skip


def _connection(c: Connection, src_shape: tuple[int, ...], tag: str) -> Any:
    fixed = tag == "fixed_pt"
    if c.kind == "conv":
        from lava.proc.conv.process import Conv

        w = c.weight if fixed else c.float_weight
        return Conv(weight=conv_weight(w), weight_exp=0, input_shape=lava_shape(c.in_shape),
                    padding=c.padding[::-1], stride=c.stride[::-1], dilation=c.dilation[::-1], groups=c.groups,
                    num_message_bits=0, name=c.node)  # fmt: skip
    # Lava flattens a (x, y, c) source in its own order: permute the weight columns to match.
    perm = flat_permutation(src_shape)
    if fixed:
        # The integers as given: Lava's own model clips and truncates them (what the runtime predicts).
        w, kw = c.weight[:, perm], {"weight_exp": c.weight_exp, "num_weight_bits": c.num_weight_bits}
        if c.sign_mode is not None:
            from lava.utils.weightutils import SignMode

            kw["sign_mode"] = SignMode[c.sign_mode.upper()]
    else:
        w, kw = c.float_weight[:, perm], {}
    if np.count_nonzero(w) <= SPARSE_DENSITY * w.size:
        from lava.proc.sparse.process import Sparse
        from scipy.sparse import csr_matrix

        return Sparse(weights=csr_matrix(w), num_message_bits=0, name=c.node, **kw)
    from lava.proc.dense.process import Dense

    return Dense(weights=w, num_message_bits=0, name=c.node, **kw)


def _out_port(proc: Any, shape: tuple[int, ...], want: tuple[int, ...]) -> Any:
    """The spike port of a source or LIF process, reshaped for a consumer expecting ``want``."""
    port = proc.out_port if hasattr(proc, "out_port") else proc.s_out  # Injector vs RingBuffer/LIF
    have = lava_shape(shape)
    return port if have == tuple(want) else port.reshape(new_shape=tuple(want))


def _check_connected(net: LoihiNetwork) -> None:
    """Refuse a network of separate parts: Lava runs only the processes connected to the one it is started from."""
    part = {name: name for name in (*net.inputs, *net.neurons)}

    def root(x: str) -> str:
        while part[x] != x:
            x = part[x]
        return x

    for c in net.connections.values():
        part[root(c.source)] = root(c.target)
    roots = {root(x) for x in part}
    if len(roots) > 1:
        raise UnsupportedError(
            f"the network has {len(roots)} separate parts; Lava runs one connected network (run each part as its own"
            " model)",
            path="connections",
        )


def build(
    net: LoihiNetwork,
    graph: Graph,
    tag: str,
    *,
    sequence: dict[str, np.ndarray] | None = None,
    record_state: bool = False,
) -> LavaNetwork:
    """Lava processes for ``net``; with ``sequence`` ({input: (T, *shape)}) sources and sinks hold T steps.

    Without ``sequence`` the inputs are ``Injector`` processes and spikes leave through
    ``Extractor`` processes (streaming, one step at a time). With ``record_state`` the
    caller reads the layers' variables itself, so readouts get no ``Monitor``.
    """
    if tag not in TAGS:
        raise OptionError(f"expected one of {', '.join(TAGS)}, got {tag!r}", path="tag")
    _check_connected(net)
    from lava.proc.io.extractor import Extractor
    from lava.proc.io.injector import Injector
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.monitor.process import Monitor

    sources: dict[str, Any] = {}
    steps = None
    for name, shape in net.inputs.items():
        if sequence is None:
            sources[name] = Injector(shape=lava_shape(shape), buffer_size=2)
        else:
            xs = np.asarray(sequence[name], np.float64)
            steps = len(xs)
            data = np.stack([to_lava(x, shape) for x in xs], axis=-1)  # Lava wants time last
            sources[name] = Source(data=data)
    neurons = {name: _lif(layer, tag) for name, layer in net.neurons.items()}
    shapes = {**net.inputs, **{n: layer.shape for n, layer in net.neurons.items()}}
    procs = {**sources, **neurons}
    connections = {}
    for name, c in net.connections.items():
        conn = _connection(c, shapes[c.source], tag)
        connections[name] = conn
        _out_port(procs[c.source], shapes[c.source], conn.s_in.shape).connect(conn.s_in)
        conn.a_out.connect(neurons[c.target].a_in)
    sinks, monitors = {}, {}
    for name, layer in net.neurons.items():
        shape = lava_shape(layer.shape)
        if layer.spiking:
            sink = Sink(shape=shape, buffer=steps) if steps else Extractor(shape=shape, buffer_size=2)
            neurons[name].s_out.connect(sink.a_in if steps else sink.in_port)
            sinks[name] = sink
        elif steps and not record_state:  # recording reads every layer's u and v itself (see run.py)
            mon = Monitor()
            mon.probe(neurons[name].v, steps)
            monitors[name] = mon
    return LavaNetwork(net, graph, tag, sources, connections, neurons, sinks, monitors)
