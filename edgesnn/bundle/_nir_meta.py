"""The edgesnn record carried in a NIR graph's metadata, as one JSON string.

NIR has no field for dt, discretisation, reset mode, units or node order (HDF5
groups come back sorted), so :func:`edgesnn.bundle.nir.to_nir` stores them under
``metadata["edgesnn"]``. A JSON string survives ``nir.write``/``nir.read``
unchanged (nested HDF5 groups would not keep lists or None), and NIR-native
readers simply ignore it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from edgesnn.bundle import _json
from edgesnn.errors import EdgeSNNError, LimitError, NIRImportError

KEY = "edgesnn"
#: Format 2 added ``initial_state`` and named the cascades ("cascade", "cascade-euler"), which
#: format 1 records called "zoh" and "euler" in models with coupled states.
FORMAT = 2
READABLE_FORMATS = (1, 2)


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v) for v in obj]}
    if isinstance(obj, dict):
        return {str(k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_encode(v) for v in obj]
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    raise NIRImportError(f"cannot store a {type(obj).__name__} in NIR metadata", path="metadata")


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            dtype = np.dtype(obj["dtype"])
            if dtype.kind not in "biuf":  # dumps writes numeric arrays only; others could be any size
                raise TypeError(f"expected a numeric dtype, got {dtype}")
            return np.asarray(obj["__ndarray__"], dtype=dtype).reshape(obj["shape"])
        if "__tuple__" in obj:
            return tuple(_decode(v) for v in obj["__tuple__"])
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def dumps(record: dict[str, Any]) -> str:
    """Serialise the edgesnn record (floats keep every bit: JSON uses repr)."""
    return json.dumps(_encode({"format": FORMAT, **record}), allow_nan=True, sort_keys=False)


def loads(metadata: Any) -> dict[str, Any] | None:
    """Return the edgesnn record of a NIR graph's metadata, or None if there is none."""
    if not isinstance(metadata, dict) or KEY not in metadata:
        return None
    raw = metadata[KEY]
    if isinstance(raw, np.ndarray) and raw.size == 1:
        raw = raw.reshape(-1)[0]
    if not isinstance(raw, (bytes, str)):
        raise NIRImportError(f"expected a JSON string written by edgesnn, got {type(raw).__name__}",
                             path=f"metadata/{KEY}")  # fmt: skip
    try:
        # Bounded like a manifest (size, depth); NaN stays allowed, since dumps writes it.
        record = _decode(_json.loads(raw, f"metadata/{KEY}", allow_nan=True))
    except LimitError:
        raise
    except (EdgeSNNError, TypeError, ValueError, KeyError, OverflowError) as exc:
        raise NIRImportError(
            f"expected a JSON string written by edgesnn, got {str(raw)[:40]!r}", path=f"metadata/{KEY}"
        ) from exc
    if not isinstance(record, dict) or record.get("format") not in READABLE_FORMATS:
        raise NIRImportError(
            f"expected format {' or '.join(map(str, READABLE_FORMATS))},"
            f" got {record.get('format') if isinstance(record, dict) else record!r}",
            path=f"metadata/{KEY}",
        )
    return record


def plain(obj: Any) -> Any:
    """A JSON-friendly copy of foreign NIR metadata (arrays to lists, bytes to text)."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes):
        return obj.decode("utf8", "replace")
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    return repr(obj)
