"""What the IPU compiler places: neuron populations with their incoming synapses, from a graph or by size.

A :class:`Population` is one neuron node (or a synapse node no neuron follows, whose outputs
are plain accumulators), with the projections that feed it. :func:`from_plan` reads them off
an engine :class:`~edgesnn.engine.plan.Plan` (so the ops the simulator runs and the
populations the compiler places are the same objects); :func:`dense_stack` describes a
feed-forward stack by its sizes alone, for plans of networks that were never built.
"""

from __future__ import annotations

import dataclasses
import math

from edgesnn.engine import ops as O
from edgesnn.engine.plan import Plan
from edgesnn.errors import UnsupportedError
from edgesnn.graph import Delay, Flatten, Graph, Input, Output

#: Float32 operations of one neuron update per state it carries (the order of
#: edgesnn.neurons.discretise's update: decay, input, threshold, reset).
UPDATE_OPS = {"v": 4, "i": 3, "w": 6, "spike": 3, "hold": 3}


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """A convolution's shapes: input (C, H, W), output (C_out, HO, WO), kernel, stride, padding, dilation, groups."""

    c_in: int
    h: int
    w: int
    c_out: int
    ho: int
    wo: int
    kh: int
    kw: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    @property
    def taps(self) -> int:
        """Weights one output neuron sums at most."""
        return self.c_in // self.groups * self.kh * self.kw


@dataclasses.dataclass(frozen=True)
class Synapse:
    """One projection into a population: ``node`` reads ``source`` (``n_in`` values per sample)."""

    node: str
    source: str
    n_in: int
    binary: bool
    has_bias: bool
    conv: ConvGeometry | None = None
    delay_steps: int = 0  # a Delay between the weights and the neurons: a ring of currents on their tiles

    @property
    def taps_per_neuron(self) -> int:
        """Weights each destination neuron holds (dense) or shares (conv)."""
        return self.n_in if self.conv is None else self.conv.taps


@dataclasses.dataclass(frozen=True)
class Population:
    """Neurons placed together with their incoming weights and states; ``binary`` ones can send spike ids."""

    name: str
    size: int
    spiking: bool
    binary: bool
    state_words: int
    update_ops: int
    coefficient_words: int  # of the neuron update, shared by the population (or per neuron, below)
    synapses: tuple[Synapse, ...]
    source_kind: str = "neuron"  # "neuron", or "accumulator" for a synapse no neuron follows
    coefficients_per_neuron: bool = False  # each neuron has its own (trained time constants)


@dataclasses.dataclass(frozen=True)
class NetSpec:
    """A network as the compiler sees it: inputs (name -> size) and populations in step order."""

    inputs: dict[str, int]
    populations: tuple[Population, ...]

    @property
    def neurons(self) -> int:
        """Neurons over all populations."""
        return sum(p.size for p in self.populations)

    def population(self, name: str) -> Population:
        """The population named ``name``."""
        return next(p for p in self.populations if p.name == name)


def _source(graph: Graph, name: str) -> str:
    """The node whose values ``name`` passes on, through Flatten and Output aliases."""
    while isinstance(graph.nodes[name], (Flatten, Output)):
        (name,) = graph.predecessors(name)
    return name


def _synapse(graph: Graph, op: O.DenseOp | O.ConvOp) -> Synapse:
    preds = graph.predecessors(op.node)
    if len(preds) != 1:
        raise UnsupportedError(f"{op.node!r} sums {len(preds)} inputs before its weights; the IPU compiler places"
                               " synapses that read one population", path=f"graph/{op.node}")  # fmt: skip
    source = _source(graph, preds[0])
    if isinstance(op, O.DenseOp):
        return Synapse(op.node, source, op.x.shape[1], op.binary, op.bias is not None)
    b, c, h, w = op.x.shape
    c_out, _, kh, kw = op.weight.shape
    geo = ConvGeometry(c, h, w, c_out, op.out.shape[2], op.out.shape[3], kh, kw, tuple(op.stride), tuple(op.padding),
                       tuple(op.dilation), op.groups)  # fmt: skip
    return Synapse(op.node, source, c * h * w, op.binary, True, geo)


def _neuron(op: O.NeuronOp, synapses: tuple[Synapse, ...]) -> Population:
    c = op.coeffs
    words = {"v": 1, "x": 1, "z": 1, "i": op.i is not None, "w": op.w is not None, "hold": op.hold is not None}
    ops = UPDATE_OPS["v"] + UPDATE_OPS["i"] * (op.i is not None) + UPDATE_OPS["w"] * (op.w is not None)
    ops += (UPDATE_OPS["spike"] + UPDATE_OPS["hold"] * (op.hold is not None)) if c.spiking else 0
    n = op.v.shape[1]
    arrays = [getattr(c, f.name) for f in dataclasses.fields(c) if f.name in _COEFFS]
    uniform = all(a.size <= 1 or bool((a == a.flat[0]).all()) for a in arrays)
    binary = c.spiking and c.max_spikes == 1
    return Population(op.node, n, c.spiking, binary, sum(words.values()), ops, len(_COEFFS), synapses,
                      coefficients_per_neuron=not uniform)  # fmt: skip


