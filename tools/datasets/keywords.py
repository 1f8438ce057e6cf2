"""Spoken-keyword spike dataset, made here the way SHD was made.

English keywords are spoken by espeak-ng with many voices (English and other-language
letter-to-sound rules for accents, dozens of timbre variants), speaking rates and
pitches; each utterance gets a random level, a small time shift and white, pink or
babble noise; a cochlea-like front end (``_cochlea``) turns the audio into spike times
with microsecond resolution on 64 frequency channels. Splits are by voice: train,
validation and test use disjoint voice variants (``_voices``).

Generate (``full`` is the evaluation set, ``small`` the slice shipped in tests/data)::

    python -m tools.datasets.keywords --out data/keywords --size full --workers 2

Use::

    x, y = load_split("data/keywords", "train", dt_s=1e-3)    # (N, 1000, 64) float32, (N,) int64

Output files: ``DIR/train.npz``, ``DIR/val.npz``, ``DIR/test.npz`` (members listed in
``_storage``). The same seed and configuration give identical arrays with the same
espeak-ng build, whatever the number of workers.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgesnn.errors import MissingDependencyError, OptionError
from tools.datasets import _cochlea, _speech, _voices
from tools.datasets._binning import bin_samples, bin_spikes, n_bins
from tools.datasets._cli import generator_main
from tools.datasets._mix import NOISE_KINDS
from tools.datasets._npz import read_split_of
from tools.datasets._plan import GENERATOR_VERSION, SPEAKER_PARAM_NAMES, DatasetConfig, Utterance, plan_split
from tools.datasets._render import Rendered, render
from tools.datasets._storage import SpikeSplit, read_split_file, write_split_file

__all__ = [
    "SIZES",
    "DatasetConfig",
    "SpikeSplit",
    "bin_spikes",
    "generate",
    "load_split",
    "main",
    "read_split",
]

log = logging.getLogger("edgesnn.datasets.keywords")

#: Speakers per split (train, val, test); every speaker says each of the 22 keywords once.
SIZES: dict[str, DatasetConfig] = {
    "small": DatasetConfig(speakers=(1, 1, 1)),
    "full": DatasetConfig(speakers=(240, 40, 60)),
}


def _render_task(task: tuple[Utterance, DatasetConfig]) -> Rendered:
    return render(*task)


def _progress(total: int, quiet: bool) -> Any:
    """A tqdm bar on stderr (disabled when ``quiet``); tqdm is imported here, only generation needs it."""
    try:
        from tqdm import tqdm
    except ImportError as exc:
        raise MissingDependencyError("progress bars need tqdm (pip install tqdm)") from exc
    return tqdm(total=total, disable=quiet, unit="utt", desc="keywords", file=sys.stderr)


def _to_split(
    split: str, utts: list[Utterance], rendered: list[Rendered], config: DatasetConfig, seed: int
) -> SpikeSplit:
    voices = sorted({u.voice for u in utts})
    lengths = [len(r.times_us) for r in rendered]

    def text(s: str) -> np.ndarray:
        return np.array(s, dtype=np.str_)

    return SpikeSplit(
        times_us=np.concatenate([r.times_us for r in rendered]) if rendered else np.zeros(0, np.int64),
        units=np.concatenate([r.units for r in rendered]) if rendered else np.zeros(0, np.uint16),
        offsets=np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64),
        labels=np.array([u.label for u in utts], dtype=np.int64),
        keywords=np.array(config.keywords, dtype=np.str_),
        voice=np.array([voices.index(u.voice) for u in utts], dtype=np.int32),
        voices=np.array(voices, dtype=np.str_).reshape(-1),
        speaker=np.array([u.speaker for u in utts], dtype=np.int32),
        speaker_params=np.array([u.speaker_params() for u in utts], dtype=np.float64).reshape(-1, 5),
        speaker_param_names=np.array(SPEAKER_PARAM_NAMES, dtype=np.str_),
        noise_kind=np.array([NOISE_KINDS.index(u.noise_kind) for u in utts], dtype=np.int8),
        noise_kinds=np.array(NOISE_KINDS, dtype=np.str_),
        n_channels=np.array(config.cochlea.n_channels, dtype=np.int64),
        duration_s=np.array(config.duration_s, dtype=np.float64),
        centre_frequencies_hz=_cochlea.centre_frequencies(config.cochlea),
        split=text(split),
        generator_version=text(GENERATOR_VERSION),
        config_hash=text(config.config_hash()),
        config_json=text(config.to_json()),
        espeak_version=text(_speech.version()),
        seed=np.array(seed, dtype=np.int64),
    )


def generate(config: DatasetConfig, *, seed: int = 0, workers: int = 2, quiet: bool = False) -> dict[str, SpikeSplit]:
    """Render every split of ``config`` in memory; ``workers`` > 1 uses a process pool (spawned)."""
    if workers < 1:
        raise OptionError(f"expected >= 1 workers, got {workers}", path="workers")
    _speech.program_path()
    plans = {split: plan_split(config, split, seed) for split in _voices.SPLITS}
    _speech.check_voices(sorted({u.voice for p in plans.values() for u in p}
                                | {b[1] for p in plans.values() for u in p for b in u.babble}))  # fmt: skip
    tasks = [(u, config) for split in _voices.SPLITS for u in plans[split]]
    with _progress(len(tasks), quiet) as bar:
        if workers == 1:
            results = []
            for task in tasks:
                results.append(_render_task(task))
                bar.update()
        else:
            # spawn: children start clean (no copied locks or threads), results come back in task order.
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                results = []
                for r in pool.imap(_render_task, tasks, chunksize=4):
                    results.append(r)
                    bar.update()
    cut = sum(1 for r in results if r.cut_samples)
    if cut:
        log.warning("%d of %d utterances were longer than the window and were cut at the end", cut, len(results))
    out, start = {}, 0
    for split in _voices.SPLITS:
        n = len(plans[split])
        out[split] = _to_split(split, plans[split], results[start : start + n], config, seed)
        start += n
    return out


def write(splits: dict[str, SpikeSplit], out_dir: str | Path) -> list[Path]:
    """Write each split to ``out_dir/<split>.npz``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, split in splits.items():
        path = out_dir / f"{name}.npz"
        write_split_file(path, split)
        paths.append(path)
    return paths


