"""The mapping between a node and its manifest entry, both ways.

An entry is ``node.to_dict()`` with arrays replaced by ``{"tensor": member}``
and bytes (ONNX models) by ``{"part": member}``; reading reverses that and
hands the dict to ``NODE_TYPES[type].from_dict``, whose checks (shapes,
finiteness, options) then speak for the bundle under ``graph/nodes/<name>/``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from edgesnn.bundle._manifest import jsonable, part_member, tensor_member
from edgesnn.errors import BundleFormatError, BundleValidationError, EdgeSNNError, LimitError
from edgesnn.graph import NODE_TYPES, Node
from edgesnn.graph._node import prefixed

#: Loads a referenced member; arguments are the member name and the manifest path referring to it.
Loader = Callable[[str, str], Any]


def node_entry(name: str, node: Node) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, bytes]]:
    """Return the manifest entry of ``node`` plus the tensors and parts it refers to, by member name."""
    data = node.to_dict()
    entry: dict[str, Any] = {"type": data.pop("type")}
    tensors: dict[str, np.ndarray] = {}
    parts: dict[str, bytes] = {}
    arrays = type(node).array_fields()
    for field, value in data.items():
        if field in arrays and value is not None:
            member = tensor_member(name, field)
            tensors[member] = value
            entry[field] = {"tensor": member}
        elif isinstance(value, bytes):
            # Onnx.model is the only bytes field; one part per node keeps member names readable.
            member = part_member(name)
            parts[member] = value
            entry[field] = {"part": member}
        else:
            entry[field] = jsonable(value, f"graph/nodes/{name}/{field}")
    return entry, tensors, parts


def _reference(value: Any) -> tuple[str, str] | None:
    if isinstance(value, dict) and len(value) == 1:
        ((kind, member),) = value.items()
        if kind in ("tensor", "part") and isinstance(member, str):
            return kind, member
    return None


def build_node(name: str, entry: dict[str, Any], load_tensor: Loader, load_part: Loader) -> Node:
    """Build node ``name`` from its manifest entry, loading the members it refers to."""
    path = f"graph/nodes/{name}"
    type_name = entry["type"]
    cls = NODE_TYPES.get(type_name)
    if cls is None:
        raise BundleValidationError(
            f"unknown node type {type_name!r}; known types: {', '.join(sorted(NODE_TYPES))}", path=f"{path}/type"
        )
    known = [f.name for f in dataclasses.fields(cls)]
    arrays = cls.array_fields()
    data: dict[str, Any] = {"type": type_name}
    members: dict[str, str] = {}
    for field, value in entry.items():
        if field == "type":
            continue
        where = f"{path}/{field}"
        if field not in known:
            raise BundleValidationError(f"unknown field for {type_name}; known fields: {', '.join(known)}", path=where)
        ref = _reference(value)
        if field in arrays:
            if value is not None and (ref is None or ref[0] != "tensor"):
                raise BundleFormatError(
                    f'expected {{"tensor": member}} or null, got {type(value).__name__}', path=where
                )
            data[field] = None if ref is None else load_tensor(ref[1], where)
        elif ref is not None and ref[0] == "part":
            data[field] = load_part(ref[1], where)
        elif isinstance(value, dict):
            raise BundleFormatError("expected a number, string, list or null, got an object", path=where)
        else:
            data[field] = value
        if ref is not None:
            members[field] = ref[1]
    try:
        return cls.from_dict(data)
    except LimitError as exc:  # stays a LimitError (exit 8, RESOURCE_EXHAUSTED), placed under the node
        raise prefixed(exc, path) from exc
    except EdgeSNNError as exc:
        field = (exc.path or "").split("/")[0]
        hint = f" (in {members[field]})" if field in members else ""
        where = f"{path}/{exc.path}" if exc.path else path
        raise BundleValidationError(f"{exc.message}{hint}", path=where) from exc
    except (TypeError, ValueError, OverflowError) as exc:
        raise BundleValidationError(f"cannot build {type_name}: {exc}", path=path) from exc
