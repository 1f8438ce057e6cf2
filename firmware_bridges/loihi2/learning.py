r"""The runtime's three-factor rule (edgesnn.learn.rule) on Lava's learning engine.

Lava form of one example's learning (``passes == 1``, whole epochs):

- **Synapses**: a ``LearningDense`` (C outputs x F features) holds the class weights and
  runs Loihi's learning engine every ``t_epoch`` steps (``time_step % t_epoch == 0``),
  with ``t_epoch`` the config's. The rule is the sum of products

  .. math:: dw = 2^{s}\,u_0\,x_1\,y_2 \;-\; 2^{s}\,u_0\,x_1\,y_3

  with the epoch dependency :math:`u_0` (once per epoch), the presynaptic trace
  :math:`x_1` read at the epoch's end, and the third factor carried by two
  postsynaptic traces: :math:`y_2` its positive part, :math:`y_3` its negative part
  (Loihi's traces are unsigned). floating_pt: :math:`s = 0` and :math:`x_1` is the
  runtime's trace exactly (impulse :math:`1-\alpha`, decay :math:`e^{-1/\tau}` per step,
  :math:`\tau` = ``trace_tau_s / dt``). fixed_pt: see :class:`FixedScales`.
- **Third factor**: :class:`ErrorReadout`, the post-synaptic process of the
  ``Loihi3FLearningRule`` (it sets :math:`y_1..y_3` itself). It integrates the
  synapses' output into the leaky readout :math:`u`, averages it over the epoch and
  at the epoch's last step sends ``rates * gate(target - mean, threshold)``
  (the runtime's :func:`edgesnn.learn.rule.gate` and
  :func:`~edgesnn.learn.rule.next_threshold`), 0 on other steps.

Lava's timing, accounted for:

1. **Synaptic delay.** A ``Dense`` delivers :math:`W s_t` one step late, so at the
   epoch boundary (Lava step :math:`kT`) the readout holds :math:`u_{kT-1}`; the
   epoch's last score :math:`u_{kT}` arrives after the learning engine has run. The
   process completes the mean with the leak-only value :math:`\beta u_{kT-1}`: the
   third factor is the runtime's exactly when no feature spikes on an epoch's last
   step, and otherwise misses :math:`(1-\beta)\,W_k s_{kT} / T` in the mean
   (logged when it happens). The readout's own state stays exact (the late
   input is integrated on the next step, which belongs to the next epoch).
   Presynaptic spikes reach the trace without delay: :math:`x_1` at step :math:`kT`
   is the runtime's :math:`x_{\mathrm{end}(k)}`.
2. **One spike time per epoch.** Loihi's engine keeps one spike time per input per
   epoch; a second spike in the same epoch adds its impulse as if at the epoch's
   start. :math:`x_1` equals the runtime's trace when every feature spikes at most
   once per epoch (:func:`single_spike_epochs`).
3. **Third-factor traces decay.** ``Loihi3FLearningRule`` gives :math:`y_1..y_3`
   a time constant of 65535 steps and Lava's models decay the value the process
   sent for ``t_epoch`` steps before the update reads it; the process sends it
   multiplied by :math:`e^{T/65535}` (floating_pt: exact to rounding; fixed_pt:
   rounded to the 7-bit trace, see :class:`FixedScales`).

Run it with ``python -m firmware_bridges.loihi2.learning example.npz out.npz --tag
floating_pt``; ``example.npz`` holds ``weights`` (C, F), ``spikes`` (T, F), ``row``,
``dt_s`` and ``config`` (the JSON of a :class:`~edgesnn.learn.config.LearningConfig`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
from typing import Any

import numpy as np

from edgesnn.errors import EdgeSNNError, InputError, OptionError
from edgesnn.learn.config import LearningConfig
from edgesnn.learn.rule import coefficients, gate, next_threshold, targets_and_rates
from firmware_bridges.loihi2.compile import TAGS

log = logging.getLogger("edgesnn.loihi2.learning")

#: Time constant Loihi3FLearningRule gives the third-factor traces (steps).
Y_TAU = float(np.iinfo(np.uint16).max)
#: Loihi's trace width (unsigned) and the bits Lava's engine drops from a 2-trace product (7 + 7 + 4 - 15).
TRACE_MAX = (1 << 7) - 1
PRODUCT_SHIFT = 3
#: Lava's plastic weights (8-bit, mixed sign): integers in [-256, 254]; initial weights are truncated to even.
WEIGHT_MIN, WEIGHT_MAX = -256, 254


@dataclasses.dataclass(frozen=True)
class FixedScales:
    r"""Integer scales of the fixed_pt mapping (powers of two).

    ``weight = w_int * 2**weight_exp`` (plastic weights, 9-bit signed);
    ``x1 ~ x * 2**x_exp`` (7-bit trace; Lava adds the impulse ``(1-alpha) * 2**x_exp``
    and decays with stochastic rounding, and saturates at 127);
    ``y = round(third * 2**y_exp)`` clipped to 7 bits; the rule's scale
    ``2**rule_exp`` (Lava allows -7..9) makes one epoch's change
    ``floor(x1 * y / 8) * 2**rule_exp`` weight units, stochastically rounded to an
    integer: :math:`\Delta w = \text{third}\cdot x` when
    ``rule_exp = PRODUCT_SHIFT - x_exp - y_exp - weight_exp``.
    """

    weight_exp: int
    x_exp: int
    y_exp: int

    @property
    def rule_exp(self) -> int:
        """Exponent of the rule's scaling constant."""
        return PRODUCT_SHIFT - self.x_exp - self.y_exp - self.weight_exp

    @classmethod
    def choose(cls, weight_max: float, impulse: float, third_max: float) -> FixedScales:
        """Scales for weights up to ``weight_max``, a trace impulse ``1-alpha`` and third factors up to ``third_max``.

        One impulse gets half the trace's range (the rest holds what earlier spikes left).
        """
        if not (weight_max > 0 and third_max > 0 and 0 < impulse < 1):
            raise OptionError(f"expected positive ranges, got {weight_max!r}, {impulse!r}, {third_max!r}",
                              path="scales")  # fmt: skip
        weight_exp = math.ceil(math.log2(weight_max / WEIGHT_MAX))
        x_exp = math.floor(math.log2((TRACE_MAX + 1) / 2 / impulse))
        y_exp = math.floor(math.log2(TRACE_MAX / third_max))
        # The rule's exponent must lie in -7..9: give up trace and third-factor bits rather than exceed it.
        while PRODUCT_SHIFT - x_exp - y_exp - weight_exp < -7:
            if x_exp >= y_exp:
                x_exp -= 1
            else:
                y_exp -= 1
        if PRODUCT_SHIFT - x_exp - y_exp - weight_exp > 9:
            raise OptionError(
                f"weights up to {weight_max:g} with third factors up to {third_max:g} need a rule scale"
                f" above Lava's 2**9",
                path="scales",
            )
        return cls(weight_exp, x_exp, y_exp)


