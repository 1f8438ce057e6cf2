"""The class store: exact round trip, clear errors for broken files, and no torn store after kill -9."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest

from edgesnn.errors import StateError, UnsupportedVersionError
from edgesnn.learn import ClassStore, StoreRecord, _journal
from edgesnn.learn.store import FORMAT, JOURNAL, decode_record, encode_record

REPO = Path(__file__).resolve().parents[1]


def record(n_classes=3, n_features=5, generation=4) -> StoreRecord:
    w = np.random.default_rng(0).normal(size=(n_classes, n_features)).astype(np.float32)
    labels = tuple(f"class {i}" for i in range(n_classes))
    return StoreRecord("k" * 64, labels, tuple(range(1, n_classes + 1)), w, 0.25, generation)


def test_round_trip_is_exact(tmp_path):
    store = ClassStore(tmp_path / "new" / "dir")
    assert store.read() is None  # nothing written yet
    store.write(record())
    got = store.read()
    assert (got.model_key, got.labels, got.examples, got.threshold, got.generation) == (
        "k" * 64, ("class 0", "class 1", "class 2"), (1, 2, 3), 0.25, 4
    )  # fmt: skip
    np.testing.assert_array_equal(got.weights, record().weights)
    assert got.weights.dtype == np.float32
    assert store.load("k" * 64, 5).labels == got.labels
    store.write(record(n_classes=0))
    assert store.read().weights.shape == (0, 5)


def test_foreign_store_and_wrong_feature_count(tmp_path):
    store = ClassStore(tmp_path)
    store.write(record())
    with pytest.raises(StateError, match=f"^{tmp_path / 'classes.msgpack'}/model: the store belongs to another"):
        store.load("x" * 64, 5)
    with pytest.raises(StateError, match="classes.msgpack/weights/shape: expected 6 features, got 5"):
        store.load("k" * 64, 6)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StateError, match="file: expected a directory"):
        ClassStore(tmp_path / "file").read()


def _rewrite(data: bytes, **changes) -> bytes:
    """Store bytes with body fields replaced, checksum recomputed (a well-formed file with bad content)."""
    outer = msgpack.unpackb(data)
    body = msgpack.unpackb(outer["body"])
    body.update(changes)
    outer["body"] = msgpack.packb(body, use_bin_type=True)
    outer["sha256"] = hashlib.sha256(outer["body"]).hexdigest()
    return msgpack.packb(outer, use_bin_type=True)


def _weights(shape, dtype="<f4", fill=0.0):
    return {"dtype": dtype, "shape": list(shape), "data": np.full(shape, fill, dtype).tobytes()}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"model": 3}, "model", "expected a store key, got int"),
        ({"classes": [{"label": "a", "examples": 1}] * 3}, "classes/1/label", "expected a unique non-empty label"),
        ({"classes": [{"label": "a"}, {}, {}]}, "classes/0/examples", "missing"),
        ({"classes": [{"label": "a", "examples": 0}] + [{"label": "b", "examples": 1}] * 2},
         "classes/0/examples", "expected an int >= 1"),
        ({"weights": _weights((3, 5), "<f8")}, "weights/dtype", "expected '<f4'"),
        ({"weights": _weights((2, 5))}, "weights/shape", r"expected 3 rows \(one per class\), got 2"),
        ({"weights": {**_weights((3, 5)), "data": b"\0" * 7}}, "weights/data", "expected 60 bytes"),
        ({"weights": _weights((3, 5), fill=np.inf)}, "weights/data", "expected finite weights"),
        ({"rule": {"threshold": -1.0}}, "rule/threshold", "expected a finite number >= 0"),
        ({"rule": {}}, "rule/threshold", "missing"),
        ({"generation": "x"}, "generation", "expected an int"),
        ({"extra": 1}, "", r"unknown keys \['extra'\]"),
    ],
)  # fmt: skip
def test_bad_fields_are_named(changes, field, message):
    data = _rewrite(encode_record(record()), **changes)
    path = "store/classes.msgpack"
    with pytest.raises(StateError, match=f"^{path}{'/' + field if field else ''}: {message}"):
        decode_record(data, path=path)


def test_corruption_is_detected_wherever_it_is():
    data = encode_record(record())
    rng = np.random.default_rng(0)
    for cut in range(len(data)):  # every truncation
        with pytest.raises(StateError):
            decode_record(data[:cut], path="f")
    for pos in rng.choice(len(data), 200, replace=False):  # bit flips anywhere
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(8))
        try:
            got = decode_record(bytes(flipped), path="f")
        except (StateError, UnsupportedVersionError):  # a flip in the version number reads as a newer version
            continue
        # A flip that still decodes can only have hit a place with no meaning (e.g. a key's spelling is checked
        # elsewhere); the content must then be exactly the original.
        np.testing.assert_array_equal(got.weights, record().weights)
        assert got.labels == record().labels


def test_format_and_version_are_checked():
    outer = msgpack.unpackb(encode_record(record()))
    with pytest.raises(StateError, match="f/format: not a class store"):
        decode_record(msgpack.packb({**outer, "format": "something else"}), path="f")
    with pytest.raises(UnsupportedVersionError, match="f/version: class store version 3 is newer than this edgesnn"):
        decode_record(msgpack.packb({**outer, "version": 3}), path="f")
    assert decode_record(msgpack.packb({**outer, "version": 1}), path="f").labels == record().labels
    with pytest.raises(StateError, match="f/sha256: the content does not match its checksum"):
        decode_record(msgpack.packb({**outer, "sha256": "0" * 64}), path="f")
    with pytest.raises(StateError, match="f: not a class store, or a corrupted one"):
        decode_record(b"\xc1garbage", path="f")
    assert outer["format"] == FORMAT


# -- the journal -----------------------------------------------------------------------
def evolve(rec: StoreRecord, rng, *, add: str | None = None, drop: str | None = None) -> StoreRecord:
    """The next generation: one row changed (or a class added / dropped), as a learn or forget would."""
    labels, examples, w = list(rec.labels), list(rec.examples), rec.weights.copy()
    if add is not None:
        labels.append(add)
        examples.append(1)
        w = np.vstack([w, rng.normal(size=(1, w.shape[1])).astype(np.float32)])
    elif drop is not None:
        i = labels.index(drop)
        del labels[i], examples[i]
        w = np.delete(w, i, axis=0)
    else:
        i = int(rng.integers(len(labels)))
        examples[i] += 1
        w[i] += rng.normal(size=w.shape[1]).astype(np.float32)
    return StoreRecord(rec.model_key, tuple(labels), tuple(examples), w, rec.threshold + 0.01, rec.generation + 1)


def same(a: StoreRecord, b: StoreRecord) -> bool:
    return (a.labels, a.examples, a.threshold, a.generation) == (b.labels, b.examples, b.threshold, b.generation) and (
        np.array_equal(a.weights, b.weights)
    )


def history(n: int, seed: int = 0) -> list[StoreRecord]:
    rng = np.random.default_rng(seed)
    recs = [record(n_classes=1, generation=1)]
    for i in range(n):
        kind = i % 4
        recs.append(evolve(recs[-1], rng, add=f"new {i}" if kind == 0 else None,
                           drop=recs[-1].labels[0] if kind == 3 else None))  # fmt: skip
    return recs


def test_changes_are_appended_to_the_journal_and_replayed(tmp_path):
    store = ClassStore(tmp_path, compact_every=5)
    recs = history(12)
    snapshots = []
    for rec in recs:
        store.write(rec)
        snapshots.append((tmp_path / "classes.msgpack").read_bytes())
        assert same(ClassStore(tmp_path).read(), rec)  # a fresh reader sees exactly the last write
    # The snapshot is rewritten only at the first write and then once per compact_every appended changes.
    rewrites = [i for i in range(1, len(recs)) if snapshots[i] != snapshots[i - 1]]
    assert rewrites == [6, 12], rewrites
    # A writer that opens the store later goes on appending where the last one stopped.
    later = ClassStore(tmp_path, compact_every=5)
    later.read()
    size = (tmp_path / JOURNAL).stat().st_size
    later.write(evolve(recs[-1], np.random.default_rng(1)))
    assert (tmp_path / JOURNAL).stat().st_size > size and (tmp_path / "classes.msgpack").read_bytes() == snapshots[-1]


def test_a_frame_holds_only_the_rows_that_changed(tmp_path):
    store = ClassStore(tmp_path)
    rec = record(n_classes=20, n_features=64, generation=1)
    store.write(rec)
    size = (tmp_path / JOURNAL).stat().st_size
    store.write(evolve(rec, np.random.default_rng(0)))
    assert (tmp_path / JOURNAL).stat().st_size - size < 2 * 64 * 4 + 20 * 40  # one row + the class list, not 20 rows


def test_a_torn_last_frame_is_ignored_and_cut_off_by_the_next_writer(tmp_path):
    recs = history(3)
    store = ClassStore(tmp_path)
    for rec in recs[:-1]:
        store.write(rec)
    start = (tmp_path / JOURNAL).stat().st_size
    store.write(recs[-1])
    journal = (tmp_path / JOURNAL).read_bytes()
    for cut in range(start, len(journal)):  # every truncation inside the last frame, and garbage where it was
        for tail in (journal[start:cut], b"\0" * (cut - start), bytes(reversed(journal[start:cut]))):
            (tmp_path / JOURNAL).write_bytes(journal[:start] + tail)
            assert same(ClassStore(tmp_path).read(), recs[-2]), cut
    writer = ClassStore(tmp_path)
    writer.read()
    nxt = evolve(recs[-2], np.random.default_rng(5))
    writer.write(nxt)
    assert same(ClassStore(tmp_path).read(), nxt)


def test_journal_damage_before_the_end_is_an_error_naming_the_frame(tmp_path):
    store = ClassStore(tmp_path)
    for rec in history(3):
        store.write(rec)
    journal = bytearray((tmp_path / JOURNAL).read_bytes())
    first = len(_journal.header("0" * 64))
    journal[first + 12] ^= 0x40  # inside frame 1's payload; frames 2 and 3 follow
    (tmp_path / JOURNAL).write_bytes(bytes(journal))
    with pytest.raises(StateError, match=r"classes\.journal/frame 1: the checksum does not match at byte \d+"):
        ClassStore(tmp_path).read()


def test_journal_header_stale_newer_or_orphaned(tmp_path, caplog):
    store = ClassStore(tmp_path)
    recs = history(2)
    for rec in recs:
        store.write(rec)
    journal = (tmp_path / JOURNAL).read_bytes()
    # A journal continuing another snapshot: a compaction was interrupted after the new snapshot was in place.
    other = ClassStore(tmp_path)
    other.compact(recs[1])
    (tmp_path / JOURNAL).write_bytes(_journal.header("f" * 64) + journal[len(_journal.header("0" * 64)) :])
    with caplog.at_level("INFO", logger="edgesnn.learn.store"):
        assert same(ClassStore(tmp_path).read(), recs[1])
    assert "stale journal" in caplog.text
    head = _journal.frame(msgpack.packb({"format": _journal.FORMAT, "version": 9, "snapshot": "0" * 64}))
    (tmp_path / JOURNAL).write_bytes(head)
    with pytest.raises(UnsupportedVersionError, match="classes.journal/frame 0/version: class journal version 9"):
        ClassStore(tmp_path).read()
    (tmp_path / JOURNAL).write_bytes(b"")
    with pytest.raises(StateError, match="classes.journal/frame 0: the journal has no header"):
        ClassStore(tmp_path).read()
    (tmp_path / "classes.msgpack").unlink()
    with pytest.raises(StateError, match="classes.journal: a journal without its snapshot"):
        ClassStore(tmp_path).read()


def test_a_version_1_store_without_a_journal_still_loads(tmp_path):
    outer = msgpack.unpackb(encode_record(record(generation=7)))
    (tmp_path / "classes.msgpack").write_bytes(msgpack.packb({**outer, "version": 1}))
    store = ClassStore(tmp_path)
    assert same(store.read(), record(generation=7))
    nxt = evolve(record(generation=7), np.random.default_rng(0))
    store.write(nxt)  # the first write of a store without a journal compacts
    assert same(ClassStore(tmp_path).read(), nxt) and (tmp_path / JOURNAL).exists()


# -- kill -9 -----------------------------------------------------------------------
WRITER = """
import os, sys
import numpy as np
sys.path.insert(0, {repo!r})
from tools.bench.learn_task import ToyTask
from edgesnn.learn import enable_learning

