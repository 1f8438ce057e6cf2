"""The manifest schema: member names, section checks, and the parsed form.

Paths in errors are JSON paths inside ``manifest.json`` (``model/dt_s``,
``graph/nodes/lif1/type``) or member names (``tensors/lif1/tau_mem_s.npy``).
Type errors in the manifest are :class:`BundleFormatError`; a version this
edgesnn cannot read is :class:`UnsupportedVersionError`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgesnn import limits
from edgesnn.bundle import _json
from edgesnn.errors import BundleFormatError, BundleValidationError, UnsupportedVersionError
from edgesnn.neurons import legacy_method

#: Version of the manifest layout this edgesnn writes. Version 2 added ``model/initial_state``
#: and the method names "cascade" and "cascade-euler" for what version 1 called "zoh" and
#: "euler" in models with coupled states; version 1 files are read with that meaning.
SCHEMA_VERSION = 2
#: Versions this edgesnn reads.
READABLE_VERSIONS = (1, 2)

MANIFEST_NAME = "manifest.json"

_SECTIONS = ("schema_version", "producer", "model", "graph", "tensors", "parts", "inputs", "outputs")
#: Sections a version 2 manifest may have: ``loihi``, a model's integer network (edgesnn.loihi.serialize).
_OPTIONAL_SECTIONS = ("loihi",)
_MODEL_KEYS = ("dt_s", "method", "adapt_method", "labels", "learning", "initial_state")
_MODEL_KEYS_V1 = ("dt_s", "method", "adapt_method", "labels", "learning")
_GRAPH_KEYS = ("nodes", "edges", "metadata")
_SPEC_KEYS = ("name", "shape", "dtype", "unit")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def tensor_member(node: str, field: str) -> str:
    """Zip member holding array ``field`` of node ``node``."""
    return f"tensors/{node}/{field}.npy"


def part_member(node: str) -> str:
    """Zip member holding the ONNX bytes of node ``node``."""
    return f"parts/{node}.onnx"


#: Attachment names: a lowercase word with dots, dashes or underscores (``detect.onnx``).
_ATTACHMENT = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def attachment_member(name: str) -> str:
    """Zip member holding attachment ``name``: bytes a model carries beside its graph (a detector's ANN)."""
    if not isinstance(name, str) or not _ATTACHMENT.fullmatch(name):
        raise BundleValidationError(
            f"expected 1-64 characters of a-z, 0-9, '.', '_', '-', got {name!r}", path="attachments"
        )
    return f"attachments/{name}"


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    """Index entry of one ``.npy`` member."""

    dtype: str
    shape: tuple[int, ...]
    sha256: str


@dataclasses.dataclass(frozen=True)
class PartEntry:
    """Index entry of one opaque member (an ONNX model)."""

    sha256: str
    size: int


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A type-checked manifest; node entries are checked later, against their class."""

    schema_version: int
    producer: dict[str, Any]
    dt_s: float | int
    method: str
    adapt_method: str
    labels: tuple[str, ...]
    learning: dict[str, Any] | None
    initial_state: str
    nodes: dict[str, dict[str, Any]]
    edges: tuple[tuple[str, str], ...]
    metadata: dict[str, Any]
    tensors: dict[str, TensorEntry]
    parts: dict[str, PartEntry]
    inputs: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...]
    #: The integer network section, checked by edgesnn.loihi.serialize when the model is built.
    loihi: Any = None


# -- reading ------------------------------------------------------------------
def _describe(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _expect(value: Any, kinds: tuple[type, ...], what: str, path: str) -> Any:
    # bool is an int in Python but never a valid number or size in a manifest.
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        raise BundleFormatError(f"expected {what}, got {_describe(value)}", path=path)
    return value


def _expect_keys(section: Mapping[str, Any], required: tuple[str, ...], path: str) -> None:
    missing = [k for k in required if k not in section]
    if missing:
        raise BundleFormatError("required field is missing", path=f"{path}/{missing[0]}" if path else missing[0])
    unknown = [k for k in section if k not in required]
    if unknown:
        where = f"{path}/{unknown[0]}" if path else unknown[0]
        raise BundleFormatError(f"unknown field; expected only {', '.join(required)}", path=where)


def _shape(value: Any, path: str) -> tuple[int, ...]:
    _expect(value, (list,), "a list of sizes", path)
    limits.current().check("max_rank", len(value), "a rank", path=path)
    for i, v in enumerate(value):
        _expect(v, (int,), "an integer size >= 0", f"{path}/{i}")
        if v < 0:
            raise BundleFormatError(f"expected an integer size >= 0, got {v}", path=f"{path}/{i}")
    return tuple(value)


def _size(value: Any, path: str) -> int:
    _expect(value, (int,), "a size in bytes", path)
    if value < 0:
        raise BundleFormatError(f"expected a size in bytes >= 0, got {value}", path=path)
    # Checked here, before the member is opened: its size decides what reading it allocates.
    limits.current().check("member_bytes", value, "a member", path=path.rpartition("/")[0])
    return value


def _sha256(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise BundleFormatError(f"expected 64 lowercase hex digits, got {_describe(value)}", path=path)
    return value


def decode_json(raw: bytes) -> dict[str, Any]:
    """Parse manifest bytes strictly (see :func:`edgesnn.bundle._json.loads`): the result must be an object."""
    return _expect(_json.loads(raw, MANIFEST_NAME), (dict,), "a JSON object", MANIFEST_NAME)


def check_version(doc: Mapping[str, Any]) -> int:
    """Return the schema version, refusing one this edgesnn cannot read."""
    from edgesnn import __version__

    readable = ", ".join(str(v) for v in READABLE_VERSIONS)
    if "schema_version" not in doc:
        raise BundleFormatError("required field is missing", path="schema_version")
    version = doc["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise UnsupportedVersionError(
            f"expected an integer version, got {_describe(version)}; edgesnn {__version__} reads versions {readable}",
            path="schema_version",
        )
    if version not in READABLE_VERSIONS:
        hint = " (written by a newer edgesnn: upgrade to read it)" if version > max(READABLE_VERSIONS) else ""
        raise UnsupportedVersionError(
            f"bundle has version {version}; edgesnn {__version__} reads versions {readable}{hint}",
            path="schema_version",
        )
    return version


def _io_specs(value: Any, path: str) -> tuple[dict[str, Any], ...]:
    _expect(value, (list,), "a list of {name, shape, dtype, unit}", path)
    specs = []
    for i, spec in enumerate(value):
        where = f"{path}/{i}"
        _expect(spec, (dict,), "an object {name, shape, dtype, unit}", where)
        _expect_keys(spec, _SPEC_KEYS, where)
        for key in ("name", "dtype", "unit"):
            _expect(spec[key], (str,), "a string", f"{where}/{key}")
        specs.append({**spec, "shape": _shape(spec["shape"], f"{where}/shape")})
    return tuple(specs)


def parse_manifest(doc: Mapping[str, Any]) -> Manifest:
    """Type-check every section of a decoded manifest (node fields excepted)."""
    version = check_version(doc)
    optional = _OPTIONAL_SECTIONS if version >= 2 else ()
    _expect_keys({k: v for k, v in doc.items() if k not in optional}, _SECTIONS, "")
    producer = _expect(doc["producer"], (dict,), "an object", "producer")
    model = _expect(doc["model"], (dict,), "an object", "model")
    _expect_keys(model, _MODEL_KEYS if version >= 2 else _MODEL_KEYS_V1, "model")
    dt_s = _expect(model["dt_s"], (int, float), "a number of seconds", "model/dt_s")
    method = _expect(model["method"], (str,), "a string", "model/method")
    adapt_method = _expect(model["adapt_method"], (str,), "a string", "model/adapt_method")
    labels = _expect(model["labels"], (list,), "a list of strings", "model/labels")
    for i, label in enumerate(labels):
        _expect(label, (str,), "a string", f"model/labels/{i}")
    learning = model["learning"]
    if learning is not None:
        _expect(learning, (dict,), "an object or null", "model/learning")
    initial_state = _expect(model.get("initial_state", "rest"), (str,), "a string", "model/initial_state")

    graph = _expect(doc["graph"], (dict,), "an object", "graph")
    _expect_keys(graph, _GRAPH_KEYS, "graph")
    nodes = _expect(graph["nodes"], (dict,), "an object of nodes by name", "graph/nodes")
    for name, entry in nodes.items():
        _expect(entry, (dict,), "an object with a type", f"graph/nodes/{name}")
        if "type" not in entry:
            raise BundleFormatError("required field is missing", path=f"graph/nodes/{name}/type")
        _expect(entry["type"], (str,), "a node type name", f"graph/nodes/{name}/type")
    edges = []
    for i, edge in enumerate(_expect(graph["edges"], (list,), "a list of [source, target]", "graph/edges")):
        if not isinstance(edge, list) or len(edge) != 2 or not all(isinstance(e, str) for e in edge):
            raise BundleFormatError(
                f"expected [source, target] node names, got {_describe(edge)}", path=f"graph/edges/{i}"
            )
        edges.append((edge[0], edge[1]))
    metadata = _expect(graph["metadata"], (dict,), "an object", "graph/metadata")
    if version == 1:
        method = legacy_method(method, (entry["type"] for entry in nodes.values()))

    tensors = {}
    for member, entry in _expect(doc["tensors"], (dict,), "an object of members", "tensors").items():
        _expect(entry, (dict,), "an object {dtype, shape, sha256}", member)
        _expect_keys(entry, ("dtype", "shape", "sha256"), member)
        tensors[member] = TensorEntry(
            dtype=_expect(entry["dtype"], (str,), "a dtype name", f"{member}/dtype"),
            shape=_shape(entry["shape"], f"{member}/shape"),
            sha256=_sha256(entry["sha256"], f"{member}/sha256"),
        )
        # Every tensor is float32: 4 bytes an element, known before the member is opened.
        limits.current().check("member_bytes", 4 * math.prod(tensors[member].shape), "a tensor", path=member)
    parts = {}
    for member, entry in _expect(doc["parts"], (dict,), "an object of members", "parts").items():
        _expect(entry, (dict,), "an object {sha256, size}", member)
        _expect_keys(entry, ("sha256", "size"), member)
        parts[member] = PartEntry(sha256=_sha256(entry["sha256"], f"{member}/sha256"),
                                  size=_size(entry["size"], f"{member}/size"))  # fmt: skip

    return Manifest(
        schema_version=version,
        producer=producer,
        dt_s=dt_s,
        method=method,
        adapt_method=adapt_method,
        labels=tuple(labels),
        learning=learning,
        initial_state=initial_state,
        nodes=nodes,
        edges=tuple(edges),
        metadata=metadata,
        tensors=tensors,
        parts=parts,
        inputs=_io_specs(doc["inputs"], "inputs"),
        outputs=_io_specs(doc["outputs"], "outputs"),
        loihi=doc.get("loihi"),
    )


# -- writing ------------------------------------------------------------------
def jsonable(value: Any, path: str) -> Any:
    """Return ``value`` as plain JSON types (numpy scalars and arrays become lists), naming what cannot be."""
    if isinstance(value, np.generic | np.ndarray):
        value = value.tolist()
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BundleValidationError(f"expected a finite number, got {value}", path=path)
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{path}/{i}") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, v in value.items():
            if not isinstance(key, str):
                raise BundleValidationError(f"expected string keys, got {key!r}", path=path)
            out[key] = jsonable(v, f"{path}/{key}")
        return out
    raise BundleValidationError(
        f"expected a JSON value (number, string, list, dict), got {type(value).__name__}", path=path
    )


def encode_json(doc: Mapping[str, Any]) -> bytes:
    """Serialise a manifest deterministically (same model, same bytes)."""
    return (json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
