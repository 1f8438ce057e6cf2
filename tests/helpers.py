"""Factories and comparisons shared by the test modules."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import struct
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

from edgesnn.graph import (
    IF,
    LI,
    LIF,
    AdaptiveLIF,
    Affine,
    AvgPool2d,
    Conv1d,
    Conv2d,
    CubaLI,
    CubaLIF,
    Delay,
    Flatten,
    Graph,
    Input,
    Integrator,
    Linear,
    Node,
    Onnx,
    Output,
    Scale,
    SumPool2d,
    Threshold,
    ThresholdUnit,
)
from edgesnn.graph.attention import SlidingWindowAttention
from edgesnn.graph.plastic_attention import PlasticAttention
from edgesnn.graph.transformer import GELU, LayerNorm, PositionEmbedding, ReLU, TokenEmbedding
from edgesnn.model import Model

# =============================================================================
# bundle factories
#
# Small, deterministic models and nodes of every type, plus tools to compare
# models field by field and to corrupt a bundle's zip on purpose.
# =============================================================================

Shape = tuple[int, ...]


def tiny_onnx_model(n: int = 4) -> bytes:
    """A real ONNX model ``y = relu(x)`` with input ``x`` (batch, n) and output ``y``; needs the ``onnx`` package."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    # IR version 8 / opset 13 load in every onnxruntime the project supports.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _pos(rng: np.random.Generator, shape: Shape, lo: float, hi: float) -> np.ndarray:
    return rng.uniform(lo, hi, shape).astype(np.float32)


def _neuron(cls: type[Node], rng: np.random.Generator, shape: int | Shape, **options: str) -> Node:
    shape = (shape,) if isinstance(shape, int) else shape
    # Per-neuron values that differ from every default, so a lost field shows up.
    ranges = {
        "tau_mem_s": (5e-3, 20e-3), "tau_syn_s": (2e-3, 8e-3), "tau_adapt_s": (50e-3, 200e-3), "r": (0.5, 2.0),
        "v_leak": (-0.1, 0.1), "v_threshold": (0.8, 1.2), "v_reset": (-0.2, 0.0), "w_in": (0.5, 1.5),
        "a_coupling": (0.0, 0.5), "b_spike": (0.0, 0.3),
    }  # fmt: skip
    params = {k: _pos(rng, shape, lo, hi) for k, (lo, hi) in ranges.items() if k in cls.array_fields()}
    return cls(**params, **options)


def _onnx_node(rng: np.random.Generator) -> tuple[Shape, Node]:
    return (4,), Onnx(tiny_onnx_model(4), input_shape=(4,), out_shape=(4,), input_name="x", output_name="y")


