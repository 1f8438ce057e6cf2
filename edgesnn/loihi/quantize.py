"""Quantise a float model to Loihi's fixed-point numerics: weights, decays, thresholds, biases.

Per neuron layer the voltage scale is a power of two, ``v_int = 2**s * v``, chosen so
that the threshold mantissa ``vth = round(2**(s-6) * v_th)`` lands in [1024, 2048]
(11 bits of threshold resolution, 6 bits of headroom below the 24-bit voltage limit),
or, for a non-spiking readout, so that the largest voltage its inputs can drive stays
below 2**22. The input gain of the discretised neuron (``g_v``, and ``g_syn`` with a
synapse) is folded into the weights, so that Lava's ``u += a << 6`` carries
``2**s * gain * W x``. Each dense connection then takes the weight exponent that puts
its largest weight at the top of Lava's 8-bit mantissa range (even values in
[-256, 254] for mixed signs, which Lava's ``truncate_weights`` leaves alone;
[0, 255] or [-255, 0] for one sign), as lava-dl's ``optimize_weight_bits`` does.
Lava's fixed-point convolution applies no exponent, so a layer fed by a
convolution lowers its scale until the kernel fits 8 bits at exponent 0.

Decays follow the discretisation in :mod:`edgesnn.neurons` at the session's step:
``dv = round(4096 (1 - a_v))`` and ``du = round(4096 (1 - a_syn)) - 1`` (Lava adds 1),
``du = 4095`` (the current lasts one step) for neurons without a synapse.
Scalar maths uses :mod:`math` so that numpy 1 (the bridge) and numpy 2 (the runtime)
quantise to the same integers.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from edgesnn.errors import UnsupportedError
from edgesnn.graph import Affine, Conv2d, Flatten, Graph, Input, Linear, Output
from edgesnn.graph.neurons import NEURON_TYPES
from edgesnn.loihi import fixed
from edgesnn.loihi.network import Connection, LoihiNetwork, NeuronLayer
from edgesnn.neurons import NeuronCoefficients, discretise

log = logging.getLogger("edgesnn.loihi")

#: Threshold mantissas land in [2**VTH_BITS, 2**(VTH_BITS+1)].
VTH_BITS = 10
#: Largest voltage a non-spiking readout may reach, as a power of two.
READOUT_V_BITS = 22
WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = -8, 7
_CONNECTIONS = (Linear, Affine, Conv2d)


def quantize(model, dt_s: float | None = None) -> LoihiNetwork:  # noqa: ANN001 - Model (import cycle)
    """Quantise ``model`` (at its own step, or ``dt_s``) to Loihi's fixed-point numerics."""
    dt = model.dt_s if dt_s is None else float(dt_s)
    return quantize_graph(model.graph, dt, model.method)


def quantize_graph(graph: Graph, dt_s: float, method: str) -> LoihiNetwork:
    """Quantise a validated graph for step ``dt_s`` and discretisation ``method``."""
    inputs = {name: graph.shape(name) for name in graph.inputs}
    structure = _structure(graph)
    neurons: dict[str, NeuronLayer] = {}
    connections: dict[str, Connection] = {}
    for name in graph.order:
        node = graph.nodes[name]
        if not isinstance(node, NEURON_TYPES):
            continue
        coeffs = discretise(node, dt_s, method)
        incoming = [c for c in structure if c[2] == name]
        layer, conns = _quantize_layer(graph, name, coeffs, incoming)
        neurons[name] = layer
        connections.update({c.node: c for c in conns})
    outputs = {}
    for name in graph.outputs:
        src = _resolve(graph, graph.predecessors(name)[0])
        if src not in neurons:
            raise UnsupportedError(f"reads {src!r}; a Loihi output must read a neuron layer", path=name)
        outputs[name] = src
    order = tuple(n for n in graph.order if n in neurons or n in connections)
    ordered = {n: connections[n] for n in order if n in connections}
    return LoihiNetwork(dt_s, method, inputs, neurons, ordered, outputs, order)


