"""Quantise a float model to Loihi's fixed-point numerics: weights, decays, thresholds, biases.

Per neuron layer the voltage scale is a power of two, ``v_int = 2**s * v``, chosen so
that the threshold mantissa ``vth = round(2**(s-6) * v_th)`` lands in
[2**vth_bits, 2**(vth_bits+1)] (default 10: 11 bits of threshold resolution and 6 bits of
headroom below the 24-bit voltage limit; up to 16, where ``vth`` reaches Lava's 2**17 - 1),
or, for a non-spiking readout, so that the largest voltage its inputs can drive stays
below 2**22. The input gain of the discretised neuron (``g_v``, and ``g_syn`` with a
synapse) is folded into the weights, so that Lava's ``u += a << 6`` carries
``2**s * gain * W x``.

Each dense connection takes the sign mode its float weights need (mixed, excitatory or
inhibitory) and the weight exponent that puts its largest weight at the top of the
mantissas Lava keeps at ``num_weight_bits`` (default 8): multiples of ``2**(9 -
num_weight_bits)`` in [-256, 254] for mixed signs, of ``2**(8 - num_weight_bits)`` up to
255 in magnitude for one sign. Mantissas are rounded to the nearest such multiple (ties to
even), so Lava's truncation (``lava.utils.weightutils.truncate_weights``) leaves them as
they are and Lava computes what the runtime computes. Exponents range over Lava's
[-31, 31]; ``weight_exp`` fixes one for every dense connection (netx files have none),
lowering each layer's scale until its weights fit, as Lava's fixed-point convolution
(which applies no exponent) always does. Biases take a per-neuron exponent (13-bit
mantissa, exponent 0..7), or the fixed ``bias_exp``.

A bias of an Affine or Conv2d connection into a neuron with a synaptic current reaches
the voltage through the synapse, rising as ``B (1 - a_syn**t)`` towards
``B = g_v g_syn b / (1 - a_syn)``; Lava's bias adds to ``v`` directly. The layer takes
``B`` as a voltage bias and starts its current at ``u = -B``, whose decay is exactly the
missing ``-B a_syn**t``.

Decays follow the discretisation in :mod:`edgesnn.neurons` at the session's step:
``dv = round(4096 (1 - a_v))`` and ``du = round(4096 (1 - a_syn)) - 1`` (Lava adds 1),
``du = 4095`` (the current lasts one step) for neurons without a synapse. Loihi's CUBA
update is the cascade form (the membrane is driven by the updated current), so a model
discretised with ``"zoh"`` or ``"euler"`` is quantised through its cascade counterpart
(``"cascade"``, ``"cascade-euler"``): the same per-state decays and the same DC gain, a
different response within a step for neurons with a synapse; the report says which was
used. Scalar maths uses :mod:`math` so that numpy 1 (the bridge) and numpy 2 (the runtime)
quantise to the same integers.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from edgesnn.errors import OptionError, UnsupportedError
from edgesnn.graph import Affine, Conv2d, Flatten, Graph, Input, Linear, Output, ThresholdUnit
from edgesnn.graph.neurons import NEURON_TYPES
from edgesnn.loihi import fixed
from edgesnn.loihi.network import Connection, LoihiNetwork, NeuronLayer
from edgesnn.neurons import METHODS, NeuronCoefficients, discretise

log = logging.getLogger("edgesnn.loihi")

#: Threshold mantissas land in [2**VTH_BITS, 2**(VTH_BITS+1)] by default.
VTH_BITS = 10
MAX_VTH_BITS = 16
#: Largest voltage a non-spiking readout may reach, as a power of two.
READOUT_V_BITS = 22
WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = fixed.WEIGHT_EXP_MIN, fixed.WEIGHT_EXP_MAX
_CONNECTIONS = (Linear, Affine, Conv2d)
#: Loihi's CUBA update is the cascade: the counterpart of each coupled method.
_CASCADE = {"zoh": "cascade", "euler": "cascade-euler"}


def cascade_method(method: str) -> str:
    """The discretisation the quantiser uses for a model's ``method``: its cascade form (where edgesnn has one)."""
    m = _CASCADE.get(method, method)
    return m if m in METHODS else method


