"""Few-shot event dataset of glyphs from 48 scripts, made here the way N-MNIST and N-Omniglot were made.

Letters of many scripts are drawn from the Noto fonts of the Debian package fonts-noto-core
(``_scripts``, ``_fonts``), each sample with its own font size, stroke width, rotation, shear,
size, position, paper, ink and sensor thresholds; a 34 x 34 event camera
(:class:`edgesnn.events.simulator.EventSimulator`) watches the page while it makes three 100 ms
saccades (``_saccades``). Splits hold out whole alphabets: 30 for meta-training, 6 for
meta-validation, 12 for meta-testing (``_scripts.ALPHABETS``). Every class has
``samples_per_class`` samples, so N-way k-shot episodes can be drawn (:func:`episodes`).

Generate (``full`` is the meta-training and evaluation set, ``small`` the slice in tests/data)::

    python -m tools.datasets.glyphs --out data/glyphs --size full --workers 2

Use::

    x, y = load_split("data/glyphs", "test", n_bins=10)    # (N, 10, 2, 34, 34) float32, (N,) int64
    for support, query, classes in itertools.islice(episodes(y, n_way=5, k_shot=1, n_query=15, rng=rng), 600):
        ...

Output files: ``DIR/train.npz``, ``DIR/val.npz``, ``DIR/test.npz`` (members listed in
``_glyph_storage``). The same seed and configuration give identical arrays with the same font
files and Pillow/FreeType build, whatever the number of workers.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgesnn.errors import MissingDependencyError, OptionError
from edgesnn.events._dtype import EVENT_DTYPE
from edgesnn.events.functional.to_histogram import to_time_bins
from tools.datasets import _fonts, _saccades, _scripts
from tools.datasets._cli import generator_main
from tools.datasets._glyph_plan import (
    GENERATOR_VERSION,
    POSE_PARAM_NAMES,
    GlyphClass,
    GlyphConfig,
    SampleTask,
    enumerate_classes,
    plan_split,
    pose_params,
    split_alphabets,
)
from tools.datasets._glyph_storage import GlyphSplit, read_glyph_split, write_glyph_split
from tools.datasets._npz import read_split_of

__all__ = [
    "SIZES",
    "SPLITS",
    "GlyphConfig",
    "GlyphSplit",
    "episodes",
    "generate",
    "load_split",
    "main",
    "read_split",
    "render_class",
    "write",
]

log = logging.getLogger("edgesnn.datasets.glyphs")

SPLITS = _scripts.SPLITS

#: ``full``: every alphabet, up to 32 letters each, 20 samples per letter (Omniglot's count): 896 / 181 /
#: 376 classes in train / val / test (fonts-noto-core 20201225), 29,060 samples of ~2,100 events, ~26 ms
#: of CPU each (about 6.5 min with 2 idle cores), ~4 bytes per event on disk (~240 MB in all).
#: ``small``: the first alphabet of each split, 4 letters, 2 samples each (the shipped slice).
SIZES: dict[str, GlyphConfig] = {
    "small": GlyphConfig(samples_per_class=2, max_classes_per_alphabet=4, alphabets_per_split=1),
    "full": GlyphConfig(),
}


def render_class(task: SampleTask, config: GlyphConfig) -> list[np.ndarray]:
    """Events of every sample of one class (a pure function of the task and the configuration)."""
    out = []
    for pose, entropy in zip(task.poses, task.entropy, strict=True):
        mask = _fonts.render_mask(task.cls.font, task.cls.codepoint, size_px=pose.font_px, stroke_px=pose.stroke_px)
        out.append(
            _saccades.simulate(
                mask,
                pose,
                sensor=(config.width, config.height),
                margin=config.margin,
                duration_us=config.duration_us,
                frame_us=config.frame_us,
                simulator=config.simulator_config(pose.contrast_threshold),
                rng=np.random.default_rng(entropy),
            )
        )
    return out


def _render_task(job: tuple[SampleTask, GlyphConfig]) -> list[np.ndarray]:
    return render_class(*job)


def _progress(total: int, quiet: bool) -> Any:
    """A tqdm bar on stderr (disabled when ``quiet``); tqdm is imported here, only generation needs it."""
    try:
        from tqdm import tqdm
    except ImportError as exc:
        raise MissingDependencyError("progress bars need tqdm (pip install tqdm)") from exc
    return tqdm(total=total, disable=quiet, unit="class", desc="glyphs", file=sys.stderr)


def _versions() -> tuple[str, str]:
    from PIL import __version__, features

    return __version__, str(features.version("freetype2"))


def _to_split(
    split: str, classes: list[GlyphClass], tasks: list[SampleTask], events: list[np.ndarray], config: GlyphConfig,
    seed: int,
) -> GlyphSplit:  # fmt: skip
    alphabets = split_alphabets(config, split)
    names = [a.name for a in alphabets]
    counts = [len(e) for e in events]
    cat = np.concatenate(events) if events else np.zeros(0, EVENT_DTYPE)
    pillow, freetype = _versions()

    def text(s: str) -> np.ndarray:
        return np.array(s, dtype=np.str_)

    return GlyphSplit(
        x=np.ascontiguousarray(cat["x"]),
        y=np.ascontiguousarray(cat["y"]),
        p=np.ascontiguousarray(cat["p"]),
        t=np.ascontiguousarray(cat["t"]),
        offsets=np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64),
        labels=np.repeat(np.arange(len(tasks), dtype=np.int64), config.samples_per_class),
        class_names=np.array([c.name for c in classes], dtype=np.str_).reshape(-1),
        class_codepoints=np.array([c.codepoint for c in classes], dtype=np.int64),
        class_alphabet=np.array([names.index(c.alphabet) for c in classes], dtype=np.int32),
        alphabets=np.array(names, dtype=np.str_).reshape(-1),
        alphabet_fonts=np.array([a.font for a in alphabets], dtype=np.str_).reshape(-1),
        pose_params=np.array([pose_params(p) for t in tasks for p in t.poses], dtype=np.float64).reshape(
            -1, len(POSE_PARAM_NAMES)
        ),
        pose_param_names=np.array(POSE_PARAM_NAMES, dtype=np.str_),
        width=np.array(config.width, dtype=np.int64),
        height=np.array(config.height, dtype=np.int64),
        duration_us=np.array(config.duration_us, dtype=np.int64),
        split=text(split),
        generator_version=text(GENERATOR_VERSION),
        config_hash=text(config.config_hash()),
        config_json=text(config.to_json()),
        pillow_version=text(pillow),
        freetype_version=text(freetype),
        seed=np.array(seed, dtype=np.int64),
    )


def generate(config: GlyphConfig, *, seed: int = 0, workers: int = 2, quiet: bool = False) -> dict[str, GlyphSplit]:
    """Render every split of ``config`` in memory; ``workers`` > 1 uses a process pool (spawned)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise OptionError(f"expected >= 1 workers, got {workers!r}", path="workers")
    classes = enumerate_classes(config)
    plans = {split: plan_split(config, split, classes[split], seed) for split in SPLITS}
    jobs = [(task, config) for split in SPLITS for task in plans[split]]
    with _progress(len(jobs), quiet) as bar:
        results: list[list[np.ndarray]] = []
        if workers == 1:
            for job in jobs:
                results.append(_render_task(job))
                bar.update()
        else:
            # spawn: children start clean (no copied locks or threads); imap keeps the task order
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for r in pool.imap(_render_task, jobs, chunksize=2):
                    results.append(r)
                    bar.update()
    out, start = {}, 0
    for split in SPLITS:
        n = len(plans[split])
        events = [e for per_class in results[start : start + n] for e in per_class]
        out[split] = _to_split(split, classes[split], plans[split], events, config, seed)
        start += n
    return out


