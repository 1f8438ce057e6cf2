"""Event filters: ROI crop, spatial/temporal downsampling, polarity, refractory and background activity.

All are vectorised numpy over an EVENT_DTYPE array and return a new array (the input is
never modified). Semantics follow tonic 1.7.0 where tonic has the operation:

- :func:`crop_roi` is ``CenterCrop``'s rule with the offset given: keep
  ``x0 <= x < x0 + width`` and ``y0 <= y < y0 + height``, then shift to the ROI origin.
- :func:`downsample` is ``Downsample``: ``x = trunc(x * fx)``, ``y = trunc(y * fy)``,
  ``t = trunc(t * time_factor)``, products in float64, no event dropped.
- :func:`refractory_filter` is ``RefractoryPeriod``: an event is kept when the time since
  the previous event at the same pixel (kept or dropped) is greater than ``refractory_us``.
- :func:`denoise` is ``Denoise``, the background-activity filter: an event is kept when one
  of its four neighbours (left, right, up, down) had an earlier event (in stream order)
  less than ``filter_us`` before it.

tonic starts its per-pixel memories as if every pixel had fired at t = 0 (refractory) or
as if the neighbours inside the events' bounding box had (denoise). So with tonic, a
pixel's first event at t = 0 is dropped by the refractory filter, and any event before
``filter_us`` with a neighbour inside the box passes the denoiser. By default edgesnn treats a
pixel that has not fired as never having fired; ``tonic_compat=True`` reproduces tonic's
start. Streams whose timestamps begin at or after ``max(refractory_us, filter_us)`` give the
same result either way.

:class:`ChunkedRefractory` and :class:`ChunkedDenoise` run the same filters over a stream
that arrives in chunks, carrying a per-pixel last-time map between chunks; their output on
any chunking equals the whole-array function's (default semantics).
"""

from __future__ import annotations

import numpy as np

from edgesnn.errors import InputError, OptionError

#: Last-fired time of a pixel that has not fired yet; far enough below any real timestamp
#: that ``t - NEVER`` exceeds every filter interval without overflowing int64.
NEVER = -(1 << 62)

_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def _non_negative_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise OptionError(f"must be a non-negative integer number of microseconds, got {value!r}", path=name)
    return int(value)


def crop_roi(events: np.ndarray, *, roi: tuple[int, int, int, int], shift: bool = True) -> np.ndarray:
    """Keep the events inside ``roi = (x0, y0, width, height)``; with ``shift`` move them to the ROI origin."""
    if len(roi) != 4 or any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in roi):
        raise OptionError(f"must be four integers (x0, y0, width, height), got {roi!r}", path="roi")
    x0, y0, width, height = (int(v) for v in roi)
    if x0 < 0 or y0 < 0 or width <= 0 or height <= 0:
        raise OptionError(f"needs x0, y0 >= 0 and width, height > 0, got {roi!r}", path="roi")
    x, y = events["x"], events["y"]
    out = events[(x >= x0) & (x < x0 + width) & (y >= y0) & (y < y0 + height)]
    if shift:
        out["x"] -= x0
        out["y"] -= y0
    return out


def downsample(
    events: np.ndarray, *, spatial_factor: float | tuple[float, float] = 1.0, time_factor: float = 1.0
) -> np.ndarray:
    """Scale coordinates by ``spatial_factor`` (``0.25`` maps 640x480 to 160x120) and times by ``time_factor``."""
    fx, fy = spatial_factor if isinstance(spatial_factor, tuple | list) else (spatial_factor, spatial_factor)
    for name, f in (("spatial_factor", fx), ("spatial_factor", fy), ("time_factor", time_factor)):
        if isinstance(f, bool) or not isinstance(f, int | float | np.integer | np.floating) or not f > 0:
            raise OptionError(f"must be a positive number, got {f!r}", path=name)
    out = events.copy()
    if fx > 1 or fy > 1:
        top = max(float(events["x"].max(initial=0)) * fx, float(events["y"].max(initial=0)) * fy)
        if top >= 1 << 16:
            raise OptionError(f"scales a coordinate to {top:.0f}, past the uint16 range", path="spatial_factor")
    # The product is float64 and the assignment truncates toward zero, exactly like tonic.
    out["x"] = events["x"] * np.float64(fx)
    out["y"] = events["y"] * np.float64(fy)
    if time_factor != 1:
        out["t"] = events["t"] * np.float64(time_factor)
    return out