# Each builder returns (input shape, node) for a graph Input -> node -> Output.
_NODE_BUILDERS: dict[str, Callable[[np.random.Generator], tuple[Shape, Node]]] = {
    "Input": lambda rng: ((3, 2), Input((3, 2), unit="spikes")),
    "Output": lambda rng: ((5,), Output((5,), unit="V")),
    "Affine": lambda rng: ((3,), Affine(rng.standard_normal((4, 3)), rng.standard_normal(4))),
    "Linear": lambda rng: ((3,), Linear(rng.standard_normal((4, 3)))),
    "Scale": lambda rng: ((4,), Scale(rng.standard_normal(4))),
    "Threshold": lambda rng: ((4,), Threshold(rng.standard_normal(4))),
    "Delay": lambda rng: ((4,), Delay(0.003)),
    "Conv1d": lambda rng: ((2, 8), Conv1d(rng.standard_normal((4, 1, 3)), rng.standard_normal(4), 2, 1, 1, 2)),
    "Conv2d": lambda rng: (
        (2, 6, 6),
        Conv2d(rng.standard_normal((4, 1, 3, 3)), rng.standard_normal(4), (2, 1), (1, 0), (1, 2), 2),
    ),
    "SumPool2d": lambda rng: ((2, 4, 4), SumPool2d((2, 2), (1, 2), (1, 0))),
    "AvgPool2d": lambda rng: ((2, 4, 4), AvgPool2d((3, 2), (1, 1), (1, 1))),
    "Flatten": lambda rng: ((2, 3, 4), Flatten(1, 2)),
    "Integrator": lambda rng: ((4,), _neuron(Integrator, rng, 4)),
    "IF": lambda rng: ((4,), _neuron(IF, rng, 4, reset_mode="subtract", reset_timing="next_step")),
    "LI": lambda rng: ((4,), _neuron(LI, rng, 4)),
    "LIF": lambda rng: ((4,), _neuron(LIF, rng, 4, reset_mode="subtract", reset_timing="next_step")),
    "CubaLI": lambda rng: ((4,), _neuron(CubaLI, rng, 4)),
    "CubaLIF": lambda rng: ((4,), _neuron(CubaLIF, rng, 4, reset_mode="subtract")),
    "AdaptiveLIF": lambda rng: ((4,), _neuron(AdaptiveLIF, rng, 4, reset_timing="next_step")),
    "Onnx": _onnx_node,
    "ThresholdUnit": lambda rng: (
        (6,),
        ThresholdUnit(rng.standard_normal(6), (rng.random(6) < 0.5).astype(np.float32), "kwta", 2, 0.5, 7),
    ),
    "TokenEmbedding": lambda rng: ((1,), TokenEmbedding(rng.standard_normal((5, 4)))),
    "PositionEmbedding": lambda rng: ((4,), PositionEmbedding(rng.standard_normal((6, 4)))),
    "LayerNorm": lambda rng: ((4,), LayerNorm(rng.standard_normal(4), rng.standard_normal(4), 1e-3)),
    "GELU": lambda rng: ((4,), GELU()),
    "ReLU": lambda rng: ((4,), ReLU()),
    "SlidingWindowAttention": lambda rng: ((4,), _attention_node(rng)),
    "PlasticAttention": lambda rng: ((4,), PlasticAttention(
        rng.standard_normal((12, 4)), rng.standard_normal(12), rng.standard_normal((4, 4)), rng.standard_normal(4),
        rng.standard_normal(4), 0.3, num_heads=2, slots=3, score_saturation=1.5, weight_bits=6, frac_bits=3)),
}  # fmt: skip


def _attention_node(rng: np.random.Generator) -> Node:
    # Every gain-cell field off its default, so a field the bundle loses shows up.
    per_head = {f"{k}_{p}": rng.uniform(0.5, 1.5, 2) for k in ("q", "k", "v", "out") for p in ("scale", "offset")}
    return SlidingWindowAttention(
        rng.standard_normal((12, 4)), rng.standard_normal(12), rng.standard_normal((4, 4)), rng.standard_normal(4),
        num_heads=2, window=3, **per_head, q_levels=8, q_max=0.8, kv_levels=4, kv_max_v=0.7, out_levels=16,
        out_max=0.9, score_saturation=60.0, out_saturation=30.0, decay_per_step=1e-3, mac="linear",
        mac_coefficients=rng.standard_normal(6), offset_v=0.4, input_v=0.8, linear_gain=18.0, array_width=2,
    )  # fmt: skip


def mock_node_types() -> tuple[str, ...]:
    """Node type names the factories can build (a test checks this covers NODE_TYPES)."""
    return tuple(_NODE_BUILDERS)


def mock_node_graph(type_name: str, *, seed: int = 0) -> Graph:
    """A graph ``Input -> <one node of type_name> -> Output`` with non-default parameters."""
    rng = np.random.default_rng(seed)
    in_shape, node = _NODE_BUILDERS[type_name](rng)
    if isinstance(node, Input):
        return Graph({"node": node, "out": Output(node.shape)}, [("node", "out")])
    src = Input(in_shape, unit="spikes")
    if isinstance(node, Output):
        return Graph({"in": src, "node": node}, [("in", "node")])
    out_shape = node.output_shape(in_shape)
    return Graph({"in": src, "node": node, "out": Output(out_shape, unit="a.u.")}, [("in", "node"), ("node", "out")])