def write(splits: dict[str, GlyphSplit], out_dir: str | Path) -> list[Path]:
    """Write each split to ``out_dir/<split>.npz``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, split in splits.items():
        path = out_dir / f"{name}.npz"
        write_glyph_split(path, split)
        paths.append(path)
    return paths


def read_split(path_or_dir: str | Path, split: str) -> GlyphSplit:
    """Read one split (raw events and metadata) from a dataset directory or a split file."""
    return read_split_of(path_or_dir, split, SPLITS, read_glyph_split)


def load_split(
    path_or_dir: str | Path,
    split: str,
    *,
    n_bins: int,
    duration_us: int | None = None,
    indices: Sequence[int] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Event counts ``x`` (N, n_bins, 2, H, W) float32 and labels ``y`` (N,) int64 of one split.

    Counts come from :func:`edgesnn.events.functional.to_histogram.to_time_bins` over
    ``[0, duration_us)`` (default: the dataset's window; a shorter one drops later events, a
    longer one leaves the last bins empty). Channel 0 counts OFF events, channel 1 ON events.
    ``indices`` selects samples (e.g. a batch).
    """
    data = read_split(path_or_dir, split)
    duration = int(data.duration_us) if duration_us is None else duration_us
    if isinstance(duration, bool) or not isinstance(duration, int | np.integer) or duration < 1:
        raise OptionError(f"expected a positive whole number of µs, got {duration_us!r}", path="duration_us")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise OptionError(f"expected a positive integer, got {n_bins!r}", path="n_bins")
    idx = np.arange(len(data)) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= len(data)):
        raise OptionError(f"indices must lie in [0, {len(data)}), got [{idx.min()}, {idx.max()}]", path="indices")
    w, h = int(data.width), int(data.height)
    x = np.empty((len(idx), n_bins, 2, h, w), dtype=np.float32)
    for row, i in enumerate(idx):
        x[row] = to_time_bins(
            data.events(int(i)), sensor_size=(w, h, 2), n_bins=n_bins, t_start_us=0, t_end_us=duration,
            dtype=np.float32,
        )  # fmt: skip
    return x, data.labels[idx].copy()


