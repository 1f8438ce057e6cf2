"""lava-dl netx HDF5 (``.net``) export and import of sequential CUBA networks, integers unchanged.

Layout, as lava-dl's ``netx.hdf5.Network`` reads it: ``layer/<i>/`` from input to
output, each with ``type`` (a byte string) and ``shape`` in (C, H, W) order (netx reverses
it into Lava's (x, y, c)); ``input`` and ``flatten`` layers carry nothing else; ``dense``
has ``inFeatures``, ``outFeatures``, ``weight`` (out, in) and optionally ``bias``;
``dense_rec`` adds ``weight_rec`` (out, out); ``conv`` has ``inChannels``,
``outChannels``, ``kernelSize``, ``stride``, ``padding``, ``dilation`` (height, width),
``groups``, ``weight`` (out, in/groups, kH, kW, PyTorch's cross-correlation) and
optionally ``bias`` (per channel, or per neuron in Lava's order); each has ``neuron/`` =
{type "CUBA", iDecay, vDecay, vThMant, refDelay, gradedSpike}.

netx builds one Lava ``LIF`` per layer with ``du = iDecay - 1``, ``dv = vDecay``,
``vth = vThMant``, ``bias_mant = bias``, ``bias_exp = 6``, and reads weights as integers
(truncated toward zero). A conv layer's weights go to Lava's ``Conv`` as they are; a dense
layer's are first fitted to Lava's synapse by netx's own ``optimize_weight_bits``: shifted
left by ``k`` bits, with ``weight_exp = -k`` and the fewest ``num_weight_bits`` that keep
every value, and Lava picks the sign mode from the shifted weights. For weights in netx's
range (mixed signs in [-256, 254], one sign up to 255 in magnitude) that is lossless: the
message is the sum of the file's integers.

:func:`read_netx` returns a model whose ``loihi`` network holds exactly those Lava
parameters (``model.session(numerics="loihi")`` steps what netx and Lava's fixed_pt
would), with the float graph of :func:`edgesnn.loihi.to_model` at voltage scale 2**6 (the
voltage counts in weight units, thresholds are ``vThMant``). A layer with ``vThMant >=
2**17 - 1`` never fires and reads as a non-spiking readout.

:func:`write_netx` writes a network's integers exactly, or refuses, naming the field,
what netx cannot hold (an exponent that does not fold into integer weights, a bias that
is not a multiple of 2**6, initial states, branches). A float model without a network is
quantised first with netx's constraints (``weight_exp=0``, ``bias_exp=6``). h5py is
imported only when these functions run.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np

from edgesnn.errors import BundleFormatError, EdgeSNNError, MissingDependencyError, UnsupportedError
from edgesnn.loihi import fixed

log = logging.getLogger("edgesnn.bundle")

MAX_VTH = fixed.MAX_VTH
#: netx gives every CUBA layer this bias exponent.
NETX_BIAS_EXP = 6
#: netx's scale of the float equivalent: voltage in weight units.
_SCALE_EXP = fixed.ACT_SHIFT


def _h5py():  # noqa: ANN202
    try:
        import h5py
    except ImportError as exc:
        raise MissingDependencyError("netx files need h5py: pip install h5py") from exc
    return h5py


# -- netx's weight fitting --------------------------------------------------------
def netx_dense(weight: np.ndarray, where: str) -> tuple[np.ndarray, int, int]:
    """(weights, weight_exp, num_weight_bits) that lava-dl's netx hands Lava's Dense for integer ``weight``.

    netx's rule: mixed signs (a negative and a non-negative maximum) are clipped to
    [-256, 254]; the largest shift ``k`` keeps them within 127/-128 (times two) for mixed
    signs, 255 (excitatory) or -256 (inhibitory, a negative maximum); ``n`` is the number of
    trailing zero bits all weights share (8 at most, one less for mixed signs);
    ``num_weight_bits = 8 - k - n``, ``weight_exp = -k``.
    """
    w = np.asarray(weight, np.int64)
    hi, lo = (int(w.max()), int(w.min())) if w.size else (0, 0)
    if (hi > 254 and lo < 0) or (lo < -256 and hi > 0):
        log.warning("%s: weights beyond [-256, 254] are clipped, as lava-dl's netx does", where)
        w = np.clip(w, -256, 254)
        hi, lo = int(w.max()), int(w.min())
    if hi == 0 and lo == 0:
        return w, 0, fixed.WEIGHT_BITS  # netx fails on an all-zero layer; here it stays zero
    signed = int(not (hi < 0 or lo >= 0))
    if hi < 0:
        if lo < -256:
            raise UnsupportedError(f"inhibitory netx weights must be >= -256, got {lo}", path=where)
        scale = -256 / lo
    elif lo >= 0:
        if hi > 255:
            raise UnsupportedError(f"excitatory netx weights must be <= 255, got {hi}", path=where)
        scale = 255 / hi
    else:
        scale = min(127 / hi if hi > 0 else math.inf, -128 / lo)
    k = math.floor(math.log2(scale)) + signed
    n = 8
    while n > 0 and np.any(w % (1 << n)):
        n -= 1
    n -= signed
    return w << k, -k, 8 - k - n


def _dense(name: str, source: str, target: str, weight: np.ndarray, exp: int, bits: int, where: str) -> Any:
    from edgesnn.loihi import Connection

    if bits < 1:  # every weight a multiple of 256 in magnitude: Lava truncates them all away
        log.warning("%s: netx asks Lava for %d weight bits, which keeps no weight", where, bits)
        weight, exp, bits = np.zeros_like(weight), 0, fixed.WEIGHT_BITS
    try:
        return Connection(node=name, source=source, target=target, weight=weight, weight_exp=exp,
                          num_weight_bits=bits)  # fmt: skip
    except EdgeSNNError as exc:
        raise UnsupportedError(f"lava-dl's netx would hand Lava weights it cannot apply: {exc.message}",
                               path=where) from exc  # fmt: skip


# -- writing ----------------------------------------------------------------------
def _file_shape(shape: tuple[int, ...]) -> list[int]:
    return [int(s) for s in shape]  # (n,) or (C, H, W): netx reverses it into Lava's order


def _file_weights(c: Any, where: str) -> np.ndarray:
    """Integer weights whose netx reading makes the same messages as ``c`` (dense), or refuse."""
    e = c.lava_weight.astype(np.int64)
    if c.weight_exp < 0 and np.any(e % (1 << -c.weight_exp)):
        raise UnsupportedError(
            f"weight_exp {c.weight_exp} does not fold into integer weights (netx files have no exponent, and Lava"
            " rounds the shifted sum)",
            path=f"{where}/weight_exp",
        )
    f = e << c.weight_exp if c.weight_exp >= 0 else e >> -c.weight_exp
    w, exp, bits = netx_dense(f, where)
    # What netx and Lava then compute: the stored weights, shifted; exact when they are f scaled by 2**-exp.
    valid = 1 <= bits <= fixed.WEIGHT_BITS + (fixed.sign_mode_of(w) == "mixed")
    back = fixed.lava_weights(w, None, bits) if valid else w
    if not valid or np.any(back % (1 << -exp)) or not np.array_equal(back >> -exp, f):
        raise UnsupportedError(
            "netx would change these weights (lava-dl fits them to Lava's synapse by its own rule, e.g. it doubles"
            " inhibitory weights of -128 to -256, which Lava clips)",
            path=f"{where}/weight",
        )
    return f


def _write_neuron(g: Any, layer: Any, where: str) -> None:
    if np.any(layer.u_init) or np.any(layer.v_init):
        raise UnsupportedError("netx files have no initial u or v; the layer starts elsewhere than 0",
                               path=f"{where}/v_init")  # fmt: skip
    if layer.spiking == (layer.vth >= MAX_VTH):
        what = "a spiking layer with" if layer.spiking else "a readout with a threshold below"
        raise UnsupportedError(f"netx reads vThMant {MAX_VTH} as a readout; this is {what} vth {layer.vth}",
                               path=f"{where}/vth")  # fmt: skip
    bias = layer.bias
    if np.any(bias % (1 << NETX_BIAS_EXP)) or np.any(np.abs(bias >> NETX_BIAS_EXP) > fixed.BIAS_MANT_MAX):
        raise UnsupportedError("netx biases are bias_mant << 6 with a 13-bit mantissa; this bias is not",
                               path=f"{where}/bias_mant")  # fmt: skip
    if np.any(bias):
        b = bias >> NETX_BIAS_EXP
        if len(layer.shape) == 3:
            per_channel = b.reshape(layer.shape[0], -1)
            b = per_channel[:, 0] if np.all(per_channel == per_channel[:, :1]) else b.reshape(layer.shape).T
        g["bias"] = np.asarray(b, np.float32)
    n = g.create_group("neuron")
    n["type"], n["iDecay"], n["vDecay"] = np.bytes_("CUBA"), layer.du + 1, layer.dv
    n["vThMant"], n["refDelay"], n["gradedSpike"] = layer.vth, 1, 0


def _chain(net: Any) -> list[Any]:
    """The connections of a sequential network from its input, or refuse."""
    if len(net.inputs) != 1:
        raise UnsupportedError(f"netx networks have one input, this one has {len(net.inputs)}", path="inputs")
    cur, chain = next(iter(net.inputs)), []
    while True:
        out = [c for c in net.connections.values() if c.source == cur]
        if not out:
            break
        if len(out) > 1 or len(net.incoming(out[0].target)) != 1:
            raise UnsupportedError("netx layers are sequential: one connection into and out of each layer",
                                   path=out[-1].node)  # fmt: skip
        chain.append(out[0])
        cur = out[0].target
    if len(chain) != len(net.connections):
        rest = next(n for n in net.connections if n not in {c.node for c in chain})
        raise UnsupportedError("netx layers are sequential: this connection is off the chain", path=rest)
    return chain


def write_netx(model: Any, path: str | os.PathLike[str]) -> None:
    """Write a sequential model's Loihi network (``model.loihi``, or the model quantised for netx) as a netx file."""
    from edgesnn.loihi import LoihiNetwork, quantize

    if isinstance(model, LoihiNetwork):
        net = model
    elif model.loihi is not None:
        net = model.loihi
    else:
        net = quantize(model, weight_exp=0, bias_exp=NETX_BIAS_EXP)
    chain = _chain(net)
    h5py = _h5py()
    with h5py.File(path, "w") as f:
        f.create_dataset("simulation/Ts", data=1)
        f.create_dataset("simulation/tSample", data=0)
        shape = next(iter(net.inputs.values()))
        g = f.create_group("layer/0")
        g["type"], g["shape"] = np.bytes_("input"), _file_shape(shape)
        i = 1
        for c in chain:
            layer = net.neurons[c.target]
            if c.kind == "dense" and len(shape) != 1:
                g = f.create_group(f"layer/{i}")
                g["type"], g["shape"] = np.bytes_("flatten"), [int(np.prod(shape))]
                i += 1
            g = f.create_group(f"layer/{i}")
            g["shape"] = _file_shape(layer.shape)
            if c.kind == "dense":
                g["type"], g["inFeatures"], g["outFeatures"] = np.bytes_("dense"), c.weight.shape[1], c.weight.shape[0]
                g["weight"] = _file_weights(c, c.node).astype(np.float32)
            else:
                g["type"] = np.bytes_("conv")
                g["inChannels"], g["outChannels"] = c.in_shape[0], c.out_shape[0]
                g["kernelSize"] = list(c.weight.shape[2:])
                g["stride"], g["padding"], g["dilation"] = list(c.stride), list(c.padding), list(c.dilation)
                g["groups"] = c.groups
                g["weight"] = c.weight.astype(np.float32)
            _write_neuron(g, layer, c.target)
            shape = layer.shape
            i += 1


