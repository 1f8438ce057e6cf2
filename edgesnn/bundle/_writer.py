"""Writing a model as a .esnn bundle."""

from __future__ import annotations

import logging
import zipfile
import zlib
from collections.abc import Mapping
from typing import IO, Any

from edgesnn.bundle._files import Target, is_path, write_atomic
from edgesnn.bundle._manifest import MANIFEST_NAME, SCHEMA_VERSION, attachment_member, encode_json, jsonable
from edgesnn.bundle._members import TENSOR_DTYPE, encode_tensor, sha256
from edgesnn.bundle._nodes import node_entry
from edgesnn.errors import BundleValidationError, ModelError
from edgesnn.model import Model

log = logging.getLogger("edgesnn.bundle")

#: A fixed timestamp makes the same model give the same bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def producer_record(producer: dict[str, Any]) -> dict[str, Any]:
    """The manifest's producer: this edgesnn as writer, the model's own producer keys kept.

    A model made by another tool keeps that tool's name and version under ``origin``.
    """
    from edgesnn import __version__

    record = {k: v for k, v in producer.items() if k not in ("name", "version")}
    origin = {k: producer[k] for k in ("name", "version") if k in producer}
    if origin and origin.get("name") != "edgesnn" and "origin" not in record:
        record["origin"] = origin
    return {"name": "edgesnn", "version": __version__, **record}


def build_bundle(
    model: Model, attachments: Mapping[str, bytes] | None = None
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Return the manifest and the data members (name -> bytes) of ``model`` and its ``attachments``."""
    if not isinstance(model, Model):
        raise ModelError(f"expected an edgesnn Model, got {type(model).__name__}")
    graph = model.graph
    nodes: dict[str, Any] = {}
    members: dict[str, bytes] = {}
    tensors: dict[str, Any] = {}
    parts: dict[str, Any] = {}
    for name, node in graph.nodes.items():
        entry, node_tensors, node_parts = node_entry(name, node)
        nodes[name] = entry
        for member, array in node_tensors.items():
            data = encode_tensor(array)
            members[member] = data
            tensors[member] = {"dtype": TENSOR_DTYPE.name, "shape": list(array.shape), "sha256": sha256(data)}
        for member, data in node_parts.items():
            members[member] = data
            parts[member] = {"sha256": sha256(data), "size": len(data)}
    for name, data in (attachments or {}).items():
        # Indexed with the ONNX parts (sha256 and size), so the reader checks them the same way.
        member = attachment_member(name)
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise BundleValidationError("expected non-empty bytes", path=member)
        members[member] = bytes(data)
        parts[member] = {"sha256": sha256(members[member]), "size": len(data)}
    loihi = None
    if model.loihi is not None:  # the integer network numerics="loihi" runs as it is (edgesnn.loihi.serialize)
        from edgesnn.loihi.serialize import network_entry

        loihi, loihi_tensors = network_entry(model.loihi, model.dt_s)
        for member, array in loihi_tensors.items():
            data = encode_tensor(array)
            members[member] = data
            tensors[member] = {"dtype": TENSOR_DTYPE.name, "shape": list(array.shape), "sha256": sha256(data)}
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "producer": jsonable(producer_record(model.producer), "producer"),
        "model": {
            "dt_s": model.dt_s,
            "method": model.method,
            "adapt_method": model.adapt_method,
            "labels": list(model.labels),
            "learning": jsonable(model.learning, "model/learning"),
            "initial_state": model.initial_state,
        },
        "graph": {
            "nodes": nodes,
            "edges": [[a, b] for a, b in graph.edges],
            "metadata": jsonable(graph.metadata, "graph/metadata"),
        },
        "tensors": tensors,
        "parts": parts,
        "inputs": [_spec(s) for s in model.inputs],
        "outputs": [_spec(s) for s in model.outputs],
    }
    if loihi is not None:
        manifest["loihi"] = loihi
    return manifest, members


def _spec(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype, "unit": spec.unit}


def _zip_info(member: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(member, _EPOCH)
    info.external_attr = 0o644 << 16  # so that `unzip` makes readable files
    return info


def _write_zip(f: IO[bytes], manifest: dict[str, Any], members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(f, "w") as zf:
        # The manifest goes first so a streaming reader meets the index before the data.
        zf.writestr(_zip_info(MANIFEST_NAME), encode_json(manifest), zipfile.ZIP_DEFLATED)
        for member, data in members.items():
            zf.writestr(_zip_info(member), data, _method(data))


#: Deflate a member only when that saves at least this share of its bytes.
_DEFLATE_SAVING = 0.25


def _method(data: bytes) -> int:
    """Stored for members that barely compress (trained float weights), which also load faster; deflate for
    the rest (per-neuron parameters that repeat one value, sparse or integer arrays)."""
    if len(data) < 4096:
        return zipfile.ZIP_STORED
    return (
        zipfile.ZIP_DEFLATED if len(zlib.compress(data, 1)) < (1 - _DEFLATE_SAVING) * len(data) else zipfile.ZIP_STORED
    )


def write_bundle(model: Model, target: Target, *, attachments: Mapping[str, bytes] | None = None) -> None:
    """Write ``model`` as a .esnn bundle to a path (atomically) or to an open binary file.

    ``attachments`` maps names (``detect.onnx``) to bytes stored as ``attachments/<name>``
    members, hashed in the manifest's parts index; :func:`read_attachment` reads one back.
    """
    manifest, members = build_bundle(model, attachments)
    if is_path(target):
        write_atomic(target, lambda f: _write_zip(f, manifest, members))  # type: ignore[arg-type]
    else:
        _write_zip(target, manifest, members)  # type: ignore[arg-type]
    log.debug("wrote bundle with %d nodes and %d members", len(manifest["graph"]["nodes"]), len(members))
