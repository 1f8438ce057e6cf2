"""edgesnn Model -> plain NIR graph, with the edgesnn specifics in its metadata."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgesnn.bundle import _nir_meta
from edgesnn.bundle._nir_profiles import importer_losses, sinabs_rockpool_losses
from edgesnn.bundle._nir_spyx import spyx_losses
from edgesnn.errors import NIRImportError
from edgesnn.graph import (
    IF,
    LI,
    LIF,
    Affine,
    AvgPool2d,
    Conv1d,
    Conv2d,
    CubaLI,
    CubaLIF,
    Delay,
    Flatten,
    Input,
    Integrator,
    Linear,
    Output,
    Scale,
    SumPool2d,
    Threshold,
)
from edgesnn.graph._node import Node
from edgesnn.model import Model

log = logging.getLogger("edgesnn.bundle.nir")


def _a(x: Any) -> np.ndarray:
    """A writable float32 copy: NIR nodes may rebind or broadcast their fields."""
    return np.array(x, dtype=np.float32, copy=True)


def _node_to_nir(nir: Any, name: str, node: Node, in_shape: tuple[int, ...]) -> tuple[Any, dict[str, Any]]:
    """One edgesnn node as a NIR node, plus what NIR cannot hold (for the record)."""
    extras: dict[str, Any] = {}
    if isinstance(node, Input):
        extras["unit"] = node.unit
        return nir.Input(input_type=np.array(node.shape)), extras
    if isinstance(node, Output):
        extras["unit"] = node.unit
        return nir.Output(output_type=np.array(node.shape)), extras
    if isinstance(node, Affine):
        return nir.Affine(weight=_a(node.weight), bias=_a(node.bias)), extras
    if isinstance(node, Linear):
        return nir.Linear(weight=_a(node.weight)), extras
    if isinstance(node, (Scale, Threshold)):
        field = "scale" if isinstance(node, Scale) else "threshold"
        value = getattr(node, field)
        if value.shape != tuple(in_shape):
            extras["param_shape"] = list(value.shape)  # NIR needs the full shape
        full = _a(np.broadcast_to(value, in_shape))
        return (nir.Scale(scale=full) if field == "scale" else nir.Threshold(threshold=full)), extras
    if isinstance(node, Delay):
        return nir.Delay(delay=np.full(in_shape, node.delay_s, dtype=np.float64)), extras
    if isinstance(node, Conv1d):
        return nir.Conv1d(
            input_shape=int(in_shape[1]), weight=_a(node.weight), stride=node.stride, padding=node.padding,
            dilation=node.dilation, groups=node.groups, bias=_a(node.bias),
        ), extras  # fmt: skip
    if isinstance(node, Conv2d):
        return nir.Conv2d(
            input_shape=tuple(int(s) for s in in_shape[1:]), weight=_a(node.weight), stride=node.stride,
            padding=node.padding, dilation=node.dilation, groups=node.groups, bias=_a(node.bias),
        ), extras  # fmt: skip
    if isinstance(node, (SumPool2d, AvgPool2d)):
        cls = nir.SumPool2d if isinstance(node, SumPool2d) else nir.AvgPool2d
        return cls(
            kernel_size=np.array(node.kernel_size), stride=np.array(node.stride), padding=np.array(node.padding)
        ), extras
    if isinstance(node, Flatten):
        return nir.Flatten(input_type=np.array(in_shape), start_dim=node.start_dim, end_dim=node.end_dim), extras
    if hasattr(node, "reset_mode"):
        extras["reset_mode"] = node.reset_mode  # type: ignore[attr-defined]
        extras["reset_timing"] = node.reset_timing  # type: ignore[attr-defined]
        extras["threshold_inclusive"] = node.threshold_inclusive  # type: ignore[attr-defined]
        extras["max_spikes_per_step"] = node.max_spikes_per_step  # type: ignore[attr-defined]
        if node.min_spike_interval_s > 0:  # type: ignore[attr-defined]
            extras["min_spike_interval_s"] = node.min_spike_interval_s  # type: ignore[attr-defined]
    if isinstance(node, Integrator):
        return nir.I(r=_a(node.r)), extras
    if isinstance(node, IF):
        return nir.IF(r=_a(node.r), v_threshold=_a(node.v_threshold), v_reset=_a(node.v_reset)), extras
    if isinstance(node, LI):
        return nir.LI(tau=_a(node.tau_mem_s), r=_a(node.r), v_leak=_a(node.v_leak)), extras
    if isinstance(node, LIF):
        return nir.LIF(
            tau=_a(node.tau_mem_s), r=_a(node.r), v_leak=_a(node.v_leak),
            v_threshold=_a(node.v_threshold), v_reset=_a(node.v_reset),
        ), extras  # fmt: skip
    if isinstance(node, CubaLI):
        return nir.CubaLI(
            tau_syn=_a(node.tau_syn_s), tau_mem=_a(node.tau_mem_s), r=_a(node.r), v_leak=_a(node.v_leak),
            w_in=_a(node.w_in),
        ), extras  # fmt: skip
    if isinstance(node, CubaLIF):
        return nir.CubaLIF(
            tau_syn=_a(node.tau_syn_s), tau_mem=_a(node.tau_mem_s), r=_a(node.r), v_leak=_a(node.v_leak),
            v_threshold=_a(node.v_threshold), v_reset=_a(node.v_reset), w_in=_a(node.w_in),
        ), extras  # fmt: skip
    kind = type(node).__name__
    why = {
        "AdaptiveLIF": "NIR has no neuron with an adaptation state (its LIF outputs spikes only, so the"
        " sub-threshold coupling cannot be wired from NIR nodes); keep this model as .esnn",
        "Onnx": "NIR has no node for an ONNX (ANN) subgraph; keep this model as .esnn",
        "ThresholdUnit": "NIR has no unit that keeps its last output (its Threshold is stateless) and no"
        " k-winners-take-all; keep this model (an attractor network, e.g. an edgesnn.fsm machine) as .esnn",
    }.get(kind, "NIR has no such node")
    raise NIRImportError(f"cannot export a {kind} node to NIR: {why}", path=f"nodes/{name}")


def model_to_nir(model: Model) -> Any:
    """Build a plain NIRGraph of ``model``; edgesnn specifics go to its metadata."""
    import nir

    g = model.graph
    nodes: dict[str, Any] = {}
    extras: dict[str, dict[str, Any]] = {}
    for name, node in g.nodes.items():
        nodes[name], extra = _node_to_nir(nir, name, node, g.input_shape(name))
        if extra:
            extras[name] = extra
    record = {
        "dt_s": model.dt_s,
        "method": model.method,
        "labels": list(model.labels),
        "learning": model.learning,
        "adapt_method": model.adapt_method,
        "initial_state": model.initial_state,
        "producer": model.producer,
        "graph_metadata": g.metadata,
        "node_order": list(g.nodes),
        "nodes": extras,
    }
    types = {name: type(n).__name__ for name, n in nodes.items()}
    for importer, lines in importer_losses(model.dt_s, dict(g.nodes), types, bool(g.back_edges)).items():
        # Known gaps of framework importers (snnTorch, Norse): the network would run differently there.
        log.warning("%s would read this differently: %s", importer, "; ".join(lines))
    more = sinabs_rockpool_losses(model.dt_s, model.method, dict(g.nodes), types, bool(g.back_edges))
    more.update(spyx_losses(model.dt_s, model.method, dict(g.nodes), types, [tuple(e) for e in g.edges]))
    for importer, lines in more.items():  # the same for Sinabs's, Rockpool's and Spyx's importers
        log.warning("%s would read this differently: %s", importer, "; ".join(lines))
    # type_check=False: NIR's checker ignores conv groups and would add nodes; the
    # edgesnn graph is already validated.
    return nir.NIRGraph(
        nodes=nodes,
        edges=[tuple(e) for e in g.edges],
        metadata={_nir_meta.KEY: _nir_meta.dumps(record)},
        type_check=False,
    )
