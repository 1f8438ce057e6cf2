"""The float model of an integer Loihi network: its graph with the integers dequantised.

:func:`to_model` gives every Loihi network a graph the rest of edgesnn understands
(shapes, inputs, outputs, ``numerics="float"``), and attaches the network itself, so
that ``numerics="loihi"`` sessions step the integers as they are.

Lava's update is the cascade form (the membrane is driven by the updated current), so the
graph uses method ``"cascade"`` with unit gains: per layer of scale ``s`` (``v = v_int *
2**-s``), ``a_u = 1 - (du + 1)/4096``, ``a_v = 1 - dv/4096``,

* ``du = 4095`` (no synapse): LIF (spiking) or LI (readout) with ``r = 1/(1 - a_v)``;
  IF or Integrator (``r = 1/dt``) when ``dv = 0`` and no neuron has a bias;
* ``du < 4095``: CubaLIF or CubaLI with ``w_in = 1/(1 - a_u)``, ``r = 1/(1 - a_v)``;
* ``dv = 0`` in the other cases (edgesnn's leaky neurons need a finite time constant): a
  leak of ``2**-24`` per step, below float32's resolution of ``v`` near any threshold;
* weights ``lava_weight * 2**(weight_exp + 6 - s)`` (Lava sums the stored weights and
  shifts the sum; the float graph does not round it), thresholds ``vth * 2**(6 - s)``,
  reset to 0, the bias as ``v_leak = bias * 2**-s / (1 - a_v)``.

What the float graph does not hold: Lava's one-step delay per connection (see
:meth:`LoihiNetwork.latency`), the 24-bit wrap of ``u`` and saturation of ``v``, a
readout that still fires above ``vth << 6``, and initial ``u``/``v`` other than rest
(float sessions start their membranes at ``v_leak``, Loihi sessions at ``v_init``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgesnn.errors import GraphError
from edgesnn.loihi import fixed
from edgesnn.loihi.network import LoihiNetwork, NeuronLayer

#: Stand-in decay per step for ``dv = 0`` where edgesnn's neuron needs a leak.
_NO_LEAK = 2.0**-24


def _neuron(layer: NeuronLayer, dt_s: float) -> Any:
    from edgesnn.graph import IF, LI, LIF, CubaLI, CubaLIF, Integrator

    shape = layer.shape
    full = lambda x: np.broadcast_to(np.asarray(x, np.float64), shape).astype(np.float32)  # noqa: E731
    bias = np.ldexp(layer.bias.astype(np.float64), -layer.scale_exp).reshape(shape)
    v_th = math.ldexp(layer.vth, fixed.VTH_SHIFT - layer.scale_exp)
    spike = {"v_threshold": full(v_th), "v_reset": full(0.0)} if layer.spiking else {}
    if not layer.has_synapse and layer.dv == 0 and not np.any(bias):
        cls = IF if layer.spiking else Integrator
        return cls(r=full(1.0 / dt_s), **spike)
    # 1 - a_v as Lava decays: dv/4096, or the stand-in leak.
    leak = layer.dv / fixed.DECAY_UNITY if layer.dv else -math.expm1(-_NO_LEAK)
    tau_mem = dt_s / -math.log1p(-leak)
    common = {"tau_mem_s": full(tau_mem), "r": full(1.0 / leak), "v_leak": (bias / leak).astype(np.float32)}
    if not layer.has_synapse:
        return (LIF if layer.spiking else LI)(**common, **spike)
    loss = (layer.du + fixed.DS_OFFSET) / fixed.DECAY_UNITY
    syn = {"tau_syn_s": full(dt_s / -math.log1p(-loss)), "w_in": full(1.0 / loss)}
    return (CubaLIF if layer.spiking else CubaLI)(**syn, **common, **spike)


def _unique(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def to_model(net: LoihiNetwork, *, labels: tuple[str, ...] = (), producer: dict[str, Any] | None = None) -> Any:
    """The float model equivalent to ``net`` (integers dequantised), carrying ``net`` for ``numerics="loihi"``.

    ``model.session(numerics="loihi")`` steps exactly ``net``'s integers (no
    quantisation), ``model.session()`` the float graph described in this module.
    """
    from edgesnn.graph import Conv2d, Flatten, Graph, Input, Linear, Output
    from edgesnn.model import Model
    from edgesnn.neurons import METHODS

    nodes: dict[str, Any] = {name: Input(shape, unit="spikes") for name, shape in net.inputs.items()}
    taken = {*nodes, *net.neurons, *net.connections, *net.outputs}
    edges: list[tuple[str, str]] = []
    shapes = {**net.inputs, **{n: layer.shape for n, layer in net.neurons.items()}}
    # Edges in connection order: the graph's depth-first search then finds the back edges
    # LoihiNetwork did (see network._schedule); each flattening gets its own Flatten.
    for name, c in net.connections.items():
        src = c.source
        weight = c.float_weight.astype(np.float32)
        if c.kind == "dense":
            if len(shapes[src]) != 1:
                flat = _unique(f"{name}_flat", taken)
                nodes[flat] = Flatten()
                edges.append((src, flat))
                src = flat
            nodes[name] = Linear(weight)
        else:
            nodes[name] = Conv2d(weight, np.zeros(weight.shape[0], np.float32), stride=c.stride, padding=c.padding,
                                 dilation=c.dilation, groups=c.groups)  # fmt: skip
        edges += [(src, name), (name, c.target)]
    for name, layer in net.neurons.items():
        nodes[name] = _neuron(layer, net.dt_s)
    for out, layer_name in net.outputs.items():
        nodes[out] = Output(net.neurons[layer_name].shape)
        edges.append((layer_name, out))
    graph = Graph(nodes, tuple(edges))
    for name, c in net.connections.items():
        back = any(edge in graph.back_edges for edge in edges if name in edge)
        if back != c.carried:
            raise GraphError(
                f"is {'not ' if c.carried else ''}carried in the network but the float graph's search from the inputs"
                " finds otherwise; leave carried as None to let the network decide",
                path=f"{name}/carried",
            )
    method = net.method if net.method in METHODS else "zoh"
    info = {"name": "edgesnn.loihi", "note": "float equivalent of a Loihi integer network"}
    return Model(graph, net.dt_s, method, labels=tuple(labels), producer=producer or info, loihi=net)
