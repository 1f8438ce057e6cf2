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
    net: LoihiNetwork, graph: Graph, xs: dict[str, np.ndarray], tag: str, timing: dict | None = None
) -> dict[str, np.ndarray]:
    """Run ``xs`` ({input: (T, *shape)}, one stream) through Lava; returns {layer: (T, *shape)} float32.

    Spiking layers give 0/1 spikes, readouts their voltage in model units
    (``v_int * 2**-scale_exp`` under fixed_pt). ``timing``, when given, receives
    ``steps_per_s``: the rate of steps 2..T, after the first step compiled and started Lava.
    """
    from lava.magma.core.run_conditions import RunSteps

    lava = build(net, graph, tag, sequence=xs)
    steps = len(next(iter(xs.values())))
    proc = lava.any_process()
    proc.run(condition=RunSteps(num_steps=1), run_cfg=run_config(tag))
    try:
        if steps > 1:
            t0 = time.perf_counter()
            proc.run(condition=RunSteps(num_steps=steps - 1), run_cfg=run_config(tag))
            if timing is not None:
                timing["steps_per_s"] = (steps - 1) / (time.perf_counter() - t0)
        out: dict[str, np.ndarray] = {}
        for name, sink in lava.sinks.items():
            data = sink.data.get()  # (*lava_shape, T)
            shape = net.neurons[name].shape
            out[name] = np.stack([from_lava(data[..., t], shape) for t in range(steps)]).astype(np.float32)
        for name, mon in lava.monitors.items():
            layer = net.neurons[name]
            v = np.asarray(mon.get_data()[layer.node]["v"])  # (T, *lava_shape)
            scale = 2.0**-layer.scale_exp if tag == "fixed_pt" else 1.0
            out[name] = np.stack([from_lava(v[t], layer.shape) for t in range(steps)]).astype(np.float64) * scale
            out[name] = out[name].astype(np.float32)
    finally:
        proc.stop()
    return out
