"""What quantising to Loihi's numerics costs: weight, decay and threshold errors, and spike agreement."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from edgesnn.loihi import fixed
from edgesnn.loihi.quantize import quantize


@dataclasses.dataclass(frozen=True)
class LayerError:
    """Quantisation error of one neuron layer and the connections into it.

    ``weight_rms_rel`` maps each connection to RMS(W_q - W) / RMS(W) (W with the input
    gain folded in, W_q what the integers represent); the decay and threshold errors
    are absolute, in the units of the float model; ``spike_agreement`` is the fraction
    of (step, neuron) entries where Loihi numerics and float agree (None for readouts
    or without input), ``float_rate``/``loihi_rate`` the spike rates per neuron and step.
    """

    node: str
    scale_exp: int
    weight_rms_rel: dict[str, float]
    weight_exp: dict[str, int]
    membrane_decay_error: float
    synaptic_decay_error: float
    threshold_error: float
    spike_agreement: float | None = None
    float_rate: float | None = None
    loihi_rate: float | None = None
    readout_corr: float | None = None


@dataclasses.dataclass(frozen=True)
class QuantizationReport:
    """Per-layer errors of :func:`edgesnn.loihi.quantize` for one model and step."""

    dt_s: float
    layers: tuple[LayerError, ...]

    def to_dict(self) -> dict:
        """Plain JSON-able form."""
        return {"dt_s": self.dt_s, "layers": [dataclasses.asdict(layer) for layer in self.layers]}


def _rms_rel(q: np.ndarray, w: np.ndarray) -> float:
    ref = float(np.sqrt(np.mean(np.square(w)))) if w.size else 0.0
    err = float(np.sqrt(np.mean(np.square(q - w)))) if w.size else 0.0
    return err / ref if ref > 0 else err


def quantization_report(model, xs: np.ndarray | None = None, dt_s: float | None = None) -> QuantizationReport:  # noqa: ANN001
    """Quantise ``model`` and measure the error; with input ``xs`` (T, batch, *shape) also compare spikes.

    Spikes are compared after shifting Loihi's run by each layer's latency
    (:meth:`LoihiNetwork.latency`): Lava delivers every connection one step late.
    """
    net = quantize(model, dt_s)
    records: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if xs is not None:
        names = list(net.neurons)
        ref = model.session(dt=dt_s).run(xs, outputs=names)
        got = model.session(dt=dt_s, numerics="loihi").run(xs, outputs=names)
        records = {n: (ref[n], got[n]) for n in names}
    lag = net.latency() if xs is not None else {}
    layers = []
    for name, layer in net.neurons.items():
        conns = net.incoming(name)
        w_err, w_exp = {}, {}
        for c in conns:
            q = np.ldexp(c.weight.astype(np.float64), c.weight_exp + fixed.ACT_SHIFT - layer.scale_exp)
            w_err[c.node], w_exp[c.node] = _rms_rel(q, c.float_weight), c.weight_exp
        a_v_q = (fixed.DECAY_UNITY - layer.dv) / fixed.DECAY_UNITY
        a_s_q = (fixed.DECAY_UNITY - layer.du - fixed.DS_OFFSET) / fixed.DECAY_UNITY
        th_err = (
            abs(math.ldexp(layer.vth, fixed.VTH_SHIFT - layer.scale_exp) - layer.float_vth) if layer.spiking else 0.0
        )
        extra: dict = {}
        if name in records:
            ref, got = records[name]
            k = lag.get(name, 0)
            ref, got = ref[: len(ref) - k] if k else ref, got[k:]
            if layer.spiking:
                extra = {"spike_agreement": float(np.mean(ref == got)), "float_rate": float(np.mean(ref)),
                         "loihi_rate": float(np.mean(got))}  # fmt: skip
            elif ref.size and np.std(ref) > 0 and np.std(got) > 0:
                extra = {"readout_corr": float(np.corrcoef(ref.reshape(-1), got.reshape(-1))[0, 1])}
        layers.append(LayerError(
            name, layer.scale_exp, w_err, w_exp, abs(a_v_q - (1 - layer.float_dv)),
            abs(a_s_q - (1 - layer.float_du)), th_err, **extra,
        ))  # fmt: skip
    return QuantizationReport(net.dt_s, tuple(layers))
