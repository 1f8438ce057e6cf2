"""The integer program a model becomes on Loihi: neuron layers and connections with their fixed-point parameters.

Built by :func:`edgesnn.loihi.quantize`; run by the runtime (``numerics="loihi"``) and
compiled to Lava processes by the Loihi 2 bridge. Shapes are edgesnn's (channels first);
the bridge transposes to Lava's (x, y, channel) order itself.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class NeuronLayer:
    """One neuron node as a Lava CUBA LIF population (``lava.proc.lif.process.LIF``).

    ``v_int = 2**scale_exp * v`` relates the integer voltage to the model's units;
    ``du``/``dv`` are the 12-bit decays, ``vth`` the threshold mantissa (compared as
    ``v > vth << 6``), ``bias_mant << bias_exp`` the per-neuron bias added to ``v`` each
    step, ``v_init`` the integer resting voltage. The ``float_*`` fields are the same
    layer for Lava's floating_pt models (``u = u (1 - du) + a``; ``v = v (1 - dv) + u + bias``).
    """

    node: str
    shape: tuple[int, ...]
    spiking: bool
    scale_exp: int
    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray  # int32 (n,)
    bias_exp: int
    v_init: np.ndarray  # int32 (n,)
    float_du: float
    float_dv: float
    float_vth: float
    float_bias: np.ndarray  # float64 (n,)
    float_v_init: np.ndarray  # float64 (n,)

    @property
    def size(self) -> int:
        """Number of neurons."""
        return int(np.prod(self.shape))


@dataclasses.dataclass(frozen=True, eq=False)
class Connection:
    """A weighted connection (``Linear``/``Affine`` -> Lava ``Dense``/``Sparse``; ``Conv2d`` -> ``Conv``).

    ``weight`` holds integer mantissas (dense: (n_out, n_in); conv: edgesnn's
    (C_out, C_in/groups, KH, KW)), ``weight_exp`` the shared exponent (always 0 for
    conv, whose fixed-point Lava model applies none). ``float_weight`` is the float
    weight with the target's input gain folded in. ``source`` is the Input or neuron
    node whose spikes it reads, ``target`` the neuron layer it drives. ``carried`` says
    one of its edges is a back edge of the graph, which already delays it one step;
    every other connection delays its output one step itself, as Lava's do.
    """

    node: str
    kind: str  # "dense" | "conv"
    source: str
    target: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight: np.ndarray  # int32
    weight_exp: int
    float_weight: np.ndarray  # float64
    carried: bool
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    @property
    def num_weight_bits(self) -> int:
        """Weight precision Lava is told (8: the mantissas already fit)."""
        return 8


@dataclasses.dataclass(frozen=True, eq=False)
class LoihiNetwork:
    """A quantised model: inputs, neuron layers and connections in execution order, outputs.

    ``outputs`` maps each Output node to the neuron layer it reads (spikes of a spiking
    layer, voltage of a non-spiking readout, in model units).
    """

    dt_s: float
    method: str
    inputs: dict[str, tuple[int, ...]]
    neurons: dict[str, NeuronLayer]
    connections: dict[str, Connection]
    outputs: dict[str, str]
    order: tuple[str, ...]

    def incoming(self, neuron: str) -> list[Connection]:
        """Connections driving ``neuron``, in graph order."""
        return [c for c in self.connections.values() if c.target == neuron]

    def latency(self) -> dict[str, int]:
        """Steps by which Lava's output of each neuron layer lags the float runtime's.

        Each forward connection costs Lava one step the float graph does not spend;
        raises when two paths into a layer lag differently (the float runtime then has
        no shifted equivalent).
        """
        from edgesnn.errors import GraphError

        lag: dict[str, int] = {name: 0 for name in self.inputs}
        for name in self.order:
            if name not in self.neurons:
                continue
            seen = {lag[c.source] + 1 for c in self.incoming(name) if not c.carried and c.source in lag}
            if len(seen) > 1:
                raise GraphError(f"paths into {name!r} lag Lava by different steps {sorted(seen)}", path=name)
            lag[name] = seen.pop() if seen else 0
        return {k: v for k, v in lag.items() if k in self.neurons}
