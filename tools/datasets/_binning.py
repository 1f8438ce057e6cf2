"""Binning spike times into count frames at any time step.

Bins are half-open, ``[k dt, (k + 1) dt)``, computed in integer microseconds so that a
spike exactly on a bin edge always lands in the later bin, at every dt. Hence dt must
be a whole number of microseconds (0.25 ms = 250 µs is; 1/3 ms is not).
"""

from __future__ import annotations

import math

import numpy as np

from edgesnn.errors import InputError, OptionError


def dt_to_us(dt_s: float) -> int:
    """``dt_s`` as a whole number of microseconds; OptionError if it is not one or is not positive."""
    dt_us = round(dt_s * 1e6)
    if dt_us < 1 or abs(dt_s * 1e6 - dt_us) > 1e-6 * max(1.0, dt_us):
        raise OptionError(f"expected a positive whole number of microseconds, got {dt_s!r} s", path="dt_s")
    return int(dt_us)


def n_bins(duration_s: float, dt_s: float) -> int:
    """Number of bins T covering ``[0, duration_s)`` at ``dt_s`` (the last one may be partial)."""
    duration_us = dt_to_us(duration_s)
    return math.ceil(duration_us / dt_to_us(dt_s))


def bin_spikes(
    times_us: np.ndarray, units: np.ndarray, *, dt_s: float, n_channels: int, duration_s: float
) -> np.ndarray:
    """Spike counts per bin and channel: (T, C) float32 with T = ceil(duration / dt).

    Every spike must satisfy 0 <= t < duration and 0 <= unit < n_channels; the counts
    then sum to the number of spikes.
    """
    times_us, units = np.asarray(times_us), np.asarray(units)
    if times_us.shape != units.shape or times_us.ndim != 1:
        raise InputError(f"expected equal 1-D times_us and units, got shapes {times_us.shape}, {units.shape}")
    dt_us, duration_us = dt_to_us(dt_s), dt_to_us(duration_s)
    if times_us.size and (times_us.min() < 0 or times_us.max() >= duration_us):
        raise InputError(
            f"spike times must lie in [0, {duration_us}) µs, got [{times_us.min()}, {times_us.max()}]",
            path="times_us",
        )
    if units.size and (units.min() < 0 or units.max() >= n_channels):
        raise InputError(f"unit ids must lie in [0, {n_channels}), got max {units.max()}", path="units")
    t = math.ceil(duration_us / dt_us)
    flat = (times_us.astype(np.int64) // dt_us) * n_channels + units.astype(np.int64)
    return np.bincount(flat, minlength=t * n_channels).astype(np.float32).reshape(t, n_channels)


def bin_samples(
    times_us: np.ndarray,
    units: np.ndarray,
    offsets: np.ndarray,
    indices: np.ndarray,
    *,
    dt_s: float,
    n_channels: int,
    duration_s: float,
) -> np.ndarray:
    """Bin the samples ``indices`` of concatenated spike arrays (sample i is offsets[i]:offsets[i+1]): (N, T, C).

    Spikes at or after ``duration_s`` are dropped, which crops every sample to that length.
    """
    t = n_bins(duration_s, dt_s)
    duration_us = dt_to_us(duration_s)
    out = np.zeros((len(indices), t, n_channels), dtype=np.float32)
    for row, i in enumerate(indices):
        lo, hi = offsets[i], offsets[i + 1]
        ts, us = times_us[lo:hi], units[lo:hi]
        keep = ts < duration_us
        out[row] = bin_spikes(ts[keep], us[keep], dt_s=dt_s, n_channels=n_channels, duration_s=duration_s)
    return out