def episodes(
    y: np.ndarray, *, n_way: int, k_shot: int, n_query: int, rng: np.random.Generator, n_episodes: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """N-way k-shot episodes over labels ``y``: yields (support_idx, query_idx, class_ids).

    ``class_ids`` (n_way,) are distinct labels with at least ``k_shot + n_query`` samples;
    ``support_idx`` (n_way * k_shot,) and ``query_idx`` (n_way * n_query,) index ``y``, class by
    class in the order of ``class_ids``, and never share a sample. Endless unless ``n_episodes``
    is given.
    """
    for name, value, low in (("n_way", n_way, 1), ("k_shot", k_shot, 1), ("n_query", n_query, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise OptionError(f"expected an integer >= {low}, got {value!r}", path=name)
    if not isinstance(rng, np.random.Generator):
        raise OptionError(f"expected a numpy.random.Generator, got {type(rng).__name__}", path="rng")
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise OptionError(f"expected a 1-D integer label array, got {y.dtype} {y.shape}", path="y")
    labels, counts = np.unique(y, return_counts=True)
    usable = labels[counts >= k_shot + n_query]
    if len(usable) < n_way:
        raise OptionError(f"only {len(usable)} classes have >= {k_shot + n_query} samples, {n_way} needed",
                          path="n_way")  # fmt: skip
    members = {int(c): np.flatnonzero(y == c) for c in usable}
    done = 0
    while n_episodes is None or done < n_episodes:
        class_ids = rng.choice(usable, size=n_way, replace=False)
        support, query = [], []
        for c in class_ids:
            pick = rng.permutation(members[int(c)])[: k_shot + n_query]
            support.append(pick[:k_shot])
            query.append(pick[k_shot:])
        yield np.concatenate(support), np.concatenate(query), class_ids
        done += 1


def _describe(config: GlyphConfig, name: str, s: GlyphSplit) -> dict[str, Any]:
    return {"alphabets": len(s.alphabets), "classes": len(s.class_names), "samples": len(s),
            "events": int(s.offsets[-1])}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: generate a dataset into ``--out``; prints a JSON summary on stdout."""
    return generator_main("python -m tools.datasets.glyphs", __doc__.split("\n")[0], SIZES, generate, write,
                          _describe, argv,
                          extra=lambda c: {"geometry": [c.width, c.height], "duration_us": c.duration_us})  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
