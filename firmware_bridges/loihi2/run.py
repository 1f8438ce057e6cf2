"""Run a compiled network on Lava's simulator for a whole sequence (Lava called directly, no gRPC)."""

from __future__ import annotations

import time

import numpy as np

from edgesnn.graph import Graph
from edgesnn.loihi.network import LoihiNetwork
from firmware_bridges.loihi2.compile import build
from firmware_bridges.loihi2.layout import from_lava


def run_config(tag: str):  # noqa: ANN201 - a Lava RunConfig
    """Lava's Loihi 2 simulation config choosing the ``fixed_pt`` or ``floating_pt`` process models.

    On a machine with Intel's lava-loihi and a Loihi 2 system, ``Loihi2HwCfg()``
    (``lava.magma.core.run_configs``) runs the same processes on the chip (see README.md).
    """
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
    from lava.proc.io.injector import Injector, PyLoihiInjectorModel

    # The streaming I/O processes have untagged models (synchronous ones named here).
    io_models = {Injector: PyLoihiInjectorModel, Extractor: PyLoihiExtractorModel}
    return Loihi2SimCfg(select_tag=tag, exception_proc_model_map=io_models)


def run_sequence(
    net: LoihiNetwork,
    graph: Graph,
    xs: dict[str, np.ndarray],
    tag: str,
    timing: dict | None = None,
    *,
    record_state: bool = False,
) -> dict[str, np.ndarray]:
    """Run ``xs`` ({input: (T, *shape)}, one stream) through Lava; returns {layer: (T, *shape)} float32.

    Spiking layers give 0/1 spikes, readouts their voltage in model units
    (``v_int * 2**-scale_exp`` under fixed_pt). With ``record_state`` every layer's
    ``"<layer>/u"`` and ``"<layer>/v"`` come too, as Lava holds them after each step (int64
    under fixed_pt, float64 under floating_pt). ``timing``, when given, receives
    ``steps_per_s``: the rate of steps 2..T, after the first step compiled and started Lava.
    """
    from lava.magma.core.run_conditions import RunSteps

    lava = build(net, graph, tag, sequence=xs, record_state=record_state)
    steps = len(next(iter(xs.values())))
    proc = lava.any_process()
    out: dict[str, np.ndarray] = {}
    dtype = np.int64 if tag == "fixed_pt" else np.float64
    # Lava 0.10's Monitor records no Var of more than one dimension, so recording reads
    # every layer's u and v with Var.get after each step.
    states: dict[str, list[np.ndarray]] = {f"{n}/{v}": [] for n in net.neurons for v in ("u", "v")}

    def read_states() -> None:
        for key in states:
            name, var = key.split("/")
            value = np.asarray(getattr(lava.neurons[name], var).get())
            states[key].append(from_lava(value, net.neurons[name].shape).astype(dtype))

    proc.run(condition=RunSteps(num_steps=1), run_cfg=run_config(tag))
    try:
        if record_state:
            read_states()
            for _ in range(steps - 1):
                proc.run(condition=RunSteps(num_steps=1), run_cfg=run_config(tag))
                read_states()
            out.update({key: np.stack(values) for key, values in states.items()})
        elif steps > 1:
            t0 = time.perf_counter()
            proc.run(condition=RunSteps(num_steps=steps - 1), run_cfg=run_config(tag))
            if timing is not None:
                timing["steps_per_s"] = (steps - 1) / (time.perf_counter() - t0)
        for name, sink in lava.sinks.items():
            data = sink.data.get()  # (*lava_shape, T)
            shape = net.neurons[name].shape
            out[name] = np.stack([from_lava(data[..., t], shape) for t in range(steps)]).astype(np.float32)
        for name, layer in net.neurons.items():
            if layer.spiking:
                continue
            scale = 2.0**-layer.scale_exp if tag == "fixed_pt" else 1.0
            if record_state:
                v = out[f"{name}/v"].astype(np.float64)
            else:
                v = np.asarray(lava.monitors[name].get_data()[layer.node]["v"])  # (T, *lava_shape)
                v = np.stack([from_lava(v[t], layer.shape) for t in range(steps)]).astype(np.float64)
            out[name] = (v * scale).astype(np.float32)
    finally:
        proc.stop()
    return out
