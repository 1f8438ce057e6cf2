"""Session state on the wire and on disk: msgpack, raw little-endian arrays, versioned."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgpack
import numpy as np

from edgesnn.errors import StateError, UnsupportedVersionError

if TYPE_CHECKING:
    from edgesnn.engine.plan import Plan
    from edgesnn.model import Model

FORMAT = "edgesnn.session-state"
VERSION = 1


def pack_state(plan: Plan, model: Model) -> bytes:
    """Serialise the plan's state arrays with what identifies the model, dt and batch."""
    arrays = {
        key: {
            "dtype": arr.dtype.newbyteorder("<").str,
            "shape": list(arr.shape),
            "data": arr.astype(arr.dtype.newbyteorder("<")).tobytes(),
        }
        for key, arr in plan.state.items()
    }
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.fingerprint,
        "dt_s": plan.dt_s,
        "method": plan.method,
        "batch": plan.batch,
        "arrays": arrays,
    }
    return msgpack.packb(doc, use_bin_type=True)


def unpack_state(data: bytes, plan: Plan, model: Model) -> dict[str, np.ndarray]:
    """Decode and check a saved state against this session; return arrays by key."""
    try:
        doc = msgpack.unpackb(data, raw=False, max_bin_len=1 << 31)
    except Exception as exc:  # msgpack raises several unrelated types for corrupt input
        raise StateError(f"not a session state (msgpack decode failed: {exc})", path="state") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateError(f"not a session state (expected format {FORMAT!r})", path="state/format")
    version = doc.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise UnsupportedVersionError(
            f"state version {version!r} is newer than supported ({VERSION})", path="state/version"
        )
    # The most telling mismatch first: a state from another step or batch size also has another fingerprint.
    expected = {"dt_s": plan.dt_s, "batch": plan.batch, "method": plan.method, "model": model.fingerprint}
    for key, want in expected.items():
        if doc.get(key) != want:
            raise StateError(
                f"state was saved with {key} = {doc.get(key)!r}, this session has {want!r}", path=f"state/{key}"
            )
    arrays = doc.get("arrays")
    if not isinstance(arrays, dict) or set(arrays) != set(plan.state):
        got = sorted(arrays) if isinstance(arrays, dict) else arrays
        raise StateError(f"expected arrays {sorted(plan.state)}, got {got}", path="state/arrays")
    out = {}
    for key, target in plan.state.items():
        entry = arrays[key]
        try:
            dtype = np.dtype(entry["dtype"])
            shape = tuple(entry["shape"])
            arr = np.frombuffer(entry["data"], dtype=dtype)
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"malformed array entry: {exc}", path=f"state/arrays/{key}") from exc
        if dtype.newbyteorder("=") != target.dtype or shape != target.shape or arr.size != target.size:
            raise StateError(
                f"expected {target.dtype} {target.shape}, got {dtype} {shape} ({arr.size} values)",
                path=f"state/arrays/{key}",
            )
        out[key] = arr.reshape(shape)
    return out
