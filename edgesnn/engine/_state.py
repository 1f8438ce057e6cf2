"""Session state on the wire and on disk: msgpack, raw little-endian arrays, versioned."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import msgpack
import numpy as np

from edgesnn.errors import StateError, UnsupportedVersionError
from edgesnn.model import INITIAL_STATES
from edgesnn.neurons import legacy_method

if TYPE_CHECKING:
    from edgesnn.engine.plan import Plan
    from edgesnn.model import Model

FORMAT = "edgesnn.session-state"
#: Version 2 added ``initial``: the state the session resets to ({"base": "rest" | "zero",
#: "arrays": states set over it}), and ``sha256``: the hash of the document without it, so a
#: damaged blob is refused rather than loaded as a corrupted state.
VERSION = 2

Initial = tuple[str, dict[str, np.ndarray]]


def _pack(arr: np.ndarray) -> dict:
    return {
        "dtype": arr.dtype.newbyteorder("<").str,
        "shape": list(arr.shape),
        "data": arr.astype(arr.dtype.newbyteorder("<")).tobytes(),
    }


def _unpack(entry: object, target: np.ndarray, where: str) -> np.ndarray:
    try:
        dtype = np.dtype(entry["dtype"])  # type: ignore[index]
        shape = tuple(entry["shape"])  # type: ignore[index]
        arr = np.frombuffer(entry["data"], dtype=dtype)  # type: ignore[index]
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"malformed array entry: {exc}", path=where) from exc
    if dtype.newbyteorder("=") != target.dtype or shape != target.shape or arr.size != target.size:
        raise StateError(f"expected {target.dtype} {target.shape}, got {dtype} {shape} ({arr.size} values)", path=where)
    return arr.reshape(shape)


def pack_state(plan: Plan, model: Model, initial: Initial = ("rest", {})) -> bytes:
    """Serialise the plan's state arrays with what identifies the model, dt and batch, and the initial state."""
    arrays = {key: _pack(arr) for key, arr in plan.state.items()}
    base, values = initial
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.fingerprint,
        "dt_s": plan.dt_s,
        "method": plan.method,
        "batch": plan.batch,
        "arrays": arrays,
        "initial": {"base": base, "arrays": {key: _pack(arr) for key, arr in values.items()}},
    }
    doc["sha256"] = hashlib.sha256(msgpack.packb(doc, use_bin_type=True)).hexdigest()
    return msgpack.packb(doc, use_bin_type=True)


def unpack_state(data: bytes, plan: Plan, model: Model) -> tuple[dict[str, np.ndarray], Initial | None]:
    """Decode and check a saved state against this session; return arrays by key and the initial state.

    A version 1 state carries no initial state (None): the session keeps its own.
    """
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
    if version >= 2:
        digest = doc.pop("sha256", None)
        if digest != hashlib.sha256(msgpack.packb(doc, use_bin_type=True)).hexdigest():
            raise StateError("the state is damaged: its sha256 does not match its contents", path="state/sha256")
    # The most telling mismatch first: a state from another step or batch size also has another fingerprint.
    expected = {"dt_s": plan.dt_s, "batch": plan.batch, "method": plan.method, "model": model.fingerprint}
    types = [type(n).__name__ for n in plan.graph.nodes.values()]
    if version == 1 and legacy_method(str(doc.get("method")), types) == plan.method:
        expected["method"] = doc.get("method")  # saved before the cascades had their own names
    for key, want in expected.items():
        if doc.get(key) != want:
            raise StateError(
                f"state was saved with {key} = {doc.get(key)!r}, this session has {want!r}", path=f"state/{key}"
            )
    arrays = doc.get("arrays")
    if not isinstance(arrays, dict) or set(arrays) != set(plan.state):
        got = sorted(arrays) if isinstance(arrays, dict) else arrays
        raise StateError(f"expected arrays {sorted(plan.state)}, got {got}", path="state/arrays")
    out = {key: _unpack(arrays[key], target, f"state/arrays/{key}") for key, target in plan.state.items()}
    if version < 2:
        return out, None
    initial = doc.get("initial")
    if not isinstance(initial, dict) or initial.get("base") not in INITIAL_STATES:
        raise StateError(f"expected {{base: {' | '.join(INITIAL_STATES)}, arrays}}", path="state/initial")
    saved = initial.get("arrays")
    if not isinstance(saved, dict) or not all(k in plan.state for k in saved):
        raise StateError(f"expected arrays of states among {sorted(plan.state)}", path="state/initial/arrays")
    values = {k: _unpack(v, plan.state[k], f"state/initial/arrays/{k}") for k, v in saved.items()}
    return out, (initial["base"], values)