def quantize(
    model: Any,
    dt_s: float | None = None,
    *,
    vth_bits: int = VTH_BITS,
    num_weight_bits: int = fixed.WEIGHT_BITS,
    weight_exp: int | None = None,
    bias_exp: int | None = None,
) -> LoihiNetwork:
    """Quantise ``model``'s float graph (at its own step, or ``dt_s``) to Loihi's fixed-point numerics.

    ``vth_bits`` places threshold mantissas in [2**vth_bits, 2**(vth_bits+1)] (0..16);
    ``num_weight_bits`` (1..8) is the weight precision of every dense connection;
    ``weight_exp`` and ``bias_exp``, when given, fix every dense connection's weight
    exponent and every bias exponent (as a netx file needs: 0 and 6).
    """
    dt = model.dt_s if dt_s is None else float(dt_s)
    return quantize_graph(model.graph, dt, model.method, vth_bits=vth_bits, num_weight_bits=num_weight_bits,
                          weight_exp=weight_exp, bias_exp=bias_exp)  # fmt: skip


def network_for(model: Any, dt_s: float | None = None) -> LoihiNetwork:
    """The integer network ``numerics="loihi"`` runs for ``model`` at ``dt_s``: its own, or its graph quantised."""
    from edgesnn.engine._loihi import check_network_step

    dt = model.dt_s if dt_s is None else float(dt_s)
    if model.loihi is None:
        return quantize(model, dt)
    check_network_step(model.loihi, dt)
    return model.loihi


