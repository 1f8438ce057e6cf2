"""Run a bundle (or a lava-dl netx file) on Lava's Loihi 2 simulator for a whole input sequence (Lava called directly).

``python -m firmware_bridges.loihi2.simulate model.esnn inputs.npz out.npz --tag fixed_pt [--record-state]``

The bundle's own integer network runs as it is (``Model.loihi``); a bundle without one
is quantised (:func:`edgesnn.loihi.quantize`). With ``--netx`` the model is a netx file,
whose integers go to Lava with netx's meaning (:mod:`firmware_bridges.loihi2.netx_lava`).
``inputs.npz`` holds one array (T, *shape) per model input, by input name (one stream);
``out.npz`` receives every neuron layer (T, *shape): spikes of spiking layers, the
voltage of readouts in model units; with ``--record-state`` also ``<layer>/u`` and
``<layer>/v`` as Lava holds them after each step; and ``__steps_per_s`` (Lava's
simulation rate after the first step, which compiles and starts it).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from edgesnn.bundle import read_bundle
from edgesnn.errors import EdgeSNNError, InputError
from edgesnn.loihi import network_for, to_model
from firmware_bridges.loihi2.compile import TAGS
from firmware_bridges.loihi2.run import run_sequence


def simulate(
    model_path: str, inputs: str, tag: str, *, record_state: bool = False, netx: bool = False, dt_s: float = 1e-3
) -> dict[str, np.ndarray]:
    """Read a bundle (or netx file) and an input file; return every layer's trace and the simulation rate."""
    if netx:
        from firmware_bridges.loihi2.netx_lava import netx_network

        net = netx_network(model_path, dt_s)
        graph = to_model(net).graph
    else:
        model = read_bundle(model_path)
        net, graph = network_for(model), model.graph
    with np.load(inputs) as f:
        xs = {name: f[name] for name in f.files}
    missing = [n for n in net.inputs if n not in xs]
    if missing:
        raise InputError(f"no array for model inputs {missing}; the file has {sorted(xs)}", path=inputs)
    timing: dict = {}
    out = run_sequence(net, graph, {n: xs[n] for n in net.inputs}, tag, timing, record_state=record_state)
    if "steps_per_s" in timing:
        out["__steps_per_s"] = np.array(timing["steps_per_s"])
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(prog="python -m firmware_bridges.loihi2.simulate", description=__doc__.split("\n")[0])
    p.add_argument("model", help="a .esnn bundle, or a netx file with --netx")
    p.add_argument("inputs")
    p.add_argument("output")
    p.add_argument("--tag", choices=TAGS, default="fixed_pt")
    p.add_argument("--record-state", action="store_true", help="also record every layer's u and v")
    p.add_argument("--netx", action="store_true", help="the model is a lava-dl netx file")
    p.add_argument("--dt", type=float, default=1e-3, help="step of a netx file's network in seconds")
    args = p.parse_args(argv)
    try:
        out = simulate(args.model, args.inputs, args.tag, record_state=args.record_state, netx=args.netx,
                       dt_s=args.dt)  # fmt: skip
    except (EdgeSNNError, OSError) as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    np.savez(args.output, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
