"""lava-dl netx HDF5 (``.net``) export and import for sequential CUBA networks.

Layout (as lava-dl's ``netx.hdf5`` reads it): ``layer/<i>/`` from input to output, each
with ``type`` (an ``S10`` byte string) and ``shape`` (x, y, z order); ``input`` and
``flatten`` layers carry nothing else; ``dense`` has ``inFeatures``, ``outFeatures``,
``weight`` (out, in); ``conv`` has ``inChannels``, ``outChannels``, ``kernelSize``,
``stride``, ``padding``, ``dilation``, ``groups``, ``weight`` (out, in/groups, kH, kW,
PyTorch's order as slayer writes it); both have ``neuron/`` = {type "CUBA", iDecay,
vDecay, vThMant, refDelay 1, gradedSpike 0}. netx maps these to Lava's LIF with
``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``; weights are 8-bit integers and
Lava adds ``a << 6`` to the current, so a layer's voltage counts in weight units.

Export quantises the model (:func:`edgesnn.loihi.quantize`) and writes each layer's
integer mantissas, folding its weight exponent into the threshold (``vThMant =
round(vth * 2**-exp)``); a non-spiking readout is written as CUBA with the largest
threshold (it never fires). Import builds LIF/CubaLIF layers (and an LI-like CUBA
readout for a layer at the largest threshold) at step ``dt_s`` with threshold 1, so
that the float model's voltage is the netx voltage over ``vThMant``.
h5py is imported only when these functions run.
"""

from __future__ import annotations

import math
import os

import numpy as np

from edgesnn.errors import BundleFormatError, MissingDependencyError, UnsupportedError

MAX_VTH = (1 << 17) - 1


def _h5py():
    try:
        import h5py
    except ImportError as exc:
        raise MissingDependencyError("netx files need h5py: pip install h5py") from exc
    return h5py


def _xyz(shape: tuple[int, ...]) -> list[int]:
    return [shape[2], shape[1], shape[0]] if len(shape) == 3 else [int(shape[0]), 1, 1]


def write_netx(model, path: str | os.PathLike[str]) -> None:  # noqa: ANN001 - Model
    """Write a sequential model (Input -> [Flatten] -> connection -> neurons -> ...) as a netx file."""
    from edgesnn.graph import Flatten, Input, Output
    from edgesnn.loihi import quantize

    net = quantize(model)
    graph = model.graph
    chain = [n for n in graph.order if not isinstance(graph.nodes[n], Output)]
    h5py = _h5py()
    with h5py.File(path, "w") as f:
        f.create_dataset("simulation/Ts", data=1)
        f.create_dataset("simulation/tSample", data=0)
        i = 0
        for name in chain:
            node = graph.nodes[name]
            if isinstance(node, Input):
                g = f.create_group(f"layer/{i}")
                g["type"], g["shape"] = np.bytes_("input"), _xyz(graph.shape(name))
            elif isinstance(node, Flatten):
                g = f.create_group(f"layer/{i}")
                g["type"], g["shape"] = np.bytes_("flatten"), _xyz(graph.shape(name))
            elif name in net.connections:
                c = net.connections[name]
                if len(net.incoming(c.target)) != 1:
                    raise UnsupportedError("netx layers are sequential: one connection per neuron layer", path=name)
                layer = net.neurons[c.target]
                g = f.create_group(f"layer/{i}")
                g["shape"] = _xyz(layer.shape)
                if c.kind == "dense":
                    g["type"], g["inFeatures"], g["outFeatures"] = (
                        np.bytes_("dense"),
                        c.weight.shape[1],
                        c.weight.shape[0],
                    )
                else:
                    g["type"] = np.bytes_("conv")
                    g["inChannels"], g["outChannels"] = c.in_shape[0], c.out_shape[0]
                    g["kernelSize"] = list(c.weight.shape[2:][::-1])
                    g["stride"], g["padding"] = list(c.stride[::-1]), list(c.padding[::-1])
                    g["dilation"], g["groups"] = list(c.dilation[::-1]), c.groups
                g["weight"] = c.weight.astype(np.float32)
                vth = layer.vth if not layer.spiking else min(round(math.ldexp(layer.vth, -c.weight_exp)), MAX_VTH)
                n = g.create_group("neuron")
                n["type"], n["iDecay"], n["vDecay"] = np.bytes_("CUBA"), layer.du + 1, layer.dv
                n["vThMant"], n["refDelay"], n["gradedSpike"] = vth if layer.spiking else MAX_VTH, 1, 0
            else:
                continue  # neuron layers live inside their connection's netx layer
            i += 1


def _scalar(group, key: str, where: str):  # noqa: ANN001, ANN202
    if key not in group:
        raise BundleFormatError(f"missing field {key!r}", path=f"{where}/{key}")
    value = group[key][()]
    return value.decode() if isinstance(value, bytes) else value