# -- structure --------------------------------------------------------------------
def _resolve(graph: Graph, name: str) -> str:
    """Follow Flatten nodes back to the node that produces the values."""
    while isinstance(graph.nodes[name], Flatten):
        (name,) = graph.predecessors(name)
    return name


def _path_back_edges(graph: Graph, src: str, dst: str) -> int:
    """Back edges on the chain src -> (Flatten ...) -> dst."""
    count = 0
    node = dst
    while True:
        (pred,) = graph.predecessors(node)
        count += (pred, node) in graph.back_edges
        if pred == src or not isinstance(graph.nodes[pred], Flatten):
            return count
        node = pred


def _structure(graph: Graph) -> list[tuple[str, str, str, bool]]:
    """(connection, source, target, carried) for every weighted connection; rejects what Lava cannot run."""
    found = []
    for name in graph.order:
        node = graph.nodes[name]
        if isinstance(node, (Input, Output, Flatten)) or isinstance(node, NEURON_TYPES):
            if isinstance(node, NEURON_TYPES):
                for pred in graph.predecessors(name):
                    if not isinstance(graph.nodes[pred], _CONNECTIONS):
                        raise UnsupportedError(
                            f"is fed by {pred!r} ({type(graph.nodes[pred]).__name__}); on Loihi a neuron layer"
                            " takes only Linear, Affine or Conv2d connections",
                            path=name,
                        )
            continue
        if not isinstance(node, _CONNECTIONS):
            raise UnsupportedError(
                f"{type(node).__name__} has no Loihi equivalent here; supported: Input, Output, Flatten, Linear,"
                " Affine, Conv2d and LIF/CubaLIF/LI/CubaLI/IF/Integrator neurons",
                path=name,
            )
        preds, succs = graph.predecessors(name), graph.successors(name)
        if len(preds) != 1 or len(succs) != 1:
            raise UnsupportedError(f"a Loihi connection needs one source and one target, got {preds} -> {succs}",
                                   path=name)  # fmt: skip
        source, target = _resolve(graph, preds[0]), succs[0]
        src_node = graph.nodes[source]
        if not (isinstance(src_node, Input) or (isinstance(src_node, NEURON_TYPES) and src_node.spiking)):
            raise UnsupportedError(
                f"reads {source!r} ({type(src_node).__name__}); Loihi connections carry spikes from an Input or"
                " a spiking neuron layer",
                path=name,
            )
        if not isinstance(graph.nodes[target], NEURON_TYPES):
            raise UnsupportedError(f"drives {target!r}; a Loihi connection must drive a neuron layer", path=name)
        back = _path_back_edges(graph, source, name) + ((name, target) in graph.back_edges)
        if back > 1:
            raise UnsupportedError("connection lies on two back edges; Lava delays a connection one step",
                                   path=name)  # fmt: skip
        found.append((name, source, target, back == 1))
    return found


# -- per layer --------------------------------------------------------------------
def _uniform(values: np.ndarray, what: str, node: str) -> float:
    flat = np.asarray(values, np.float64).reshape(-1)
    if flat.size and not np.all(flat == flat[0]):
        raise UnsupportedError(f"{what} differs between neurons; Lava's LIF takes one value per layer", path=node)
    return float(flat[0]) if flat.size else 0.0


def _check_semantics(node: str, c: NeuronCoefficients) -> None:
    if c.has_adaptation:
        raise UnsupportedError("adaptive neurons have no Lava CUBA equivalent", path=node)
    if c.spiking:
        if c.reset_mode != "to_value" or np.any(c.v_reset != 0):
            raise UnsupportedError("Loihi's CUBA LIF resets to 0; needs reset_mode 'to_value' and v_reset 0",
                                   path=node)  # fmt: skip
        if c.reset_timing != "immediate" or c.threshold_inclusive or c.max_spikes != 1:
            raise UnsupportedError(
                "Loihi's CUBA LIF fires on v > threshold and resets at once (reset_timing 'immediate',"
                " binary spikes, strict threshold)",
                path=node,
            )
        if c.hold_steps:
            # Lava's LIFRefractory clamps the membrane while it waits; edgesnn's hold keeps integrating.
            raise UnsupportedError("Loihi's CUBA LIF has no minimum spike interval (min_spike_interval_s)",
                                   path=node)  # fmt: skip
        if np.any(c.v_threshold <= 0):
            raise UnsupportedError("thresholds must be positive", path=node)


