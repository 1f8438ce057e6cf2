"""A detector as one .esnn bundle: the SNN front's graph, the ONNX part as an attachment, settings in metadata."""

from __future__ import annotations

import dataclasses

from edgesnn.bundle import read_attachment, read_bundle, write_bundle
from edgesnn.bundle._files import Target
from edgesnn.detect.config import ANN_ATTACHMENT, METADATA_KEY, DetectorConfig
from edgesnn.detect.pipeline import Detector
from edgesnn.errors import BundleValidationError, EdgeSNNError, ModelError
from edgesnn.graph import Graph


def write_detector(detector: Detector, target: Target) -> None:
    """Write ``detector`` as a .esnn bundle: ``attachments/detect.onnx`` plus ``graph/metadata/detect``."""
    front = detector.front
    graph = Graph(
        front.graph.nodes, front.graph.edges, {**front.graph.metadata, METADATA_KEY: detector.config.to_dict()}
    )
    write_bundle(dataclasses.replace(front, graph=graph), target, attachments={ANN_ATTACHMENT: detector.ann})


def load_detector(source: Target) -> Detector:
    """Read a detector bundle; every failure names the bundle member or manifest field at fault."""
    front = read_bundle(source)
    if hasattr(source, "seek"):
        source.seek(0)  # type: ignore[union-attr]
    where = f"graph/metadata/{METADATA_KEY}"
    if METADATA_KEY not in front.graph.metadata:
        raise BundleValidationError("missing: this bundle is a plain model, not a detector", path=where)
    try:
        config = DetectorConfig.from_dict(front.graph.metadata[METADATA_KEY])
    except EdgeSNNError as exc:
        raise BundleValidationError(exc.message, path=f"{where}/{exc.path}" if exc.path else where) from exc
    except TypeError as exc:
        raise BundleValidationError(f"cannot build the detector settings: {exc}", path=where) from exc
    ann = read_attachment(source, ANN_ATTACHMENT)
    try:
        return Detector(front, ann, config)
    except ModelError as exc:
        member = f"attachments/{ANN_ATTACHMENT}" if (exc.path or "").startswith(("ann", "model")) else where
        raise BundleValidationError(exc.message, path=f"{member}: {exc.path}" if exc.path else member) from exc
