"""The class store's append-only journal: one checksummed frame per change since the last snapshot.

Layout of ``classes.journal``: a sequence of frames, each
``<u32 payload length><u32 crc32 of the payload><payload>`` (little-endian).
Frame 0 is the header, msgpack
``{"format": "edgesnn.class-journal", "version": 1, "snapshot": <sha256 of the snapshot body>}``:
the snapshot this journal continues. Every later frame is one change, msgpack::

    {"generation": int,                                   # the snapshot's + 1, + 2, ...
     "classes": [{"label": str, "examples": int}, ...],   # the whole list, row order
     "rule": {"threshold": float},
     "rows": {"index": [int, ...], "data": raw <f4 bytes}} # rows that differ from the state before

A row not listed keeps the weights its label had before the change (a new label
must be listed). A journal is created whole (temporary file, rename) and then
only appended to; each append is acknowledged after one ``fdatasync``. A crash
during an append leaves a torn last frame (short, or failing its checksum with
nothing after it): it was never acknowledged, so readers ignore it and the next
writer cuts it off. A bad frame with data after it is corruption and raises
:class:`~edgesnn.errors.StateError` naming the file, the frame and its offset.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from typing import Any

import msgpack
import numpy as np

from edgesnn.errors import StateError, UnsupportedVersionError

FORMAT = "edgesnn.class-journal"
VERSION = 1
_FRAME = struct.Struct("<II")


@dataclasses.dataclass(frozen=True, eq=False)
class Change:
    """One journal record, decoded: the class list and rule state after it, and the rows it rewrote."""

    generation: int
    labels: tuple[str, ...]
    examples: tuple[int, ...]
    threshold: float
    rows: dict[int, np.ndarray]  # row index -> (n_features,) float32


@dataclasses.dataclass(frozen=True, eq=False)
class Scan:
    """A journal read from disk: the snapshot it continues, its changes, and where the valid bytes end."""

    snapshot: str
    changes: list[Change]
    end: int  # bytes up to the end of the last whole frame; the rest (if any) is a torn tail
    size: int


def frame(payload: bytes) -> bytes:
    """``payload`` with its length and crc32 in front."""
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def header(snapshot_sha256: str) -> bytes:
    """The first frame of a journal continuing the snapshot whose body has this sha256."""
    return frame(msgpack.packb({"format": FORMAT, "version": VERSION, "snapshot": snapshot_sha256}))


def encode_change(change: Change) -> bytes:
    """The frame of one change."""
    index = sorted(change.rows)
    data = b"".join(np.ascontiguousarray(change.rows[i], "<f4").tobytes() for i in index)
    doc = {
        "generation": int(change.generation),
        "classes": [{"label": lb, "examples": int(n)} for lb, n in zip(change.labels, change.examples, strict=True)],
        "rule": {"threshold": float(change.threshold)},
        "rows": {"index": index, "data": data},
    }
    return frame(msgpack.packb(doc, use_bin_type=True))


def scan(data: bytes, path: str, n_features: int) -> Scan:
    """Decode a journal's bytes; a torn last frame is left out (``end < size``), any other damage raises."""
    frames, end = [], 0
    while end < len(data):
        torn = _frame_at(data, end, len(frames), path)
        if torn is None:
            break
        payload, end = torn
        frames.append(payload)
    if not frames:
        raise StateError("the journal has no header (expected a journal created whole)", path=f"{path}/frame 0")
    snapshot = _decode_header(frames[0], f"{path}/frame 0")
    changes = [_decode_change(p, f"{path}/frame {i}", n_features) for i, p in enumerate(frames[1:], 1)]
    return Scan(snapshot, changes, end, len(data))


