"""Reading and validating a .esnn bundle.

Checks run from the outside in: the zip container (every entry's name, method,
offset and size, against :mod:`edgesnn.limits`), the manifest's version and
types, each referenced member (presence, size, .npy header, sha256), each
node's parameters, the graph's structure, the model's settings (step, labels,
learning), and finally the declared inputs and outputs against what the graph
computes. Whatever a damaged or hostile file makes go wrong ends as an
:class:`~edgesnn.errors.EdgeSNNError` naming the member or field.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import zipfile
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from edgesnn import limits
from edgesnn.bundle._files import Target, display_name, open_source
from edgesnn.bundle._manifest import MANIFEST_NAME, Manifest, attachment_member, decode_json, parse_manifest
from edgesnn.bundle._members import read_part, read_tensor
from edgesnn.bundle._nodes import build_node
from edgesnn.bundle._zip import check_entries, open_zip, read_bytes
from edgesnn.errors import BundleFormatError, BundleValidationError, EdgeSNNError, LimitError
from edgesnn.graph import Graph
from edgesnn.graph._node import prefixed
from edgesnn.model import Model, TensorSpec

log = logging.getLogger("edgesnn.bundle")


def read_bundle(source: Target) -> Model:
    """Read and validate a .esnn bundle from a path or an open binary file."""
    name = display_name(source)
    with open_source(source) as f, _open(f, name) as zf:
        model = _read(zf)
    log.debug("read bundle %s: %d nodes", name, len(model.graph.nodes))
    return model


def read_attachment(source: Target, name: str) -> bytes:
    """The bytes of attachment ``name`` (see ``write_bundle``), checked against the manifest's size and sha256.

    Raises :class:`BundleFormatError` naming ``attachments/<name>`` when the bundle has no such
    attachment, :class:`BundleIntegrityError` when its bytes are corrupt.
    """
    member = attachment_member(name)
    with open_source(source) as f, _open(f, display_name(source)) as zf:
        m = read_manifest(zf)
        if member not in m.parts:
            raise BundleFormatError("the bundle has no such attachment (not listed in the parts index)", path=member)
        return read_part(zf, member, m.parts[member])


@contextlib.contextmanager
def _open(f: IO[bytes], name: str) -> Iterator[zipfile.ZipFile]:
    # Every entry is checked (names, methods, offsets, sizes) before any member is read.
    zf = open_zip(f, name)
    with zf:
        check_entries(zf, name, sizes={MANIFEST_NAME: "manifest_bytes"})
        yield zf


def read_manifest(zf: zipfile.ZipFile) -> Manifest:
    """Read, decode and type-check ``manifest.json`` of an open, checked bundle."""
    try:
        info = zf.getinfo(MANIFEST_NAME)
    except KeyError:
        raise BundleFormatError("member is missing (is this a .esnn bundle?)", path=MANIFEST_NAME) from None
    raw, _digest = read_bytes(zf, info)
    return parse_manifest(decode_json(bytes(raw)))


def _read(zf: zipfile.ZipFile) -> Model:
    m = read_manifest(zf)

    def load_tensor(member: str, where: str) -> np.ndarray:
        if member not in m.tensors:
            raise BundleFormatError(f"refers to {member}, which the tensors index does not list", path=where)
        return read_tensor(zf, member, m.tensors[member])

    def load_part(member: str, where: str) -> bytes:
        if member not in m.parts:
            raise BundleFormatError(f"refers to {member}, which the parts index does not list", path=where)
        return read_part(zf, member, m.parts[member])

    limits.current().check("graph_nodes", len(m.nodes), "a count of nodes", path="graph/nodes")
    nodes = {name: build_node(name, entry, load_tensor, load_part) for name, entry in m.nodes.items()}
    try:
        graph = Graph(nodes, m.edges, m.metadata)
    except EdgeSNNError as exc:
        raise prefixed(exc, "graph") from exc
    model = _model(graph, m)
    _check_specs("inputs", m.inputs, model.inputs)
    _check_specs("outputs", m.outputs, model.outputs)
    if model.learning is not None:
        _check_learning(model)
    if m.loihi is not None:
        from edgesnn.loihi.serialize import read_network  # only models with an integer network need it

        model = dataclasses.replace(model, loihi=read_network(m.loihi, load_tensor, model))
    return model


def _model(graph: Graph, m: Manifest) -> Model:
    """The Model of a manifest's settings, its errors placed under ``model/`` (``producer/`` for the producer)."""
    try:
        dt_s = float(m.dt_s)
    except OverflowError:
        raise BundleValidationError(f"expected a step > 0 s, got {m.dt_s}", path="model/dt_s") from None
    try:
        return Model(graph, dt_s, m.method, m.labels, m.learning, m.producer, m.adapt_method, m.initial_state)
    except EdgeSNNError as exc:
        where = exc.path if (exc.path or "").startswith("producer") else f"model/{exc.path or ''}".rstrip("/")
        if isinstance(exc, LimitError):
            raise LimitError(exc.message, limit=exc.limit, value=exc.value, path=where) from exc
        raise BundleValidationError(exc.message, path=where) from exc


def _check_learning(model: Model) -> None:
    # A configuration a session would refuse is refused now, while the file is being read.
    from edgesnn.learn.config import learning_config

    try:
        learning_config(model)
    except EdgeSNNError as exc:
        raise BundleValidationError(exc.message, path=f"model/{exc.path or 'learning'}") from exc


def _check_specs(section: str, declared: tuple[dict[str, Any], ...], actual: list[TensorSpec]) -> None:
    names = [d["name"] for d in declared]
    want = [s.name for s in actual]
    if names != want:
        raise BundleValidationError(f"expected {want} (the graph's {section}), got {names}", path=section)
    for i, (d, spec) in enumerate(zip(declared, actual, strict=True)):
        for field in ("shape", "dtype", "unit"):
            if d[field] != getattr(spec, field):
                raise BundleValidationError(
                    f"expected {getattr(spec, field)!r} (graph node {spec.name}), got {d[field]!r}",
                    path=f"{section}/{i}/{field}",
                )
