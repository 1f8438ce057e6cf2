"""Time-resolution adaptation: re-map a model trained at one step to run at another.

Every method is a pure function of the parameters and the two steps
(``params, dt_src, dt_dst -> params``): it takes each neuron's discrete update
at ``dt_src`` (what training saw), maps it to ``dt_dst`` (see ``_maps``), and
writes the result back as continuous-time parameters that the runtime's own
discretisation turns into exactly the mapped update at ``dt_dst``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from edgesnn.adapt._maps import DECAY_RULE, check_method, dc_gain, map_decay, map_input_gain, matrix_log
from edgesnn.errors import OptionError
from edgesnn.graph import IF, LI, LIF, AdaptiveLIF, CubaLI, CubaLIF, Delay, Graph, Input, Integrator, Output, Threshold
from edgesnn.graph._node import Node
from edgesnn.graph.neurons import NEURON_TYPES
from edgesnn.model import Model
from edgesnn.neurons import decay_and_gain, discretise
from edgesnn.neurons.discretise import SECTION_RULE
from edgesnn.units import check_step_s

#: Input units that mean "events counted per step": their expected count scales with the step.
COUNT_UNITS = ("spikes", "counts", "events")


def _tau_from_decay(a: np.ndarray, dt_s: float, discretisation: str) -> np.ndarray:
    return -dt_s / np.log(a) if SECTION_RULE[discretisation] == "zoh" else dt_s / (1.0 - a)


def _check_decay(a: np.ndarray, node: str, what: str, method: str, dt_dst: float) -> None:
    bad = ~((a > 0) & (a < 1))
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise OptionError(
            f"method {method!r} maps the {what} decay of neuron {i} to {float(a[i]):.4g} at dt {dt_dst:g} s,"
            " outside (0, 1); this step is out of the method's range",
            path=f"nodes/{node}",
        )


def retime_node(
    node: Node,
    dt_src: float,
    dt_dst: float,
    method: str,
    *,
    discretisation: str = "zoh",
    counts: bool = True,
    name: str = "node",
) -> Node:
    """Return ``node`` with parameters that make its update at ``dt_dst`` the mapped one.

    ``counts`` says the node's input is binned events (spikes) rather than a
    sampled signal. A spiking node mapped to a finer step also keeps the source's
    limit of one spike per ``dt_src`` (``min_spike_interval_s``). Nodes without
    dynamics are returned unchanged, and so is every node under the reference
    method ``"tau"`` (time constants stay in seconds; the runtime re-discretises them).
    """
    check_method(method)
    dt_src, dt_dst = check_step_s(dt_src, name="dt_src"), check_step_s(dt_dst, name="dt_dst")
    if method == "tau" or not isinstance(node, NEURON_TYPES):
        return node
    rho = dt_dst / dt_src
    rule = DECAY_RULE[method]
    c = discretise(node, dt_src, discretisation)
    shape = node.shape  # type: ignore[attr-defined]

    def f64(a: np.ndarray) -> np.ndarray:
        return np.asarray(a, np.float64).reshape(-1)

    def leaky(a: np.ndarray, g: np.ndarray, is_counts: bool, what: str) -> tuple[np.ndarray, np.ndarray]:
        a_t = map_decay(a, rho, dt_src, dt_dst, rule)
        _check_decay(a_t, name, what, method, dt_dst)
        g_t = map_input_gain(g, a, a_t, rho, method, is_counts, integrating=False)
        return _tau_from_decay(a_t, dt_dst, discretisation), g_t / (1.0 - a_t)

    changes: dict[str, np.ndarray] = {}
    if isinstance(node, (Integrator, IF)):
        ones = np.ones(int(np.prod(shape)))
        g_t = map_input_gain(f64(c.g_v), ones, ones, rho, method, counts, integrating=True)
        changes["r"] = g_t / dt_dst
    elif isinstance(node, (LI, LIF)):
        changes["tau_mem_s"], changes["r"] = leaky(f64(c.a_v), f64(c.g_v), counts, "membrane")
    elif isinstance(node, (CubaLI, CubaLIF)):
        changes["tau_syn_s"], changes["w_in"] = leaky(f64(c.a_syn), f64(c.g_syn), counts, "synaptic")
        # The membrane is driven by the synaptic current, a signal, whatever feeds the synapse. Mapped
        # as its own section (decay and gain per unit current), which fixes the coupling under every
        # discretisation: the cascades' I[t] drive, and the exact or Euler coupled update.
        _, gain = decay_and_gain(node.tau_mem_s, dt_src, discretisation)
        changes["tau_mem_s"], changes["r"] = leaky(f64(c.a_v), f64(gain) * f64(node.r), False, "membrane")
    elif isinstance(node, AdaptiveLIF) and discretisation in ("zoh", "euler"):
        changes.update(_retime_adaptive_coupled(node, c, rho, dt_src, dt_dst, method, rule, discretisation, counts,
                                                name))  # fmt: skip
    elif isinstance(node, AdaptiveLIF):
        changes.update(_retime_adaptive(c, rho, dt_src, dt_dst, method, rule, discretisation, counts, name))
    arrays = {k: np.asarray(v, np.float32).reshape(shape) for k, v in changes.items()}
    if node.spiking and dt_dst < dt_src:
        # At dt_src a neuron fires at most once per step; keep that limit in seconds (see derivations.md).
        arrays["min_spike_interval_s"] = max(node.min_spike_interval_s, dt_src)  # type: ignore[attr-defined]
    return node.replace(**arrays)


def _retime_adaptive(c, rho, dt_src, dt_dst, method, rule, discretisation, counts, name) -> dict[str, np.ndarray]:
    """The cascaded (v, w) block of AdaptiveLIF, mapped as one 2x2 state matrix and read back in the cascade's terms."""
    g_v = np.asarray(c.g_v, np.float64).reshape(-1)
    # The runtime updates w first, then v with the new w: written as one matrix on (v - v_leak, w).
    h = _adaptive_matrices(c)[0]
    h_t = map_decay(h, rho, dt_src, dt_dst, rule)
    a_w_t, c_w_t = h_t[:, 1, 1], h_t[:, 1, 0]
    _check_decay(a_w_t, name, "adaptation", method, dt_dst)
    g_w_t = -h_t[:, 0, 1] / a_w_t
    a_v_t = h_t[:, 0, 0] + g_w_t * c_w_t
    _check_decay(a_v_t, name, "membrane", method, dt_dst)
    g_v_t = map_input_gain(g_v, h, h_t, rho, method, counts, integrating=False)
    return {
        "tau_mem_s": _tau_from_decay(a_v_t, dt_dst, discretisation),
        "tau_adapt_s": _tau_from_decay(a_w_t, dt_dst, discretisation),
        "r": g_v_t / (1.0 - a_v_t),
        "g_adapt": g_w_t / (1.0 - a_v_t),
        "a_coupling": c_w_t / (1.0 - a_w_t),
    }


