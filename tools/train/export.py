"""Trained parameters -> an edgesnn Model (graph of synapses and continuous-time neurons) -> .esnn.

Node names follow the trainer's layer names, so a session can record any layer::

    input -> conv0_w (Conv2d) -> conv0 (neuron) -> flatten -> hidden0_w (Linear) -> hidden0
          [-> hidden0_rec (Linear) -> hidden0, a back edge] -> readout_w -> readout (LI) -> output
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

import edgesnn
from edgesnn.bundle import write_bundle
from edgesnn.errors import OptionError
from edgesnn.graph import LI, LIF, AdaptiveLIF, Conv2d, CubaLIF, Flatten, Graph, Input, Linear, Output
from edgesnn.graph._node import Node
from edgesnn.model import Model
from tools.train.models import Network, Params, neuron_params

#: Node name of the readout population and of the graph output.
READOUT = "readout"
OUTPUT = "output"


def _f32(a: jax.Array) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def neuron_node(net: Network, kind: str, p: Params, shape: tuple[int, ...]) -> Node:
    """The runtime node of one population, with the parameters the trainer uses."""
    cont = {k: _f32(v) for k, v in neuron_params(net, p, shape, hidden=kind != "li").items()}
    if kind == "li":
        return LI(tau_mem_s=cont["tau_mem_s"])
    spec = net.neuron
    common = dict(v_threshold=cont["v_threshold"], reset_mode=spec.reset_mode, reset_timing=spec.reset_timing)
    if kind == "lif":
        return LIF(tau_mem_s=cont["tau_mem_s"], **common)
    if kind == "cubalif":
        return CubaLIF(tau_syn_s=cont["tau_syn_s"], tau_mem_s=cont["tau_mem_s"], **common)
    return AdaptiveLIF(tau_mem_s=cont["tau_mem_s"], tau_adapt_s=cont["tau_adapt_s"], a_coupling=cont["a_coupling"],
                       b_spike=cont["b_spike"], **common)  # fmt: skip


def to_model(
    net: Network, params: Params, *, labels: tuple[str, ...] = (), producer: dict[str, Any] | None = None
) -> Model:
    """Build the runtime Model of a trained network at the training step and method."""
    if net.reference:
        raise OptionError("model/kind gru is the non-spiking reference: it trains and evaluates in JAX, the "
                          "runtime has no GRU to export it to", path="model/kind")  # fmt: skip
    nodes: dict[str, Node] = {"input": Input(net.input_shape, unit="spikes")}
    edges: list[tuple[str, str]] = []
    prev, prev_shape = "input", net.input_shape

    def flatten_if_needed() -> None:
        nonlocal prev, prev_shape
        if len(prev_shape) > 1:
            nodes["flatten"] = Flatten(start_dim=0, end_dim=-1)
            edges.append((prev, "flatten"))
            prev, prev_shape = "flatten", (int(np.prod(prev_shape)),)

    for spec, p in zip(net.layers, params["layers"], strict=True):
        syn = f"{spec.name}_w"
        if spec.kind == "conv":
            nodes[syn] = Conv2d(
                weight=_f32(net.weight_gain * p["w"]), bias=_f32(p["b"]), stride=spec.stride, padding=spec.padding
            )
        else:
            flatten_if_needed()
            nodes[syn] = Linear(weight=_f32(net.weight_gain * p["w"]))
        edges += [(prev, syn), (syn, spec.name)]
        nodes[spec.name] = neuron_node(net, net.neuron.kind, p["neuron"], spec.out_shape)
        if spec.recurrent:
            nodes[f"{spec.name}_rec"] = Linear(weight=_f32(net.weight_gain * p["w_rec"]))
            edges += [(spec.name, f"{spec.name}_rec"), (f"{spec.name}_rec", spec.name)]
        prev, prev_shape = spec.name, spec.out_shape
    flatten_if_needed()
    r = params["readout"]
    nodes["readout_w"] = Linear(weight=_f32(net.weight_gain * r["w"]))
    nodes[READOUT] = neuron_node(net, "li", r["neuron"], (net.n_classes,))
    nodes[OUTPUT] = Output((net.n_classes,), unit="V")
    edges += [(prev, "readout_w"), ("readout_w", READOUT), (READOUT, OUTPUT)]
    graph = Graph(nodes, tuple(edges), metadata={"trainer": "tools.train"})
    return Model(graph, dt_s=net.dt_s, method=net.method, labels=labels, producer=dict(producer or {}))


def producer_info(
    config: dict[str, Any], dataset_sha256: str, accuracy: dict[str, float], epoch: int
) -> dict[str, Any]:
    """The bundle's producer record: trainer, versions, full config, dataset hash, accuracy."""
    return {
        "name": "edgesnn-train",
        "version": edgesnn.__version__,
        "framework": f"jax {jax.__version__}",
        "config": config,
        "dataset_sha256": dataset_sha256,
        "accuracy": accuracy,
        "epoch": epoch,
        "dt_s": config["dt_s"],
        "method": config["method"],
    }


def export_bundle(model: Model, path: str | os.PathLike[str]) -> None:
    """Write ``model`` as a .esnn bundle (atomically)."""
    write_bundle(model, path)
