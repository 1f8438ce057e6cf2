"""The persistent class store: learned labels, plastic weights and rule state in one atomically replaced file.

Layout: a directory holding ``classes.msgpack``. The file is a msgpack map
``{"format": "edgesnn.class-store", "version": 1, "sha256": hex, "body": bytes}``
where ``body`` is itself msgpack::

    {"model": <store key: sha256 of the model fingerprint and the learning config>,
     "classes": [{"label": str, "examples": int}, ...],          # row order
     "weights": {"dtype": "<f4", "shape": [C, F], "data": raw little-endian bytes},
     "rule": {"threshold": float},
     "generation": int}                                           # +1 per write

Writing puts the bytes in a fresh temporary file in the same directory, flushes
and fsyncs it, renames it over ``classes.msgpack`` (``os.replace``, atomic on
POSIX) and fsyncs the directory, so a crash at any point leaves either the old
or the new file. A crash can leave a ``.classes.*.tmp`` file behind; opening the
store removes those. One session writes a store at a time (there is no lock).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack
import numpy as np

from edgesnn.errors import StateError, UnsupportedVersionError

if TYPE_CHECKING:
    from edgesnn.learn.config import LearningConfig
    from edgesnn.model import Model

log = logging.getLogger("edgesnn.learn.store")

FORMAT = "edgesnn.class-store"
VERSION = 1
FILENAME = "classes.msgpack"
_TMP_PREFIX = ".classes."
_TMP_SUFFIX = ".tmp"
_BODY_KEYS = ("model", "classes", "weights", "rule", "generation")


@dataclasses.dataclass(frozen=True, eq=False)
class StoreRecord:
    """Everything a store file holds, decoded and checked."""

    model_key: str
    labels: tuple[str, ...]
    examples: tuple[int, ...]
    weights: np.ndarray  # (n_classes, n_features) float32
    threshold: float
    generation: int = 0


def store_key(model: Model, config: LearningConfig) -> str:
    """Identity a store is bound to: sha256 of the model's fingerprint and its learning configuration."""
    text = json.dumps({"model": model.fingerprint, "learning": config.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# -- encoding ----------------------------------------------------------------------
def encode_record(record: StoreRecord) -> bytes:
    """The bytes of a store file for ``record``."""
    w = np.ascontiguousarray(record.weights, dtype="<f4")
    body = msgpack.packb(
        {
            "model": record.model_key,
            "classes": [
                {"label": lb, "examples": int(n)} for lb, n in zip(record.labels, record.examples, strict=True)
            ],
            "weights": {"dtype": "<f4", "shape": list(w.shape), "data": w.tobytes()},
            "rule": {"threshold": float(record.threshold)},
            "generation": int(record.generation),
        },
        use_bin_type=True,
    )
    outer = {"format": FORMAT, "version": VERSION, "sha256": hashlib.sha256(body).hexdigest(), "body": body}
    return msgpack.packb(outer, use_bin_type=True)


def _unpack(data: bytes, path: str) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, max_bin_len=1 << 31)
    except Exception as exc:  # msgpack raises several unrelated types for corrupt input
        raise StateError(f"not a class store, or a corrupted one (msgpack decode failed: {exc})", path=path) from exc


def _need(doc: dict, key: str, types: type | tuple[type, ...], what: str, path: str) -> Any:
    if key not in doc:
        raise StateError(f"missing (expected {what})", path=f"{path}/{key}")
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, types):
        raise StateError(f"expected {what}, got {type(value).__name__} {value!r:.60}", path=f"{path}/{key}")
    return value


def decode_record(data: bytes, *, path: str) -> StoreRecord:
    """Decode and check store bytes; errors name ``path`` (the file) and the field."""
    outer = _unpack(data, path)
    if not isinstance(outer, dict) or outer.get("format") != FORMAT:
        raise StateError(f"not a class store (expected format {FORMAT!r})", path=f"{path}/format")
    version = _need(outer, "version", int, "an int", path)
    if version > VERSION:
        raise UnsupportedVersionError(
            f"class store version {version} is newer than this edgesnn reads ({VERSION})", path=f"{path}/version"
        )
    if version < 1:
        raise StateError(f"expected a version in 1..{VERSION}, got {version}", path=f"{path}/version")
    body = _need(outer, "body", bytes, "bytes", path)
    if hashlib.sha256(body).hexdigest() != _need(outer, "sha256", str, "a hex digest", path):
        raise StateError("the content does not match its checksum (the file is corrupted)", path=f"{path}/sha256")
    doc = _unpack(body, f"{path}/body")
    if not isinstance(doc, dict):
        raise StateError(f"expected a map, got {type(doc).__name__}", path=f"{path}/body")
    unknown = sorted(set(doc) - set(_BODY_KEYS))
    if unknown:
        raise StateError(f"unknown keys {unknown}", path=path)
    model_key = _need(doc, "model", str, "a store key", path)
    labels, examples = _decode_classes(_need(doc, "classes", list, "a list", path), f"{path}/classes")
    weights = _decode_weights(_need(doc, "weights", dict, "a map", path), len(labels), f"{path}/weights")
    rule_doc = _need(doc, "rule", dict, "a map", path)
    threshold = float(_need(rule_doc, "threshold", (int, float), "a number", f"{path}/rule"))
    if not np.isfinite(threshold) or threshold < 0:
        raise StateError(f"expected a finite number >= 0, got {threshold!r}", path=f"{path}/rule/threshold")
    generation = _need(doc, "generation", int, "an int", path)
    return StoreRecord(model_key, labels, examples, weights, threshold, generation)


