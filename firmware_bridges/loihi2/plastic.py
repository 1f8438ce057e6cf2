r"""Plasticity attention's write rule (edgesnn.graph.plastic_attention) on Lava's learning engine.

Lava form of the writes of one head, token by token (``t_epoch = 1``, one Lava step per token):

- **W_K** (slots x D, read as query -> slot): a ``LearningDense`` whose pre-synaptic neurons are
  the key's D components, sent as graded spikes that overwrite the trace :math:`x_1`
  (``GradedSpikeCfg.OVERWRITE``), and whose post-synaptic neurons are the slots, sending the
  gate as the third factor :math:`y_1` (:math:`g_t` on the slot written, 0 elsewhere):

  .. math:: dw = u_0\,x_1\,y_1 - 2^{c}\,u_0\,y_1 - u_0\,y_1\,w \;=\; g\,(k - w)

- **W_V** (D x slots, read as slot -> value): pre-synaptic neurons the slots (the gate as a
  graded spike, so only the written slot's synapses have the dependency :math:`x_0`),
  post-synaptic the value's components in :math:`y_1`:

  .. math:: dw = x_0\,x_1\,y_1 - 2^{c}\,x_0\,x_1 - x_0\,x_1\,w \;=\; g\,(v - w)

Lava's traces are signed here only through an offset: keys and values travel as
:math:`k + 2^c` (a graded spike of 0 is no spike at all, so the offset also keeps every key
component a spike). Graded payloads are halved into :math:`x_1` and every trace decays for one
step before the engine reads it (``x1_tau``, and Loihi3FLearningRule's 65535 steps for
:math:`y`), so both are sent doubled and scaled by :math:`e^{1/\tau}`.

This runs on ``floating_pt``. On ``fixed_pt`` (lava-nc 0.10.0's
``LearningConnectionModelBitApproximate``, which its own docstring says "does not implement the
exact behavior of Loihi") no deterministic integer rule can match it bit for bit: a graded value
reaches the rule only through the 7-bit trace, after :math:`\lfloor p/2 \rceil` and one step of
decay rounded stochastically from a seeded generator (``x1_tau = 0`` zeroes the trace instead),
and weight updates are rounded stochastically too. :func:`fixed_trace_reads` measures it.

Run it with ``python -m firmware_bridges.loihi2.plastic tokens.npz out.npz``; ``tokens.npz``
holds ``keys`` and ``values`` (T, D), ``gates`` (T,) in [0, 1] and ``slots``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import numpy as np

#: Loihi3FLearningRule's time constant of the third-factor traces, and the one used here for x1 (steps).
TAU = float(np.iinfo(np.uint16).max)


def slot_gates(gates: np.ndarray, slots: int) -> np.ndarray:
    """(T, slots): each token's gate on the slot it writes (the ring of written tokens), 0 elsewhere."""
    g = np.asarray(gates, np.float64)
    out = np.zeros((len(g), slots))
    written = 0
    for t, gt in enumerate(g):
        if gt > 0:
            out[t, written % slots] = gt
            written += 1
    return out


def _lava_classes() -> dict[str, type]:
    """A post-synaptic process sending given third factors (Lava is imported only in the bridge venv)."""
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.neuron import LearningNeuronModelFloat
    from lava.magma.core.model.py.ports import PyInPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.process.neuron import LearningNeuronProcess
    from lava.magma.core.process.ports.ports import InPort
    from lava.magma.core.process.process import AbstractProcess
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

    class ThirdFactors(LearningNeuronProcess, AbstractProcess):
        """Neurons that send row t of ``y1`` (T, n) as their y1 trace on step t, and no spikes."""

        def __init__(self, *, shape: tuple[int], learning_rule: Any, y1: np.ndarray) -> None:
            super().__init__(shape=shape, learning_rule=learning_rule, y1=y1)
            self.a_in = InPort(shape=shape)

    @implements(proc=ThirdFactors, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("floating_pt")
    class PyThirdFactorsFloat(LearningNeuronModelFloat):
        a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)

        def run_spk(self) -> None:
            self.a_in.recv()
            y1 = self.proc_params["y1"][self.time_step - 1]
            zeros = np.zeros(y1.shape)
            self.s_out_bap.send(zeros.astype(bool))
            self.s_out_y1.send(y1 * math.exp(1.0 / TAU))  # Lava decays it one step before the engine reads it
            self.s_out_y2.send(zeros)
            self.s_out_y3.send(zeros)

    return {"ThirdFactors": ThirdFactors, "floating_pt": PyThirdFactorsFloat}


