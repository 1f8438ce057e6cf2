"""Event frames per window, tonic's ``ToFrame``: counts of shape (T, P, H, W), windows by time or count.

Windows are half-open index ranges into the time-sorted event array, chosen by exactly one
of ``time_window_us``, ``event_count``, ``n_time_bins`` or ``n_event_bins`` (the meaning of
``overlap`` follows the choice: µs, events, or a fraction of a bin, as in tonic).

Where tonic 1.7.0's ``to_frame_numpy`` has quirks, ``tonic_compat=True`` reproduces its
numbers exactly and the default does the following instead:

- **Time windows**: tonic's recording end is the last event's time, so with
  ``include_incomplete=True`` an event exactly at a window's end is still dropped (e.g. t =
  0..300 µs in 100 µs windows gives 3 frames, losing t = 300). By default the recording ends
  1 µs after its last event (``end_time_us``, when given, is an exclusive end in both modes),
  so ``include_incomplete`` keeps every event.
- **n_time_bins**: tonic uses windows of ``(t_last - t_first) // T`` µs, so the integer
  division's remainder and the last event are dropped. By default the T bins split
  ``[t_first, t_last + 1)`` evenly (bin edges ``t_first + ceil(k * span / T)``), so every
  event lands in exactly one bin. With overlap, bin k spans ``(1 + overlap)`` bins from edge k.
- **n_event_bins**: tonic gives each bin ``n // T`` events and drops the remainder; by default
  bin k holds events ``k*n//T`` to ``(k+1)*n//T`` (lengths differ by at most one).
- **Polarity**: tonic uses ``p`` as the channel index, so p = -1 lands in the last channel,
  and a one-channel sensor with both polarities raises. By default p > 0 (or True) is ON =
  channel 1, and a one-channel sensor counts both polarities together.
- **Overflow**: tonic's int16 counts wrap past 32767; by default counts saturate at the
  output dtype's maximum.

Not reproduced in either mode: tonic's ``ToFrame`` returns float64 zeros of shape
(T, P, W, H), width and height swapped, for an empty input; here an empty input gives zeros
of the usual (T, P, H, W) shape and dtype (one frame for time/count windows unless
``start_time_us`` and ``end_time_us`` say more, T frames for the bin methods). tonic also
overwrites the caller's ``p`` with 0 for one-channel sensors; the input is never modified here.
"""

from __future__ import annotations

import numpy as np

from edgesnn.errors import InputError, OptionError
from edgesnn.events.functional._repr_checks import (
    channel_index,
    check_events,
    check_sorted,
    pixel_index,
    positive_int,
    saturate,
    sensor_dims,
)  # fmt: skip

__all__ = ["to_frame", "frame_windows", "channels_for"]


def _time_window_bounds(t, window, overlap, include_incomplete, start_time_us, end_time_us, tonic_compat):
    stride = window - overlap
    if stride <= 0:
        raise OptionError(f"overlap ({overlap}) must be smaller than the window ({window})", path="overlap")
    if len(t) == 0 and (start_time_us is None or end_time_us is None):
        return np.zeros(1, np.int64), np.zeros(1, np.int64)
    start = t[0] if start_time_us is None else start_time_us
    if end_time_us is not None:
        end = end_time_us
    else:
        end = t[-1] if tonic_compat else t[-1] + 1
    excess = (end - start - window) / stride
    n = int((np.ceil(excess) if include_incomplete else np.floor(excess)) + 1)
    n = max(n, 1)
    begins = np.arange(n) * stride + start
    return np.searchsorted(t, begins), np.searchsorted(t, begins + window)


def _event_count_bounds(n_events, count, overlap, include_incomplete):
    stride = count - overlap
    if stride <= 0:
        raise OptionError(f"overlap ({overlap}) must be smaller than event_count ({count})", path="overlap")
    count_here = min(count, n_events)
    excess = (n_events - count_here) / stride
    n = int((np.ceil(excess) if include_incomplete else np.floor(excess)) + 1)
    begins = (np.arange(n) * stride).astype(np.int64)
    return begins, np.minimum(begins + count_here, n_events)