def third_factor_range(config: LearningConfig, weights: np.ndarray) -> float:
    """A bound on |third factor| for scaling: sign mode 1, value mode the target span plus the largest score."""
    rate = max(config.learning_rate, config.learning_rate_other)
    if config.error_mode == "sign":
        return rate
    span = config.target_on - config.target_off
    score = float(np.max(np.sum(np.abs(weights), axis=1))) if np.size(weights) else 0.0
    return rate * (span + max(score, span))


def single_spike_epochs(spikes: np.ndarray, t_epoch: int) -> bool:
    """Whether every feature spikes at most once per epoch (Loihi's trace is then exact)."""
    s = np.asarray(spikes)
    whole = len(s) // t_epoch * t_epoch
    counts = s[:whole].reshape(-1, t_epoch, s.shape[1]).sum(axis=1)
    return bool(np.all(counts <= 1))


# -- Lava processes -----------------------------------------------------------------
def _lava_classes() -> dict[str, type]:
    """The ErrorReadout process and its models (Lava is imported only in the bridge venv)."""
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.neuron import LearningNeuronModelFixed, LearningNeuronModelFloat
    from lava.magma.core.model.py.ports import PyInPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.process.neuron import LearningNeuronProcess
    from lava.magma.core.process.ports.ports import InPort
    from lava.magma.core.process.process import AbstractProcess
    from lava.magma.core.process.variable import Var
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

    class ErrorReadout(LearningNeuronProcess, AbstractProcess):
        """Leaky readout of the plastic synapses plus the gated error sent as third factor (y2 > 0, y3 < 0)."""

        def __init__(self, *, shape: tuple[int], learning_rule: Any, threshold: float, **params: Any) -> None:
            super().__init__(shape=shape, learning_rule=learning_rule, **params)
            self.a_in = InPort(shape=shape)
            self.u = Var(shape=shape, init=0.0)  # readout score u_{t-1} at Lava step t
            self.acc = Var(shape=shape, init=0.0)  # sum of this epoch's scores so far
            self.third = Var(shape=shape, init=0.0)  # third factor sent at the last boundary
            self.threshold = Var(shape=(1,), init=threshold)

    class _Model:
        """Readout, epoch mean and gate; subclasses pick Lava's port types and the y encoding."""

        def _third_factor(self, a: np.ndarray) -> np.ndarray:
            p = self.proc_params
            t_epoch, beta = p["t_epoch"], p["beta"]
            self.u = beta * self.u + (1.0 - beta) * a  # u_{t}, t = time_step - 1 (the synapse's delay)
            if (self.time_step - 1) % t_epoch != 0:  # u_{kT} closes epoch k but arrives in epoch k+1
                self.acc = self.acc + self.u
            if self.time_step % t_epoch != 0:
                return np.zeros_like(self.u)
            mean = (self.acc + beta * self.u) / t_epoch  # u_{kT} as the leak alone makes it
            threshold = float(self.threshold[0])
            third = p["rates"] * gate(p["target"] - mean, threshold, p["error_mode"])
            self.threshold = np.array([next_threshold(threshold, bool(np.any(third)), p["config"])])
            self.acc = np.zeros_like(self.acc)
            self.third = third
            return third

        def run_spk(self) -> None:
            third = self._third_factor(self.a_in.recv() * self.proc_params["a_scale"])
            # Lava decays y for t_epoch steps before the engine reads it (Loihi3FLearningRule's tau).
            third = third * math.exp(self.proc_params["t_epoch"] / Y_TAU)
            self.s_out_bap.send(np.zeros(third.shape, bool))
            self.s_out_y1.send(self._encode(np.zeros_like(third)))
            self.s_out_y2.send(self._encode(np.maximum(third, 0.0)))
            self.s_out_y3.send(self._encode(np.maximum(-third, 0.0)))

    @implements(proc=ErrorReadout, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("floating_pt")
    class PyErrorReadoutFloat(_Model, LearningNeuronModelFloat):
        a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
        u: np.ndarray = LavaPyType(np.ndarray, float)
        acc: np.ndarray = LavaPyType(np.ndarray, float)
        third: np.ndarray = LavaPyType(np.ndarray, float)
        threshold: np.ndarray = LavaPyType(np.ndarray, float)

        def _encode(self, value: np.ndarray) -> np.ndarray:
            return value

    @implements(proc=ErrorReadout, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("fixed_pt")
    class PyErrorReadoutFixed(_Model, LearningNeuronModelFixed):
        # Integer synaptic input (the plastic Dense's 16-bit activations); the readout and gate run in
        # float here (on the chip: a neuron microcode program), the third factor leaves as a 7-bit trace.
        a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=16)
        u: np.ndarray = LavaPyType(np.ndarray, float)
        acc: np.ndarray = LavaPyType(np.ndarray, float)
        third: np.ndarray = LavaPyType(np.ndarray, float)
        threshold: np.ndarray = LavaPyType(np.ndarray, float)

        def _encode(self, value: np.ndarray) -> np.ndarray:
            y = np.rint(value * 2.0 ** self.proc_params["y_exp"])
            return np.clip(y, 0, TRACE_MAX).astype(np.int32)

    return {"ErrorReadout": ErrorReadout, "floating_pt": PyErrorReadoutFloat, "fixed_pt": PyErrorReadoutFixed}


def learning_rule(config: LearningConfig, dt_s: float, tag: str, scales: FixedScales | None, seed: int) -> Any:
    """The ``Loihi3FLearningRule``: dw = 2^s u0 x1 (y2 - y3), x1 the runtime's trace, t_epoch the config's."""
    from lava.magma.core.learning.learning_rule import Loihi3FLearningRule

    alpha = coefficients(config, dt_s).alpha
    if tag == "fixed_pt":
        scale, impulse = f"2^{scales.rule_exp} * ", (1.0 - alpha) * 2**scales.x_exp
    else:
        scale, impulse = "", 1.0 - alpha
    return Loihi3FLearningRule(
        dw=f"{scale}u0 * x1 * y2 - {scale}u0 * x1 * y3",
        x1_impulse=impulse,
        x1_tau=config.trace_tau_s / dt_s,
        t_epoch=config.t_epoch,
        rng_seed=seed,
    )


@dataclasses.dataclass(frozen=True)
class LavaLearning:
    """What Lava computed: weights before and after every epoch (E+1, C, F) and the third factors (E, C)."""

    weights: np.ndarray
    third: np.ndarray
    scales: FixedScales | None


def _check(weights: np.ndarray, spikes: np.ndarray, row: int, config: LearningConfig, tag: str) -> None:
    if tag not in TAGS:
        raise OptionError(f"expected one of {', '.join(TAGS)}, got {tag!r}", path="tag")
    if weights.ndim != 2 or spikes.ndim != 2 or spikes.shape[1] != weights.shape[1]:
        raise InputError(f"expected weights (C, F) and spikes (T, F), got {weights.shape} and {spikes.shape}",
                         path="spikes")  # fmt: skip
    if not 0 <= row < weights.shape[0]:
        raise InputError(f"expected a row in 0..{weights.shape[0] - 1}, got {row}", path="row")
    if config.passes != 1:
        raise OptionError("Lava runs one pass (replaying from rest needs a trace reset)", path="learning/passes")
    if config.bias != "none":
        raise OptionError(f"Lava's learning engine cannot run bias {config.bias!r} (a bias that follows the weights"
                          " and updates toward x - w/init_scale); use bias 'none'", path="learning/bias")  # fmt: skip
    if config.step != "constant":
        raise OptionError(f"this bridge does not run step {config.step!r} (per-epoch targets from the example's"
                          " own imprint); use step 'constant'", path="learning/step")  # fmt: skip
    if len(spikes) == 0 or len(spikes) % config.t_epoch:
        raise InputError(f"expected whole epochs of {config.t_epoch} steps, got {len(spikes)} steps", path="spikes")


def learn_on_lava(
    weights: np.ndarray,
    spikes: np.ndarray,
    row: int,
    config: LearningConfig,
    dt_s: float,
    tag: str,
    *,
    seed: int = 1,
    scales: FixedScales | None = None,
) -> LavaLearning:
    """Teach class ``row`` one example on Lava's learning engine: feature spikes (T, F), weights (C, F).

    fixed_pt starts from ``weights`` rounded to Lava's even integers (``scales``, by
    default :meth:`FixedScales.choose` with twice the largest weight as headroom);
    ``LavaLearning.weights[0]`` are the weights Lava started from, in model units.
    """
    w = np.asarray(weights, np.float64)
    s = np.asarray(spikes, np.float64)
    _check(w, s, row, config, tag)  # before importing Lava: a refused configuration needs no Lava to say so
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import LearningDense
    from lava.proc.io.source import RingBuffer

    if not single_spike_epochs(s, config.t_epoch):
        log.info("a feature spikes twice in an epoch: Loihi's trace counts the earlier spikes at the epoch's start")
    if np.any(s[config.t_epoch - 1 :: config.t_epoch]):
        log.info("features spike on an epoch's last step: the delayed synapse keeps them out of that epoch's error")
    classes = _lava_classes()
    coeffs = coefficients(config, dt_s)
    beta = coeffs.beta
    target, rates = targets_and_rates(w.shape[0], row, config)
    params: dict[str, Any] = dict(t_epoch=config.t_epoch, beta=beta, target=target, rates=rates,
                                  error_mode=config.error_mode, config=config, a_scale=1.0, y_exp=0)  # fmt: skip
    if tag == "fixed_pt":
        if scales is None:
            weight_max = 2.0 * max(float(np.max(np.abs(w))), 1e-3)  # headroom for learning
            scales = FixedScales.choose(weight_max, 1.0 - coeffs.alpha, third_factor_range(config, w))
        w_int = np.clip(np.rint(w * 2.0**-scales.weight_exp / 2) * 2, WEIGHT_MIN, WEIGHT_MAX).astype(np.int32)
        params.update(a_scale=2.0**scales.weight_exp, y_exp=scales.y_exp)
        to_model = lambda m: np.asarray(m, np.float64) * 2.0**scales.weight_exp  # noqa: E731
        dense_init, data = w_int, s.T.astype(np.int32)
    else:
        scales = None
        to_model = lambda m: np.asarray(m, np.float64)  # noqa: E731
        dense_init, data = w, s.T
    rule = learning_rule(config, dt_s, tag, scales, seed)
    source = RingBuffer(data=data)
    dense = LearningDense(weights=dense_init, learning_rule=rule, name="plastic")
    readout = classes["ErrorReadout"](shape=(w.shape[0],), learning_rule=rule, threshold=config.threshold, **params)
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(readout.a_in)
    for port in ("bap", "y1", "y2", "y3"):
        getattr(readout, f"s_out_{port}").connect(getattr(dense, f"s_in_{port}"))
    # Keyed by the instance: Lava's compiler then takes the model as given instead of importing every
    # module beside learning.py in search of models (which would start the bridge's __main__).
    run_cfg = Loihi2SimCfg(select_tag=tag, exception_proc_model_map={readout: classes[tag]})
    snapshots, thirds = [to_model(dense.weights.get())], []
    try:
        for _ in range(len(s) // config.t_epoch):
            dense.run(condition=RunSteps(num_steps=config.t_epoch), run_cfg=run_cfg)
            snapshots.append(to_model(dense.weights.get()))
            thirds.append(np.asarray(readout.third.get(), np.float64))
    finally:
        dense.stop()
    return LavaLearning(np.stack(snapshots), np.stack(thirds), scales)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: one example in, Lava's per-epoch weights out."""
    p = argparse.ArgumentParser(prog="python -m firmware_bridges.loihi2.learning", description=__doc__.split("\n")[0])
    p.add_argument("example", help=".npz with weights, spikes, row, dt_s, config (JSON)")
    p.add_argument("output", help=".npz receiving weights (E+1, C, F), third (E, C) and, fixed_pt, the scales")
    p.add_argument("--tag", choices=TAGS, default="floating_pt")
    p.add_argument("--seed", type=int, default=1, help="seed of Lava's stochastic rounding (fixed_pt)")
    args = p.parse_args(argv)
    try:
        with np.load(args.example) as f:
            missing = sorted({"weights", "spikes", "row", "dt_s", "config"} - set(f.files))
            if missing:
                raise InputError(f"missing arrays {missing}", path=args.example)
            config = LearningConfig.from_dict(json.loads(str(f["config"])))
            got = learn_on_lava(f["weights"], f["spikes"], int(f["row"]), config, float(f["dt_s"]), args.tag,
                                seed=args.seed)  # fmt: skip
    except (EdgeSNNError, OSError, ValueError) as exc:
        print(f"learning: {exc}", file=sys.stderr)
        return 2
    extra = dataclasses.asdict(got.scales) if got.scales else {}
    np.savez(args.output, weights=got.weights, third=got.third, **extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
