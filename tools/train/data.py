"""Training data: splits of binned spike counts, loaded by kind from the configuration.

Every loader returns :class:`Dataset` with ``x`` (N, T, C) float32 spike counts
per step of ``dt_s`` and ``y`` (N,) int64 class indices per split. Kinds:

* ``"synthetic"``: temporal patterns made here (:func:`synthetic_patterns`);
* ``"keywords"``: the spoken-keyword spikes of ``tools.datasets.keywords``
  (``load_split(path, split, dt_s=..., duration_s=...)``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from edgesnn.errors import EdgeSNNError, MissingDependencyError, OptionError
from tools.train.config import DataConfig

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """One split: ``x`` (N, T, C) float32 spike counts, ``y`` (N,) int64 labels."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Train, validation and test splits with class names and a content hash."""

    splits: dict[str, Split]
    labels: tuple[str, ...]
    sha256: str

    @property
    def n_channels(self) -> int:
        """Input channels C."""
        return int(self.splits["train"].x.shape[2])

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.labels)


def dataset_sha256(splits: dict[str, Split]) -> str:
    """sha256 over every split's name, shapes and bytes: identifies the exact training data."""
    h = hashlib.sha256()
    for name in sorted(splits):
        s = splits[name]
        h.update(f"{name}:{s.x.dtype.str}{s.x.shape}:{s.y.dtype.str}{s.y.shape}".encode())
        h.update(np.ascontiguousarray(s.x).tobytes())
        h.update(np.ascontiguousarray(s.y).tobytes())
    return h.hexdigest()


