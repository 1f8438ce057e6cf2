"""Reading and validating a .esnn bundle.

Checks run from the outside in: the zip container, the manifest's version and
types, each referenced member (presence, size, .npy header, sha256), each
node's parameters, the graph's structure, and finally the declared inputs and
outputs against what the graph computes.
"""

from __future__ import annotations

import dataclasses
import logging
import zipfile
from typing import Any

import numpy as np

from edgesnn.bundle._files import Target, display_name, open_source
from edgesnn.bundle._manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    Manifest,
    attachment_member,
    decode_json,
    parse_manifest,
)
from edgesnn.bundle._members import ZIP_READ_ERRORS, read_part, read_tensor
from edgesnn.bundle._nodes import build_node
from edgesnn.errors import BundleFormatError, BundleValidationError, EdgeSNNError, OptionError
from edgesnn.graph import Graph
from edgesnn.model import Model, TensorSpec

log = logging.getLogger("edgesnn.bundle")


def read_bundle(source: Target) -> Model:
    """Read and validate a .esnn bundle from a path or an open binary file."""
    name = display_name(source)
    with open_source(source) as f:
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, EOFError, ValueError) as exc:
            raise BundleFormatError(
                f"not a readable zip file (truncated or not a .esnn bundle): {exc}", path=name
            ) from exc
        with zf:
            model = _read(zf)
    log.debug("read bundle %s: %d nodes", name, len(model.graph.nodes))
    return model


def read_attachment(source: Target, name: str) -> bytes:
    """The bytes of attachment ``name`` (see ``write_bundle``), checked against the manifest's size and sha256.

    Raises :class:`BundleFormatError` naming ``attachments/<name>`` when the bundle has no such
    attachment, :class:`BundleIntegrityError` when its bytes are corrupt.
    """
    member = attachment_member(name)
    with open_source(source) as f:
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, EOFError, ValueError) as exc:
            raise BundleFormatError(
                f"not a readable zip file (truncated or not a .esnn bundle): {exc}", path=display_name(source)
            ) from exc
        with zf:
            m = read_manifest(zf)
            if member not in m.parts:
                raise BundleFormatError(
                    "the bundle has no such attachment (not listed in the parts index)", path=member
                )
            return read_part(zf, member, m.parts[member])


def read_manifest(zf: zipfile.ZipFile) -> Manifest:
    """Read, decode and type-check ``manifest.json`` of an open bundle."""
    try:
        info = zf.getinfo(MANIFEST_NAME)
    except KeyError:
        raise BundleFormatError("member is missing (is this a .esnn bundle?)", path=MANIFEST_NAME) from None
    if info.file_size > MAX_MANIFEST_BYTES:
        raise BundleFormatError(
            f"is {info.file_size} bytes, more than the {MAX_MANIFEST_BYTES} allowed", path=MANIFEST_NAME
        )
    try:
        raw = zf.read(info)
    except ZIP_READ_ERRORS as exc:
        raise BundleFormatError(f"cannot read member: {exc}", path=MANIFEST_NAME) from exc
    return parse_manifest(decode_json(raw))


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

    nodes = {name: build_node(name, entry, load_tensor, load_part) for name, entry in m.nodes.items()}
    try:
        graph = Graph(nodes, m.edges, m.metadata)
    except EdgeSNNError as exc:
        raise exc.with_prefix("graph") from exc
    try:
        model = Model(graph, float(m.dt_s), m.method, m.labels, m.learning, m.producer, m.adapt_method,
                      m.initial_state)  # fmt: skip
    except OverflowError as exc:
        raise BundleValidationError(f"expected a step > 0 s, got {m.dt_s}", path="model/dt_s") from exc
    except OptionError as exc:
        raise BundleValidationError(exc.message, path=f"model/{exc.path}") from exc
    _check_specs("inputs", m.inputs, model.inputs)
    _check_specs("outputs", m.outputs, model.outputs)
    if m.loihi is not None:
        from edgesnn.loihi.serialize import read_network  # only models with an integer network need it

        model = dataclasses.replace(model, loihi=read_network(m.loihi, load_tensor, model))
    return model


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