# -- reading ----------------------------------------------------------------------
def _scalar(group: Any, key: str, where: str) -> Any:
    if key not in group:
        raise BundleFormatError(f"missing field {key!r}", path=f"{where}/{key}")
    value = group[key][()]
    if isinstance(value, np.ndarray) and value.dtype.kind == "S" and value.size == 1:
        value = value.reshape(-1)[0]  # slayer writes type as a (1,) S10 array
    return value.decode() if isinstance(value, bytes) else value


def _ints(group: Any, key: str, where: str) -> np.ndarray:
    raw = np.asarray(_scalar(group, key, where))
    if raw.dtype.kind not in "iuf" or (raw.dtype.kind == "f" and not np.all(np.isfinite(raw))):
        raise BundleFormatError(f"expected numbers, got {raw.dtype}", path=f"{where}/{key}")
    return raw.astype(np.int64)  # netx reads with astype(int): toward zero


def _pair(group: Any, key: str, where: str) -> tuple[int, int]:
    v = _ints(group, key, where).reshape(-1)
    if v.size not in (1, 2):
        raise BundleFormatError(f"expected one or two integers (height, width), got {v.size}", path=f"{where}/{key}")
    return (int(v[0]), int(v[-1]))


def _shape(xyz: np.ndarray) -> tuple[int, ...]:
    chw = tuple(int(v) for v in np.atleast_1d(xyz))
    return chw if len(chw) == 3 and (chw[1] > 1 or chw[2] > 1) else (int(np.prod(chw)),)


