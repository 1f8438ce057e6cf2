"""The integers of a lava-dl netx file as Lava runs them: the reference edgesnn's netx import is tested against.

lava-dl's own reader (``lava.lib.dl.netx.hdf5.Network``) is not installable here: lava-dl
0.6.0 needs torch 2.3 and Python < 3.11, and its netx package imports torch. This module
reads the file with h5py and states netx's meaning directly: a dense or conv layer's
message is the sum of the file's integer weights over the active inputs (netx shifts
dense weights to Lava's mantissas without loss; here they go to Lava as they are, at
exponent 0, with every bit kept), each layer a ``LIF`` with ``du = iDecay - 1``,
``dv = vDecay``, ``vth = vThMant`` and the file's ``bias`` as ``bias_mant`` with
``bias_exp = 6``. Layer ``i`` of the file is named ``neuron<i>`` (its connection
``fc<i>``/``conv<i>``), the input ``in``, as :func:`edgesnn.bundle.netx.read_netx` names them.
"""

from __future__ import annotations

import os

import numpy as np

from edgesnn.loihi import Connection, LoihiNetwork, NeuronLayer


def _value(group, key: str):  # noqa: ANN001, ANN202
    value = group[key][()]
    if isinstance(value, np.ndarray) and value.dtype.kind == "S":
        value = value.reshape(-1)[0]
    return value.decode() if isinstance(value, bytes) else value


def _pair(value: np.ndarray) -> tuple[int, int]:
    v = np.atleast_1d(value).astype(np.int64)
    return (int(v[0]), int(v[-1]))  # (height, width); netx reverses it into Lava's (x, y)


def netx_network(path: str | os.PathLike[str], dt_s: float) -> LoihiNetwork:
    """A LoihiNetwork holding the netx file's integers with the file's meaning (see the module docstring)."""
    import h5py

    neurons, conns = [], []
    inputs: dict[str, tuple[int, ...]] = {}
    prev = None
    with h5py.File(path, "r") as f:
        for i in sorted(f["layer"], key=int):
            g = f["layer"][i]
            kind = _value(g, "type")
            chw = tuple(int(v) for v in np.atleast_1d(g["shape"][()]))  # netx: (C, H, W), Lava's (x, y, c) reversed
            shape = chw if len(chw) == 3 and (chw[1] > 1 or chw[2] > 1) else (int(np.prod(chw)),)
            if kind == "input":
                inputs["in"], prev = shape, "in"
                continue
            if kind == "flatten":
                continue
            weight = np.asarray(g["weight"][()]).astype(np.int64)  # netx reads weights with astype(int)
            n = g["neuron"]
            name = f"neuron{i}"
            bias = np.asarray(g["bias"][()]).astype(np.int64) if "bias" in g else np.zeros(1, np.int64)
            if kind == "conv" and bias.size == shape[0] and bias.size != np.prod(shape):
                bias = np.repeat(bias, np.prod(shape[1:]))  # one bias per channel
            elif kind == "conv" and bias.size == np.prod(shape):
                bias = bias.reshape(shape[::-1]).transpose(2, 1, 0).reshape(-1)  # Lava's (x, y, c) order
            vth = int(_value(n, "vThMant"))
            du, dv = int(_value(n, "iDecay")) - 1, int(_value(n, "vDecay"))
            neurons.append(NeuronLayer(node=name, shape=shape, du=du, dv=dv, vth=vth, bias_mant=bias, bias_exp=6,
                                       spiking=vth < (1 << 17) - 1))  # fmt: skip
            if kind == "dense":
                mixed = weight.min() < 0 < weight.max()
                conns.append(Connection(node=f"fc{i}", source=prev, target=name, weight=weight, weight_exp=0,
                                        num_weight_bits=9 if mixed else 8))  # fmt: skip
            else:
                stride, padding, dilation = (_pair(g[key][()]) for key in ("stride", "padding", "dilation"))
                conns.append(Connection(node=f"conv{i}", source=prev, target=name, weight=weight, kind="conv",
                                        stride=stride, padding=padding, dilation=dilation,
                                        groups=int(_value(g, "groups"))))  # fmt: skip
            prev = name
    return LoihiNetwork(dt_s=dt_s, inputs=inputs, neurons=neurons, connections=conns)