def _frame_at(data: bytes, offset: int, index: int, path: str) -> tuple[bytes, int] | None:
    """The payload at ``offset`` and the offset after it; None if the frame is a torn tail."""
    if len(data) - offset < _FRAME.size:  # a short frame header
        return None
    length, crc = _FRAME.unpack_from(data, offset)
    stop = offset + _FRAME.size + length
    if stop > len(data):
        return None
    payload = data[offset + _FRAME.size : stop]
    if length == 0 or zlib.crc32(payload) != crc:  # no whole frame is empty
        if stop == len(data) or not any(data[offset:]):  # the last frame, partly written, or a tail of zeros
            return None
        raise StateError(f"the checksum does not match at byte {offset}, and {len(data) - stop} bytes follow "
                         "(the journal is corrupted)", path=f"{path}/frame {index}")  # fmt: skip
    return payload, stop


def _unpack(payload: bytes, path: str) -> dict:
    try:
        doc = msgpack.unpackb(payload, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for corrupt input
        raise StateError(f"msgpack decode failed: {exc}", path=path) from exc
    if not isinstance(doc, dict):
        raise StateError(f"expected a map, got {type(doc).__name__}", path=path)
    return doc


def _need(doc: dict, key: str, types: type | tuple[type, ...], what: str, path: str) -> Any:
    value = doc.get(key)
    if key not in doc or isinstance(value, bool) or not isinstance(value, types):
        got = "nothing" if key not in doc else f"{type(value).__name__} {value!r:.60}"
        raise StateError(f"expected {what}, got {got}", path=f"{path}/{key}")
    return value


def _decode_header(payload: bytes, path: str) -> str:
    doc = _unpack(payload, path)
    if doc.get("format") != FORMAT:
        raise StateError(f"not a class journal (expected format {FORMAT!r})", path=f"{path}/format")
    version = _need(doc, "version", int, "an int", path)
    if version > VERSION:
        raise UnsupportedVersionError(
            f"class journal version {version} is newer than this edgesnn reads ({VERSION})", path=f"{path}/version"
        )
    if version < 1:
        raise StateError(f"expected a version in 1..{VERSION}, got {version}", path=f"{path}/version")
    return _need(doc, "snapshot", str, "a sha256 hex digest", path)


def _decode_change(payload: bytes, path: str, n_features: int) -> Change:
    doc = _unpack(payload, path)
    generation = _need(doc, "generation", int, "an int", path)
    labels, examples = [], []
    for i, item in enumerate(_need(doc, "classes", list, "a list", path)):
        p = f"{path}/classes/{i}"
        if not isinstance(item, dict):
            raise StateError(f"expected a map, got {type(item).__name__}", path=p)
        label, count = _need(item, "label", str, "a string", p), _need(item, "examples", int, "an int", p)
        if not label or label in labels:
            raise StateError(f"expected a unique non-empty label, got {label!r}", path=f"{p}/label")
        if count < 1:
            raise StateError(f"expected an int >= 1, got {count}", path=f"{p}/examples")
        labels.append(label)
        examples.append(count)
    threshold = float(_need(_need(doc, "rule", dict, "a map", path), "threshold", (int, float), "a number",
                            f"{path}/rule"))  # fmt: skip
    if not np.isfinite(threshold) or threshold < 0:
        raise StateError(f"expected a finite number >= 0, got {threshold!r}", path=f"{path}/rule/threshold")
    rows_doc = _need(doc, "rows", dict, "a map", path)
    index = _need(rows_doc, "index", list, "a list of row numbers", f"{path}/rows")
    data = _need(rows_doc, "data", bytes, "bytes", f"{path}/rows")
    if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(labels) for i in index) or len(
        set(index)
    ) != len(index):
        raise StateError(f"expected distinct row numbers below {len(labels)}, got {index!r:.80}",
                         path=f"{path}/rows/index")  # fmt: skip
    if len(data) != len(index) * n_features * 4:
        raise StateError(f"expected {len(index) * n_features * 4} bytes for {len(index)} rows of {n_features} "
                         f"features, got {len(data)}", path=f"{path}/rows/data")  # fmt: skip
    weights = np.frombuffer(data, "<f4").reshape(len(index), n_features).astype(np.float32)
    if not np.all(np.isfinite(weights)):
        raise StateError("expected finite weights, got NaN or Inf", path=f"{path}/rows/data")
    return Change(generation, tuple(labels), tuple(examples), threshold, dict(zip(index, weights, strict=True)))
