"""The persistent class store: a snapshot of the learned classes, and a journal of the changes since.

Layout: a directory holding ``classes.msgpack`` (the snapshot) and
``classes.journal`` (:mod:`edgesnn.learn._journal`). The snapshot is a msgpack map
``{"format": "edgesnn.class-store", "version": 2, "sha256": hex, "body": bytes}``
where ``body`` is itself msgpack::

    {"model": <store key: sha256 of the model fingerprint and the learning config>,
     "classes": [{"label": str, "examples": int}, ...],          # row order
     "weights": {"dtype": "<f4", "shape": [C, F], "data": raw little-endian bytes},
     "rule": {"threshold": float},
     "generation": int}                                           # +1 per write

Version 2 means a journal may continue the snapshot (version 1 stores, written
before the journal, have none and still load; an edgesnn that reads only version
1 refuses a version 2 store instead of silently missing the journal).

A change (learn, forget) is one frame appended to the journal and one
``fdatasync``: the rows that changed, the class list and the rule state. Every
``compact_every`` changes, or once the journal outgrows twice the snapshot, the
store compacts: it writes the whole state as a new snapshot (temporary file,
fsync, rename over ``classes.msgpack``, directory fsync) and then a fresh journal
naming that snapshot's checksum (the same way). A journal naming another
snapshot is a stale one left by a crash between those two steps; its changes are
all in the snapshot, so readers ignore it. A crash at any point therefore leaves
the state of the last acknowledged change, or of the one in flight, never a mix.
A crash can leave a ``.classes.*.tmp`` file behind; opening the store removes
those. One session writes a store at a time (there is no lock).
"""

from __future__ import annotations

import contextlib
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
from edgesnn.learn import _journal

if TYPE_CHECKING:
    from edgesnn.learn.config import LearningConfig
    from edgesnn.model import Model

log = logging.getLogger("edgesnn.learn.store")

FORMAT = "edgesnn.class-store"
VERSION = 2
FILENAME = "classes.msgpack"
JOURNAL = "classes.journal"
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
    """The bytes of a snapshot file for ``record``."""
    return _encode_snapshot(record)[0]


def _encode_snapshot(record: StoreRecord) -> tuple[bytes, str]:
    """The snapshot bytes and the sha256 of their body."""
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
    sha = hashlib.sha256(body).hexdigest()
    return msgpack.packb({"format": FORMAT, "version": VERSION, "sha256": sha, "body": body}, use_bin_type=True), sha


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
    """Decode and check snapshot bytes; errors name ``path`` (the file) and the field."""
    return _decode_snapshot(data, path)[0]


def _decode_snapshot(data: bytes, path: str) -> tuple[StoreRecord, str]:
    """The record and the sha256 of its body (what a journal names to continue this snapshot)."""
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
    return StoreRecord(model_key, labels, examples, weights, threshold, generation), outer["sha256"]


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


