"""A compiled machine as an edgesnn model: a recurrent graph of threshold units with masking input channels.

Graph (dense states in 0/1 coding, ``z = 2 b - 1``; names are the node names)::

    stimulus (2 S one-hot channels) --silence (-H(-s))--> gate <--recurrent edge-- state
    gate = H(b + silence - 0.5) = b AND m  (the masked state, 0/1)
    state = ThresholdUnit(u >= 0), u = 2 W gate - W m = 2 W gate + drive(stimulus)
          with W = U V^T - diag(d):  gate --project (V^T)--> --expand (2 U)--> state,  gate --self (-2 d)--> state
    state --overlaps--> overlaps (P),  state --readout--> readout (O)

so one step is exactly :math:`z_t = \\mathrm{sgn}(W (z_{t-1} \\circ m_t))` of the reference
(:mod:`edgesnn.fsm.simulate`). Sparse states are 0/1 already: ``u = W gate`` and the units take
the k largest. A materialised (non-ideal) weight replaces project/expand/self by one dense
``recurrent`` connection. The input is one channel per stimulus (``symbol/a``, ``symbol/b``):
1 while it is held, all 0 for no input. The model's labels are the attractor names, so
``edgesnn run`` names the current attractor, and the graph's metadata ``fsm`` holds the spec,
the channels and the hold time that :func:`run_symbols` uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgesnn.errors import InputError, ModelError
from edgesnn.fsm.compile import FSMNetwork
from edgesnn.fsm.simulate import NONE, Hop, decode, hops, schedule
from edgesnn.fsm.spec import FSMSpec
from edgesnn.graph import Affine, Graph, Input, Linear, Output, Scale, Threshold, ThresholdUnit
from edgesnn.model import Model

#: The step of an FSM model: the network is discrete-time, so this only names the clock.
DT_S = 1e-3
_F32 = np.float32


def to_model(net: FSMNetwork) -> Model:
    """The edgesnn model of ``net``; its sessions step exactly as :func:`edgesnn.fsm.simulate.simulate`."""
    opts = net.options
    n, sparse = net.n, opts.sparse
    sil = net.silenced()  # (N, 2S): 1 where a stimulus masks a neuron
    nodes: dict[str, Any] = {"stimulus": Input((len(net.channels),), unit="one-hot")}
    edges = [("stimulus", "silence"), ("silence", "gate"), ("state", "gate")]
    nodes["silence"] = Linear(-sil)
    nodes["gate"] = Threshold(np.full(n, 0.5, _F32))
    gain = 1.0 if sparse else 2.0  # dense: W (2 b - 1) o m = 2 W (b AND m) - W m
    if net.weight is None:
        nodes["project"] = Linear(np.ascontiguousarray(net.v.T))
        nodes["expand"] = Linear(net.u * _F32(gain))
        nodes["self"] = Scale(-net.d * _F32(gain))
        edges += [("gate", "project"), ("project", "expand"), ("expand", "state"), ("gate", "self"), ("self", "state")]
    else:
        nodes["recurrent"] = Linear(net.weight * _F32(gain))
        edges += [("gate", "recurrent"), ("recurrent", "state")]
    if not sparse:
        w1 = _weight_times(net, np.ones((n, 1), _F32))[:, 0]  # W 1: what no mask removes
        ws = _weight_times(net, sil)  # W H(-s): what each stimulus's mask removes
        nodes["drive"] = Affine(ws, -w1)
        edges.append(("stimulus", "drive"))
        edges.append(("drive", "state"))
    start = net.patterns[net.spec.states.index(net.spec.initial)]
    if sparse:
        nodes["state"] = ThresholdUnit(np.zeros(n, _F32), start, "kwta", opts.active, opts.update_probability,
                                       opts.seed)  # fmt: skip
        nodes["overlaps"] = Linear((net.patterns - _F32(opts.coding)) / _F32(opts.active * (1 - opts.coding)))
    else:
        nodes["state"] = ThresholdUnit(np.zeros(n, _F32), (start > 0).astype(_F32), "step", 0,
                                       opts.update_probability, opts.seed)  # fmt: skip
        nodes["overlaps"] = Affine(net.patterns * _F32(2 / n), -net.patterns.sum(axis=1) / _F32(n))
    nodes["out_overlaps"] = Output((len(net.attractors),), unit="overlap")
    edges += [("state", "overlaps"), ("overlaps", "out_overlaps")]
    if len(net.readouts):
        r = net.readouts
        nodes["readout"] = Linear(r) if sparse else Affine(2 * r, -r.sum(axis=1))
        nodes["out_readout"] = Output((len(r),), unit="overlap")
        edges += [("state", "readout"), ("readout", "out_readout")]
    metadata = {"fsm": fsm_metadata(net)}
    graph = Graph(nodes, edges, metadata=metadata)
    if set(graph.back_edges) != {("state", "gate")}:  # pragma: no cover - the edge order above guarantees it
        raise ModelError(f"the FSM graph closed its loop at {sorted(graph.back_edges)}, not state -> gate")
    producer = {"name": "edgesnn.fsm", "construction": "Cotteret et al. 2024 (arXiv 2212.01196)"}
    return Model(graph, DT_S, labels=net.attractors, producer=producer)


def _weight_times(net: FSMNetwork, x: np.ndarray) -> np.ndarray:
    # W @ x for x (N, K) in float64, then float32: exact for the integer weights of the dense construction.
    return net.matvec(x.astype(np.float64)).astype(_F32)


def fsm_metadata(net: FSMNetwork) -> dict[str, Any]:
    """What a model keeps about its machine (JSON): the spec, channels, attractors, outputs and options."""
    o = net.options
    return {
        "spec": net.spec.to_dict(),
        "channels": list(net.channels),
        "attractors": list(net.attractors),
        "outputs": list(net.spec.output_names()),
        "hold_steps": o.hold_steps,
        "neurons": o.neurons,
        "coding": o.coding,
        "seed": o.seed,
        "weights": o.weights,
        "sparsity": o.sparsity,
        "noise_sigma": o.noise_sigma,
        "update_probability": o.update_probability,
    }


def fsm_info(model: Model) -> dict[str, Any]:
    """The ``fsm`` metadata of a model, or a ModelError saying the model is not an FSM."""
    info = model.graph.metadata.get("fsm")
    if not isinstance(info, dict) or "spec" not in info or "channels" not in info:
        raise ModelError("the model is not a finite-state machine (no 'fsm' metadata; compile one with"
                         " 'edgesnn fsm compile')", path="graph/metadata/fsm")  # fmt: skip
    return info


def feed(model: Model, symbols: Sequence[str], hold_steps: int | None = None) -> np.ndarray:
    """The one-hot stimulus sequence (T, 1, 2 S) for ``symbols``: each as none, s_a, s_b, then a last none."""
    info = fsm_info(model)
    hold = info["hold_steps"] if hold_steps is None else hold_steps
    idx = schedule(FSMSpec.from_dict(info["spec"]), symbols, hold)
    out = np.zeros((len(idx), 1, len(info["channels"])), _F32)
    on = idx != NONE
    out[np.flatnonzero(on), 0, idx[on]] = 1.0
    return out


def run_symbols(model: Model, symbols: Sequence[str], *, hold_steps: int | None = None, session: Any = None,
                numerics: str | None = None) -> tuple[dict[str, np.ndarray], list[Hop]]:  # fmt: skip
    """Run ``symbols`` through a session of an FSM model; return its outputs (T, ...) and the walk.

    ``numerics`` defaults to the model's own (``"loihi"`` for :func:`edgesnn.fsm.loihi.to_loihi_model`'s);
    the read-outs come back as overlaps whatever the numerics' units.
    """
    info = fsm_info(model)
    hold = info["hold_steps"] if hold_steps is None else hold_steps
    if session is None:
        from edgesnn.engine import SessionOptions

        session = model.session(options=SessionOptions(numerics=numerics or info.get("numerics", "float")))
    if session.batch != 1:
        raise InputError(f"expected a session of batch 1, got {session.batch}", path="session")
    outs = {k: v[:, 0] for k, v in session.run(feed(model, symbols, hold)).items()}
    for key, scale in (("out_overlaps", "overlap_scale"), ("out_readout", "readout_scale")):
        if key in outs and scale in info:  # a Loihi program's read-outs are integer voltages
            outs[key] = outs[key] * np.float32(info[scale])
    decoded = decode(outs["out_overlaps"], info["attractors"])
    return outs, hops(FSMSpec.from_dict(info["spec"]), symbols, decoded, hold)


__all__ = ["DT_S", "feed", "fsm_info", "fsm_metadata", "run_symbols", "to_model"]