def _run(pre: np.ndarray, post_y1: np.ndarray, shape: tuple[int, int], dw: str) -> np.ndarray:
    """Weights (T+1, post, pre) of a LearningDense fed graded spikes ``pre`` (T, pre) and third factors (T, post)."""
    from lava.magma.core.learning.constants import GradedSpikeCfg
    from lava.magma.core.learning.learning_rule import Loihi3FLearningRule
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import LearningDense
    from lava.proc.io.source import RingBuffer

    classes = _lava_classes()
    rule = Loihi3FLearningRule(dw=dw, x1_tau=TAU, t_epoch=1)
    payload = 2.0 * pre * math.exp(1.0 / TAU)  # halved into x1, which decays one step before it is read
    source = RingBuffer(data=payload.T)
    dense = LearningDense(weights=np.zeros(shape), learning_rule=rule, graded_spike_cfg=GradedSpikeCfg.OVERWRITE,
                          num_message_bits=24)  # fmt: skip
    post = classes["ThirdFactors"](shape=(shape[0],), learning_rule=rule, y1=post_y1)
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(post.a_in)
    for port in ("bap", "y1", "y2", "y3"):
        getattr(post, f"s_out_{port}").connect(getattr(dense, f"s_in_{port}"))
    run_cfg = Loihi2SimCfg(select_tag="floating_pt", exception_proc_model_map={post: classes["floating_pt"]})
    weights = [np.zeros(shape)]
    try:
        for _ in range(len(pre)):
            dense.run(condition=RunSteps(num_steps=1), run_cfg=run_cfg)
            weights.append(np.array(dense.weights.get(), np.float64))
    finally:
        dense.stop()
    return np.stack(weights)


def write_on_lava(keys: np.ndarray, values: np.ndarray, gates: np.ndarray, slots: int) -> tuple[np.ndarray, ...]:
    """W_K (T+1, slots, D) and W_V (T+1, D, slots) after each token, written by Lava's learning engine."""
    k, v = np.asarray(keys, np.float64), np.asarray(values, np.float64)
    c = math.ceil(math.log2(max(float(np.max(np.abs(k))), float(np.max(np.abs(v))), 1.0) + 1.0))
    offset = 2.0**c
    one_hot = slot_gates(gates, slots)
    w_k = _run(k + offset, one_hot, (slots, k.shape[1]), f"u0 * x1 * y1 - 2^{c} * u0 * y1 - u0 * y1 * w")
    w_v = _run(one_hot, v + offset, (v.shape[1], slots), f"x0 * x1 * y1 - 2^{c} * x0 * x1 - x0 * x1 * w")
    return w_k, w_v


def fixed_trace_reads(payloads: list[int], x1_tau: int, seed: int) -> list[int]:
    """What Lava's fixed_pt engine reads as x1 for each graded payload: the weight change of ``dw = u0 * x1``."""
    from lava.magma.core.learning.constants import GradedSpikeCfg
    from lava.magma.core.learning.learning_rule import Loihi2FLearningRule
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import LearningDense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF

    rule = Loihi2FLearningRule(dw="u0 * x1", x1_impulse=0, x1_tau=x1_tau, t_epoch=1, rng_seed=seed)
    source = RingBuffer(data=np.array([payloads]))
    dense = LearningDense(weights=np.zeros((1, 1)), learning_rule=rule, graded_spike_cfg=GradedSpikeCfg.OVERWRITE,
                          num_message_bits=8)  # fmt: skip
    post = LIF(shape=(1,), du=0, dv=0, vth=1 << 16)  # never spikes: only the dependency u0 counts
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(post.a_in)
    post.s_out.connect(dense.s_in_bap)
    weights = [0]
    try:
        for _ in payloads:
            dense.run(condition=RunSteps(num_steps=1), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            weights.append(int(dense.weights.get()[0, 0]))
    finally:
        dense.stop()
    return np.diff(weights).tolist()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: tokens in, Lava's W_K and W_V after each token out (or the fixed_pt probe)."""
    p = argparse.ArgumentParser(prog="python -m firmware_bridges.loihi2.plastic", description=__doc__.split("\n")[0])
    p.add_argument("tokens", nargs="?", help=".npz with keys, values (T, D), gates (T,), slots")
    p.add_argument("output", nargs="?", help=".npz receiving w_k (T+1, slots, D) and w_v (T+1, D, slots)")
    p.add_argument("--fixed-probe", metavar="JSON", help='{"payloads": [...], "x1_tau": n, "seeds": [...]}: print'
                   " the x1 Lava's fixed_pt engine reads for each payload, per seed, as JSON")  # fmt: skip
    args = p.parse_args(argv)
    if args.fixed_probe:
        spec = json.loads(args.fixed_probe)
        payloads, tau = [int(x) for x in spec["payloads"]], int(spec["x1_tau"])
        print(json.dumps([fixed_trace_reads(payloads, tau, int(seed)) for seed in spec["seeds"]]))
        return 0
    if not (args.tokens and args.output):
        p.error("expected tokens.npz and out.npz (or --fixed-probe)")
    try:
        with np.load(args.tokens) as f:
            missing = sorted({"keys", "values", "gates", "slots"} - set(f.files))
            if missing:
                print(f"plastic: {args.tokens}: missing arrays {missing}", file=sys.stderr)
                return 2
            w_k, w_v = write_on_lava(f["keys"], f["values"], f["gates"], int(f["slots"]))
    except (OSError, ValueError) as exc:
        print(f"plastic: {exc}", file=sys.stderr)
        return 2
    np.savez(args.output, w_k=w_k, w_v=w_v)
    return 0


if __name__ == "__main__":
    sys.exit(main())
