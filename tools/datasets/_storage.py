"""The on-disk form of one split: a compressed .npz of flat arrays, validated when read.

Members (N samples, S spikes in all, C channels):

==========================  =============  ===============================================
``times_us``                int64 (S,)     spike times in µs from the window start
``units``                   uint16 (S,)    channel id of each spike (0 = lowest frequency)
``offsets``                 int64 (N+1,)   sample i is ``offsets[i]:offsets[i+1]``
``labels``                  int64 (N,)     index into ``keywords``
``keywords``                str (K,)       the vocabulary
``voice``                   int32 (N,)     index into ``voices``
``voices``                  str (V,)       espeak-ng voices, ``language+variant``
``speaker``                 int32 (N,)     speaker id within the split
``speaker_params``          float64 (N,5)  columns named by ``speaker_param_names``
``speaker_param_names``     str (5,)       speed_wpm, pitch, gain_db, snr_db, shift_s
``noise_kind``              int8 (N,)      index into ``noise_kinds``
``noise_kinds``             str (3,)       white, pink, babble
``n_channels``              int64 ()       C
``duration_s``              float64 ()     window length; every spike time is below it
``centre_frequencies_hz``   float64 (C,)   per channel
``split``, ``generator_version``, ``config_hash``, ``config_json``, ``espeak_version``: str ()
``seed``                    int64 ()
==========================  =============  ===============================================

Within a sample spikes are sorted by time (ties by channel).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from edgesnn.errors import EventFileError
from tools.datasets._npz import read_members, write_members

#: member -> (dtype kind check, ndim); shapes are cross-checked in :func:`read_split_file`.
_MEMBERS: dict[str, tuple[str, int]] = {
    "times_us": ("int64", 1),
    "units": ("uint16", 1),
    "offsets": ("int64", 1),
    "labels": ("int64", 1),
    "keywords": ("str", 1),
    "voice": ("int32", 1),
    "voices": ("str", 1),
    "speaker": ("int32", 1),
    "speaker_params": ("float64", 2),
    "speaker_param_names": ("str", 1),
    "noise_kind": ("int8", 1),
    "noise_kinds": ("str", 1),
    "n_channels": ("int64", 0),
    "duration_s": ("float64", 0),
    "centre_frequencies_hz": ("float64", 1),
    "split": ("str", 0),
    "generator_version": ("str", 0),
    "config_hash": ("str", 0),
    "config_json": ("str", 0),
    "espeak_version": ("str", 0),
    "seed": ("int64", 0),
}


@dataclass(frozen=True, eq=False)
class SpikeSplit:
    """One split of the keyword dataset as read from disk (see the module docstring for each field)."""

    times_us: np.ndarray
    units: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    keywords: np.ndarray
    voice: np.ndarray
    voices: np.ndarray
    speaker: np.ndarray
    speaker_params: np.ndarray
    speaker_param_names: np.ndarray
    noise_kind: np.ndarray
    noise_kinds: np.ndarray
    n_channels: np.ndarray
    duration_s: np.ndarray
    centre_frequencies_hz: np.ndarray
    split: np.ndarray
    generator_version: np.ndarray
    config_hash: np.ndarray
    config_json: np.ndarray
    espeak_version: np.ndarray
    seed: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def sample(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Spike times (µs) and channel ids of sample ``i``."""
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.times_us[lo:hi], self.units[lo:hi]


def write_split_file(path: Path, split: SpikeSplit) -> None:
    """Write ``split`` to ``path`` atomically (temporary file, then rename)."""
    write_members(path, {f.name: getattr(split, f.name) for f in fields(SpikeSplit)}, _MEMBERS)


def read_split_file(path: Path) -> SpikeSplit:
    """Read and validate one split file; EventFileError names the file and member at fault."""
    arrays = read_members(path, _MEMBERS, "keyword spike split")
    _check_consistency(path, arrays)
    return SpikeSplit(**arrays)


def _check_consistency(path: Path, a: dict[str, np.ndarray]) -> None:
    """Shapes agree, offsets partition the spikes, times sorted per sample and inside the window."""

    def fail(member: str, message: str) -> None:
        raise EventFileError(message, path=f"{path}/{member}")

    n, s, c = len(a["labels"]), len(a["times_us"]), int(a["n_channels"])
    if len(a["units"]) != s:
        fail("units", f"expected {s} entries like times_us, got {len(a['units'])}")
    offsets = a["offsets"]
    if len(offsets) != n + 1 or offsets[0] != 0 or offsets[-1] != s or np.any(np.diff(offsets) < 0):
        fail("offsets", f"expected {n + 1} non-decreasing entries from 0 to {s}")
    for name in ("voice", "speaker", "noise_kind"):
        if len(a[name]) != n:
            fail(name, f"expected {n} entries, got {len(a[name])}")
    if a["speaker_params"].shape != (n, len(a["speaker_param_names"])):
        fail(
            "speaker_params", f"expected shape ({n}, {len(a['speaker_param_names'])}), got {a['speaker_params'].shape}"
        )
    for name, table in (("labels", "keywords"), ("voice", "voices"), ("noise_kind", "noise_kinds")):
        if n and (a[name].min() < 0 or a[name].max() >= len(a[table])):
            fail(name, f"expected indices into {table} (0..{len(a[table]) - 1})")
    if a["centre_frequencies_hz"].shape != (c,):
        fail("centre_frequencies_hz", f"expected shape ({c},), got {a['centre_frequencies_hz'].shape}")
    duration_us = round(float(a["duration_s"]) * 1e6)
    t = a["times_us"]
    if s and (t.min() < 0 or t.max() >= duration_us):
        fail("times_us", f"expected times in [0, {duration_us}) µs, got [{t.min()}, {t.max()}]")
    if s and a["units"].max() >= c:
        fail("units", f"expected channel ids below n_channels={c}, got {a['units'].max()}")
    # Times may only decrease where a new sample starts.
    drops = np.flatnonzero(np.diff(t) < 0) + 1
    if not np.all(np.isin(drops, offsets)):
        bad = int(np.searchsorted(offsets, drops[~np.isin(drops, offsets)][0], side="right") - 1)
        fail("times_us", f"sample {bad}: spike times are not sorted")