def _dense_bounds(graph: Graph, conn: str, gain: np.ndarray) -> np.ndarray:
    """Folded float weight (target gain times W) of a connection, float64."""
    node = graph.nodes[conn]
    w = np.asarray(node.weight, np.float64)
    if isinstance(node, Conv2d):
        c_out = w.shape[0]
        per_channel = gain.reshape(c_out, -1)
        if not np.all(per_channel == per_channel[:, :1]):
            raise UnsupportedError("a convolution's target needs one input gain per channel", path=conn)
        return w * per_channel[:, 0].reshape(c_out, 1, 1, 1)
    return w * gain.reshape(-1, 1)


def _scale_exp(spiking: bool, v_th: float, v_bound: float, conv_max: list[float]) -> int:
    """Power-of-two voltage scale for one layer (see the module docstring)."""
    if spiking:
        s = 6 + VTH_BITS - math.floor(math.log2(v_th))
    else:
        s = READOUT_V_BITS - math.ceil(math.log2(v_bound)) if v_bound > 0 else 16
    for m in conv_max:  # a conv kernel must fit 8 bits without an exponent
        if m > 0:
            s = min(s, 6 + math.floor(math.log2(127.0 / m)))
    return s


def _quantize_dense(w_eff: np.ndarray, s: int, conn: str) -> tuple[np.ndarray, int]:
    scaled = np.ldexp(w_eff, s - 6)
    m = float(np.max(np.abs(scaled))) if scaled.size else 0.0
    if m == 0.0:
        return np.zeros(w_eff.shape, np.int32), 0
    mixed = bool(np.any(scaled > 0) and np.any(scaled < 0))
    top = 254.0 if mixed else 255.0
    exp = math.ceil(math.log2(m / top))
    exp = min(max(exp, WEIGHT_EXP_MIN), WEIGHT_EXP_MAX)
    if m > math.ldexp(top + 0.5, exp):
        raise UnsupportedError(f"weights need an exponent above {WEIGHT_EXP_MAX}; the layer's scale is too fine",
                               path=conn)  # fmt: skip
    mant = np.ldexp(scaled, -exp)
    if mixed:  # Lava drops the lowest bit of mixed-sign 8-bit weights: keep them even
        ints = 2 * np.clip(np.rint(mant / 2), -128, 127)
    else:
        ints = np.clip(np.rint(mant), -255, 255)
    return ints.astype(np.int32), exp


def _quantize_bias(bias_int: np.ndarray, node: str) -> tuple[np.ndarray, int]:
    m = float(np.max(np.abs(bias_int))) if bias_int.size else 0.0
    exp = 0
    while m / (1 << exp) > fixed.BIAS_MANT_MAX + 0.5:
        exp += 1
    if exp > fixed.BIAS_EXP_MAX:
        raise UnsupportedError("bias too large for 13-bit mantissa and 3-bit exponent", path=node)
    mant = np.clip(np.rint(bias_int / (1 << exp)), fixed.BIAS_MANT_MIN, fixed.BIAS_MANT_MAX)
    return mant.astype(np.int32), exp