_COEFFS = ("a_syn", "g_syn", "a_w", "c_w", "b_w", "a_v", "k_v", "g_v", "g_w", "g_x", "h_w", "v_leak", "v_threshold",
           "v_reset")  # fmt: skip
_PLACED = (O.DenseOp, O.ConvOp, O.NeuronOp, O.SumOp, O.CopyOp, O.DelayOp)


def from_plan(plan: Plan) -> NetSpec:
    """The populations of a compiled engine plan; ops the IPU compiler cannot place raise UnsupportedError."""
    graph = plan.graph
    synapses: dict[str, Synapse] = {}
    for op in plan.ops:
        if not isinstance(op, _PLACED):
            kind = type(graph.nodes[op.node]).__name__ if op.node in graph.nodes else type(op).__name__
            raise UnsupportedError(f"the IPU compiler places neurons, dense and convolutional synapses; {op.node!r}"
                                   f" is a {kind}", path=f"graph/{op.node}")  # fmt: skip
        if isinstance(op, (O.DenseOp, O.ConvOp)):
            synapses[op.node] = _synapse(graph, op)
    rings = {op.node: op.ring.shape[0] for op in plan.ops if isinstance(op, O.DelayOp)}
    fed: set[str] = set()
    pops = []
    for op in plan.ops:
        if isinstance(op, O.NeuronOp):
            incoming = []
            for p in graph.predecessors(op.node):
                steps = 0
                if isinstance(graph.nodes[p], Delay) and len(graph.predecessors(p)) == 1:
                    steps = rings.get(p, 0)
                    (p,) = graph.predecessors(p)
                    if p in synapses:
                        synapses[p] = dataclasses.replace(synapses[p], delay_steps=steps)
                if p not in synapses:
                    raise UnsupportedError(f"{op.node!r} reads {p!r} without weights between; the IPU compiler"
                                           " places neurons fed through synapses", path=f"graph/{op.node}")  # fmt: skip
                incoming.append(synapses[p])
                fed.add(p)
            pops.append(_neuron(op, tuple(incoming)))
    by_node = {p.name: i for i, p in enumerate(pops)}
    for name, syn in synapses.items():
        if name not in fed:  # weights whose sums are the output: accumulators on tiles of their own
            size = math.prod(graph.shape(name))
            acc = Population(name, size, False, False, 1, 0, 0, (syn,), source_kind="accumulator")
            pops.insert(_position(plan, name, by_node, pops), acc)
            by_node = {p.name: i for i, p in enumerate(pops)}
    inputs = {name: math.prod(graph.shape(name)) for name in graph.inputs}
    for pop in pops:
        for syn in pop.synapses:
            src = graph.nodes[syn.source]
            if not isinstance(src, Input) and syn.source not in by_node:
                raise UnsupportedError(f"{syn.node!r} reads {syn.source!r}, which the IPU compiler does not place",
                                       path=f"graph/{syn.node}")  # fmt: skip
    return NetSpec(inputs, tuple(pops))


def _position(plan: Plan, name: str, by_node: dict[str, int], pops: list[Population]) -> int:
    """Where an accumulator goes in step order: before the first population after it in the plan."""
    order = [op.node for op in plan.ops]
    later = [by_node[n] for n in order[order.index(name) + 1 :] if n in by_node]
    return min(later) if later else len(pops)


def dense_stack(n_in: int, hidden: tuple[int, ...], n_out: int, *, recurrent: bool = False) -> NetSpec:
    """A feed-forward stack of LIF layers with a non-spiking LI read-out, by size alone (plans, benchmarks)."""
    pops, prev, prev_n = [], "in", n_in
    for k, n in enumerate(hidden):
        name = f"lif{k + 1}"
        syns = [Synapse(f"fc{k + 1}", prev, prev_n, prev != "in", False)]
        if recurrent:
            syns.append(Synapse(f"rec{k + 1}", name, n, True, False))
        ops = UPDATE_OPS["v"] + UPDATE_OPS["spike"]
        pops.append(Population(name, n, True, True, 3, ops, len(_COEFFS), tuple(syns)))
        prev, prev_n = name, n
    syn = Synapse("fc_out", prev, prev_n, bool(hidden), True)
    pops.append(Population("readout", n_out, False, False, 2, UPDATE_OPS["v"], len(_COEFFS), (syn,)))
    return NetSpec({"in": n_in}, tuple(pops))