def _adaptive_matrices(c) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001 - NeuronCoefficients
    """(H, G) of the engine's AdaptiveLIF update on (v - v_leak, w): ``s' = H s + G x`` between spikes."""
    a_v, g_w, c_w, a_w, g_v, h_w = (np.asarray(x, np.float64).reshape(-1) for x in (c.a_v, c.g_w, c.c_w, c.a_w,
                                                                                      c.g_v, c.h_w))  # fmt: skip
    h = np.empty((a_v.size, 2, 2))
    h[:, 0, 0], h[:, 0, 1] = a_v - g_w * c_w, -g_w * a_w
    h[:, 1, 0], h[:, 1, 1] = c_w, a_w
    return h, np.stack([g_v - g_w * h_w, h_w], axis=1)


def _retime_adaptive_coupled(
    node,
    c,
    rho,
    dt_src,
    dt_dst,
    method,
    rule,
    discretisation,
    counts,
    name,  # noqa: ANN001
) -> dict[str, np.ndarray]:
    """AdaptiveLIF under "zoh" or "euler": the mapped 2x2 matrix read back as the continuous system.

    The state matrix at dt_dst is ``e^{A dt}`` ("zoh") or ``I + A dt`` ("euler"), so A is its
    logarithm (or difference) over dt_dst, and A's four entries are the four parameters
    (tau_mem, g_adapt, tau_adapt, a_coupling). R then scales the input gain to what the method
    asks for: the steady state per unit input (times 1/rho for counts), or under "integral" with
    counts the jump one event gives the membrane.
    """
    h, g = _adaptive_matrices(c)
    h_t = map_decay(h, rho, dt_src, dt_dst, rule)
    a = matrix_log(h_t) / dt_dst if discretisation == "zoh" else (h_t - np.eye(2)[None]) / dt_dst
    bad = ~((a[:, 0, 0] < 0) & (a[:, 1, 1] < 0))
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise OptionError(
            f"method {method!r} maps neuron {i} to a membrane or adaptation that does not decay at dt {dt_dst:g} s;"
            " this step is out of the method's range",
            path=f"nodes/{name}",
        )
    shape = node.shape
    tau_m, tau_a = -1.0 / a[:, 0, 0], -1.0 / a[:, 1, 1]
    params = {
        "tau_mem_s": tau_m, "tau_adapt_s": tau_a, "g_adapt": -a[:, 0, 1] * tau_m, "a_coupling": a[:, 1, 0] * tau_a,
    }  # fmt: skip
    unit = node.replace(**{k: np.asarray(v, np.float32).reshape(shape) for k, v in params.items()},
                        r=np.ones(shape, np.float32))  # fmt: skip
    h_1, g_1 = _adaptive_matrices(discretise(unit, dt_dst, discretisation))
    if method == "integral" and counts:
        params["r"] = g[:, 0] / g_1[:, 0]
    else:
        target = dc_gain(h, g) / (rho if counts else 1.0)
        params["r"] = target / dc_gain(h_1, g_1)
    return params