def _quantize_layer(
    graph: Graph, name: str, c: NeuronCoefficients, incoming: list[tuple[str, str, str, bool]]
) -> tuple[NeuronLayer, list[Connection]]:
    _check_semantics(name, c)
    a_v = _uniform(c.a_v, "the membrane decay", name)
    a_syn = _uniform(c.a_syn, "the synaptic decay", name) if c.has_synapse else 0.0
    gain = np.asarray(c.g_v, np.float64) * (np.asarray(c.g_syn, np.float64) if c.has_synapse else 1.0)
    gain = gain.reshape(-1)
    w_eff = {conn: _dense_bounds(graph, conn, gain) for conn, *_ in incoming}
    # An Affine/Conv bias is a constant drive: into the voltage for neurons without a synapse.
    bias = np.asarray(c.k_v, np.float64).reshape(-1).copy()
    for conn, *_ in incoming:
        node = graph.nodes[conn]
        b = getattr(node, "bias", None)
        if b is None or not np.any(b):
            continue
        if c.has_synapse:
            raise UnsupportedError(
                "a bias into a neuron with a synaptic current has no Lava CUBA equivalent (Lava's bias adds to"
                " the voltage); use a bias-free connection",
                path=conn,
            )
        b = np.asarray(b, np.float64)
        if isinstance(node, Conv2d):
            b = np.broadcast_to(b.reshape(-1, 1), (b.size, gain.size // b.size)).reshape(-1)
        bias += np.asarray(c.g_v, np.float64).reshape(-1) * b
    v_leak = np.asarray(c.v_leak, np.float64).reshape(-1)
    spiking = c.spiking
    v_th = _uniform(c.v_threshold, "the threshold", name) if spiking else math.inf
    drive = np.abs(bias).copy()
    for conn, *_ in incoming:
        w = w_eff[conn]
        drive += (np.abs(w).reshape(w.shape[0], -1).sum(axis=1).repeat(gain.size // w.shape[0])
                  if isinstance(graph.nodes[conn], Conv2d) else np.abs(w).sum(axis=1))  # fmt: skip
    leak = (1.0 - a_v) * ((1.0 - a_syn) if c.has_synapse else 1.0)
    v_bound = float(np.max(np.abs(v_leak) + drive / leak)) if leak > 0 else float(np.max(drive)) * 1e3
    conv_max = [float(np.max(np.abs(w_eff[conn]))) for conn, *_ in incoming if isinstance(graph.nodes[conn], Conv2d)]
    s = _scale_exp(spiking, v_th, v_bound, conv_max)

    dv = min(max(round(fixed.DECAY_UNITY * (1.0 - a_v)), 0), fixed.MAX_DECAY)
    du = min(max(round(fixed.DECAY_UNITY * (1.0 - a_syn)) - 1, 0), fixed.MAX_DECAY) if c.has_synapse else 4095
    vth = min(max(round(math.ldexp(v_th, s - fixed.VTH_SHIFT)), 1), fixed.MAX_VTH) if spiking else fixed.MAX_VTH
    bias_mant, bias_exp = _quantize_bias(np.rint(np.ldexp(bias, s)), name)
    v_init = np.rint(np.ldexp(v_leak, s)).astype(np.int32)
    layer = NeuronLayer(
        node=name, shape=graph.shape(name), spiking=spiking, scale_exp=s, du=du, dv=dv, vth=vth,
        bias_mant=bias_mant, bias_exp=bias_exp, v_init=v_init,
        float_du=1.0 - a_syn if c.has_synapse else 1.0, float_dv=1.0 - a_v,
        float_vth=v_th if spiking else float(np.finfo(np.float64).max), float_bias=bias, float_v_init=v_leak,
    )  # fmt: skip
    conns = []
    for conn, source, target, carried in incoming:
        node = graph.nodes[conn]
        if isinstance(node, Conv2d):
            ints = np.rint(np.ldexp(w_eff[conn], s - 6)).astype(np.int32)
            conns.append(Connection(
                conn, "conv", source, target, graph.input_shape(conn), graph.shape(conn), ints, 0, w_eff[conn],
                carried, tuple(node.stride), tuple(node.padding), tuple(node.dilation), int(node.groups),
            ))  # fmt: skip
        else:
            ints, exp = _quantize_dense(w_eff[conn], s, conn)
            conns.append(Connection(conn, "dense", source, target, graph.input_shape(conn), graph.shape(conn), ints,
                                    exp, w_eff[conn], carried))  # fmt: skip
    log.debug("%s: scale 2**%d, du %d, dv %d, vth %d", name, s, du, dv, vth)
    return layer, conns
