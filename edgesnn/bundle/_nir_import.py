"""NIR graph -> edgesnn Model: flatten subgraphs, map nodes, infer shapes."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from edgesnn.bundle import _nir_meta, _nir_profiles
from edgesnn.bundle._nir_profiles import NEURON_KINDS, Options, Profile
from edgesnn.errors import EdgeSNNError, LimitError, NIRImportError
from edgesnn.graph import (
    Affine,
    AvgPool2d,
    Conv1d,
    Conv2d,
    Delay,
    Flatten,
    Graph,
    Input,
    Linear,
    Output,
    Scale,
    SumPool2d,
    Threshold,
)
from edgesnn.graph._node import Node, check_elements, prefixed
from edgesnn.model import Model
from edgesnn.neurons import legacy_method

log = logging.getLogger("edgesnn.bundle.nir")

#: NIR parameter fields of each neuron type, as the NIR dataclasses name them.
_NEURON_FIELDS = {
    "I": ("r",),
    "IF": ("r", "v_threshold", "v_reset"),
    "LI": ("tau", "r", "v_leak"),
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
}
_NEURON_DEFAULTS = {"v_reset": 0.0, "w_in": 1.0}


# -- flattening ------------------------------------------------------------------


def flatten(graph: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Inline nested NIRGraphs as ``outer.inner`` nodes; drop their Input/Output."""
    import nir

    nodes, edges, virtual = _flatten(graph, "", nir)
    for v in virtual:
        preds = [a for a, b in edges if b == v]
        succs = [b for a, b in edges if a == v]
        edges = [e for e in edges if v not in e]
        for a in preds:
            for b in succs:
                if (a, b) in edges:
                    raise NIRImportError(f"inlining subgraph port {v} duplicates edge {a} -> {b}", path=f"nodes/{v}")
                edges.append((a, b))
        del nodes[v]
    return nodes, edges


def _flatten(graph: Any, prefix: str, nir: Any) -> tuple[dict[str, Any], list[tuple[str, str]], list[str]]:
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    virtual: list[str] = []
    ports: dict[str, tuple[list[str], list[str]]] = {}
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges, sub_virtual = _flatten(node, f"{full}.", nir)
            nodes.update(sub_nodes)
            edges += sub_edges
            ins = [f"{full}.{k}" for k, v in node.nodes.items() if isinstance(v, nir.Input)]
            outs = [f"{full}.{k}" for k, v in node.nodes.items() if isinstance(v, nir.Output)]
            ports[full] = (ins, outs)
            virtual += sub_virtual + ins + outs
        else:
            nodes[full] = node

    def resolve(end: Any, i: int, role: str) -> str:
        full = f"{prefix}{end if isinstance(end, str) else bytes(end).decode()}"
        if full in ports:
            ins, outs = ports[full]
            candidates = outs if role == "source" else ins
            if len(candidates) != 1:
                ports_word = "outputs" if role == "source" else "inputs"
                raise NIRImportError(
                    f"edge {role} {full} is a subgraph with {len(candidates)} {ports_word};"
                    " name the port (e.g. 'sub.input')",
                    path=f"{prefix}edges/{i}",
                )
            return candidates[0]
        if full not in nodes:
            raise NIRImportError(f"edge {role} {full!r} is not a node of the graph", path=f"{prefix}edges/{i}")
        return full

    for i, (a, b) in enumerate(graph.edges):
        edges.append((resolve(a, i, "source"), resolve(b, i, "target")))
    return nodes, edges, virtual


# -- node mapping ----------------------------------------------------------------


def _ints(value: Any, name: str, node_name: str) -> tuple[int, ...]:
    try:
        arr = np.asarray(value).reshape(-1)
        out = tuple(int(v) for v in arr)
    except (TypeError, ValueError) as exc:
        raise NIRImportError(f"expected integers, got {value!r}", path=f"nodes/{node_name}/{name}") from exc
    if arr.size and not np.all(np.asarray(value, dtype=np.float64).reshape(-1) == np.asarray(out, dtype=np.float64)):
        raise NIRImportError(f"expected integers, got {value!r}", path=f"nodes/{node_name}/{name}")
    return out