def mock_all_nodes_graph(*, include_onnx: bool = False, seed: int = 0) -> Graph:
    """One graph holding a branch ``in_<type> -> <type> -> out_<type>`` for every node type."""
    nodes: dict[str, Node] = {}
    edges: list[tuple[str, str]] = []
    for i, type_name in enumerate(_NODE_BUILDERS):
        if type_name == "Onnx" and not include_onnx:
            continue
        g = mock_node_graph(type_name, seed=seed + i)
        rename = {n: f"{n}_{type_name.lower()}" for n in g.nodes}
        nodes.update({rename[n]: node for n, node in g.nodes.items()})
        edges.extend((rename[a], rename[b]) for a, b in g.edges)
    return Graph(nodes, edges, metadata={"purpose": "every node type", "seed": seed})


def mock_model(graph: Graph, **changes: Any) -> Model:
    """Wrap ``graph`` in a Model with non-default settings (labels, learning, producer)."""
    n_out = int(np.prod(graph.shape(graph.outputs[0])))
    # A valid learning configuration (edgesnn.learn checks it when a session opens) on the first spiking node.
    spiking = [name for name, node in graph.nodes.items() if node.spiking]
    learning = {"rule": "three-factor", "version": 1, "feature_node": spiking[0], "learning_rate": 0.01,
                "trace_tau_s": 0.05, "weight_bits": 8} if spiking else None  # fmt: skip
    settings: dict[str, Any] = {
        "dt_s": 0.5e-3,
        "method": "euler",
        "labels": tuple(f"class_{i}" for i in range(n_out)),
        "learning": learning,
        "producer": {"framework": "tests", "profile": "nir", "notes": {"seed": 0}},
    }
    settings.update(changes)
    return Model(graph, **settings)


def mock_rnn_model(*, n_in: int = 6, n_hidden: int = 5, n_out: int = 3, seed: int = 0) -> Model:
    """``in -> fc1 -> lif1 (recurrent through rec) -> fc2 -> readout (LI) -> out``."""
    rng = np.random.default_rng(seed)
    nodes: dict[str, Node] = {
        "in": Input((n_in,), unit="spikes"),
        "fc1": Affine(rng.standard_normal((n_hidden, n_in)), rng.standard_normal(n_hidden)),
        "lif1": _neuron(LIF, rng, n_hidden, reset_mode="subtract", reset_timing="next_step"),
        "rec": Linear(0.1 * rng.standard_normal((n_hidden, n_hidden))),
        "fc2": Affine(rng.standard_normal((n_out, n_hidden)), np.zeros(n_out)),
        "readout": _neuron(LI, rng, n_out),
        "out": Output((n_out,), unit="V"),
    }
    edges = [("in", "fc1"), ("fc1", "lif1"), ("lif1", "rec"), ("rec", "lif1"), ("lif1", "fc2"), ("fc2", "readout"),
             ("readout", "out")]  # fmt: skip
    graph = Graph(nodes, edges, metadata={"name": "rnn", "trained_epochs": 3})
    return mock_model(graph, labels=tuple(f"word_{i}" for i in range(n_out)))


