"""Run a bundle on Lava's Loihi 2 simulator for a whole input sequence (Lava called directly).

``python -m firmware_bridges.loihi2.simulate model.esnn inputs.npz out.npz --tag fixed_pt``

``inputs.npz`` holds one array (T, *shape) per model input, by input name (one stream);
``out.npz`` receives every neuron layer (T, *shape): spikes of spiking layers, the
voltage of readouts in model units, and ``__steps_per_s`` (Lava's simulation rate
after the first step, which compiles and starts it).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from edgesnn.bundle import read_bundle
from edgesnn.errors import EdgeSNNError, InputError
from edgesnn.loihi import quantize
from firmware_bridges.loihi2.compile import TAGS
from firmware_bridges.loihi2.run import run_sequence


def simulate(bundle: str, inputs: str, tag: str) -> dict[str, np.ndarray]:
    """Read a bundle and an input file; return every layer's trace and the simulation rate."""
    model = read_bundle(bundle)
    with np.load(inputs) as f:
        xs = {name: f[name] for name in f.files}
    missing = [n for n in model.graph.inputs if n not in xs]
    if missing:
        raise InputError(f"no array for model inputs {missing}; the file has {sorted(xs)}", path=inputs)
    net = quantize(model)
    timing: dict = {}
    out = run_sequence(net, model.graph, {n: xs[n] for n in model.graph.inputs}, tag, timing)
    if "steps_per_s" in timing:
        out["__steps_per_s"] = np.array(timing["steps_per_s"])
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(prog="python -m firmware_bridges.loihi2.simulate", description=__doc__.split("\n")[0])
    p.add_argument("bundle")
    p.add_argument("inputs")
    p.add_argument("output")
    p.add_argument("--tag", choices=TAGS, default="fixed_pt")
    args = p.parse_args(argv)
    try:
        out = simulate(args.bundle, args.inputs, args.tag)
    except (EdgeSNNError, OSError) as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    np.savez(args.output, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
