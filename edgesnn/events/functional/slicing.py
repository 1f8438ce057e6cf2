"""Cut an event stream into windows by time or by event count, whole or chunk by chunk.

Window membership is the one tonic 1.7.0 computes (``SliceByTime``, ``SliceByEventCount``),
reproduced exactly:

- **Time windows** are half-open, ``[start + k*stride, start + k*stride + window)``, found
  with ``searchsorted(side="left")``. ``start`` defaults to the first event's time. With
  ``d = t_end - start`` (``t_end`` = last event's time) the number of windows is
  ``floor((d - window) / stride) + 1`` (``ceil`` with ``include_incomplete``), never less
  than 1. So a window ending exactly at the last event's time counts as complete and
  excludes that event, as in tonic; ``include_incomplete`` does not bring it back when
  ``d - window`` is a multiple of ``stride`` (pass ``end_us=t_end + 1`` to keep it).
- **Count windows** are ``[k*stride, k*stride + count)``; there are
  ``floor((n - min(count, n)) / stride) + 1`` of them (``ceil`` with
  ``include_incomplete``). As in tonic, a stream shorter than ``count`` still gives one
  (short) window.

edgesnn computes these counts with integer arithmetic where tonic divides in float64; the
two agree for every timestamp below 2**53 µs. The one deliberate difference: an empty
event array gives no windows (tonic fails on it, or returns one empty count window).

:class:`TimeSlicer` and :class:`CountSlicer` give the same windows from a stream delivered
in chunks (a :class:`~edgesnn.events.sources.FileSource`, a serial link): ``push`` returns
every window that later events can no longer change, ``finish`` the rest.
"""

from __future__ import annotations

import numpy as np

from edgesnn.errors import InputError, OptionError


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise OptionError(f"must be a positive integer, got {value!r}", path=name)
    return int(value)


def _check_sorted(t: np.ndarray) -> None:
    if len(t) > 1 and not bool(np.all(t[1:] >= t[:-1])):
        i = int(np.argmax(t[1:] < t[:-1])) + 1
        raise InputError(f"timestamps must not decrease: t[{i}]={int(t[i])} < t[{i - 1}]={int(t[i - 1])}", path="t")


def _time_params(window_us, stride_us) -> tuple[int, int]:
    window = _positive_int(window_us, "window_us")
    stride = window if stride_us is None else _positive_int(stride_us, "stride_us")
    return window, stride