def mock_conv_model(*, channels: int = 2, size: int = 8, seed: int = 0) -> Model:
    """``in (C, H, W) -> conv -> CubaLIF -> sum pool -> flatten -> fc -> LI -> out (10,)``."""
    rng = np.random.default_rng(seed)
    conv = Conv2d(rng.standard_normal((4, channels, 3, 3)), None, 1, 1)
    pooled = (4, size // 2, size // 2)
    nodes: dict[str, Node] = {
        "in": Input((channels, size, size), unit="events"),
        "conv": conv,
        "lif1": _neuron(CubaLIF, rng, (4, size, size)),
        "pool": SumPool2d(2),
        "flat": Flatten(),
        "fc": Affine(rng.standard_normal((10, int(np.prod(pooled)))), rng.standard_normal(10)),
        "readout": _neuron(LI, rng, 10),
        "out": Output((10,)),
    }
    order = list(nodes)
    graph = Graph(nodes, list(zip(order[:-1], order[1:], strict=True)), metadata={"name": "conv"})
    return mock_model(graph)


def assert_nodes_equal(a: Node, b: Node, where: str = "") -> None:
    """Every dataclass field equal: arrays by value and dtype, the rest by ``==``."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray) and x.dtype == y.dtype, f"{where}/{f.name}: dtype"
            assert np.array_equal(x, y), f"{where}/{f.name}: values differ"
        else:
            assert x == y and type(x) is type(y), f"{where}/{f.name}: {x!r} != {y!r}"


def assert_graphs_equal(a: Graph, b: Graph) -> None:
    """Same node names in the same order, equal nodes, edges and metadata."""
    assert list(a.nodes) == list(b.nodes)
    for name in a.nodes:
        assert_nodes_equal(a.nodes[name], b.nodes[name], name)
    assert a.edges == b.edges
    assert a.metadata == b.metadata


def assert_models_equal(a: Model, b: Model, *, producer: bool = True) -> None:
    """Graph, dt, method, labels and learning equal; ``producer`` compares producer dicts too."""
    assert_graphs_equal(a.graph, b.graph)
    assert (a.dt_s, a.method, a.adapt_method, a.labels, a.learning) == (
        b.dt_s,
        b.method,
        b.adapt_method,
        b.labels,
        b.learning,
    )
    if producer:
        assert a.producer == b.producer


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as .npy bytes in its own dtype (to craft wrong-dtype members)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=array.dtype.hasobject)
    return buf.getvalue()


def bundle_members(data: bytes) -> dict[str, bytes]:
    """All members of a bundle's zip, by name, in zip order."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def read_manifest(data: bytes) -> dict[str, Any]:
    """The decoded ``manifest.json`` of a bundle."""
    return json.loads(bundle_members(data)["manifest.json"])


def edit_bundle(
    data: bytes,
    *,
    members: dict[str, bytes | None] | None = None,
    manifest: Callable[[dict[str, Any]], None] | None = None,
    rehash: bool = True,
    raw_manifest: bytes | None = None,
) -> bytes:
    """Rebuild a bundle's zip with members replaced (``None`` deletes) and the manifest edited in place.

    ``rehash`` records the new members' sha256 (and part size) in the manifest, so
    only the deliberate inconsistency remains; ``raw_manifest`` replaces the
    manifest bytes verbatim.
    """
    contents = bundle_members(data)
    doc = json.loads(contents["manifest.json"])
    for name, new in (members or {}).items():
        if new is None:
            contents.pop(name)
            continue
        if name == "manifest.json":
            raise ValueError("edit the manifest with manifest= or raw_manifest=")
        contents[name] = new
        if rehash:
            index = doc["tensors"] if name in doc["tensors"] else doc["parts"]
            index[name]["sha256"] = hashlib.sha256(new).hexdigest()
            if "size" in index[name]:
                index[name]["size"] = len(new)
    if manifest is not None:
        manifest(doc)
    if "manifest.json" in contents:
        contents["manifest.json"] = raw_manifest if raw_manifest is not None else json.dumps(doc).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in contents.items():
            zf.writestr(name, content)
    return buf.getvalue()


def patch_zip_entry(data: bytes, member: str, *, method: int | None = None, flags: int | None = None) -> bytes:
    """Set a member's compression method or OR in flag bits, in its local header and its central directory entry.

    What another zip tool (or an attacker) writes: bzip2 or LZMA members, the encryption bit.
    """
    out = bytearray(data)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    places = [(info.header_offset, 6, 8)]  # local header: flags at +6, method at +8
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        (name_len,) = struct.unpack_from("<H", data, at + 28)
        if data[at + 46 : at + 46 + name_len] == member.encode():
            places.append((at, 8, 10))  # central entry: flags at +8, method at +10
        at = data.find(b"PK\x01\x02", at + 1)
    for at, flag_at, method_at in places:
        if method is not None:
            struct.pack_into("<H", out, at + method_at, method)
        if flags is not None:
            (old,) = struct.unpack_from("<H", out, at + flag_at)
            struct.pack_into("<H", out, at + flag_at, old | flags)
    return bytes(out)
