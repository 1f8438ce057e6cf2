"""What quantising to Loihi's numerics costs, and what the quantiser chose: per layer and connection."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from edgesnn.errors import OptionError
from edgesnn.loihi import fixed
from edgesnn.loihi.quantize import cascade_method, network_for, quantize


@dataclasses.dataclass(frozen=True)
class LayerError:
    """Quantisation choices and error of one neuron layer and the connections into it.

    ``scale_exp`` is the layer's voltage scale (``v_int = 2**scale_exp * v``), ``vth`` its
    threshold mantissa; per connection, ``weight_exp``, ``num_weight_bits`` and
    ``sign_mode`` are what Lava is told, and ``weight_rms_rel`` is RMS(W_q - W) / RMS(W)
    (W with the input gain folded in, W_q what Lava's stored integers represent). The
    decay and threshold errors are absolute, in the units of the float model;
    ``spike_agreement`` is the fraction of (step, neuron) entries where Loihi numerics
    and float agree (None for readouts or without input), ``float_rate``/``loihi_rate``
    the spike rates per neuron and step.
    """

    node: str
    scale_exp: int
    weight_rms_rel: dict[str, float]
    weight_exp: dict[str, int]
    membrane_decay_error: float
    synaptic_decay_error: float
    threshold_error: float
    vth: int = 0
    num_weight_bits: dict[str, int] = dataclasses.field(default_factory=dict)
    sign_mode: dict[str, str | None] = dataclasses.field(default_factory=dict)
    spike_agreement: float | None = None
    float_rate: float | None = None
    loihi_rate: float | None = None
    readout_corr: float | None = None


@dataclasses.dataclass(frozen=True)
class QuantizationReport:
    """Per-layer choices and errors of :func:`edgesnn.loihi.quantize` for one model and step.

    ``model_method`` is the model's discretisation, ``discretisation`` the one the integers
    follow: Loihi's CUBA update is the cascade form, so ``"zoh"`` is quantised through
    ``"cascade"`` and ``"euler"`` through ``"cascade-euler"`` (same decays and DC gains).
    """

    dt_s: float
    layers: tuple[LayerError, ...]
    model_method: str = ""
    discretisation: str = ""

    def to_dict(self) -> dict:
        """Plain JSON-able form."""
        return {"dt_s": self.dt_s, "model_method": self.model_method, "discretisation": self.discretisation,
                "layers": [dataclasses.asdict(layer) for layer in self.layers]}  # fmt: skip


def _rms_rel(q: np.ndarray, w: np.ndarray) -> float:
    ref = float(np.sqrt(np.mean(np.square(w)))) if w.size else 0.0
    err = float(np.sqrt(np.mean(np.square(q - w)))) if w.size else 0.0
    return err / ref if ref > 0 else err


def quantization_report(
    model: Any, xs: np.ndarray | None = None, dt_s: float | None = None, **options: Any
) -> QuantizationReport:
    """Quantise ``model`` (``options`` as :func:`quantize`) and measure the error; with ``xs`` also compare spikes.

    ``xs`` is (T, batch, *shape). A model that carries its own integer network (``model.loihi``) is reported as it is.
    Spikes are compared after shifting Loihi's run by each layer's latency
    (:meth:`LoihiNetwork.latency`): Lava delivers every connection one step late.
    """
    if model.loihi is not None and options:
        raise OptionError(f"the model carries its own Loihi network; quantiser options {sorted(options)} do not apply",
                          path=next(iter(options)))  # fmt: skip
    net = network_for(model, dt_s) if model.loihi is not None else quantize(model, dt_s, **options)
    records: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if xs is not None:
        names = list(net.neurons)
        ref = model.session(dt=dt_s).run(xs, outputs=names)
        got = dataclasses.replace(model, loihi=net).session(dt=dt_s, numerics="loihi").run(xs, outputs=names)
        records = {n: (ref[n], got[n]) for n in names}
    lag = net.latency() if xs is not None else {}
    layers = []
    for name, layer in net.neurons.items():
        conns = net.incoming(name)
        w_err, w_exp, w_bits, w_mode = {}, {}, {}, {}
        for c in conns:
            q = np.ldexp(c.lava_weight.astype(np.float64), c.weight_exp + fixed.ACT_SHIFT - layer.scale_exp)
            w_err[c.node], w_exp[c.node] = _rms_rel(q, c.float_weight), c.weight_exp
            w_bits[c.node], w_mode[c.node] = c.num_weight_bits, c.resolved_sign_mode
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
            abs(a_s_q - (1 - layer.float_du)), th_err, vth=layer.vth, num_weight_bits=w_bits, sign_mode=w_mode,
            **extra,
        ))  # fmt: skip
    return QuantizationReport(net.dt_s, tuple(layers), model.method, cascade_method(model.method))
