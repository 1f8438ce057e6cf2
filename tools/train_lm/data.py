"""The text: the Python standard library's source, split by file, as character ids.

Ids: 0 for any character outside printable ASCII, 1 for a newline, 2..96 for the
printable ASCII characters 32..126 (tabs count as "other"; the stdlib uses spaces).
Files are assigned to a split by the CRC32 of their path relative to the stdlib:
remainder 0 of 20 is test, 1 is val, the rest train; ``test/`` and ``idlelib/``
directories and ``site-packages`` are left out.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sysconfig
import zlib

import numpy as np

VOCAB = 97
SPLITS = ("train", "val", "test")


def encode(text: str) -> np.ndarray:
    """Character ids (int32) of ``text``."""
    raw = np.frombuffer(text.encode("ascii", errors="replace"), np.uint8).astype(np.int32)
    ids = np.where((raw >= 32) & (raw < 127), raw - 30, 0)
    return np.where(raw == 10, 1, ids).astype(np.int32)


def decode(ids: np.ndarray) -> str:
    """The text of character ids (0 shown as '?')."""
    return "".join("\n" if i == 1 else chr(i + 30) if i >= 2 else "?" for i in np.asarray(ids).tolist())


def split_of(relative: str) -> str:
    """The split a stdlib file belongs to."""
    r = zlib.crc32(relative.encode()) % 20
    return "test" if r == 0 else "val" if r == 1 else "train"


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Character ids of each split, files joined by blank lines, and the files behind them."""

    ids: dict[str, np.ndarray]
    files: dict[str, list[str]]
    root: str


def load_corpus(root: str | None = None) -> Corpus:
    """The stdlib corpus of this Python (or of the stdlib directory ``root``)."""
    base = pathlib.Path(root or sysconfig.get_paths()["stdlib"])
    texts: dict[str, list[str]] = {s: [] for s in SPLITS}
    files: dict[str, list[str]] = {s: [] for s in SPLITS}
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(base).as_posix()
        parts = rel.split("/")
        if "site-packages" in parts or any(p in ("test", "tests", "idlelib") for p in parts[:-1]):
            continue
        split = split_of(rel)
        texts[split].append(path.read_text(encoding="utf-8", errors="replace"))
        files[split].append(rel)
    return Corpus({s: encode("\n\n".join(t)) for s, t in texts.items()}, files, str(base))


def batches(ids: np.ndarray, batch: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """A batch (batch, length + 1) of windows at random offsets (inputs are [:, :-1], targets [:, 1:])."""
    starts = rng.integers(0, len(ids) - length - 1, batch)
    return np.stack([ids[s : s + length + 1] for s in starts])


def chunks(ids: np.ndarray, length: int, count: int) -> np.ndarray:
    """The first ``count`` consecutive, non-overlapping chunks (count, length) of ``ids``: the evaluation set."""
    usable = min(count, len(ids) // length)
    return ids[: usable * length].reshape(usable, length)
