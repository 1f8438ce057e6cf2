"""Checked, atomic .npz storage shared by the dataset generators (one file per split)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from edgesnn.errors import EventFileError, OptionError

S = TypeVar("S")

#: member name -> (dtype name or "str", number of dimensions)
Members = dict[str, tuple[str, int]]


def _dtype_ok(array: np.ndarray, expected: str) -> bool:
    return array.dtype.kind == "U" if expected == "str" else array.dtype == np.dtype(expected)


def _check(path: Path, arrays: dict[str, np.ndarray], members: Members) -> None:
    for name, (dtype, ndim) in members.items():
        a = arrays[name]
        if not _dtype_ok(a, dtype) or a.ndim != ndim:
            raise EventFileError(f"expected {dtype} with {ndim} dims, got {a.dtype} {a.shape}", path=f"{path}/{name}")


def write_members(path: Path, arrays: dict[str, np.ndarray], members: Members) -> None:
    """Check ``arrays`` against ``members`` and write them compressed, atomically (temp, fsync, rename)."""
    _check(path, arrays, members)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_members(path: Path, members: Members, what: str) -> dict[str, np.ndarray]:
    """Read the ``members`` of an .npz split; EventFileError names the file and member at fault."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files if name in members}
    except (OSError, ValueError) as exc:
        raise EventFileError(f"cannot read as .npz: {exc}", path=str(path)) from exc
    missing = sorted(set(members) - set(arrays))
    if missing:
        raise EventFileError(f"not a {what}: missing members {', '.join(missing)}", path=str(path))
    _check(path, arrays, members)
    return arrays


def split_file(path_or_dir: str | Path, split: str, splits: tuple[str, ...]) -> Path:
    """The .npz of ``split``: ``<dir>/<split>.npz``, or the file itself when one is given."""
    if split not in splits:
        raise OptionError(f"expected one of {', '.join(splits)}, got {split!r}", path="split")
    path = Path(path_or_dir)
    path = path / f"{split}.npz" if path.is_dir() else path
    if not path.is_file():
        raise EventFileError(
            "no such file; expected a dataset directory holding <split>.npz, or a split file", path=str(path)
        )
    return path


def read_split_of(path_or_dir: str | Path, split: str, splits: tuple[str, ...], reader: Callable[[Path], S]) -> S:
    """Read ``split`` with ``reader`` and check the file says it holds that split."""
    path = split_file(path_or_dir, split, splits)
    data = reader(path)
    if str(data.split) != split:  # type: ignore[attr-defined]
        raise OptionError(f"file holds split {str(data.split)!r}, not {split!r}", path=str(path))  # type: ignore[attr-defined]
    return data
