r"""A dense machine as a Loihi 2 program: CUBA LIF layers in Lava's integers that step its update rule exactly.

Loihi has no unit that keeps a sign and no product of two spike trains, so masking is made of
neurons, as the chip would run it (all layers: ``du = dv = 4095``, no memory across steps):

* ``gate_pos`` fires where the state fires and the stimulus does not mask, ``gate_neg`` where it
  does not fire and the stimulus does not mask: :math:`z \circ m = g_+ - g_-` (bipolar ``z``);
* ``state`` fires where :math:`W g_+ - W g_- = W (z \circ m) \ge 0` (weights ``2 W`` and ``-2 W``:
  Lava drops the lowest bit of mixed-sign weights, so they are stored even);
* ``overlaps`` and ``readout`` are non-spiking read-outs whose voltage is ``N`` times the overlap
  with each attractor (``m`` times each output's read-out).

Every connection delivers one step late, so the state at step ``t + 2`` is the update of the
state at ``t``: the program runs two interleaved copies of the machine, both started in the
initial state (by the layers' initial voltages), which see the same held inputs. The residual
voltage Lava keeps (``dv = 4095`` leaves :math:`v / 4096`) never moves a decision as long as every
unit's input stays below 1024 in magnitude, which :func:`to_loihi_model` checks from the rows of
``W``: binary weights up to N = 1024, 98 %-sparse ternary ones far beyond. The weights must be
integers below 128 (binary, ternary, or the ideal weights of a small machine); sparse k-WTA
states and asynchronous updates have no Loihi form here and are refused.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgesnn.errors import UnsupportedError
from edgesnn.fsm.compile import FSMNetwork
from edgesnn.fsm.model import DT_S, fsm_metadata
from edgesnn.graph import Graph
from edgesnn.loihi import fixed
from edgesnn.loihi.network import Connection, LoihiNetwork, NeuronLayer
from edgesnn.model import Model

#: Largest |W (z o m)| for which Lava's residual voltage never changes a unit's decision.
MAX_DRIVE = 1023
_ACT = 1 << fixed.ACT_SHIFT  # Lava adds a << 6 to the current
_CARRY = fixed.DECAY_UNITY  # an initial voltage of k * 4096 leaves k after the first decay (dv = 4095)


def loihi_network(net: FSMNetwork) -> LoihiNetwork:
    """The integer program of a dense machine (see the module docstring); refuses what it cannot run exactly."""
    opts = net.options
    if opts.sparse:
        raise UnsupportedError("sparse states need k-winners-take-all units, which Loihi's LIF layers do not"
                               " have; compile a dense machine (coding 0) for Loihi", path="coding")  # fmt: skip
    if opts.update_probability < 1:
        raise UnsupportedError("asynchronous updates have no Loihi form here; Loihi updates every unit each step",
                               path="update_probability")  # fmt: skip
    w = net.dense_weight().astype(np.float64)
    if not np.array_equal(w, np.rint(w)) or np.abs(w).max(initial=0) > 127:
        raise UnsupportedError("Loihi stores 8-bit integer weights: use weights='binary' or 'ternary' without"
                               " noise (or the ideal weights of a small machine, all within +-127)",
                               path="weights")  # fmt: skip
    drive = int(np.abs(w).sum(axis=1).max(initial=0))
    if drive > MAX_DRIVE:
        raise UnsupportedError(f"a unit's input can reach {drive}; above {MAX_DRIVE} Lava's residual voltage may flip"
                               " it: use fewer neurons or sparser (ternary) weights", path="neurons")  # fmt: skip
    n = net.n
    x0 = net.patterns[net.spec.states.index(net.spec.initial)] > 0
    sil = np.rint(net.silenced()).astype(np.int64)  # (N, 2S)
    eye = np.eye(n, dtype=np.int64)
    pats = np.rint(net.patterns).astype(np.int64)  # +-1
    sums = pats.sum(axis=1)
    if np.abs(sums).max(initial=0) > fixed.BIAS_MANT_MAX:
        raise UnsupportedError(f"the overlap read-out's bias does not fit 13 bits at N = {n}", path="neurons")
    both = dict(du=fixed.MAX_DECAY, dv=fixed.MAX_DECAY, vth=0)
    # Gates: input +-2 from the state, -2 from a masking stimulus; biases put the cut between the cases.
    layers = [
        NeuronLayer(node="gate_pos", shape=(n,), bias_mant=-_ACT, v_init=np.where(x0, 3 * _ACT * _CARRY, 0), **both),
        NeuronLayer(node="gate_neg", shape=(n,), bias_mant=_ACT // 2, v_init=np.where(x0, -_ACT * _CARRY, 0), **both),
        NeuronLayer(node="state", shape=(n,), bias_mant=_ACT // 2, v_init=np.where(x0, _ACT, -_ACT) * _CARRY, **both),
        NeuronLayer(node="overlaps", shape=(len(pats),), du=fixed.MAX_DECAY, dv=fixed.MAX_DECAY, vth=fixed.MAX_VTH,
                    bias_mant=-sums, bias_exp=fixed.ACT_SHIFT, spiking=False),
    ]  # fmt: skip
    iw = np.rint(2 * w).astype(np.int64)
    conns = [
        Connection(node="silence_pos", source="stimulus", target="gate_pos", weight=-2 * sil),
        Connection(node="silence_neg", source="stimulus", target="gate_neg", weight=-2 * sil),
        Connection(node="recurrent_pos", source="gate_pos", target="state", weight=iw, sign_mode="mixed"),
        Connection(node="recurrent_neg", source="gate_neg", target="state", weight=-iw, sign_mode="mixed"),
        Connection(node="hold_pos", source="state", target="gate_pos", weight=2 * eye),
        Connection(node="hold_neg", source="state", target="gate_neg", weight=-2 * eye),
        Connection(node="read_overlaps", source="state", target="overlaps", weight=2 * pats, sign_mode="mixed"),
    ]
    outputs = {"out_overlaps": "overlaps"}
    if len(net.readouts):
        codes = np.rint(np.sign(net.readouts)).astype(np.int64)
        layers.append(NeuronLayer(node="readout", shape=(len(codes),), du=fixed.MAX_DECAY, dv=fixed.MAX_DECAY,
                                  vth=fixed.MAX_VTH, bias_mant=-codes.sum(axis=1), bias_exp=fixed.ACT_SHIFT,
                                  spiking=False))  # fmt: skip
        conns.append(Connection(node="read_outputs", source="state", target="readout", weight=2 * codes,
                                sign_mode="mixed"))  # fmt: skip
        outputs["out_readout"] = "readout"
    return LoihiNetwork(dt_s=DT_S, inputs={"stimulus": (len(net.channels),)}, neurons=layers, connections=conns,
                        outputs=outputs)  # fmt: skip


def to_loihi_model(net: FSMNetwork) -> Model:
    """A model carrying :func:`loihi_network` of ``net``: its ``numerics="loihi"`` sessions (and the Loihi 2 bridge)
    run those integers; :func:`edgesnn.fsm.run_symbols` picks Loihi numerics and rescales the read-outs."""
    from edgesnn.loihi import to_model

    program = loihi_network(net)
    model = to_model(program, labels=net.attractors, producer={"name": "edgesnn.fsm", "target": "loihi2"})
    meta = fsm_metadata(net)
    m = int(np.count_nonzero(net.readouts[0])) if len(net.readouts) else 1
    meta.update(numerics="loihi", overlap_scale=1.0 / net.n, readout_scale=1.0 / m)
    graph = Graph(model.graph.nodes, model.graph.edges, metadata={"fsm": meta})
    return dataclasses.replace(model, graph=graph)


__all__ = ["MAX_DRIVE", "loihi_network", "to_loihi_model"]
