"""A Loihi integer network in a .esnn bundle: one manifest section plus integer tensors.

The section ``loihi`` of ``manifest.json`` holds the network's scalars and structure; its
per-neuron and weight arrays are tensor members ``loihi/<node>/<field>.npy``, indexed and
hashed with the graph's tensors. Tensors are float32 like every bundle tensor; every
integer stored fits 24 bits, so float32 holds it exactly, and loading checks that each
value is an integer in Lava's range. Errors name the field: ``loihi/neurons/lif/vth``.

``float_*`` fields are not stored: a loaded network derives them from its integers (what
Lava's floating_pt models then run). Layout (version 1)::

    "loihi": {
      "version": 1, "dt_s": 0.001, "method": "cascade",
      "inputs": {"in": [16]},
      "neurons": {"lif": {"shape": [8], "du": 100, "dv": 200, "vth": 100, "spiking": true,
                          "scale_exp": 6, "bias_mant": "loihi/lif/bias_mant.npy", "bias_exp": ...,
                          "u_init": ..., "v_init": ...}},
      "connections": {"fc": {"kind": "dense", "source": "in", "target": "lif",
                             "weight": "loihi/fc/weight.npy", "weight_exp": -2, "num_weight_bits": 6,
                             "sign_mode": null, "carried": false,
                             "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1}},
      "outputs": {"out": "lif"}, "order": ["fc", "lif"]
    }
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from edgesnn.errors import BundleFormatError, BundleValidationError, EdgeSNNError, UnsupportedVersionError
from edgesnn.loihi.network import Connection, LoihiNetwork, NeuronLayer

#: Name of the manifest section.
SECTION = "loihi"
VERSION = 1
_NEURON_SCALARS = ("du", "dv", "vth", "scale_exp")
_NEURON_ARRAYS = ("bias_mant", "bias_exp", "u_init", "v_init")
_NEURON_KEYS = ("shape", *_NEURON_SCALARS, "spiking", *_NEURON_ARRAYS)
_CONN_KEYS = ("kind", "source", "target", "weight", "weight_exp", "num_weight_bits", "sign_mode", "carried",
              "stride", "padding", "dilation", "groups")  # fmt: skip
_KEYS = ("version", "dt_s", "method", "inputs", "neurons", "connections", "outputs", "order")
#: float32 holds every integer up to this magnitude exactly.
_F32_INT = 1 << 24

LoadTensor = Callable[[str, str], np.ndarray]


def member(node: str, field: str) -> str:
    """Zip member of array ``field`` of layer or connection ``node``."""
    return f"{SECTION}/{node}/{field}.npy"


def network_entry(net: LoihiNetwork, dt_s: float) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The manifest section of ``net`` and its tensors (member -> array), for a model stepping at ``dt_s``."""
    if abs(net.dt_s - dt_s) > 1e-9 * dt_s:
        raise BundleValidationError(
            f"the Loihi network was made for a step of {net.dt_s:g} s, the model steps at {dt_s:g} s", path=SECTION
        )
    tensors: dict[str, np.ndarray] = {}

    def tensor(node: str, field: str, values: np.ndarray, where: str) -> str:
        arr = np.asarray(values)
        if arr.size and np.max(np.abs(arr.astype(np.int64))) >= _F32_INT:
            raise BundleValidationError(
                "holds integers of 24 bits or more, which a bundle cannot store exactly (Lava clips dense weights"
                " to 8 bits: clip them first)",
                path=where,
            )
        name = member(node, field)
        tensors[name] = arr.astype(np.float32)
        return name

    neurons = {}
    for name, layer in net.neurons.items():
        entry: dict[str, Any] = {"shape": list(layer.shape), "spiking": layer.spiking}
        entry.update({k: int(getattr(layer, k)) for k in _NEURON_SCALARS})
        entry.update({k: tensor(name, k, getattr(layer, k), f"{SECTION}/neurons/{name}/{k}") for k in _NEURON_ARRAYS})
        neurons[name] = entry
    connections = {}
    for name, c in net.connections.items():
        connections[name] = {
            "kind": c.kind, "source": c.source, "target": c.target,
            "weight": tensor(name, "weight", c.weight, f"{SECTION}/connections/{name}/weight"),
            "weight_exp": c.weight_exp, "num_weight_bits": c.num_weight_bits, "sign_mode": c.sign_mode,
            "carried": bool(c.carried), "stride": list(c.stride), "padding": list(c.padding),
            "dilation": list(c.dilation), "groups": c.groups,
        }  # fmt: skip
    section = {
        "version": VERSION,
        "dt_s": net.dt_s,
        "method": net.method,
        "inputs": {k: list(v) for k, v in net.inputs.items()},
        "neurons": neurons,
        "connections": connections,
        "outputs": dict(net.outputs),
        "order": list(net.order),
    }
    return section, tensors


def network_digest(net: LoihiNetwork) -> str:
    """sha256 over every value a network stores (scalars, structure, integers), for a model fingerprint to bind."""
    import hashlib
    import json

    h = hashlib.sha256(json.dumps([net.dt_s, net.method, net.inputs, net.outputs, net.order], default=list).encode())
    for name, layer in net.neurons.items():
        h.update(json.dumps([name, layer.shape, layer.spiking, *(int(getattr(layer, k)) for k in _NEURON_SCALARS)],
                            default=list).encode())  # fmt: skip
        for key in _NEURON_ARRAYS:
            h.update(np.ascontiguousarray(getattr(layer, key), "<i4").tobytes())
    for name, c in net.connections.items():
        fields = [name, c.kind, c.source, c.target, c.weight.shape, c.weight_exp, c.num_weight_bits, c.sign_mode,
                  c.carried, c.stride, c.padding, c.dilation, c.groups]  # fmt: skip
        h.update(json.dumps(fields, default=list).encode())
        h.update(np.ascontiguousarray(c.weight, "<i4").tobytes())
    return h.hexdigest()