def _neuron(g: Any, name: str, shape: tuple[int, ...], kind: str, where: str) -> Any:
    from edgesnn.loihi import NeuronLayer

    if "neuron" not in g:
        raise UnsupportedError("layer has no neuron group", path=f"{where}/neuron")
    ng, nw = g["neuron"], f"{where}/neuron"
    if _scalar(ng, "type", nw) not in ("CUBA", "LOIHI"):
        raise UnsupportedError(f"only CUBA neurons are supported, got {_scalar(ng, 'type', nw)!r}", path=f"{nw}/type")
    vth = int(_ints(ng, "vThMant", nw))
    bias = np.zeros(int(np.prod(shape)), np.int64)
    if "bias" in g:
        b = _ints(g, "bias", where)
        if b.size == bias.size and (kind == "dense" or b.ndim == 3):
            bias = b.reshape(shape[::-1]).T.reshape(-1) if b.ndim == 3 else b.reshape(-1)  # Lava's (x, y, c)
        elif kind == "conv" and b.size == shape[0]:
            bias = np.repeat(b.reshape(-1), int(np.prod(shape[1:])))  # one per channel
        else:
            raise BundleFormatError(f"bias of shape {b.shape} fits neither the layer nor its channels",
                                    path=f"{where}/bias")  # fmt: skip
    try:
        return NeuronLayer(node=name, shape=shape, du=int(_ints(ng, "iDecay", nw)) - 1, dv=int(_ints(ng, "vDecay", nw)),
                           vth=vth, bias_mant=bias, bias_exp=NETX_BIAS_EXP, spiking=vth < MAX_VTH,
                           scale_exp=_SCALE_EXP)  # fmt: skip
    except EdgeSNNError as exc:  # name the file's field: du is iDecay - 1, dv vDecay, bias_mant the bias
        field = (exc.path or "").rsplit("/", 1)[-1]
        key = {"du": "neuron/iDecay", "dv": "neuron/vDecay", "vth": "neuron/vThMant"}.get(field, "bias")
        raise BundleFormatError(exc.message, path=f"{where}/{key}") from exc


