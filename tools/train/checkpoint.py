"""Checkpoints: parameters, optimizer state, best model, epoch and rng in one msgpack file.

Pytrees are stored leaf by leaf under their tree path with dtype and shape,
and loaded into a skeleton built the normal way (init + optimizer), so a
checkpoint from another architecture is refused with the leaf that differs.
Writes go to a temporary file that replaces the old one atomically.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Any

import jax
import msgpack
import numpy as np

from edgesnn.errors import StateError

FORMAT = "edgesnn-train-checkpoint"
VERSION = 1


@dataclasses.dataclass(frozen=True, eq=False)
class TrainState:
    """Everything needed to continue a run exactly where it stopped."""

    epoch: int  # epochs completed
    params: Any
    opt_state: Any
    best_params: Any
    best_val_accuracy: float
    best_epoch: int
    history: list[dict[str, Any]]
    config: dict[str, Any]
    dataset_sha256: str
    rng: dict[str, int]  # the shuffle of epoch e uses np.random.default_rng([seed, e])


def _encode_tree(tree: Any) -> dict[str, Any]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    out = {}
    for path, leaf in leaves:
        a = np.asarray(leaf)
        out[jax.tree_util.keystr(path)] = {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}
    return out


def _decode_tree(stored: dict[str, Any], skeleton: Any, where: str) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(skeleton)
    values = []
    for path, ref in leaves:
        key = jax.tree_util.keystr(path)
        ref = np.asarray(ref)
        item = stored.get(key)
        if item is None:
            raise StateError("missing from the checkpoint (different architecture or optimizer?)", path=f"{where}{key}")
        want = (ref.dtype.str, list(ref.shape))
        if (item["dtype"], list(item["shape"])) != want:
            raise StateError(f"expected {ref.dtype} {tuple(ref.shape)}, got {np.dtype(item['dtype'])} "
                             f"{tuple(item['shape'])}", path=f"{where}{key}")  # fmt: skip
        values.append(np.frombuffer(item["data"], dtype=ref.dtype).reshape(ref.shape).copy())
    extra = sorted(set(stored) - {jax.tree_util.keystr(p) for p, _ in leaves})
    if extra:
        raise StateError(f"unexpected entries {', '.join(extra[:3])} (different architecture?)", path=where)
    return jax.tree_util.tree_unflatten(treedef, values)


def save_checkpoint(path: str | os.PathLike[str], state: TrainState) -> None:
    """Write ``state`` to ``path`` atomically (a crash leaves the previous checkpoint intact)."""
    record = {
        "format": FORMAT,
        "version": VERSION,
        "epoch": state.epoch,
        "params": _encode_tree(state.params),
        "opt_state": _encode_tree(state.opt_state),
        "best_params": _encode_tree(state.best_params),
        "best_val_accuracy": state.best_val_accuracy,
        "best_epoch": state.best_epoch,
        "history": state.history,
        "config": state.config,
        "dataset_sha256": state.dataset_sha256,
        "rng": state.rng,
    }
    data = msgpack.packb(record, use_bin_type=True)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_best_params(path: str | os.PathLike[str], params_skeleton: Any) -> Any:
    """The best parameters of a checkpoint (what the exported bundle holds), without its optimiser state."""
    name = os.fspath(path)
    record = _read_record(name)
    try:
        return _decode_tree(record["best_params"], params_skeleton, "best_params")
    except StateError as exc:
        raise exc.with_prefix(name) from None
    except (KeyError, TypeError) as exc:
        raise StateError(f"checkpoint lacks or garbles {exc}", path=name) from exc


def _read_record(name: str) -> dict[str, Any]:
    try:
        with open(name, "rb") as f:
            record = msgpack.unpackb(f.read(), raw=False)
    except OSError as exc:
        raise StateError(f"cannot read the checkpoint: {exc.strerror}", path=name) from exc
    except (ValueError, msgpack.exceptions.ExtraData) as exc:
        raise StateError(f"not a msgpack checkpoint: {exc}", path=name) from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise StateError(f"not an edgesnn training checkpoint (expected format {FORMAT!r})", path=name)
    if record.get("version") != VERSION:
        raise StateError(f"checkpoint version {record.get('version')!r} is not {VERSION}", path=name)
    return record


def load_checkpoint(path: str | os.PathLike[str], params_skeleton: Any, opt_skeleton: Any) -> TrainState:
    """Read a checkpoint, filling arrays into skeletons of the expected structure."""
    name = os.fspath(path)
    record = _read_record(name)
    try:
        return TrainState(
            epoch=int(record["epoch"]),
            params=_decode_tree(record["params"], params_skeleton, "params"),
            opt_state=_decode_tree(record["opt_state"], opt_skeleton, "opt_state"),
            best_params=_decode_tree(record["best_params"], params_skeleton, "best_params"),
            best_val_accuracy=float(record["best_val_accuracy"]),
            best_epoch=int(record["best_epoch"]),
            history=list(record["history"]),
            config=dict(record["config"]),
            dataset_sha256=str(record["dataset_sha256"]),
            rng={k: int(v) for k, v in record["rng"].items()},
        )
    except StateError as exc:
        raise exc.with_prefix(name) from None
    except (KeyError, TypeError) as exc:
        raise StateError(f"checkpoint lacks or garbles {exc}", path=name) from exc