def polarity_filter(events: np.ndarray, *, polarity: int) -> np.ndarray:
    """Keep only the events of one polarity (1 = ON, 0 = OFF)."""
    if polarity not in (0, 1) or isinstance(polarity, bool):
        raise OptionError(f"must be 1 (ON) or 0 (OFF), got {polarity!r}", path="polarity")
    return events[events["p"] == polarity]


def _pixel_key(events: np.ndarray) -> np.ndarray:
    return (events["x"].astype(np.int64) << 16) | events["y"].astype(np.int64)


def _previous_same_key(key: np.ndarray, t: np.ndarray, first: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """Per event, the time of the previous event with the same key (``first`` if none), and each key's last index.

    ``first`` is a scalar or an array aligned with the events. Returns ``(prev_t, last_idx)``
    where ``last_idx`` lists, per distinct key, the index of its last event.
    """
    order = np.argsort(key, kind="stable")
    ks = key[order]
    ts = t[order]
    new_group = np.empty(len(ks), dtype=bool)
    new_group[:1] = True
    new_group[1:] = ks[1:] != ks[:-1]
    prev_sorted = np.empty(len(ks), dtype=np.int64)
    prev_sorted[1:] = ts[:-1]
    first_sorted = first[order] if isinstance(first, np.ndarray) else first
    prev_sorted = np.where(new_group, first_sorted, prev_sorted)
    prev = np.empty_like(prev_sorted)
    prev[order] = prev_sorted
    last_in_group = np.empty(len(ks), dtype=bool)
    last_in_group[-1:] = True
    last_in_group[:-1] = new_group[1:]
    return prev, order[last_in_group]


def refractory_filter(events: np.ndarray, *, refractory_us: int, tonic_compat: bool = False) -> np.ndarray:
    """Drop each event that follows the previous event at its pixel by ``refractory_us`` or less."""
    refractory = _non_negative_int(refractory_us, "refractory_us")
    if len(events) == 0:
        return events.copy()
    t = events["t"].astype(np.int64, copy=False)
    prev, _ = _previous_same_key(_pixel_key(events), t, -refractory if tonic_compat else NEVER)
    return events[t - prev > refractory]


def _last_before(query: np.ndarray, key: np.ndarray, t: np.ndarray) -> np.ndarray:
    """For event i, the time of the last event j < i with ``key[j] == query[i]``, or NEVER."""
    n = len(key)
    uniq, gid = np.unique(key, return_inverse=True)
    pos = np.minimum(np.searchsorted(uniq, query), len(uniq) - 1)
    found = uniq[pos] == query
    # Sorted (group id, index) pairs as one int64: group * n + index (< n**2, no overflow below 3e9 events).
    order = np.argsort(gid, kind="stable")
    combined = gid[order].astype(np.int64) * n + order
    target = pos.astype(np.int64) * n + np.arange(n, dtype=np.int64)
    j = np.searchsorted(combined, target, side="left") - 1
    jc = np.maximum(j, 0)
    hit = found & (j >= 0) & (combined[jc] // n == pos)
    return np.where(hit, t[order[jc]], NEVER)


def _neighbour_times(events: np.ndarray, t: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per neighbour offset: (last earlier time at that neighbour within the array, neighbour x, neighbour y)."""
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    key = (x << 17) | y  # room for x + 1 and y + 1 past the uint16 range
    out = []
    for dx, dy in _NEIGHBOURS:
        nx, ny = x + dx, y + dy
        query = (nx << 17) | ny
        query[(nx < 0) | (ny < 0)] = -1  # no event has a negative key
        out.append((_last_before(query, key, t), nx, ny))
    return out


def denoise(events: np.ndarray, *, filter_us: int, tonic_compat: bool = False) -> np.ndarray:
    """Background-activity filter: keep an event if a 4-neighbour fired less than ``filter_us`` before it."""
    window = _non_negative_int(filter_us, "filter_us")
    if len(events) == 0:
        return events.copy()
    t = events["t"].astype(np.int64, copy=False)
    keep = np.zeros(len(events), dtype=bool)
    if tonic_compat:
        xmax, ymax = int(events["x"].max()), int(events["y"].max())
    for last, nx, ny in _neighbour_times(events, t):
        if tonic_compat:
            inside = (nx >= 0) & (nx <= xmax) & (ny >= 0) & (ny <= ymax)
            last = np.where((last == NEVER) & inside, 0, last)
        keep |= t - last < window
    return events[keep]


def _check_geometry(geometry) -> tuple[int, int]:
    if len(geometry) != 2 or any(
        isinstance(v, bool) or not isinstance(v, int | np.integer) or v <= 0 for v in geometry
    ):
        raise OptionError(f"must be (width, height) in pixels, got {geometry!r}", path="geometry")
    return int(geometry[0]), int(geometry[1])


def _check_inside(events: np.ndarray, width: int, height: int) -> None:
    if len(events) and (int(events["x"].max()) >= width or int(events["y"].max()) >= height):
        bad = int(np.argmax((events["x"] >= width) | (events["y"] >= height)))
        raise InputError(
            f"event {bad} at (x={int(events['x'][bad])}, y={int(events['y'][bad])}) lies outside the "
            f"{width}x{height} geometry",
            path="events",
        )


class ChunkedRefractory:
    """:func:`refractory_filter` over a stream of chunks; keeps one int64 last-time per pixel."""

    def __init__(self, geometry: tuple[int, int], *, refractory_us: int) -> None:
        self.width, self.height = _check_geometry(geometry)
        self.refractory_us = _non_negative_int(refractory_us, "refractory_us")
        self.last_t = np.full((self.height, self.width), NEVER, dtype=np.int64)

    def reset(self) -> None:
        """Forget every pixel's history."""
        self.last_t.fill(NEVER)

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        """Filter one chunk, continuing from the previous chunks."""
        _check_inside(chunk, self.width, self.height)
        if len(chunk) == 0:
            return chunk.copy()
        t = chunk["t"].astype(np.int64, copy=False)
        x, y = chunk["x"].astype(np.intp), chunk["y"].astype(np.intp)
        prev, last_idx = _previous_same_key(_pixel_key(chunk), t, self.last_t[y, x])
        self.last_t[y[last_idx], x[last_idx]] = t[last_idx]
        return chunk[t - prev > self.refractory_us]


class ChunkedDenoise:
    """:func:`denoise` over a stream of chunks; keeps one int64 last-time per pixel."""

    def __init__(self, geometry: tuple[int, int], *, filter_us: int) -> None:
        self.width, self.height = _check_geometry(geometry)
        self.filter_us = _non_negative_int(filter_us, "filter_us")
        # One pixel of padding on each side so neighbours of border pixels index safely.
        self.last_t = np.full((self.height + 2, self.width + 2), NEVER, dtype=np.int64)

    def reset(self) -> None:
        """Forget every pixel's history."""
        self.last_t.fill(NEVER)

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        """Filter one chunk, continuing from the previous chunks."""
        _check_inside(chunk, self.width, self.height)
        if len(chunk) == 0:
            return chunk.copy()
        t = chunk["t"].astype(np.int64, copy=False)
        keep = np.zeros(len(chunk), dtype=bool)
        for last, nx, ny in _neighbour_times(chunk, t):
            last = np.where(last == NEVER, self.last_t[ny + 1, nx + 1], last)
            keep |= t - last < self.filter_us
        _, last_idx = _previous_same_key(_pixel_key(chunk), t, NEVER)
        self.last_t[chunk["y"][last_idx].astype(np.intp) + 1, chunk["x"][last_idx].astype(np.intp) + 1] = t[last_idx]
        return chunk[keep]