def _implied_input(g: Any, kind: str, input_shape: tuple[int, ...] | None, where: str) -> tuple[int, ...]:
    """The input shape of a file whose first layer ``g`` is not an input layer (see :func:`read_netx`)."""
    if kind in ("dense", "dense_rec"):
        n = int(_ints(g, "inFeatures", where))
        if input_shape is not None and math.prod(input_shape) != n:
            raise BundleFormatError(f"input_shape {tuple(input_shape)} does not give inFeatures {n}",
                                    path=f"{where}/inFeatures")  # fmt: skip
        return (n,)
    if kind != "conv":
        raise BundleFormatError("the first layer must be an input, dense or conv layer", path=where)
    if input_shape is None or len(input_shape) != 3:
        raise BundleFormatError("the file has no input layer and starts with a conv layer: pass input_shape"
                                " (channels, height, width)", path=where)  # fmt: skip
    shape = tuple(int(v) for v in input_shape)
    if shape[0] != int(_ints(g, "inChannels", where)):
        raise BundleFormatError(f"input_shape has {shape[0]} channels, the conv layer reads"
                                f" {int(_ints(g, 'inChannels', where))}", path=f"{where}/inChannels")  # fmt: skip
    return shape


def read_netx(path: str | os.PathLike[str], dt_s: float = 1e-3, input_shape: tuple[int, ...] | None = None) -> Any:
    """Read a netx file (input, flatten, dense, dense_rec, conv layers; CUBA neurons) as its integers at ``dt_s``.

    ``input_shape`` ((n,) or (C, H, W)) is the input of a file without an input layer, as
    lava-dl's tutorial ``export_hdf5`` writes them; one starting with a dense layer reads it
    from ``inFeatures``, one starting with a conv layer needs it (netx's ``input_shape``, there
    in Lava's (x, y, c) order). A file's own input layer must agree with it.
    """
    from edgesnn.loihi import Connection, LoihiNetwork, to_model

    h5py = _h5py()
    neurons, conns = [], []
    inputs: dict[str, tuple[int, ...]] = {}
    prev: str | None = None
    shapes: dict[str, tuple[int, ...]] = {}
    flatten = False
    with h5py.File(path, "r") as f:
        if "layer" not in f:
            raise BundleFormatError("not a netx file: no 'layer' group", path=os.fspath(path))
        for i in sorted(f["layer"], key=int):
            g, where = f["layer"][i], f"layer/{i}"
            kind = _scalar(g, "type", where)
            shape = _shape(_scalar(g, "shape", where))
            if kind == "input":
                if "neuron" in g:
                    raise UnsupportedError("an input layer with neurons is not supported", path=f"{where}/neuron")
                if input_shape is not None and tuple(input_shape) != shape:
                    raise BundleFormatError(f"the file's input layer has shape {shape}, input_shape is"
                                            f" {tuple(input_shape)}", path=f"{where}/shape")  # fmt: skip
                inputs["in"], prev = shape, "in"
                shapes["in"] = shape
                continue
            if prev is None:
                inputs["in"] = shapes["in"] = _implied_input(g, kind, input_shape, where)
                prev = "in"
            if kind == "flatten":
                flatten = True
                continue
            if kind not in ("dense", "dense_rec", "conv"):
                raise UnsupportedError(f"netx layer type {kind!r} is not supported (input, flatten, dense, dense_rec,"
                                       " conv)", path=f"{where}/type")  # fmt: skip
            if "delay" in g:
                raise UnsupportedError("synaptic delays are not supported", path=f"{where}/delay")
            name = f"neuron{i}"
            neurons.append(_neuron(g, name, shape, kind, where))
            weight = _ints(g, "weight", where)
            if kind == "conv":
                stride, padding, dilation = (_pair(g, k, where) for k in ("stride", "padding", "dilation"))
                try:
                    conns.append(Connection(node=f"conv{i}", source=prev, target=name, weight=weight, kind="conv",
                                            stride=stride, padding=padding, dilation=dilation,
                                            groups=int(_ints(g, "groups", where))))  # fmt: skip
                except EdgeSNNError as exc:
                    raise UnsupportedError(exc.message, path=f"{where}/weight") from exc
            else:
                if len(shapes[prev]) != 1 and not flatten:
                    raise UnsupportedError("a dense layer after a conv layer needs a flatten layer", path=where)
                weight = weight.reshape(weight.shape[0], -1) if weight.ndim != 2 else weight
                if kind == "dense_rec":  # netx fits both weight matrices with one exponent
                    rec = _ints(g, "weight_rec", where).reshape(weight.shape[0], -1)
                    both, exp, bits = netx_dense(np.hstack([weight, rec]), f"{where}/weight")
                    conns.append(_dense(f"fc{i}", prev, name, both[:, : weight.shape[1]], exp, bits, f"{where}/weight"))
                    conns.append(_dense(f"fc{i}_rec", name, name, both[:, weight.shape[1] :], exp, bits,
                                        f"{where}/weight_rec"))  # fmt: skip
                else:
                    w, exp, bits = netx_dense(weight, f"{where}/weight")
                    conns.append(_dense(f"fc{i}", prev, name, w, exp, bits, f"{where}/weight"))
            flatten = False
            shapes[name] = shape
            prev = name
    if not neurons:
        raise BundleFormatError("netx file has no layers after its input", path=os.fspath(path))
    try:
        net = LoihiNetwork(dt_s=dt_s, inputs=inputs, neurons=neurons, connections=conns, outputs={"out": prev})
    except EdgeSNNError as exc:
        raise UnsupportedError(exc.message, path=exc.path) from exc
    return to_model(net, producer={"name": "lava-dl netx", "file": os.path.basename(os.fspath(path))})