def _time_bin_bounds(t, n_bins, overlap, tonic_compat):
    if len(t) == 0:
        return np.zeros(n_bins, np.int64), np.zeros(n_bins, np.int64)
    t0 = int(t[0])
    if tonic_compat:
        window = (t[-1] - t[0]) // n_bins * (1 + overlap)
        begins = np.arange(n_bins) * (window * (1 - overlap)) + t[0]
        return np.searchsorted(t, begins), np.searchsorted(t, begins + window)
    span = int(t[-1]) + 1 - t0
    k = np.arange(n_bins + 1, dtype=np.int64)
    edges = t0 - (-(k * span) // n_bins)  # t0 + ceil(k * span / T), exact
    begins = edges[:-1]
    if overlap == 0:
        ends = edges[1:]
    else:
        ends = t0 + np.ceil((k[1:] + overlap) * span / n_bins).astype(np.int64)
    return np.searchsorted(t, begins), np.searchsorted(t, ends)


def _event_bin_bounds(n_events, n_bins, overlap, tonic_compat):
    if tonic_compat:
        count = int(n_events // n_bins * (1 + overlap))
        stride = int(count * (1 - overlap))
        begins = np.arange(n_bins, dtype=np.int64) * stride
        return begins, np.minimum(begins + count, n_events)
    k = np.arange(n_bins + 1, dtype=np.int64)
    begins = k[:-1] * n_events // n_bins
    if overlap == 0:
        ends = k[1:] * n_events // n_bins
    else:
        ends = np.floor((k[1:] + overlap) * n_events / n_bins).astype(np.int64)
    return begins, np.minimum(ends, n_events)


def frame_windows(
    events: np.ndarray,
    *,
    time_window_us: float | None = None,
    event_count: int | None = None,
    n_time_bins: int | None = None,
    n_event_bins: int | None = None,
    overlap: float = 0,
    include_incomplete: bool = False,
    start_time_us: int | None = None,
    end_time_us: int | None = None,
    tonic_compat: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Index bounds ``(begins, ends)`` of the windows :func:`to_frame` accumulates (half-open)."""
    chosen = {
        "time_window_us": time_window_us,
        "event_count": event_count,
        "n_time_bins": n_time_bins,
        "n_event_bins": n_event_bins,
    }
    given = [name for name, value in chosen.items() if value is not None]
    if len(given) != 1:
        raise OptionError(
            "give exactly one of time_window_us, event_count, n_time_bins or n_event_bins"
            + (f" (got {', '.join(given)})" if given else ""),
            path="to_frame",
        )
    t = events["t"]
    check_sorted(t)
    if time_window_us is not None:
        if not time_window_us > 0:
            raise OptionError(f"must be positive, got {time_window_us!r}", path="time_window_us")
        return _time_window_bounds(
            t, time_window_us, overlap, include_incomplete, start_time_us, end_time_us, tonic_compat
        )
    if event_count is not None:
        return _event_count_bounds(len(t), positive_int(event_count, "event_count"), overlap, include_incomplete)
    if not 0 <= overlap < 1:
        raise OptionError(f"must be a fraction of a bin in [0, 1), got {overlap!r}", path="overlap")
    if n_time_bins is not None:
        return _time_bin_bounds(t, positive_int(n_time_bins, "n_time_bins"), overlap, tonic_compat)
    return _event_bin_bounds(len(t), positive_int(n_event_bins, "n_event_bins"), overlap, tonic_compat)


def channels_for(p: np.ndarray, n_channels: int, *, tonic_compat: bool = False) -> np.ndarray:
    """Channel index per event: p > 0 is ON (1); with ``tonic_compat`` p itself indexes, as in tonic."""
    if not tonic_compat:
        return channel_index(p, n_channels)
    if n_channels == 1:
        if len(p) and len(np.unique(p)) > 1:
            raise InputError("a one-channel sensor_size, but the events have both polarities", path="p")
        return np.zeros(len(p), dtype=np.intp)
    c = p.astype(np.intp)
    if len(c) and (int(c.min()) < -n_channels or int(c.max()) >= n_channels):
        raise InputError(f"polarity outside -{n_channels}..{n_channels - 1} cannot index a channel", path="p")
    return c % n_channels  # numpy's negative indexing, as tonic's np.add.at applies it


def _accumulate(events, begins, ends, width, height, n_channels, tonic_compat, out):
    """``out[k]`` = counts of the events ``begins[k]:ends[k]``; one cache-sized bincount per window."""
    if not len(events):
        return
    channel = channels_for(events["p"], n_channels, tonic_compat=tonic_compat) if n_channels == 2 else None
    if n_channels == 1 and tonic_compat:
        channels_for(events["p"], 1, tonic_compat=True)  # raises on mixed polarities, as tonic does
    idx = pixel_index(events, width, height, channel)
    cells = n_channels * height * width
    for k, (b, e) in enumerate(zip(begins.tolist(), ends.tolist(), strict=True)):
        if e <= b:
            continue
        counts = np.bincount(idx[b:e], minlength=cells).reshape(n_channels, height, width)
        # tonic_compat: plain cast wraps like tonic's int16 np.add.at; default saturates
        out[k] = counts.astype(out.dtype) if tonic_compat else saturate(counts, out.dtype, bound=e - b)


def to_frame(
    events: np.ndarray,
    *,
    sensor_size,
    time_window_us: float | None = None,
    event_count: int | None = None,
    n_time_bins: int | None = None,
    n_event_bins: int | None = None,
    overlap: float = 0,
    include_incomplete: bool = False,
    start_time_us: int | None = None,
    end_time_us: int | None = None,
    dtype=np.int16,
    tonic_compat: bool = False,
) -> np.ndarray:
    """Count events per window, polarity and pixel: array of shape (T, P, H, W), tonic's ToFrame.

    Parameters
    ----------
    events : ndarray of EVENT_DTYPE
        Events sorted by time.
    sensor_size : (W, H, P)
        As tonic.
    time_window_us, event_count, n_time_bins, n_event_bins
        Exactly one: windows of fixed duration (µs), of fixed event count, or a fixed number
        of windows split evenly in time or in events.
    overlap : float, default 0
        µs for time windows, events for count windows, fraction of a bin (< 1) for bins.
    include_incomplete : bool, default False
        Keep the last, shorter window (time and count windows only).
    start_time_us, end_time_us : int, optional
        Interval to slice with time windows (end exclusive); default the events' own span.
    dtype : numpy dtype, default int16
        Output dtype, tonic's by default.
    tonic_compat : bool, default False
        Reproduce tonic 1.7.0's numbers, quirks included (see the module docstring).
    """
    w, h, p = sensor_dims(sensor_size)
    check_events(events, w, h)
    begins, ends = frame_windows(
        events,
        time_window_us=time_window_us,
        event_count=event_count,
        n_time_bins=n_time_bins,
        n_event_bins=n_event_bins,
        overlap=overlap,
        include_incomplete=include_incomplete,
        start_time_us=start_time_us,
        end_time_us=end_time_us,
        tonic_compat=tonic_compat,
    )
    begins = np.asarray(begins, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    out = np.zeros((len(begins), p, h, w), dtype=dtype)
    _accumulate(events, begins, ends, w, h, p, tonic_compat, out)
    return out
