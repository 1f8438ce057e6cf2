"""Argument checks shared by the representation functions (sensor size, event fields, bounds)."""

from __future__ import annotations

import numpy as np

from edgesnn.errors import InputError, OptionError

_FIELDS = ("x", "y", "p", "t")


def positive_int(value, name: str) -> int:
    """``value`` as an int, or OptionError naming ``name`` when it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise OptionError(f"must be a positive integer, got {value!r}", path=name)
    return int(value)


def sensor_dims(sensor_size) -> tuple[int, int, int]:
    """Validate a tonic-style ``sensor_size=(W, H, P)`` with P in {1, 2}; return it as ints."""
    try:
        w, h, p = sensor_size
    except (TypeError, ValueError):
        raise OptionError(f"expected (width, height, polarities), got {sensor_size!r}", path="sensor_size") from None
    w = positive_int(w, "sensor_size[0]")
    h = positive_int(h, "sensor_size[1]")
    p = positive_int(p, "sensor_size[2]")
    if p > 2:
        raise OptionError(f"polarity channels must be 1 or 2, got {p}", path="sensor_size[2]")
    return w, h, p


def check_events(events, width: int, height: int) -> np.ndarray:
    """Check ``events`` is a structured array with x, y, p, t and coordinates inside the sensor."""
    names = getattr(getattr(events, "dtype", None), "names", None)
    if not isinstance(events, np.ndarray) or names is None:
        raise InputError(f"expected a structured event array (EVENT_DTYPE), got {type(events).__name__}", path="events")
    missing = [f for f in _FIELDS if f not in names]
    if missing:
        raise InputError(f"event array lacks field(s) {', '.join(missing)}; has {', '.join(names)}", path="events")
    if events.ndim != 1:
        raise InputError(f"expected a 1-D event array, got shape {events.shape}", path="events")
    if len(events):
        for field, limit in (("x", width), ("y", height)):
            values = events[field]
            # unsigned fields (EVENT_DTYPE's) cannot go below 0: one reduction instead of two
            lo = 0 if values.dtype.kind == "u" else int(values.min())
            hi = int(values.max())
            if lo < 0 or hi >= limit:
                bad = lo if lo < 0 else hi
                raise InputError(f"value {bad} outside the sensor's 0..{limit - 1}", path=field)
    return events


def check_sorted(t: np.ndarray) -> None:
    """InputError naming the first decreasing timestamp; windowing needs sorted events."""
    if not is_sorted(t):
        i = int(np.argmax(t[1:] < t[:-1])) + 1
        raise InputError(f"timestamps must not decrease: t[{i}]={int(t[i])} < t[{i - 1}]={int(t[i - 1])}", path="t")


def on_mask(p: np.ndarray) -> np.ndarray:
    """True for ON events: p > 0 for integer polarity (0/1 or -1/+1), p itself for bool."""
    return p if p.dtype == np.bool_ else p > 0


def channel_index(p: np.ndarray, n_channels: int) -> np.ndarray:
    """Polarity channel per event: 0 = OFF, 1 = ON with two channels; all 0 with one."""
    if n_channels == 1:
        return np.zeros(len(p), dtype=np.intp)
    return on_mask(p).astype(np.intp)


def pixel_index(events: np.ndarray, width: int, height: int, channel: np.ndarray | None = None) -> np.ndarray:
    """Flat cell index ``(channel * H + y) * W + x`` per event, int32 when it fits (less memory traffic)."""
    n_cells = (1 if channel is None else 2) * height * width
    itype = np.int32 if n_cells < 2**31 else np.intp
    idx = np.multiply(events["y"], width, dtype=itype)
    idx += events["x"]
    if channel is not None:
        idx += channel.astype(itype, copy=False) * itype(height * width)
    return idx


def is_sorted(t: np.ndarray) -> bool:
    """True when timestamps never decrease."""
    return len(t) < 2 or not bool(np.any(t[1:] < t[:-1]))


def saturate(counts: np.ndarray, dtype, *, bound: int | None = None) -> np.ndarray:
    """Cast integer counts to ``dtype``, clipping to its range instead of wrapping around.

    ``bound`` is an upper bound on every count (the number of events counted); when it fits the
    dtype the clipping pass is skipped.
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        top = np.iinfo(dtype).max
        if (bound is None or bound > top) and counts.size and int(counts.max()) > top:
            counts = np.minimum(counts, top)
    return counts.astype(dtype, copy=False)
