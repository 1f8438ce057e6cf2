"""The integer program a model becomes on Loihi: neuron layers and connections in Lava's own integers.

A :class:`LoihiNetwork` is what ``numerics="loihi"`` runs and what the Loihi 2 bridge
compiles to Lava processes: each :class:`NeuronLayer` is one ``lava.proc.lif.process.LIF``
(``du``, ``dv``, ``vth``, ``bias_mant``, ``bias_exp``, initial ``u`` and ``v``), each
:class:`Connection` one ``Dense``/``Sparse`` (``weights``, ``weight_exp``,
``num_weight_bits``, ``sign_mode``) or ``Conv``. Build one directly from a Lava network's
parameters, get one from :func:`edgesnn.loihi.quantize` (a float model) or
:func:`edgesnn.bundle.netx.read_netx` (a lava-dl netx file), and run it with
:func:`edgesnn.loihi.to_model`::

    net = LoihiNetwork(
        dt_s=1e-3,
        inputs={"in": (16,)},
        neurons=[NeuronLayer(node="lif", shape=(8,), du=4095, dv=200, vth=100)],
        connections=[Connection(node="fc", source="in", target="lif", weight=w, weight_exp=-2)],
    )
    session = to_model(net).session(numerics="loihi")

Shapes are edgesnn's (channels first); the bridge transposes to Lava's (x, y, channel)
order itself. Every value is checked when the object is made: an out-of-range one raises
:class:`~edgesnn.errors.NodeValidationError` naming ``<node>/<field>``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgesnn.errors import GraphError, NodeValidationError
from edgesnn.loihi import fixed
from edgesnn.loihi._checks import check_name, check_shape, set_fields
from edgesnn.loihi.layers import Connection as Connection
from edgesnn.loihi.layers import NeuronLayer as NeuronLayer


def _byname(items: object, cls: type, what: str) -> dict[str, Any]:
    if isinstance(items, Mapping):
        out = {}
        for key, item in items.items():
            if not isinstance(item, cls):
                raise NodeValidationError(f"expected a {cls.__name__}, got {type(item).__name__}", path=f"{what}/{key}")
            if item.node != key:
                raise NodeValidationError(f"is keyed {key!r} but named {item.node!r}", path=f"{what}/{key}")
            out[key] = item
        return out
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise NodeValidationError(f"expected a list or dict of {cls.__name__}, got {type(items).__name__}", path=what)
    out = {}
    for i, item in enumerate(items):
        if not isinstance(item, cls):
            raise NodeValidationError(f"expected a {cls.__name__}, got {type(item).__name__}", path=f"{what}/{i}")
        if item.node in out:
            raise NodeValidationError("is listed twice", path=f"{what}/{item.node}")
        out[item.node] = item
    return out


def _conv_outshape_of(c: Connection, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(in_shape) != 3:
        raise NodeValidationError(f"a convolution reads (C, H, W) spikes; {c.source!r} has shape {in_shape}",
                                  path=f"{c.node}/source")  # fmt: skip
    c_out, c_in_g, kh, kw = c.weight.shape
    if in_shape[0] != c_in_g * c.groups or c_out % c.groups:
        raise NodeValidationError(f"kernel {c.weight.shape} with {c.groups} groups does not fit {in_shape[0]} input"
                                  " channels", path=f"{c.node}/weight")  # fmt: skip
    dims = []
    for size, k, s, pad, d in zip(in_shape[1:], (kh, kw), c.stride, c.padding, c.dilation, strict=True):
        out = (size + 2 * pad - d * (k - 1) - 1) // s + 1
        if out < 1:
            raise NodeValidationError(f"kernel {c.weight.shape} does not fit input {in_shape}", path=f"{c.node}/weight")
        dims.append(out)
    return (c_out, *dims)


def _schedule(inputs: Sequence[str], conns: Mapping[str, Connection]) -> tuple[tuple[str, ...], set[str]]:
    """Execution order and the back-edge connections, by depth-first search from the inputs.

    The same rule the graph IR uses (:class:`edgesnn.graph.Graph`), over the structure
    :func:`edgesnn.loihi.to_model` builds, so both agree on which connections are carried.
    """
    succ: dict[str, list[str]] = {}
    for c in conns.values():
        succ.setdefault(c.source, []).append(c.node)
        succ[c.node] = [c.target]
    state: dict[str, int] = {}
    back: set[str] = set()
    postorder: list[str] = []
    for root in inputs:
        stack = [(root, 0)]
        state[root] = 1
        while stack:
            node, i = stack[-1]
            nxt_all = succ.get(node, [])
            if i < len(nxt_all):
                stack[-1] = (node, i + 1)
                nxt = nxt_all[i]
                if state.get(nxt) == 1:
                    back.add(node)  # only a connection's edge into its target can close a cycle
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                postorder.append(node)
                stack.pop()
    return tuple(reversed(postorder)), back


@dataclasses.dataclass(frozen=True, eq=False)
class LoihiNetwork:
    """Inputs, neuron layers and connections of one Loihi program, and which layers are outputs.

    Parameters
    ----------
    dt_s : float
        The step the integers were made for, in seconds (decays are per step: a session
        at another step refuses the network rather than retime it).
    inputs : dict of str to tuple
        Spike inputs by name and shape.
    neurons : dict or list of NeuronLayer
        The layers (a list is keyed by ``node``).
    connections : dict or list of Connection
        The connections; every one delays its message one step, as Lava's do.
    outputs : dict of str to str
        Output name -> layer it reads (spikes of a spiking layer, the voltage of a
        readout, in model units). Empty: one output per layer that drives no connection
        (``"out"`` when there is one).
    method : str or None
        Discretisation of the float equivalent (None: ``"cascade"``, the form of Lava's
        CUBA update), or of the float model a network was quantised from.
    order : tuple of str
        Layers and connections in execution order; empty: found from the connections.
    """

    dt_s: float
    inputs: dict[str, tuple[int, ...]]
    neurons: dict[str, NeuronLayer]
    connections: dict[str, Connection]
    outputs: dict[str, str] = dataclasses.field(default_factory=dict)
    method: str | None = None
    order: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from edgesnn.neurons import METHODS
        from edgesnn.units import check_step_s

        set_fields(self, dt_s=check_step_s(self.dt_s, name="dt_s"))
        if self.method is None:
            set_fields(self, method="cascade" if "cascade" in METHODS else "zoh")
        elif self.method not in METHODS:
            raise NodeValidationError(f"expected one of {', '.join(METHODS)}, got {self.method!r}", path="method")
        if not isinstance(self.inputs, Mapping) or not self.inputs:
            raise NodeValidationError("expected at least one input {name: shape}", path="inputs")
        inputs = {check_name(k, "inputs"): check_shape(v, f"inputs/{k}") for k, v in self.inputs.items()}
        neurons = _byname(self.neurons, NeuronLayer, "neurons")
        conns = _byname(self.connections, Connection, "connections")
        seen: dict[str, str] = {}
        for kind, names in (("input", inputs), ("layer", neurons), ("connection", conns)):
            for name in names:
                if name in seen:
                    raise NodeValidationError(f"names both an {seen[name]} and a {kind}", path=name)
                seen[name] = kind
        shapes = {**inputs, **{n: layer.shape for n, layer in neurons.items()}}
        conns = {name: self._complete(c, inputs, neurons, shapes) for name, c in conns.items()}
        order, back = _schedule(list(inputs), conns)
        unreached = [n for n in (*neurons, *conns) if n not in order]
        if unreached:
            raise GraphError("is not reachable from any input", path=unreached[0])
        for name in neurons:
            if not any(c.target == name for c in conns.values()):
                raise GraphError("has no incoming connection; give a layer driven by its bias alone a zero-weight"
                                 " connection from an input", path=name)  # fmt: skip
        conns = {n: c if c.carried is not None else dataclasses.replace(c, carried=n in back) for n, c in conns.items()}
        outputs = dict(self.outputs) or self._default_outputs(neurons, conns, seen)
        for out, layer_name in outputs.items():
            check_name(out, "outputs")
            if layer_name not in neurons:
                raise GraphError(f"reads {layer_name!r}, which is not a layer", path=f"outputs/{out}")
            if out in seen:
                raise NodeValidationError(f"names both an output and a {seen[out]}", path=f"outputs/{out}")
        order = tuple(self.order) or tuple(n for n in order if n in neurons or n in conns)
        set_fields(self, inputs=inputs, neurons=neurons, connections=conns, outputs=outputs, order=order)

    @staticmethod
    def _complete(
        c: Connection, inputs: dict, neurons: dict[str, NeuronLayer], shapes: dict[str, tuple[int, ...]]
    ) -> Connection:
        """Check a connection against its ends; fill in its shapes and float weight."""
        if c.source not in shapes:
            raise GraphError(f"reads {c.source!r}, which is neither an input nor a layer", path=f"{c.node}/source")
        if c.target not in neurons:
            raise GraphError(f"drives {c.target!r}, which is not a layer", path=f"{c.node}/target")
        if c.source in neurons and not neurons[c.source].spiking:
            raise GraphError(f"reads the readout {c.source!r}; connections carry spikes of inputs and spiking layers",
                             path=f"{c.node}/source")  # fmt: skip
        src_shape, target = shapes[c.source], neurons[c.target]
        if c.kind == "conv":
            in_shape, out_shape = src_shape, _conv_outshape_of(c, src_shape)
        else:
            in_shape, out_shape = (c.weight.shape[1],), (c.weight.shape[0],)
            if c.weight.shape[1] != math.prod(src_shape):
                raise GraphError(f"weight {c.weight.shape} reads {c.weight.shape[1]} inputs; {c.source!r} has"
                                 f" {math.prod(src_shape)}", path=f"{c.node}/weight")  # fmt: skip
        if math.prod(out_shape) != target.size or (c.kind == "conv" and out_shape != target.shape):
            raise GraphError(f"delivers {out_shape}; {c.target!r} has shape {target.shape}", path=f"{c.node}/weight")
        for field, want in (("in_shape", in_shape), ("out_shape", out_shape)):
            have = getattr(c, field)
            if have is not None and math.prod(have) != math.prod(want):
                raise GraphError(f"expected {want}, got {have}", path=f"{c.node}/{field}")
        fill: dict[str, Any] = {}
        if c.in_shape is None:
            fill["in_shape"] = in_shape
        if c.out_shape is None:
            fill["out_shape"] = out_shape
        if c.float_weight is None:
            exp = c.weight_exp + fixed.ACT_SHIFT - target.scale_exp
            fill["float_weight"] = np.ldexp(c.lava_weight.astype(np.float64), exp)
        return dataclasses.replace(c, **fill) if fill else c

    @staticmethod
    def _default_outputs(neurons: dict, conns: dict, taken: dict) -> dict[str, str]:
        ends = [n for n in neurons if not any(c.source == n for c in conns.values())]
        if len(ends) == 1 and "out" not in taken:
            return {"out": ends[0]}
        out = {}
        for n in ends:
            name = f"{n}_out"
            while name in taken or name in out:
                name += "_"
            out[name] = n
        return out

    def incoming(self, neuron: str) -> list[Connection]:
        """Connections driving ``neuron``, in graph order."""
        return [c for c in self.connections.values() if c.target == neuron]

    def latency(self) -> dict[str, int]:
        """Steps by which Lava's output of each neuron layer lags the float runtime's.

        Each forward connection costs Lava one step the float graph does not spend;
        raises when two paths into a layer lag differently (the float runtime then has
        no shifted equivalent).
        """
        lag: dict[str, int] = {name: 0 for name in self.inputs}
        for name in self.order:
            if name not in self.neurons:
                continue
            seen = {lag[c.source] + 1 for c in self.incoming(name) if not c.carried and c.source in lag}
            if len(seen) > 1:
                raise GraphError(f"paths into {name!r} lag Lava by different steps {sorted(seen)}", path=name)
            lag[name] = seen.pop() if seen else 0
        return {k: v for k, v in lag.items() if k in self.neurons}

    def to_model(self, **model_options: Any) -> Any:
        """The float model of this network whose ``numerics="loihi"`` sessions run it as is (see :func:`to_model`)."""
        from edgesnn.loihi._float import to_model

        return to_model(self, **model_options)