def _sources(graph: Graph, name: str) -> tuple[bool, list[str]]:
    """(whether a source delivers counts, Inputs without a unit) among the sources feeding node ``name``."""
    seen: set[str] = set()
    stack = list(graph.predecessors(name))
    counts, unknown = False, []
    while stack:
        src = stack.pop()
        if src in seen:
            continue
        seen.add(src)
        node = graph.nodes[src]
        if node.spiking or isinstance(node, Threshold):
            counts = True
        elif isinstance(node, Input):
            counts = counts or node.unit in COUNT_UNITS
            if not node.unit:
                unknown.append(src)
        elif not (isinstance(node, NEURON_TYPES) or isinstance(node, Output)):  # a readout's membrane is a signal
            stack.extend(graph.predecessors(src))  # connections, pooling, Flatten, Scale, Delay: look further back
    return counts, sorted(unknown)


def input_is_counts(graph: Graph, name: str) -> bool:
    """True when a node's input is (a linear function of) binned events rather than a signal.

    Walks back through connections and shape nodes to the sources: spiking
    nodes, and Inputs whose unit is one of :data:`COUNT_UNITS`, deliver counts.
    """
    return _sources(graph, name)[0]


def check_input_units(graph: Graph) -> None:
    """Refuse to adapt neurons fed by an Input whose unit does not say what its values are.

    Counts and signals are mapped differently (see derivations.md), and a wrong guess puts
    a layer off by the step ratio: at 4x finer steps, about 75 %.
    """
    for name, node in graph.nodes.items():
        if not isinstance(node, NEURON_TYPES):
            continue
        unknown = _sources(graph, name)[1]
        if unknown:
            raise OptionError(
                f"input {unknown[0]!r} has no unit, and adapting {name!r} to another step depends on it: say whether"
                f" it carries events counted per step (unit {' / '.join(map(repr, COUNT_UNITS))}: their expected"
                " value grows with the step) or a sampled signal (a physical unit such as 'A' or 'mV', or 'signal':"
                " its value does not depend on the step), e.g. model.with_input_units({"
                f"{unknown[0]!r}: 'spikes'}}) or edgesnn adapt --unit {unknown[0]}=spikes",
                path=f"inputs/{unknown[0]}",
            )


#: Name suffix of the Delay nodes retime_model puts on recurrent edges.
LOOP_DELAY_SUFFIX = ".loop_delay"


def _keep_loop_delays(graph: Graph, nodes: dict[str, Node], dt_src: float, dt_dst: float) -> tuple[dict, list]:
    """Keep every recurrent loop's delay in seconds, not in steps.

    A back edge delivers the previous step's value, so a loop trained at
    dt_src is delayed by dt_src; at a finer dt_dst a Delay of dt_src - dt_dst
    on the back edge restores that. A delay added by an earlier retime is
    adjusted instead of stacked; a coarser step can only shorten such a delay.
    """
    nodes = dict(nodes)
    edges = list(graph.edges)
    for src, dst in sorted(graph.back_edges):
        node = nodes[src]
        if src.endswith(LOOP_DELAY_SUFFIX) and isinstance(node, Delay):
            nodes[src] = Delay(max(0.0, node.delay_s + dt_src - dt_dst))
        elif dt_dst < dt_src:
            name = f"{src}.{dst}{LOOP_DELAY_SUFFIX}"
            nodes[name] = Delay(dt_src - dt_dst)
            i = edges.index((src, dst))
            edges[i : i + 1] = [(src, name), (name, dst)]
    return nodes, edges


def retime_model(model: Model, dt_dst: float, method: str | None = None) -> Model:
    """Adapt every neuron of ``model`` from its step to ``dt_dst`` (default: the model's adapt_method).

    The SSM methods also keep recurrent loops delayed by the same time in
    seconds (see :func:`_keep_loop_delays`); the reference ``"tau"`` keeps them
    one step long, as plain re-discretisation does.
    """
    method = check_method(model.adapt_method if method is None else method)
    dt_dst = check_step_s(dt_dst)
    if math.isclose(dt_dst, model.dt_s, rel_tol=1e-12):
        return model
    g = model.graph
    if method != "tau":
        check_input_units(g)
    nodes: dict[str, Node] = {
        n: retime_node(
            node, model.dt_s, dt_dst, method, discretisation=model.method, counts=input_is_counts(g, n), name=n
        )
        for n, node in g.nodes.items()
    }
    edges = list(g.edges)
    if method != "tau":
        nodes, edges = _keep_loop_delays(g, nodes, model.dt_s, dt_dst)
    history = list(model.producer.get("retimed", []))
    history.append({"from_dt_s": model.dt_s, "to_dt_s": dt_dst, "method": method})
    return dataclasses.replace(
        model, graph=Graph(nodes, edges, g.metadata), dt_s=dt_dst, producer={**model.producer, "retimed": history}
    )


__all__ = ["COUNT_UNITS", "check_input_units", "input_is_counts", "retime_model", "retime_node"]
