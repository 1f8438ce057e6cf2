"""Count histograms: per polarity (P, H, W), time-binned (T, P, H, W), and RVT's stacked histogram.

All three count events with one ``np.bincount`` over flat indices, the fastest way numpy has to
scatter-add (``np.add.at`` is about ten times slower). Polarity: with two channels, channel 0
counts OFF events (p == 0, or False, or -1) and channel 1 counts ON events (p > 0, or True).
"""

from __future__ import annotations

import sys

import numpy as np

from edgesnn.errors import OptionError
from edgesnn.events._dtype import EVENT_DTYPE
from edgesnn.events.functional._repr_checks import (
    channel_index,
    check_events,
    check_sorted,
    is_sorted,
    pixel_index,
    positive_int,
    saturate,
    sensor_dims,
)  # fmt: skip

__all__ = ["to_histogram", "to_time_bins", "to_stacked_histogram"]

try:
    from edgesnn.events import _histkernels as _H
except ImportError:  # built optionally (setup.py); the bincount path below takes over
    _H = None

#: Counts the C kernel keeps exact: float32 holds whole numbers below 2^24.
_EXACT_COUNTS = 1 << 24


def _native_bins(events: np.ndarray, dtype) -> bool:
    """True when the C kernel counts these events: EVENT_DTYPE, contiguous, float32 or int32 out."""
    return (
        _H is not None
        and sys.byteorder == "little"
        and events.dtype == EVENT_DTYPE
        and events.flags.c_contiguous
        and np.dtype(dtype) in (np.float32, np.int32)
        and len(events) < _EXACT_COUNTS
    )


def _index(events: np.ndarray, width: int, height: int, n_channels: int) -> np.ndarray:
    channel = channel_index(events["p"], 2) if n_channels == 2 else None
    return pixel_index(events, width, height, channel)