def read_netx(path: str | os.PathLike[str], dt_s: float = 1e-3):  # noqa: ANN201 - Model
    """Read a netx file of input/flatten/dense/conv layers with CUBA neurons into a float Model at ``dt_s``."""
    from edgesnn.graph import IF, LI, LIF, Conv2d, CubaLIF, Flatten, Graph, Input, Linear, Output
    from edgesnn.model import Model

    h5py = _h5py()
    nodes: dict = {}
    edges: list = []
    prev = None
    with h5py.File(path, "r") as f:
        if "layer" not in f:
            raise BundleFormatError("not a netx file: no 'layer' group", path=os.fspath(path))
        for i in sorted(f["layer"], key=int):
            g = f["layer"][i]
            where = f"layer/{i}"
            kind = _scalar(g, "type", where)
            xyz = [int(v) for v in np.atleast_1d(_scalar(g, "shape", where))]
            shape = (xyz[2], xyz[1], xyz[0]) if len(xyz) == 3 and (xyz[1] > 1 or xyz[2] > 1) else (xyz[0],)
            if kind == "input":
                nodes["in"], prev = Input(shape), "in"
                continue
            if prev is None:
                raise BundleFormatError("the first layer must be an input layer", path=where)
            if kind == "flatten":
                name = f"flatten{i}"
                nodes[name] = Flatten()
                edges.append((prev, name))
                prev = name
                continue
            if kind not in ("dense", "conv"):
                raise UnsupportedError(f"netx layer type {kind!r} is not supported (input, flatten, dense, conv)",
                                       path=where)  # fmt: skip
            ng = g["neuron"] if "neuron" in g else None
            if ng is None or _scalar(ng, "type", f"{where}/neuron") not in ("CUBA", "LOIHI"):
                raise UnsupportedError("only CUBA neurons are supported", path=f"{where}/neuron")
            i_decay, v_decay = int(_scalar(ng, "iDecay", where)), int(_scalar(ng, "vDecay", where))
            vth = float(_scalar(ng, "vThMant", where))
            w = np.asarray(g["weight"][()], np.float64)
            readout = vth >= MAX_VTH
            theta = 1.0 if readout else vth  # float voltage = netx voltage / vThMant
            n = int(np.prod(shape))
            a_v = 1.0 - v_decay / 4096
            g_v = 1.0 - a_v if v_decay > 0 else dt_s
            synapse = i_decay < 4096
            g_syn = i_decay / 4096 if synapse else 1.0
            scale = 1.0 / (theta * g_v * g_syn)
            tau = lambda a: -dt_s / math.log(a)  # noqa: E731
            if v_decay == 0 and (synapse or readout):
                raise UnsupportedError("vDecay 0 is supported only for spiking layers without a synapse", path=where)
            if v_decay == 0:
                neuron = IF.uniform(n, r=1.0, v_threshold=1.0, v_reset=0.0)
            elif readout and not synapse:
                neuron = LI.uniform(n, tau_mem_s=tau(a_v), r=1.0, v_leak=0.0)
            elif synapse:
                neuron = CubaLIF.uniform(n, tau_syn_s=tau(1 - g_syn), tau_mem_s=tau(a_v), r=1.0, v_leak=0.0,
                                         v_threshold=np.inf if readout else 1.0, v_reset=0.0, w_in=1.0)  # fmt: skip
            else:
                neuron = LIF.uniform(n, tau_mem_s=tau(a_v), r=1.0, v_leak=0.0, v_threshold=1.0, v_reset=0.0)
            conn, lif = f"fc{i}" if kind == "dense" else f"conv{i}", f"neuron{i}"
            if kind == "dense":
                nodes[conn] = Linear((w * scale).astype(np.float32))
            else:
                stride = tuple(int(v) for v in np.atleast_1d(_scalar(g, "stride", where))[::-1])
                padding = tuple(int(v) for v in np.atleast_1d(_scalar(g, "padding", where))[::-1])
                dilation = tuple(int(v) for v in np.atleast_1d(_scalar(g, "dilation", where))[::-1])
                nodes[conn] = Conv2d((w * scale).astype(np.float32), np.zeros(w.shape[0], np.float32), stride=stride,
                                     padding=padding, dilation=dilation,
                                     groups=int(_scalar(g, "groups", where)))  # fmt: skip
                neuron = type(neuron).from_dict(
                    {
                        **neuron.to_dict(),
                        **{k: np.reshape(v, shape) for k, v in neuron.to_dict().items() if isinstance(v, np.ndarray)},
                    }
                )
            nodes[lif] = neuron
            edges += [(prev, conn), (conn, lif)]
            prev = lif
    if prev is None or prev == "in":
        raise BundleFormatError("netx file has no layers after its input", path=os.fspath(path))
    nodes["out"] = Output(tuple(nodes[prev].shape))
    edges.append((prev, "out"))
    return Model(Graph(nodes, tuple(edges)), dt_s)