def read_split(path_or_dir: str | Path, split: str) -> SpikeSplit:
    """Read one split (raw spikes and metadata) from a dataset directory or a split file."""
    return read_split_of(path_or_dir, split, _voices.SPLITS, read_split_file)


def load_split(
    path_or_dir: str | Path,
    split: str,
    *,
    dt_s: float,
    duration_s: float | None = None,
    indices: Sequence[int] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Binned spike counts ``x`` (N, T, C) float32 and labels ``y`` (N,) int64 of one split.

    T = ceil(duration_s / dt_s); ``duration_s`` defaults to the dataset's window (spikes
    later than a shorter duration are dropped, a longer one pads with zeros). ``dt_s``
    must be a whole number of microseconds. ``indices`` selects samples (e.g. a batch).
    """
    data = read_split(path_or_dir, split)
    duration = float(data.duration_s) if duration_s is None else duration_s
    n_bins(duration, dt_s)  # validates both before any work
    idx = np.arange(len(data)) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.min() < -len(data) or idx.max() >= len(data)):
        raise OptionError(f"indices must lie in [0, {len(data)}), got [{idx.min()}, {idx.max()}]", path="indices")
    idx = idx % max(len(data), 1)
    x = bin_samples(
        data.times_us, data.units, data.offsets, idx, dt_s=dt_s, n_channels=int(data.n_channels), duration_s=duration
    )
    return x, data.labels[idx].copy()


def _describe(config: DatasetConfig, name: str, s: SpikeSplit) -> dict[str, Any]:
    return {"samples": len(s), "spikes": int(s.offsets[-1]), "speakers": config.speakers[_voices.SPLITS.index(name)],
            "voices": len(s.voices)}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: generate a dataset into ``--out``; prints a JSON summary on stdout."""
    return generator_main("python -m tools.datasets.keywords", __doc__.split("\n")[0], SIZES, generate, write,
                          _describe, argv)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