store, log_path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
task = ToyTask(steps=30)
session = enable_learning(task.model(), "features").session(store=store)
log = open(log_path, "a")
n = sum(1 for line in open(log_path) if line.startswith("+"))
rng = np.random.default_rng(seed)

def note(line):
    log.write(line + "\\n")
    log.flush()
    os.fsync(log.fileno())

print("ready", flush=True)
while True:
    label = f"k{{n % 12}}"  # after 12 labels, later examples reinforce existing classes
    note("+" + label)  # about to learn
    session.learn(label, task.example(n % task.n_classes, rng))
    note("=" + label)  # acknowledged: learn() returned
    n += 1
"""


@pytest.mark.slow
def test_kill_9_at_random_moments_never_loses_an_acknowledged_class(tmp_path):
    store_dir, log = tmp_path / "store", tmp_path / "log.txt"
    log.write_text("")
    code = WRITER.format(repo=str(REPO))
    rng = np.random.default_rng(2024)
    kills = 50
    leftovers = 0
    for i in range(kills):
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(store_dir), str(log), str(i)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(float(rng.uniform(0.0, 0.15)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        leftovers += len(list(store_dir.glob(".classes.*.tmp")))  # evidence of a kill inside a write

        lines = log.read_text().split()
        stored = ClassStore(store_dir).read()  # must always decode
        counts = dict(zip(stored.labels, stored.examples, strict=True)) if stored else {}
        for label in {line[1:] for line in lines}:
            acknowledged, begun = lines.count("=" + label), lines.count("+" + label)
            # Every acknowledged example is in the store; one begun but not acknowledged may or may not be.
            assert acknowledged <= counts.get(label, 0) <= begun, (i, label, acknowledged, counts.get(label), begun)
    acknowledged = sum(line.startswith("=") for line in log.read_text().split())
    assert acknowledged > kills  # the writers did get work done between kills
    print(f"{kills} kills, {acknowledged} acknowledged learns, {leftovers} temp files seen after a kill")
