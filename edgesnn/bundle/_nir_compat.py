"""NIR files for readers pinned to an older nir release (Sinabs 3.1 and Rockpool 3.1 pin nir <= 1.0.4).

nir 1.0.5 added ``v_reset`` to IF, LIF and CubaLIF and the CubaLI node; nir 1.0.4 refuses a file
holding either (``TypeError: ... unexpected keyword argument 'v_reset'``). Writing for 1.0.4 drops
the field where the network does not need it and refuses, naming the node, where it does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgesnn.errors import OptionError, UnsupportedError

#: nir releases a file can be written for: the installed one ("current") or an older reader's.
NIR_VERSIONS = ("current", "1.0.4")
#: Node types nir 1.0.4 knows (nir/ir/__init__.py of that release).
_NODES_1_0_4 = {
    "Affine", "AvgPool2d", "Conv1d", "Conv2d", "CubaLIF", "Delay", "Flatten", "I", "IF", "Input", "LI", "LIF",
    "Linear", "NIRGraph", "Output", "Scale", "SumPool2d", "Threshold",
}  # fmt: skip
_HAS_V_RESET = ("IF", "LIF", "CubaLIF")


def for_reader(graph: Any, nodes: dict[str, Any], nir_version: str) -> None:
    """Check that ``graph`` can be written for ``nir_version``; the fields to drop are found by :func:`strip`.

    ``nodes`` are the edgesnn nodes by name (their reset mode says whether v_reset matters).
    """
    if nir_version not in NIR_VERSIONS:
        raise OptionError(f"expected one of {', '.join(NIR_VERSIONS)}, got {nir_version!r}", path="nir_version")
    if nir_version == "current":
        return
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if kind not in _NODES_1_0_4:
            raise UnsupportedError(f"{kind} is not a node type of nir {nir_version}", path=f"nodes/{name}")
        source = nodes.get(name)
        if kind in _HAS_V_RESET and getattr(source, "reset_mode", "subtract") == "to_value":
            if np.any(np.asarray(node.v_reset) != 0):
                raise UnsupportedError(
                    f"resets to v_reset != 0, which nir {nir_version} cannot store (its IF, LIF and CubaLIF"
                    " have no v_reset: readers reset to 0)",
                    path=f"nodes/{name}/v_reset",
                )


def strip(h5file: Any) -> list[str]:
    """Delete the v_reset datasets of IF, LIF and CubaLIF nodes in an open nir HDF5 file; the paths deleted."""
    gone: list[str] = []

    def visit(group: Any, prefix: str) -> None:
        kind = group["type"][()] if "type" in group else b""
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind in _HAS_V_RESET and "v_reset" in group:
            del group["v_reset"]
            gone.append(f"{prefix}v_reset")
        if "nodes" in group:
            for name in group["nodes"]:
                visit(group["nodes"][name], f"{prefix}{name}/")

    visit(h5file["node"], "")
    return gone