# -- reading ------------------------------------------------------------------
def _expect(value: Any, kinds: tuple[type, ...], what: str, path: str) -> Any:
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        raise BundleFormatError(f"expected {what}, got {type(value).__name__} {value!r:.40}", path=path)
    return value


def _keys(entry: Any, keys: tuple[str, ...], path: str) -> Mapping[str, Any]:
    _expect(entry, (dict,), "an object", path)
    missing = [k for k in keys if k not in entry]
    if missing:
        raise BundleFormatError("required field is missing", path=f"{path}/{missing[0]}")
    unknown = [k for k in entry if k not in keys]
    if unknown:
        raise BundleFormatError(f"unknown field; expected only {', '.join(keys)}", path=f"{path}/{unknown[0]}")
    return entry


def _ints(value: Any, path: str) -> tuple[int, ...]:
    _expect(value, (list,), "a list of integers", path)
    return tuple(_expect(v, (int,), "an integer", f"{path}/{i}") for i, v in enumerate(value))


def _section_path(exc: EdgeSNNError, prefix: str) -> str:
    return f"{prefix}/{exc.path}" if exc.path else prefix


def read_network(section: Any, load_tensor: LoadTensor, model: Any) -> LoihiNetwork:
    """Build the network of a manifest's ``loihi`` section and check it against ``model`` (its step and graph).

    ``load_tensor(member, where)`` reads one of its arrays (checked against the tensors index).
    """
    from edgesnn.engine._loihi import check_network_graph

    dt_s = model.dt_s
    s = _keys(section, _KEYS, SECTION)
    version = _expect(s["version"], (int,), "an integer version", f"{SECTION}/version")
    if version != VERSION:
        raise UnsupportedVersionError(f"section version {version}; this edgesnn reads version {VERSION}",
                                      path=f"{SECTION}/version")  # fmt: skip
    net_dt = _expect(s["dt_s"], (int, float), "a number of seconds", f"{SECTION}/dt_s")
    if abs(net_dt - dt_s) > 1e-9 * dt_s:
        raise BundleValidationError(f"the network was made for {net_dt:g} s; the model steps at {dt_s:g} s",
                                    path=f"{SECTION}/dt_s")  # fmt: skip
    method = _expect(s["method"], (str,), "a method name", f"{SECTION}/method")
    inputs = {k: _ints(v, f"{SECTION}/inputs/{k}")
              for k, v in _expect(s["inputs"], (dict,), "an object", f"{SECTION}/inputs").items()}  # fmt: skip

    def array(entry: Mapping[str, Any], key: str, where: str) -> np.ndarray:
        name = _expect(entry[key], (str,), "a tensor member name", f"{where}/{key}")
        return load_tensor(name, f"{where}/{key}")

    neurons = []
    for name, raw in _expect(s["neurons"], (dict,), "an object of layers", f"{SECTION}/neurons").items():
        where = f"{SECTION}/neurons/{name}"
        e = _keys(raw, _NEURON_KEYS, where)
        fields = {k: _expect(e[k], (int,), "an integer", f"{where}/{k}") for k in _NEURON_SCALARS}
        fields.update({k: array(e, k, where) for k in _NEURON_ARRAYS})
        try:
            neurons.append(NeuronLayer(node=name, shape=_ints(e["shape"], f"{where}/shape"),
                                       spiking=_expect(e["spiking"], (bool,), "true or false", f"{where}/spiking"),
                                       **fields))  # fmt: skip
        except EdgeSNNError as exc:
            raise BundleValidationError(exc.message, path=_section_path(exc, f"{SECTION}/neurons")) from exc
    conns = []
    for name, raw in _expect(s["connections"], (dict,), "an object of connections", f"{SECTION}/connections").items():
        where = f"{SECTION}/connections/{name}"
        e = _keys(raw, _CONN_KEYS, where)
        fields = {k: _expect(e[k], (str,), "a name", f"{where}/{k}") for k in ("kind", "source", "target")}
        fields.update({k: _expect(e[k], (int,), "an integer", f"{where}/{k}")
                       for k in ("weight_exp", "num_weight_bits", "groups")})  # fmt: skip
        fields.update({k: _ints(e[k], f"{where}/{k}") for k in ("stride", "padding", "dilation")})
        mode = e["sign_mode"]
        if mode is not None:
            _expect(mode, (str,), "a sign mode or null", f"{where}/sign_mode")
        carried = _expect(e["carried"], (bool,), "true or false", f"{where}/carried")
        weight = array(e, "weight", where)
        try:
            conns.append(Connection(node=name, weight=weight, sign_mode=mode, carried=carried, **fields))
        except EdgeSNNError as exc:
            raise BundleValidationError(exc.message, path=_section_path(exc, f"{SECTION}/connections")) from exc
    outputs = {k: _expect(v, (str,), "a layer name", f"{SECTION}/outputs/{k}")
               for k, v in _expect(s["outputs"], (dict,), "an object", f"{SECTION}/outputs").items()}  # fmt: skip
    names = _expect(s["order"], (list,), "a list of names", f"{SECTION}/order")
    order = tuple(_expect(v, (str,), "a node name", f"{SECTION}/order/{i}") for i, v in enumerate(names))
    try:
        net = LoihiNetwork(dt_s=float(net_dt), inputs=inputs, neurons=neurons, connections=conns, outputs=outputs,
                           method=method, order=order)  # fmt: skip
        check_network_graph(net, model.graph)
    except EdgeSNNError as exc:
        raise BundleValidationError(exc.message, path=_section_path(exc, SECTION)) from exc
    return net
