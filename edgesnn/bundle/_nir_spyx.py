"""What Spyx 1.0's NIR importer (``spyx.nir.from_nir``) would read differently from edgesnn's file.

Spyx rebuilds a ``Sequential`` by walking one edge out of each node from ``input``; it keeps
weights, thresholds and taus (decays ``1 - dt/tau`` at the ``dt`` given to ``from_nir``, default
1) and ignores the rest: ``r``, ``w_in``, ``v_leak`` and the reset fields. Its IF, LIF and CuBaLIF
add the input at unit gain, fire on ``V > threshold``, subtract the threshold (IF and LIF after
the decay, CuBaLIF before it) and emit the spikes of the previous state: one step late.
tests/test_nir_spyx.py shows each of these on Spyx's own runs of edgesnn files.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgesnn.graph import IF, LI, LIF, CubaLIF, Delay
from edgesnn.graph._node import Node
from edgesnn.neurons.discretise import SECTION_RULE

IMPORTER = "Spyx 1.0 from_nir"
#: NIR node types Spyx 1.0 builds a module for (spyx/nir.py, _nir_node_to_spyx_module); it skips
#: the others, and reads LI only as the membrane of a PSU_LIF followed by a Threshold.
_BUILT = {"Input", "Output", "Affine", "Linear", "Conv2d", "SumPool2d", "Flatten", "IF", "LIF", "CubaLIF"}
_SKIPPED_QUIETLY = {"Delay"}  # Spyx's own spikes are already one step late


def spyx_losses(
    dt_s: float, method: str, nodes: dict[str, Node], nir_types: dict[str, str], edges: list[tuple[str, str]]
) -> dict[str, list[str]]:
    """Spyx's misreadings of the file edgesnn writes for these nodes and edges (empty: none)."""
    out: list[str] = []
    if dt_s != 1.0:
        out.append(f"needs from_nir(..., dt={dt_s:g}) (default 1)")
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    folded = _folded_loops(nodes, edges)
    for a, b in edges:
        if b in succ and a in succ[b] and (a, b) not in folded and (b, a) not in folded and a < b:
            out.append(f"loop {a} <-> {b} not folded (Spyx folds a LIF or CubaLIF with one Linear/Affine): "
                       "its edge walk does not return")  # fmt: skip
    types = set(nir_types.values())
    skipped = sorted(types - _BUILT - _SKIPPED_QUIETLY - {"LI", "Threshold"})
    if skipped:
        out.append(f"no module for {', '.join(skipped)} (left out)")
    if "Flatten" in types and types & {"Conv2d", "SumPool2d"}:
        out.append("Flatten of feature maps read channels-last (H, W, C), not NIR's (C, H, W)")
    for name, node in nodes.items():
        chain = [b for b in succ[name] if (name, b) not in folded]
        if len(chain) > 1:
            out.append(f"{name}: only one of its {len(chain)} outgoing edges is followed")
        out += [f"{name}: {text}" for text in _reads(node, dt_s, method, [nodes[b] for b in chain])]
    return {IMPORTER: out} if out else {}


def _folded_loops(nodes: dict[str, Node], edges: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """The edges of the neuron <-> weight loops Spyx folds into RLIF/RCuBaLIF layers."""
    pairs = set(edges)
    found: set[tuple[str, str]] = set()
    for a, b in edges:
        if (b, a) in pairs and isinstance(nodes[a], (LIF, CubaLIF)) and type(nodes[b]).__name__ in ("Linear", "Affine"):
            if sum(1 for e in edges if e[0] == b) == 1 and sum(1 for e in edges if e[1] == b) == 1:
                found |= {(a, b), (b, a)}
    return found


def _reads(node: Node, dt_s: float, method: str, after: list[Node]) -> list[str]:
    """How Spyx misreads one node, given the nodes its followed edges lead to."""
    n: Any = node
    out: list[str] = []
    if isinstance(n, LI):
        if not any(type(a).__name__ == "Threshold" for a in after):
            out.append("LI without a following Threshold refused (Spyx has LI only inside PSU_LIF)")
        return out
    if not isinstance(n, (IF, LIF, CubaLIF)):
        return out
    if isinstance(n, IF):
        if not np.allclose(np.asarray(n.r) * dt_s, 1.0, rtol=1e-6):
            out.append("r ignored: x added unscaled (needs r = 1/dt)")
    else:
        tau = np.asarray(n.tau_mem_s, np.float64)
        if SECTION_RULE[method] != "euler":
            out.append("exact decays read as Euler ones (beta = 1 - dt/tau)")
        if not np.allclose(np.asarray(n.r), tau / dt_s, rtol=1e-6):
            out.append("r ignored: unit gain (needs r = tau_mem/dt)")
        if isinstance(n, CubaLIF) and not np.allclose(np.asarray(n.w_in), np.asarray(n.tau_syn_s) / dt_s, rtol=1e-6):
            out.append("w_in ignored: unit gain (needs w_in = tau_syn/dt)")
        if np.any(np.asarray(n.v_leak) != 0):
            out.append("v_leak ignored (read as 0)")
    timing = "immediate" if isinstance(n, CubaLIF) else "next_step"
    found = [
        (n.reset_mode != "subtract", "reset to v_reset read as subtract"),
        (n.reset_timing != timing, f"reset {n.reset_timing} read as {timing}"),
        (n.threshold_inclusive, "v >= threshold read as v > threshold"),
        (n.max_spikes_per_step > 1, "graded spikes read as one per step"),
        (n.min_spike_interval_s > 0, "minimum spike interval dropped"),
        (not any(isinstance(a, Delay) and np.isclose(a.delay_s, dt_s) for a in after),
         "spikes leave one step later in Spyx (no Delay of dt after it here)"),
    ]  # fmt: skip
    return out + [text for applies, text in found if applies]