def _option(value: object, lo: int, hi: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise OptionError(f"expected an integer in [{lo}, {hi}], got {value!r}", path=name)
    return int(value)


def quantize_graph(
    graph: Graph,
    dt_s: float,
    method: str,
    *,
    vth_bits: int = VTH_BITS,
    num_weight_bits: int = fixed.WEIGHT_BITS,
    weight_exp: int | None = None,
    bias_exp: int | None = None,
) -> LoihiNetwork:
    """Quantise a validated graph for step ``dt_s`` and discretisation ``method`` (see :func:`quantize`)."""
    opts = {
        "vth_bits": _option(vth_bits, 0, MAX_VTH_BITS, "vth_bits"),
        "num_weight_bits": _option(num_weight_bits, 1, fixed.WEIGHT_BITS, "num_weight_bits"),
        "weight_exp": None if weight_exp is None else _option(weight_exp, WEIGHT_EXP_MIN, WEIGHT_EXP_MAX, "weight_exp"),
        "bias_exp": None if bias_exp is None else _option(bias_exp, fixed.BIAS_EXP_MIN, fixed.BIAS_EXP_MAX,
                                                          "bias_exp"),
    }  # fmt: skip
    for name, node in graph.nodes.items():
        if isinstance(node, ThresholdUnit):  # no CUBA LIF layer steps a k-WTA or a held sign unit in one step
            raise UnsupportedError(
                "a ThresholdUnit (the units of an attractor network, e.g. an edgesnn.fsm machine) has no Loihi"
                " mapping; run it with numerics='float', or compile the machine as a Loihi 2 program"
                " (edgesnn fsm compile --loihi)", path=f"nodes/{name}")  # fmt: skip
    inputs = {name: graph.shape(name) for name in graph.inputs}
    structure = _structure(graph)
    cascade = cascade_method(method)
    neurons: dict[str, NeuronLayer] = {}
    connections: dict[str, Connection] = {}
    for name in graph.order:
        node = graph.nodes[name]
        if not isinstance(node, NEURON_TYPES):
            continue
        coeffs = discretise(node, dt_s, cascade)
        incoming = [c for c in structure if c[2] == name]
        layer, conns = _quantize_layer(graph, name, coeffs, incoming, opts)
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
    return LoihiNetwork(dt_s=dt_s, inputs=inputs, neurons=neurons, connections=ordered, outputs=outputs,
                        method=method, order=order)  # fmt: skip


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


def _grid(mode: str, num_weight_bits: int) -> tuple[int, int, int]:
    """(step, lowest, highest) of the mantissas Lava keeps unchanged in ``mode`` at ``num_weight_bits``."""
    step = 1 << fixed.truncated_bits(mode, num_weight_bits)
    top = (1 << fixed.WEIGHT_BITS) - step
    if mode == "mixed":
        return step, -(1 << fixed.WEIGHT_BITS), top
    return (step, 0, top) if mode == "excitatory" else (step, -top, 0)


def _sign_mode(w: np.ndarray) -> str:
    if np.any(w > 0) and np.any(w < 0):
        return "mixed"
    return "inhibitory" if np.any(w < 0) else "excitatory"


def _exp_needed(w: np.ndarray, mode: str, num_weight_bits: int) -> float:
    """log2 of the smallest power-of-two scale at which ``w`` fits ``mode``'s mantissas (-inf for zeros)."""
    _, lo, hi = _grid(mode, num_weight_bits)
    pos = float(np.max(w, initial=0.0)) / hi if hi else 0.0
    neg = float(-np.min(w, initial=0.0)) / -lo if lo else 0.0
    m = max(pos, neg)
    return math.log2(m) if m > 0 else -math.inf


def _scale_exp(
    spiking: bool, v_th: float, v_bound: float, conv_max: list[float], dense: list[np.ndarray], opts: dict
) -> int:
    """Power-of-two voltage scale for one layer (see the module docstring)."""
    if spiking:
        s = fixed.VTH_SHIFT + opts["vth_bits"] - math.floor(math.log2(v_th))
        if round(math.ldexp(v_th, s - fixed.VTH_SHIFT)) > fixed.MAX_VTH:  # 2**17 rounds above Lava's 17 bits
            s -= 1
    else:
        s = READOUT_V_BITS - math.ceil(math.log2(v_bound)) if v_bound > 0 else 16
    for m in conv_max:  # a conv kernel must fit 8 bits without an exponent
        if m > 0:
            s = min(s, fixed.ACT_SHIFT + math.floor(math.log2(127.0 / m)))
    fixed_exp = opts["weight_exp"]
    for w in dense:
        need = _exp_needed(w, _sign_mode(w), opts["num_weight_bits"])
        limit = fixed_exp if fixed_exp is not None else WEIGHT_EXP_MAX
        if need > -math.inf:  # weights * 2**(s-6) must fit at exponent `limit`
            s = min(s, fixed.ACT_SHIFT + limit + math.floor(-need))
    return s


def _quantize_dense(w_eff: np.ndarray, s: int, conn: str, opts: dict) -> tuple[np.ndarray, int, str]:
    """(mantissas, weight_exp, sign_mode) of one dense connection at layer scale ``s``."""
    scaled = np.ldexp(w_eff, s - fixed.ACT_SHIFT)
    mode, nbits = _sign_mode(scaled), opts["num_weight_bits"]
    need = _exp_needed(scaled, mode, nbits)
    if opts["weight_exp"] is not None:
        exp = opts["weight_exp"]
    elif need == -math.inf:
        return np.zeros(w_eff.shape, np.int32), 0, mode
    else:
        exp = max(math.ceil(need), WEIGHT_EXP_MIN)
    if exp > WEIGHT_EXP_MAX or need > exp + 1e-9:
        raise UnsupportedError(f"weights need a weight_exp of {math.ceil(need)}, above {min(exp, WEIGHT_EXP_MAX)}",
                               path=conn)  # fmt: skip
    step, lo, hi = _grid(mode, nbits)
    mant = np.ldexp(scaled, -exp) / step
    ints = step * np.clip(np.rint(mant), lo // step, hi // step)  # nearest kept mantissa, ties to even
    return ints.astype(np.int32), exp, mode


def _quantize_bias(bias_int: np.ndarray, node: str, bias_exp: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron (mantissa, exponent) of integer biases: the smallest exponent that fits 13 bits."""
    mag = np.abs(bias_int)
    if bias_exp is None:
        exp = np.zeros(bias_int.shape, np.int64)
        for _ in range(fixed.BIAS_EXP_MAX):
            exp += mag / np.ldexp(1.0, exp) > fixed.BIAS_MANT_MAX + 0.5
    else:
        exp = np.full(bias_int.shape, bias_exp, np.int64)
    if np.any(mag / np.ldexp(1.0, exp) > fixed.BIAS_MANT_MAX + 0.5):
        raise UnsupportedError(f"bias too large for a 13-bit mantissa and exponent {int(exp.max())}", path=node)
    mant = np.clip(np.rint(bias_int / np.ldexp(1.0, exp)), fixed.BIAS_MANT_MIN, fixed.BIAS_MANT_MAX)
    return mant.astype(np.int32), exp.astype(np.int32)


def _quantize_layer(
    graph: Graph, name: str, c: NeuronCoefficients, incoming: list[tuple[str, str, str, bool]], opts: dict
) -> tuple[NeuronLayer, list[Connection]]:
    _check_semantics(name, c)
    a_v = _uniform(c.a_v, "the membrane decay", name)
    a_syn = _uniform(c.a_syn, "the synaptic decay", name) if c.has_synapse else 0.0
    g_v = np.asarray(c.g_v, np.float64).reshape(-1)
    gain = g_v * (np.asarray(c.g_syn, np.float64).reshape(-1) if c.has_synapse else 1.0)
    w_eff = {conn: _dense_bounds(graph, conn, gain) for conn, *_ in incoming}
    # An Affine/Conv bias is a constant drive: into the voltage directly without a synapse; with
    # one, its steady state through the synapse (the start of the current cancels the rise, below).
    bias = np.asarray(c.k_v, np.float64).reshape(-1).copy()
    syn_bias = np.zeros_like(bias)
    for conn, *_ in incoming:
        node = graph.nodes[conn]
        b = getattr(node, "bias", None)
        if b is None or not np.any(b):
            continue
        b = np.asarray(b, np.float64)
        if isinstance(node, Conv2d):
            b = np.broadcast_to(b.reshape(-1, 1), (b.size, gain.size // b.size)).reshape(-1)
        if c.has_synapse:
            syn_bias += gain * b / (1.0 - a_syn)
        else:
            bias += g_v * b
    bias += syn_bias
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
    dense = [w_eff[conn] for conn, *_ in incoming if not isinstance(graph.nodes[conn], Conv2d)]
    s = _scale_exp(spiking, v_th, v_bound, conv_max, dense, opts)

    dv = min(max(round(fixed.DECAY_UNITY * (1.0 - a_v)), 0), fixed.MAX_DECAY)
    du = min(max(round(fixed.DECAY_UNITY * (1.0 - a_syn)) - 1, 0), fixed.MAX_DECAY) if c.has_synapse else 4095
    vth = min(max(round(math.ldexp(v_th, s - fixed.VTH_SHIFT)), 1), fixed.MAX_VTH) if spiking else fixed.MAX_VTH
    bias_mant, bias_exp = _quantize_bias(np.rint(np.ldexp(bias, s)), name, opts["bias_exp"])
    v_init = np.rint(np.ldexp(v_leak, s))
    u_init = -np.rint(np.ldexp(syn_bias, s))
    for field, values in (("v_init", v_init), ("u_init", u_init)):
        if np.any(np.abs(values) > fixed.UV_LIMIT - 1):
            raise UnsupportedError(f"{field} needs more than Lava's 24 bits at scale 2**{s}", path=name)
    layer = NeuronLayer(
        node=name, shape=graph.shape(name), spiking=spiking, scale_exp=s, du=du, dv=dv, vth=vth,
        bias_mant=bias_mant, bias_exp=bias_exp, u_init=u_init, v_init=v_init,
        float_du=1.0 - a_syn if c.has_synapse else 1.0, float_dv=1.0 - a_v,
        float_vth=v_th if spiking else float(np.finfo(np.float64).max), float_bias=bias, float_v_init=v_leak,
    )  # fmt: skip
    conns = []
    for conn, source, target, carried in incoming:
        node = graph.nodes[conn]
        common = {"node": conn, "source": source, "target": target, "in_shape": graph.input_shape(conn),
                  "out_shape": graph.shape(conn), "float_weight": w_eff[conn], "carried": carried}  # fmt: skip
        if isinstance(node, Conv2d):
            ints = np.rint(np.ldexp(w_eff[conn], s - fixed.ACT_SHIFT)).astype(np.int32)
            conns.append(Connection(kind="conv", weight=ints, stride=tuple(node.stride), padding=tuple(node.padding),
                                    dilation=tuple(node.dilation), groups=int(node.groups), **common))  # fmt: skip
        else:
            ints, exp, mode = _quantize_dense(w_eff[conn], s, conn, opts)
            conns.append(Connection(weight=ints, weight_exp=exp, num_weight_bits=opts["num_weight_bits"],
                                    sign_mode=mode, **common))  # fmt: skip
    log.debug("%s: scale 2**%d, du %d, dv %d, vth %d", name, s, du, dv, vth)
    return layer, conns
