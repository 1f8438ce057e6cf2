"""The Graphcore IPU bridge: bundles compiled to tiles, stepped by a bulk-synchronous simulator, served over gRPC.

Poplar is not installable (it is not on PyPI) and no IPU is here, so the bridge runs a model of
a Mk2 GC200: neurons with their incoming weights and states on tiles, spike ids in
capacity-bounded buffers between them, and a cycle model whose every constant is a sourced
field of :class:`firmware_bridges.ipu.config.IPUConfig`. It reports ``simulated: true``. Start it
with ``python -m firmware_bridges.ipu --port 50062``; plan a model with ``edgesnn ipu plan``.
Nothing is imported here, so ``edgesnn``'s command line can register ``edgesnn ipu`` cheaply.
"""