def _padding(node: Any, name: str, ndim: int) -> tuple[int, ...]:
    """Resolve NIR/PyTorch padding ('same', 'valid' or ints) to symmetric ints."""
    pad = node.padding
    if isinstance(pad, bytes):
        pad = pad.decode()
    if isinstance(pad, np.ndarray) and pad.dtype.kind in "SUO" and pad.size == 1:
        pad = pad.reshape(-1)[0]
        pad = pad.decode() if isinstance(pad, bytes) else str(pad)
    if isinstance(pad, str):
        if pad == "valid":
            return (0,) * ndim
        if pad != "same":
            raise NIRImportError(f"expected 'same', 'valid' or ints, got {pad!r}", path=f"nodes/{name}/padding")
        stride = _ints(node.stride, "stride", name)
        if any(s != 1 for s in stride):
            raise NIRImportError(f"'same' padding needs stride 1, got {stride}", path=f"nodes/{name}/padding")
        kernel = node.weight.shape[2:]
        dilation = _ints(node.dilation, "dilation", name) * (ndim if np.size(node.dilation) == 1 else 1)
        totals = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
        if any(t % 2 for t in totals):
            raise NIRImportError(
                f"'same' padding with kernel {tuple(kernel)} pads one side more than the other;"
                " edgesnn pads symmetrically",
                path=f"nodes/{name}/padding",
            )
        return tuple(t // 2 for t in totals)
    ints = _ints(pad, "padding", name)
    return ints * ndim if len(ints) == 1 else ints


def _neuron_params(kind: str, node: Any, name: str, in_shape: tuple[int, ...] | None) -> dict[str, np.ndarray]:
    raw = {}
    for field in _NEURON_FIELDS[kind]:
        value = getattr(node, field, None)
        raw[field] = np.asarray(_NEURON_DEFAULTS[field] if value is None else value, dtype=np.float64)
    try:
        shape = np.broadcast_shapes(*(a.shape for a in raw.values()), *(() if in_shape is None else (in_shape,)))
    except ValueError as exc:
        shapes = ", ".join(f"{k}{v.shape}" for k, v in raw.items())
        raise NIRImportError(
            f"parameter shapes do not match the input {in_shape}: {shapes}", path=f"nodes/{name}"
        ) from exc
    try:  # before broadcasting: (n, 1) and (1, n) parameters would allocate n * n values
        check_elements(shape, "shape")
    except LimitError as exc:
        raise prefixed(exc, f"nodes/{name}") from exc
    out = {}
    for field, arr in raw.items():
        if not np.all(np.isfinite(arr)):
            raise NIRImportError(
                f"expected finite values, got {arr.reshape(-1)[~np.isfinite(arr.reshape(-1))][0]}"
                + (" (an infinite time constant: use an I or IF node)" if field.startswith("tau") else ""),
                path=f"nodes/{name}/{field}",
            )
        out[field] = np.broadcast_to(arr, shape).copy()
    return out


def neuron_kind(node: Any) -> str | None:
    """The NIR class name if ``node`` is a neuron node, else None."""
    kind = type(node).__name__
    return kind if kind in NEURON_KINDS else None


def map_node(name: str, node: Any, in_shape: tuple[int, ...] | None, profile: Profile, options: Options) -> Node:
    """Build the edgesnn node for one (non-graph) NIR node."""
    kind = type(node).__name__
    if kind in NEURON_KINDS:
        params = _neuron_params(kind, node, name, in_shape)
        return _nir_profiles.build_neuron(profile, kind, params, options)
    if kind == "Input":
        # in_shape: the shape the nodes it feeds agree on, when they drop its leading axes (see _input_shape)
        return Input(shape=in_shape or _ints(node.input_type["input"], "shape", name))
    if kind == "Output":
        return Output(shape=in_shape)  # NIR files often leave it undefined; the edge decides
    if kind in ("Affine", "Linear"):
        w = np.asarray(node.weight)
        if w.ndim != 2:
            raise NIRImportError(f"expected a 2-d weight (out, in), got shape {w.shape}", path=f"nodes/{name}/weight")
        if kind == "Linear":
            return Linear(weight=w)
        return Affine(weight=w, bias=np.zeros(w.shape[0]) if node.bias is None else node.bias)
    if kind == "Scale":
        return Scale(scale=node.scale)
    if kind == "Threshold":
        return Threshold(threshold=node.threshold)
    if kind == "Delay":
        return Delay(delay_s=np.asarray(node.delay, dtype=np.float64))
    if kind in ("Conv1d", "Conv2d"):
        nd = 1 if kind == "Conv1d" else 2
        w = np.asarray(node.weight)
        bias = None if node.bias is None else np.asarray(node.bias)
        args = dict(
            weight=w,
            bias=bias,
            stride=_ints(node.stride, "stride", name),
            padding=_padding(node, name, nd),
            dilation=_ints(node.dilation, "dilation", name),
            groups=int(np.asarray(node.groups).reshape(-1)[0]),
        )
        return Conv1d(**args) if nd == 1 else Conv2d(**args)
    if kind in ("SumPool2d", "AvgPool2d"):
        cls = SumPool2d if kind == "SumPool2d" else AvgPool2d
        return cls(
            kernel_size=_ints(node.kernel_size, "kernel_size", name),
            stride=_ints(node.stride, "stride", name),
            padding=_ints(node.padding, "padding", name),
        )
    if kind == "Flatten":
        # NIR shapes have no batch dimension, so start_dim/end_dim index the
        # unbatched shape (nir.ir.utils.calc_flatten_output); exporters that
        # start from torch dims subtract one (snnTorch, Norse).
        return Flatten(start_dim=int(node.start_dim), end_dim=int(node.end_dim))
    if node is None:  # nirtorch-based exporters (Norse) leave None for a layer they cannot write
        raise NIRImportError("the exporter wrote None here: it could not export this layer", path=f"nodes/{name}")
    raise NIRImportError(f"NIR node type {kind} is not supported", path=f"nodes/{name}")


# -- whole graph -------------------------------------------------------------------


def _declared_input(node: Any) -> tuple[int, ...] | None:
    """The input shape a NIR node declares, if it declares a non-empty one."""
    types = getattr(node, "input_type", None)
    shape = types.get("input") if isinstance(types, dict) else None
    if shape is None or np.size(shape) == 0 or np.asarray(shape).dtype.kind not in "iu":
        return None
    return tuple(int(s) for s in np.asarray(shape).reshape(-1))


def _input_shape(name: str, node: Any, nodes: dict[str, Any], edges: list[tuple[str, str]]) -> tuple[int, ...] | None:
    """The Input's shape without leading axes that every node it feeds leaves out, else None.

    nirtorch-based exporters take the Input's shape from the traced sample: Sinabs's keeps the
    sample's time axis, Rockpool's its batch axis, while the nodes fed declare one step of one
    sample. Those nodes' common shape is the only one the graph runs with.
    """
    declared = _ints(node.input_type["input"], "shape", name)
    fed = {_declared_input(nodes[b]) for a, b in edges if a == name}
    if len(fed) != 1 or None in fed:
        return None
    (shape,) = fed
    if not 0 < len(shape) < len(declared) or declared[len(declared) - len(shape) :] != shape:
        return None
    log.info("NIR Input %s declares shape %s, the nodes it feeds %s: using %s", name, declared, shape, shape)
    return shape


def _unbroadcast(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Undo ``np.broadcast_to(x, arr.shape)`` for an ``x`` of ``shape``."""
    lead = arr.ndim - len(shape)
    index = (0,) * lead + tuple(slice(0, 1) if s == 1 else slice(None) for s in shape)
    return np.ascontiguousarray(arr[index]).reshape(shape)


def _restore(node: Node, extras: dict[str, Any]) -> Node:
    """Apply what to_nir kept in the edgesnn record (units, resets, param shapes)."""
    changes: dict[str, Any] = {}
    for key, value in extras.items():
        if key == "param_shape":
            field = "scale" if isinstance(node, Scale) else "threshold"
            changes[field] = _unbroadcast(getattr(node, field), tuple(value))
        elif key in ("unit", "reset_mode", "reset_timing", "threshold_inclusive", "max_spikes_per_step",
                     "min_spike_interval_s"):  # fmt: skip
            changes[key] = value
    return node.replace(**changes) if changes else node


def _used(nodes: dict[str, Node], field: str, default: str) -> str:
    """The reset option the spiking nodes ended up with ('a+b' when they differ)."""
    values = sorted({getattr(n, field) for n in nodes.values() if hasattr(n, field)})
    return "+".join(values) if values else default


def build_model(
    graph: Any,
    *,
    profile: Profile,
    dt_s: float | None,
    method: str | None,
    reset_mode: str | None,
    reset_timing: str | None,
    source: str | None,
    max_spikes_per_step: int | None = None,
    norm_input: bool | None = None,
) -> Model:
    """Convert a NIRGraph to a Model under ``profile`` and the user's overrides."""
    import nir

    record = _nir_meta.loads(getattr(graph, "metadata", None))
    exact = record is not None and profile.name == "nir"
    nir_nodes, edges = flatten(graph)
    if exact:
        order = [n for n in record.get("node_order", []) if n in nir_nodes]
        nir_nodes = {n: nir_nodes[n] for n in order + [n for n in nir_nodes if n not in order]}
        dt_s = record["dt_s"] if dt_s is None else dt_s
        if method is None:
            method = record["method"]
            if record.get("format") == 1:
                method = legacy_method(method, (type(n).__name__ for n in nir_nodes.values()))
    neurons = {}
    for name, node in nir_nodes.items():
        kind = neuron_kind(node)
        if kind is not None:
            neurons[name] = (kind, _neuron_params(kind, node, name, None))
    options = _nir_profiles.resolve_options(
        profile, neurons, dt_s=dt_s, method=method, reset_mode=reset_mode, reset_timing=reset_timing,
        max_spikes_per_step=max_spikes_per_step, norm_input=norm_input,
    )  # fmt: skip
    if profile.rewrite is not None:  # wiring the exporter means differently from NIR (spyx)
        nir_nodes, edges = profile.rewrite(nir_nodes, edges, options)
    built: dict[str, Node] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    pending = list(nir_nodes)
    while pending:
        progress = False
        for name in list(pending):
            node = nir_nodes[name]
            if isinstance(node, nir.Input):
                in_shape = _input_shape(name, node, nir_nodes, edges)
            else:
                known = [shapes[a] for a, b in edges if b == name and a in shapes]
                if not known:
                    continue
                in_shape = known[0]
            try:
                new = map_node(name, node, in_shape, profile, options)
                if exact and name in record.get("nodes", {}):
                    new = _restore(new, record["nodes"][name])
                shapes[name] = new.output_shape(new.shape if isinstance(new, Input) else in_shape)  # type: ignore[attr-defined]
            except NIRImportError:
                raise
            except LimitError as exc:
                raise prefixed(exc, f"nodes/{name}") from exc
            except EdgeSNNError as exc:
                raise NIRImportError(
                    f"{type(node).__name__}: {exc.message}", path=f"nodes/{name}/{exc.path or ''}".rstrip("/")
                ) from exc
            built[name] = new
            pending.remove(name)
            progress = True
        if not progress:
            raise NIRImportError("node is not reachable from any Input node", path=f"nodes/{pending[0]}")
    if profile.finish is not None:  # meanings the exporter's wiring carries beyond NIR's (snntorch)
        built = profile.finish(built, edges, options)
    info = {
        "name": "nir-import",
        "profile": profile.name,
        "dt_s": options.dt_s,
        "method": options.method,
        "reset_mode": _used(built, "reset_mode", options.reset_mode or profile.reset_mode),
        "reset_timing": _used(built, "reset_timing", options.reset_timing or profile.reset_timing),
        "nir_version": getattr(nir, "__version__", ""),
    }
    if options.tau_scale != 1.0:
        info["tau_scale"] = options.tau_scale
    if options.norm_input is not None:
        info["norm_input"] = options.norm_input
    if source is not None:
        # The file's name only: a model written out again must not carry the reading machine's paths.
        info["source"] = os.path.basename(source)
    if exact:
        metadata = dict(record.get("graph_metadata", {}))
        producer = dict(record.get("producer", {}))
        labels, learning = tuple(record.get("labels", ())), record.get("learning")
        adapt = {"adapt_method": record["adapt_method"]} if "adapt_method" in record else {}
        initial_state = record.get("initial_state", "rest")
    else:
        foreign = {k: v for k, v in (getattr(graph, "metadata", None) or {}).items() if k != _nir_meta.KEY}
        metadata = {"nir_import": dict(info), **({"nir_metadata": _nir_meta.plain(foreign)} if foreign else {})}
        producer, labels, learning, adapt = info, (), None, {}
        initial_state = profile.initial_state
    try:
        g = Graph(nodes={n: built[n] for n in nir_nodes}, edges=edges, metadata=metadata)
    except LimitError:
        raise
    except EdgeSNNError as exc:
        raise NIRImportError(exc.message, path=exc.path) from exc
    log.info("imported NIR graph (%d nodes) with profile %s at dt = %g s", len(built), profile.name, options.dt_s)
    return Model(
        g, dt_s=options.dt_s, method=options.method, labels=labels, learning=learning, producer=producer,
        initial_state=initial_state, **adapt,
    )  # fmt: skip