def _edges(start: int, span: int, n_bins: int) -> np.ndarray:
    """Times ``start + ceil(k * span / T)`` for k = 0..T: where each integer-µs bin begins, exactly."""
    k = np.arange(n_bins + 1, dtype=np.int64)
    return start - (-(k * span) // n_bins)


def _count_segments(idx: np.ndarray, bounds: np.ndarray, cells: int, out: np.ndarray, cutoff: int | None) -> None:
    """``out[k] = counts of idx[bounds[k]:bounds[k+1]]``: per-bin bincounts stay cache-sized."""
    for k in range(len(bounds) - 1):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        counts = np.bincount(idx[lo:hi], minlength=cells)
        if cutoff is not None:
            np.minimum(counts, cutoff, out=counts)
        out[k] = saturate(counts, out.dtype, bound=hi - lo if cutoff is None else cutoff).reshape(out.shape[1:])


def to_histogram(events: np.ndarray, *, sensor_size, dtype=np.int32) -> np.ndarray:
    """Count events per polarity and pixel: array of shape (P, H, W).

    Parameters
    ----------
    events : ndarray of EVENT_DTYPE
        Events in any order; x < W and y < H are checked.
    sensor_size : (W, H, P)
        As tonic. P = 2 counts OFF in channel 0 and ON in channel 1; P = 1 counts both together.
    dtype : numpy dtype, default int32
        Output dtype. Integer counts saturate at the dtype's maximum instead of wrapping.
    """
    w, h, p = sensor_dims(sensor_size)
    check_events(events, w, h)
    size = p * h * w
    counts = np.bincount(_index(events, w, h, p), minlength=size)
    return saturate(counts, dtype, bound=len(events)).reshape(p, h, w)


def to_time_bins(
    events: np.ndarray,
    *,
    sensor_size,
    n_bins: int,
    t_start_us: int | None = None,
    t_end_us: int | None = None,
    count_cutoff: int | None = None,
    dtype=np.int32,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Histograms of ``n_bins`` equal time bins over ``[t_start_us, t_end_us)``: shape (T, P, H, W).

    This is the hybrid detector's input. Bin ``k`` holds events with
    ``t_start + k * D / T <= t < t_start + (k + 1) * D / T`` where ``D = t_end - t_start``;
    the bin of each event is ``(t - t_start) * T // D`` in exact integer arithmetic, so no
    event is lost or moved by float rounding. Events outside the interval are ignored.

    Parameters
    ----------
    events : ndarray of EVENT_DTYPE
        Events in any order (sorted input takes a faster path).
    sensor_size : (W, H, P)
        As tonic.
    n_bins : int
        Number of time bins T.
    t_start_us, t_end_us : int, optional
        Half-open interval in µs. Defaults: the first event's time, and the last event's time
        plus 1 µs, so that every event of a sorted array lands in a bin (the last in bin T-1).
        An empty array without both bounds gives zeros.
    count_cutoff : int, optional
        Clip each count to at most this value (RVT uses 10 over 50 ms windows).
    dtype : numpy dtype, default int32
        Output dtype; integer counts saturate rather than wrap.
    out : ndarray, optional
        Array to write the result into and return (shape (T, P, H, W), dtype ``dtype``,
        C-contiguous); a stream binned window after window reuses one instead of allocating
        (and page-faulting) a new one per window.
    """
    w, h, p = sensor_dims(sensor_size)
    n_bins = positive_int(n_bins, "n_bins")
    check_events(events, w, h)
    out_shape = (n_bins, p, h, w)
    if out is not None:
        _check_out(out, out_shape, dtype)
    t = events["t"]
    if len(t) == 0 and (t_start_us is None or t_end_us is None):
        if out is None:
            return np.zeros(out_shape, dtype=dtype)
        out.fill(0)
        return out
    ordered = is_sorted(t)
    if t_start_us is None:
        start = int(t[0] if ordered else t.min())
    else:
        start = int(t_start_us)
    if t_end_us is None:
        end = int(t[-1] if ordered else t.max()) + 1
    else:
        end = int(t_end_us)
    if end <= start:
        raise OptionError(f"t_end_us ({end}) must be after t_start_us ({start})", path="t_end_us")
    cutoff = None if count_cutoff is None else positive_int(count_cutoff, "count_cutoff")
    cells = p * h * w
    if _native_bins(events, dtype):
        if out is None:
            out = np.empty(out_shape, dtype=dtype)  # the kernel clears it, bin by bin when sorted
        _H.time_bins(events, out, out.dtype == np.float32, start, end - start, n_bins, w, h, p, cutoff or 0, ordered)
        return out
    if out is None:
        out = np.empty(out_shape, dtype=dtype)
    if ordered:
        # sorted input (the usual case): each bin is one contiguous run of events
        bounds = np.searchsorted(t, _edges(start, end - start, n_bins))
        _count_segments(_index(events, w, h, p), bounds, cells, out, cutoff)
        return out
    inside = (t >= start) & (t < end)
    if not bool(inside.all()):
        events, t = events[inside], t[inside]
    bin_of = (t - start) * n_bins // (end - start)  # int64 exact: (t - start) * T stays far below 2**63
    idx = _index(events, w, h, p).astype(np.intp)
    idx += bin_of * cells
    counts = np.bincount(idx, minlength=n_bins * cells)
    if cutoff is not None:
        np.minimum(counts, cutoff, out=counts)
    out[...] = saturate(counts, dtype).reshape(out_shape)
    return out


def _check_out(out, shape: tuple[int, ...], dtype) -> None:
    """OptionError unless ``out`` is a writable C-contiguous array of ``shape`` and ``dtype``."""
    if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != np.dtype(dtype):
        got = f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}"
        raise OptionError(f"expected an array of shape {shape} and dtype {np.dtype(dtype)}, got {got}", path="out")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise OptionError("expected a writable C-contiguous array", path="out")


def to_stacked_histogram(
    events: np.ndarray, *, sensor_size, n_bins: int, count_cutoff: int | None = None, layout: str = "rvt"
) -> np.ndarray:
    """RVT's stacked histogram: uint8 counts in ``n_bins`` bins normalised to this window's events.

    The bin of an event is ``floor((t - t0) * T / max(t1 - t0, 1))`` clamped to T - 1, with t0
    and t1 the first and last event's times: the span is the events' own, so the last event
    lands in the last bin (unlike tonic's ToFrame). Counts are clipped to ``count_cutoff``
    (default 255) and stored as uint8.

    Differences from RVT's ``StackedHistogram`` (uzh-rpg/RVT ``data/utils/representations.py``),
    both deliberate: the bin index is computed in exact integer arithmetic where RVT divides in
    float32 (an event exactly on a bin boundary may land one bin later in RVT for spans above
    2**24 µs), and counts are accumulated in int64 then clipped, which is RVT's behaviour with
    ``fastmode=False`` (its fast uint8 accumulation wraps past 255 before clipping).

    Parameters
    ----------
    events : ndarray of EVENT_DTYPE
        Events of one window, sorted by time.
    sensor_size : (W, H, P)
        As tonic; P must be 2.
    n_bins : int
        Number of time bins T.
    count_cutoff : int, optional
        Maximum count per cell, at most 255. Default 255.
    layout : {"rvt", "tphw"}
        "rvt" (default): shape (2*T, H, W), polarity-major (OFF bins 0..T-1, then ON bins),
        as RVT feeds its backbone. "tphw": shape (T, 2, H, W), like :func:`to_time_bins`.
    """
    w, h, p = sensor_dims(sensor_size)
    if p != 2:
        raise OptionError(f"the stacked histogram needs 2 polarity channels, got {p}", path="sensor_size[2]")
    n_bins = positive_int(n_bins, "n_bins")
    cutoff = 255 if count_cutoff is None else positive_int(count_cutoff, "count_cutoff")
    if cutoff > 255:
        raise OptionError(f"must be at most 255 for uint8 output, got {cutoff}", path="count_cutoff")
    if layout not in ("rvt", "tphw"):
        raise OptionError(f"expected 'rvt' or 'tphw', got {layout!r}", path="layout")
    check_events(events, w, h)
    t = events["t"]
    check_sorted(t)
    if layout == "rvt":
        out = np.zeros((2, n_bins, h, w), dtype=np.uint8)
    else:
        out = np.zeros((n_bins, 2, h, w), dtype=np.uint8)
    if len(t):
        t0 = int(t[0])
        bounds = np.searchsorted(t, _edges(t0, max(int(t[-1]) - t0, 1), n_bins))
        bounds[-1] = len(t)  # clamp: the last event (t == t1) belongs to bin T - 1
        binned = np.empty((n_bins, 2, h, w), dtype=np.uint8) if layout == "rvt" else out
        _count_segments(_index(events, w, h, 2), bounds, 2 * h * w, binned, cutoff)
        if layout == "rvt":
            out[...] = binned.transpose(1, 0, 2, 3)
    return out.reshape((2 * n_bins, h, w)) if layout == "rvt" else out