def _n_time_windows(duration: int, window: int, stride: int, include_incomplete: bool) -> int:
    excess = duration - window
    n = (-(-excess // stride) if include_incomplete else excess // stride) + 1
    return max(n, 1)


def time_window_bounds(
    events: np.ndarray,
    *,
    window_us: int,
    stride_us: int | None = None,
    start_us: int | None = None,
    end_us: int | None = None,
    include_incomplete: bool = False,
) -> np.ndarray:
    """Index bounds ``(n_windows, 2)`` of each time window: rows are ``[begin, end)`` into ``events``."""
    window, stride = _time_params(window_us, stride_us)
    t = events["t"]
    _check_sorted(t)
    if len(t) == 0 and (start_us is None or end_us is None):
        return np.zeros((0, 2), dtype=np.int64)
    start = int(t[0]) if start_us is None else int(start_us)
    end = int(t[-1]) if end_us is None else int(end_us)
    n = _n_time_windows(end - start, window, stride, include_incomplete)
    begins = start + stride * np.arange(n, dtype=np.int64)
    bounds = np.empty((n, 2), dtype=np.int64)
    bounds[:, 0] = np.searchsorted(t, begins, side="left")
    bounds[:, 1] = np.searchsorted(t, begins + window, side="left")
    return bounds


def slice_by_time(
    events: np.ndarray,
    *,
    window_us: int,
    stride_us: int | None = None,
    start_us: int | None = None,
    end_us: int | None = None,
    include_incomplete: bool = False,
) -> list[np.ndarray]:
    """Cut ``events`` (sorted by t) into half-open time windows; ``stride_us`` < ``window_us`` overlaps them.

    Matches ``tonic.slicers.SliceByTime(time_window=window_us, overlap=window_us - stride_us,
    include_incomplete=..., start_time=start_us, end_time=end_us)``. The windows are views
    into ``events``.
    """
    bounds = time_window_bounds(
        events,
        window_us=window_us,
        stride_us=stride_us,
        start_us=start_us,
        end_us=end_us,
        include_incomplete=include_incomplete,
    )
    return [events[b:e] for b, e in bounds]


def _n_count_windows(n: int, count: int, stride: int, include_incomplete: bool) -> int:
    excess = n - min(count, n)
    return (-(-excess // stride) if include_incomplete else excess // stride) + 1


def slice_by_count(
    events: np.ndarray, *, count: int, stride: int | None = None, include_incomplete: bool = False
) -> list[np.ndarray]:
    """Cut ``events`` into windows of ``count`` events starting every ``stride`` events.

    Matches ``tonic.slicers.SliceByEventCount(event_count=count, overlap=count - stride,
    include_incomplete=...)``, except that an empty array gives no windows.
    """
    count = _positive_int(count, "count")
    stride = count if stride is None else _positive_int(stride, "stride")
    n = len(events)
    if n == 0:
        return []
    size = min(count, n)
    n_windows = _n_count_windows(n, count, stride, include_incomplete)
    return [events[k * stride : k * stride + size] for k in range(n_windows)]


class TimeSlicer:
    """Cuts a chunked, time-sorted stream into the windows :func:`slice_by_time` gives on the whole.

    ``push(chunk)`` returns the windows that are complete (window end <= the latest timestamp
    seen, so no later event can fall inside); ``finish()`` returns what is left. Only the
    events from the oldest unfinished window onwards are kept, so memory is bounded by the
    window length, not by the stream.
    """

    def __init__(self, *, window_us: int, stride_us: int | None = None, start_us: int | None = None) -> None:
        self.window_us, self.stride_us = _time_params(window_us, stride_us)
        self.start_us = None if start_us is None else int(start_us)
        self._start: int | None = self.start_us
        self._buffer: np.ndarray | None = None
        self._next = 0  # index k of the next window to hand out
        self._last_t: int | None = None

    def _begin(self, k: int) -> int:
        return self._start + k * self.stride_us

    def _emit(self, stop: int) -> list[np.ndarray]:
        """Hand out windows ``self._next .. stop-1`` from the buffer, then drop what none of the rest needs."""
        buf = self._buffer
        t = buf["t"]
        ks = np.arange(self._next, stop, dtype=np.int64)
        begins = self._start + ks * self.stride_us
        lo = np.searchsorted(t, begins, side="left")
        hi = np.searchsorted(t, begins + self.window_us, side="left")
        windows = [buf[b:e] for b, e in zip(lo, hi, strict=True)]
        self._next = stop
        keep_from = int(np.searchsorted(t, self._begin(stop), side="left"))
        self._buffer = buf[keep_from:]
        return windows

    def push(self, chunk: np.ndarray) -> list[np.ndarray]:
        """Add a chunk (sorted, not older than the previous one); return the windows it completes."""
        if len(chunk) == 0:
            return []
        t = chunk["t"]
        _check_sorted(t)
        if self._last_t is not None and int(t[0]) < self._last_t:
            raise InputError(
                f"chunk starts at t={int(t[0])}, before the previous chunk's end t={self._last_t}", path="t"
            )
        self._last_t = int(t[-1])
        if self._start is None:
            self._start = int(t[0])
        self._buffer = (
            chunk if self._buffer is None or len(self._buffer) == 0 else np.concatenate((self._buffer, chunk))
        )
        excess = self._last_t - self._start - self.window_us
        if excess < 0:
            return []
        return self._emit(excess // self.stride_us + 1)

    def finish(self, *, include_incomplete: bool = False) -> list[np.ndarray]:
        """Return the remaining windows (tonic's count rule, at least one window in all) and reset."""
        windows: list[np.ndarray] = []
        if self._last_t is not None:
            n = _n_time_windows(self._last_t - self._start, self.window_us, self.stride_us, include_incomplete)
            if n > self._next:
                windows = self._emit(n)
        self.__init__(window_us=self.window_us, stride_us=self.stride_us, start_us=self.start_us)
        return windows


class CountSlicer:
    """Cuts a chunked stream into the windows :func:`slice_by_count` gives on the whole."""

    def __init__(self, *, count: int, stride: int | None = None) -> None:
        self.count = _positive_int(count, "count")
        self.stride = self.count if stride is None else _positive_int(stride, "stride")
        self._buffer: np.ndarray | None = None
        self._offset = 0  # stream index of self._buffer[0]
        self._seen = 0
        self._next = 0

    def _window(self, k: int, size: int) -> np.ndarray:
        begin = k * self.stride - self._offset
        return self._buffer[begin : begin + size]

    def _drop_before(self, k: int) -> None:
        cut = min(k * self.stride - self._offset, len(self._buffer))
        self._buffer = self._buffer[cut:]
        self._offset += cut

    def push(self, chunk: np.ndarray) -> list[np.ndarray]:
        """Add a chunk; return every window of ``count`` events it completes."""
        if len(chunk) == 0:
            return []
        self._buffer = (
            chunk if self._buffer is None or len(self._buffer) == 0 else np.concatenate((self._buffer, chunk))
        )
        self._seen += len(chunk)
        windows = []
        while self._next * self.stride + self.count <= self._seen:
            windows.append(self._window(self._next, self.count))
            self._next += 1
        self._drop_before(self._next)
        return windows

    def finish(self, *, include_incomplete: bool = False) -> list[np.ndarray]:
        """Return the remaining windows (short ones only with ``include_incomplete``, or a short stream) and reset."""
        windows = []
        if self._seen:
            size = min(self.count, self._seen)
            n = _n_count_windows(self._seen, self.count, self.stride, include_incomplete)
            windows = [self._window(k, size) for k in range(self._next, n)]
        self.__init__(count=self.count, stride=self.stride)
        return windows
