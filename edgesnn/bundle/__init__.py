"""The .esnn bundle: one zip holding a model's manifest, tensors and ONNX parts, validated on load.

``manifest.json`` records the schema version, producer, model settings (dt,
discretisation method, labels, learning configuration), the graph with each
array parameter pointing at a ``tensors/<node>/<field>.npy`` member and each
ONNX model at ``parts/<node>.onnx``, attachments (bytes a model carries beside
its graph, such as a detector's ANN) at ``attachments/<name>``, an index with dtype, shape and sha256 of
every member, and the inputs and outputs with shapes and units. NIR import and
export live in :mod:`edgesnn.bundle.nir` (needs the ``nir`` extra).
"""

from edgesnn.bundle._manifest import MANIFEST_NAME as MANIFEST_NAME
from edgesnn.bundle._manifest import READABLE_VERSIONS as READABLE_VERSIONS
from edgesnn.bundle._manifest import SCHEMA_VERSION as SCHEMA_VERSION
from edgesnn.bundle._reader import read_attachment as read_attachment
from edgesnn.bundle._reader import read_bundle as read_bundle
from edgesnn.bundle._writer import write_bundle as write_bundle

__all__ = ["MANIFEST_NAME", "READABLE_VERSIONS", "SCHEMA_VERSION", "read_attachment", "read_bundle", "write_bundle"]