def _decode_classes(items: list, path: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    labels, examples = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise StateError(f"expected a map, got {type(item).__name__}", path=f"{path}/{i}")
        label = _need(item, "label", str, "a string", f"{path}/{i}")
        count = _need(item, "examples", int, "an int", f"{path}/{i}")
        if not label or label in labels:
            raise StateError(f"expected a unique non-empty label, got {label!r}", path=f"{path}/{i}/label")
        if count < 1:
            raise StateError(f"expected an int >= 1, got {count}", path=f"{path}/{i}/examples")
        labels.append(label)
        examples.append(count)
    return tuple(labels), tuple(examples)


def _decode_weights(entry: dict, n_classes: int, path: str) -> np.ndarray:
    if _need(entry, "dtype", str, "a dtype string", path) != "<f4":
        raise StateError(f"expected '<f4', got {entry['dtype']!r}", path=f"{path}/dtype")
    shape = _need(entry, "shape", list, "[n_classes, n_features]", path)
    if len(shape) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in shape):
        raise StateError(f"expected [n_classes, n_features], got {shape!r}", path=f"{path}/shape")
    if shape[0] != n_classes:
        raise StateError(f"expected {n_classes} rows (one per class), got {shape[0]}", path=f"{path}/shape")
    data = _need(entry, "data", bytes, "bytes", path)
    if len(data) != shape[0] * shape[1] * 4:
        raise StateError(f"expected {shape[0] * shape[1] * 4} bytes for {shape}, got {len(data)}", path=f"{path}/data")
    weights = np.frombuffer(data, "<f4").reshape(shape).astype(np.float32)
    if not np.all(np.isfinite(weights)):
        raise StateError("expected finite weights, got NaN or Inf", path=f"{path}/data")
    return weights


# -- files ------------------------------------------------------------------------
def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` so that a crash leaves the old or the new content, never a mix."""
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError as exc:
        log.debug("cannot open %s to fsync it: %s", directory, exc)
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclasses.dataclass(frozen=True)
class ClassStore:
    """A directory holding one class-store file.

    Examples
    --------
    >>> store = ClassStore(Path("classes"))                    # doctest: +SKIP
    >>> store.read()                                           # None until the first write
    """

    directory: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "directory", Path(self.directory))

    @property
    def file(self) -> Path:
        """The store file."""
        return self.directory / FILENAME

    def read(self) -> StoreRecord | None:
        """The stored record, or None when the store has never been written."""
        if self.directory.exists() and not self.directory.is_dir():
            raise StateError("expected a directory (the class store), got a file", path=str(self.directory))
        try:
            data = self.file.read_bytes()
        except FileNotFoundError:
            return None
        return decode_record(data, path=str(self.file))

    def load(self, model_key: str, n_features: int) -> StoreRecord | None:
        """The stored record if it belongs to ``model_key``; a foreign store raises :class:`StateError`."""
        record = self.read()
        if record is None:
            return None
        if record.model_key != model_key:
            raise StateError(
                f"the store belongs to another model or learning configuration"
                f" (store {record.model_key[:12]}..., this session {model_key[:12]}...)",
                path=f"{self.file}/model",
            )
        if record.weights.shape[1] != n_features:
            raise StateError(f"expected {n_features} features, got {record.weights.shape[1]}",
                             path=f"{self.file}/weights/shape")  # fmt: skip
        return record

    def write(self, record: StoreRecord) -> None:
        """Write ``record`` atomically and durably (returns once it is on disk)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomic(self.file, encode_record(record))

    def remove_leftovers(self) -> int:
        """Delete temporary files a crashed writer left behind; returns how many."""
        if not self.directory.is_dir():
            return 0
        count = 0
        for p in self.directory.glob(f"{_TMP_PREFIX}*{_TMP_SUFFIX}"):
            p.unlink(missing_ok=True)
            count += 1
        if count:
            log.info("%s: removed %d temporary file(s) left by an interrupted write", self.directory, count)
        return count
