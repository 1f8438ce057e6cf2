"""A detector as one .esnn bundle: the SNN front's graph, the ONNX part as an attachment, settings in metadata."""

from __future__ import annotations

import dataclasses
from typing import Any

from edgesnn.bundle import read_attachment, read_bundle, write_bundle
from edgesnn.bundle._files import Target
from edgesnn.detect.config import ANN_ATTACHMENT, METADATA_KEY, DetectorConfig
from edgesnn.detect.pipeline import Detector
from edgesnn.errors import BundleValidationError, EdgeSNNError, ModelError
from edgesnn.graph import Graph
from edgesnn.model import Model


def write_detector(detector: Detector, target: Target) -> None:
    """Write ``detector`` as a .esnn bundle: ``attachments/detect.onnx`` plus ``graph/metadata/detect``."""
    front = detector.front
    graph = Graph(
        front.graph.nodes, front.graph.edges, {**front.graph.metadata, METADATA_KEY: detector.config.to_dict()}
    )
    write_bundle(dataclasses.replace(front, graph=graph), target, attachments={ANN_ATTACHMENT: detector.ann})


def load_detector(source: Target) -> Detector:
    """Read a detector bundle (or a shipped one by name); every failure names the member or field at fault."""
    from edgesnn.catalog import resolve

    source = resolve(source)
    return _detector(read_bundle(source), source)


def _detector(front: Model, source: Target) -> Detector:
    """The detector of a bundle whose graph ``front`` was read from ``source``."""
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


def describe(model: Model, source: Target) -> dict[str, Any] | None:
    """What ``edgesnn info`` says of a detector bundle (``model`` read from ``source``); None for a plain model.

    Parameters are counted as :meth:`Detector.parameters` (and the README) count them: the
    front's weights and biases, one learned time constant per LIF layer (the bundle stores it
    per neuron), plus the ONNX part's initializers.
    """
    if METADATA_KEY not in model.graph.metadata:
        return None
    det = _detector(model, source)
    cfg = det.config
    return {
        "kind": "detector", "parameters": det.parameters(), "classes": list(cfg.classes),
        "geometry": [cfg.width, cfg.height], "window_us": cfg.window_us, "n_bins": cfg.n_bins, "bin_us": cfg.bin_us,
    }  # fmt: skip


def describe_line(info: dict[str, Any]) -> str:
    """One line of :func:`describe`'s answer, for ``edgesnn info``'s text output."""
    p = info["parameters"]
    return (f"detector: {info['geometry'][0]}x{info['geometry'][1]} events, {len(info['classes'])} classes "
            f"({', '.join(info['classes'])}), {info['window_us'] / 1000:g} ms windows of {info['n_bins']} bins, "
            f"{p['total']:,} parameters (SNN {p['snn']:,} + ANN {p['ann']:,})")  # fmt: skip