def check_split(name: str, x: Any, y: Any, n_classes: int) -> Split:
    """Validate a loader's arrays and return them as a Split."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 3 or x.dtype != np.float32:
        raise OptionError(f"expected x as float32 (N, T, C), got {x.dtype} {x.shape}", path=f"data/{name}/x")
    if y.shape != (x.shape[0],) or y.dtype != np.int64:
        raise OptionError(f"expected y as int64 ({x.shape[0]},), got {y.dtype} {y.shape}", path=f"data/{name}/y")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise OptionError(f"labels must lie in 0..{n_classes - 1}, got {y.min()}..{y.max()}", path=f"data/{name}/y")
    return Split(x, y)


# -- synthetic temporal patterns ----------------------------------------------------------------

_SYNTHETIC_DEFAULTS: dict[str, Any] = {
    "n_classes": 4, "channels": 16, "segments": 4, "duration_s": 0.1, "rate_hz": 200.0, "noise_hz": 5.0,
    "jitter_s": 0.003, "n_train": 256, "n_val": 64, "n_test": 64, "seed": None,
}  # fmt: skip


def synthetic_patterns(options: dict[str, Any], dt_s: float, seed: int) -> Dataset:
    """Classes that differ only in the temporal order of channel-group bursts.

    The channels are split into ``segments`` groups; class k fires the groups in
    its own order, one per time segment, as Poisson spikes at ``rate_hz``
    (segment edges jittered by ``jitter_s``), over background noise at
    ``noise_hz``. Every class has the same average rate per channel, so only the
    timing separates them. Spike times are drawn in continuous time and then
    binned at ``dt_s``, so one task can be binned at any step.
    """
    unknown = sorted(set(options) - set(_SYNTHETIC_DEFAULTS))
    if unknown:
        raise OptionError(f"unknown option(s) {', '.join(unknown)}; expected some of {', '.join(_SYNTHETIC_DEFAULTS)}",
                          path="data")  # fmt: skip
    o = {**_SYNTHETIC_DEFAULTS, **options}
    k, c, g = int(o["n_classes"]), int(o["channels"]), int(o["segments"])
    if g < 2 or c < g or k < 2 or k > math.factorial(g):
        raise OptionError(f"need 2 <= segments <= channels and 2 <= n_classes <= segments! ({math.factorial(g)}), "
                          f"got n_classes={k}, channels={c}, segments={g}", path="data")  # fmt: skip
    base = int(o["seed"]) if o["seed"] is not None else seed
    # The class orders are part of the task, so they come from the seed alone (not the split).
    orders = np.random.default_rng([base, 0]).permutation(list(itertools.permutations(range(g))))[:k]
    groups = np.array_split(np.arange(c), g)
    steps = max(1, math.ceil(float(o["duration_s"]) / dt_s - 1e-9))
    splits = {}
    for i, name in enumerate(SPLITS, start=1):
        rng = np.random.default_rng([base, i])
        n = int(o[f"n_{name}"])
        y = rng.integers(0, k, n).astype(np.int64)
        x = np.zeros((n, steps, c), np.float32)
        for row in range(n):
            times, chans = _pattern_sample(rng, orders[y[row]], groups, o, c)
            idx = np.minimum((times / dt_s).astype(np.int64), steps - 1)
            np.add.at(x[row], (idx, chans), 1.0)
        splits[name] = Split(x, y)
    labels = tuple("-".join(map(str, order)) for order in orders)
    return Dataset(splits, labels, dataset_sha256(splits))


def _pattern_sample(
    rng: np.random.Generator, order: np.ndarray, groups: list[np.ndarray], o: dict[str, Any], c: int
) -> tuple[np.ndarray, np.ndarray]:
    duration = float(o["duration_s"])
    seg = duration / len(order)
    edges = np.clip(np.arange(len(order) + 1) * seg + rng.normal(0, float(o["jitter_s"]), len(order) + 1), 0, duration)
    edges[0], edges[-1] = 0.0, duration
    times, chans = [], []
    for j, group in enumerate(order):
        lo, hi = edges[j], max(edges[j], edges[j + 1])
        counts = rng.poisson(float(o["rate_hz"]) * (hi - lo), len(groups[group]))
        times.append(rng.uniform(lo, hi, counts.sum()))
        chans.append(np.repeat(groups[group], counts))
    counts = rng.poisson(float(o["noise_hz"]) * duration, c)
    times.append(rng.uniform(0, duration, counts.sum()))
    chans.append(np.repeat(np.arange(c), counts))
    return np.concatenate(times), np.concatenate(chans)


# -- spoken keywords --------------------------------------------------------------------------------


def keywords(options: dict[str, Any], dt_s: float) -> Dataset:
    """Load the spoken-keyword splits with ``tools.datasets.keywords.load_split`` (labels: its vocabulary)."""
    allowed = {"path", "duration_s", "splits", "limit"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise OptionError(
            f"unknown option(s) {', '.join(unknown)}; expected some of {', '.join(sorted(allowed))}", path="data"
        )
    if "path" not in options:
        raise OptionError("the keywords dataset needs 'path' (folder of the generated splits)", path="data/path")
    try:
        from tools.datasets.keywords import load_split, read_split
    except ImportError as exc:
        raise MissingDependencyError(f"tools.datasets.keywords is not available: {exc}", path="data/kind") from exc
    names = {**{s: s for s in SPLITS}, **options.get("splits", {})}
    limit = options.get("limit")
    indices = np.arange(int(limit)) if limit else None
    try:
        labels = tuple(str(k) for k in read_split(options["path"], names["train"]).keywords)
        raw = {
            s: load_split(options["path"], names[s], dt_s=dt_s, duration_s=options.get("duration_s"), indices=indices)
            for s in SPLITS
        }
    except EdgeSNNError as exc:
        raise exc.with_prefix("data") from None
    splits = {s: check_split(s, x, y, len(labels)) for s, (x, y) in raw.items()}
    return Dataset(splits, labels, dataset_sha256(splits))


def load_dataset(cfg: DataConfig, dt_s: float, seed: int) -> Dataset:
    """Load the dataset the configuration names, binned at ``dt_s``."""
    if cfg.kind == "synthetic":
        return synthetic_patterns(cfg.options, dt_s, seed)
    return keywords(cfg.options, dt_s)


def batches(n: int, batch_size: int, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
    """Index arrays of full batches (shuffled when ``rng`` is given); a short last batch is dropped."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n - batch_size + 1, batch_size):
        yield order[start : start + batch_size]


#: JAX on the CPU uses a numpy array in place (no copy) when its data is aligned to this many bytes.
ALIGN_BYTES = 64


def aligned_empty(shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
    """An uninitialised array whose data starts on an ``ALIGN_BYTES`` boundary."""
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buf = np.empty(n + ALIGN_BYTES, np.uint8)
    start = (-buf.ctypes.data) % ALIGN_BYTES
    return buf[start : start + n].view(dtype).reshape(shape)


def take_batch(x: np.ndarray, idx: np.ndarray, *, time_major: bool = False) -> np.ndarray:
    """``x[idx]`` gathered into aligned memory, which JAX then reads in place: one copy of the batch, not two.

    ``time_major``: the batch as (T, B, ...) instead of (B, T, ...), for a time loop that reads its
    steps straight from it (a transpose inside the compiled step would be a second copy).
    """
    if not time_major:
        out = aligned_empty((len(idx), *x.shape[1:]), x.dtype)
        np.take(x, idx, axis=0, out=out)
        return out
    out = aligned_empty((x.shape[1], len(idx), *x.shape[2:]), x.dtype)
    for j, i in enumerate(idx):
        out[:, j] = x[i]
    return out