class ClassStore:
    """A directory holding a class store: a snapshot and the journal of changes since.

    The object remembers the state it last read or wrote, so that a write can
    append only what changed; one object (one session) writes a store at a time.

    Examples
    --------
    >>> store = ClassStore(Path("classes"))                    # doctest: +SKIP
    >>> store.read()                                           # None until the first write
    """

    def __init__(self, directory: str | os.PathLike[str], *, compact_every: int = 64) -> None:
        self.directory = Path(directory)
        self.compact_every = compact_every
        self._state: StoreRecord | None = None  # what the files hold, as this object last saw them
        self._snapshot_sha = ""
        self._snapshot_size = 0
        self._journal_end: int | None = None  # None: no journal continuing the snapshot (write compacts)
        self._changes = 0

    def __repr__(self) -> str:
        return f"ClassStore({str(self.directory)!r})"

    @property
    def file(self) -> Path:
        """The snapshot file."""
        return self.directory / FILENAME

    @property
    def journal(self) -> Path:
        """The journal file."""
        return self.directory / JOURNAL

    # -- reading ---------------------------------------------------------------------
    def read(self) -> StoreRecord | None:
        """The stored state (snapshot plus journal), or None when the store has never been written.

        A torn last journal frame (a crash during an append, never acknowledged) is left out.
        """
        if self.directory.exists() and not self.directory.is_dir():
            raise StateError("expected a directory (the class store), got a file", path=str(self.directory))
        try:
            data = self.file.read_bytes()
        except FileNotFoundError:
            if self.journal.exists():
                raise StateError(f"a journal without its snapshot {FILENAME} (was it deleted?)",
                                 path=str(self.journal)) from None  # fmt: skip
            self._forget_state()
            return None
        record, sha = _decode_snapshot(data, str(self.file))
        self._state, self._snapshot_sha, self._snapshot_size = record, sha, len(data)
        self._journal_end, self._changes = None, 0
        try:
            journal = self.journal.read_bytes()
        except FileNotFoundError:
            return record  # a version 1 store, or a crash before the first journal was in place
        scan = _journal.scan(journal, str(self.journal), record.weights.shape[1])
        if scan.snapshot != sha:
            log.info("%s: ignoring a stale journal (a compaction was interrupted; the snapshot holds it all)",
                     self.journal)  # fmt: skip
            return record
        for i, change in enumerate(scan.changes, 1):
            record = _apply(record, change, f"{self.journal}/frame {i}")
        if scan.end < scan.size:
            log.info("%s: ignoring a torn last frame (%d bytes; an interrupted, unacknowledged write)",
                     self.journal, scan.size - scan.end)  # fmt: skip
        self._state, self._journal_end, self._changes = record, scan.end, len(scan.changes)
        return record

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

    # -- writing ---------------------------------------------------------------------
    def write(self, record: StoreRecord) -> None:
        """Make ``record`` the stored state, durably (returns once it is on disk).

        Appends a journal frame when ``record`` is the next generation of the state
        this object last read or wrote; otherwise, and every ``compact_every``
        changes, writes a new snapshot and journal.
        """
        prev = self._state
        if (
            prev is None
            or self._journal_end is None
            or record.generation != prev.generation + 1
            or record.model_key != prev.model_key
            or record.weights.shape[1] != prev.weights.shape[1]
            or self._changes >= self.compact_every
            or self._journal_end > max(1 << 20, 2 * self._snapshot_size)
        ):
            self.compact(record)
        else:
            self._append(prev, record, self._journal_end)

    def compact(self, record: StoreRecord) -> None:
        """Write ``record`` as the snapshot, then an empty journal continuing it (each atomically)."""
        self._forget_state()  # if this fails half way, the next write compacts again
        self.directory.mkdir(parents=True, exist_ok=True)
        data, sha = _encode_snapshot(record)
        write_atomic(self.file, data)
        head = _journal.header(sha)
        write_atomic(self.journal, head)
        self._state, self._snapshot_sha, self._snapshot_size = record, sha, len(data)
        self._journal_end, self._changes = len(head), 0

    def _append(self, prev: StoreRecord, record: StoreRecord, end: int) -> None:
        before = {lb: i for i, lb in enumerate(prev.labels)}
        w = np.ascontiguousarray(record.weights, np.float32)
        rows = {i: w[i] for i, lb in enumerate(record.labels)
                if lb not in before or not np.array_equal(w[i], prev.weights[before[lb]])}  # fmt: skip
        change = _journal.Change(record.generation, tuple(record.labels), tuple(record.examples),
                                 float(record.threshold), rows)  # fmt: skip
        frame = _journal.encode_change(change)
        fd = os.open(self.journal, os.O_WRONLY)
        try:
            if os.fstat(fd).st_size != end:  # a torn frame of a crash: cut it off
                os.ftruncate(fd, end)
            written = 0
            while written < len(frame):
                written += os.pwrite(fd, frame[written:], end + written)
            _fdatasync(fd)
        except BaseException:
            with contextlib.suppress(OSError):  # a failed write leaves nothing a reader would take for a change
                os.ftruncate(fd, end)
            raise
        finally:
            os.close(fd)
        self._state = StoreRecord(record.model_key, tuple(record.labels), tuple(record.examples), w.copy(),
                                  float(record.threshold), record.generation)  # fmt: skip
        self._journal_end = end + len(frame)
        self._changes += 1

    def _forget_state(self) -> None:
        self._state, self._snapshot_sha, self._snapshot_size = None, "", 0
        self._journal_end, self._changes = None, 0

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


def _apply(record: StoreRecord, change: _journal.Change, path: str) -> StoreRecord:
    """The state after one journal change."""
    if change.generation != record.generation + 1:
        raise StateError(f"expected generation {record.generation + 1}, got {change.generation}",
                         path=f"{path}/generation")  # fmt: skip
    before = {lb: i for i, lb in enumerate(record.labels)}
    weights = np.empty((len(change.labels), record.weights.shape[1]), np.float32)
    for i, label in enumerate(change.labels):
        if i in change.rows:
            weights[i] = change.rows[i]
        elif label in before:
            weights[i] = record.weights[before[label]]
        else:
            raise StateError(f"no weights for the new class {label!r} (row {i})", path=f"{path}/rows")
    return StoreRecord(record.model_key, change.labels, change.examples, weights, change.threshold, change.generation)


def _fdatasync(fd: int) -> None:
    # fdatasync flushes the data and the size (what a reader needs), not timestamps; not every platform has it.
    getattr(os, "fdatasync", os.fsync)(fd)
