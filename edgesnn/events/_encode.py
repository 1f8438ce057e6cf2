"""Shared checks and pieces of the EVT2, EVT3 and DAT writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgesnn.errors import InputError, OptionError
from edgesnn.events._header import MAX_TIME_OFFSET, TIME_OFFSET_KEY
from edgesnn.events.io import check_geometry


def checked_events(events, geometry, *, max_coord: tuple[int, int], what: str):
    """(x, y, p, t) as int64 arrays and the (width, height) to record, after checking ``events``.

    ``max_coord`` is the largest (x, y) the format's fields hold; ``what`` names the format in errors.
    """
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    missing = [f for f in ("x", "y", "p", "t") if f not in names]
    if missing:
        raise InputError(f"events: expected a structured array with fields x, y, p, t; missing {missing}")
    x, y, p, t = (np.asarray(events[f]).astype(np.int64) for f in ("x", "y", "p", "t"))
    if geometry is None:
        if len(x) == 0:
            raise OptionError(f"geometry: needed to write an empty event array as {what}")
        geometry = (int(x.max()) + 1, int(y.max()) + 1)
    w, h = check_geometry(geometry)
    if w > max_coord[0] + 1 or h > max_coord[1] + 1:
        raise OptionError(f"geometry: {what} holds at most {max_coord[0] + 1}x{max_coord[1] + 1} pixels, got {w}x{h}")
    _first_bad("x", (x < 0) | (x >= w), x, f"in [0, {w})")
    _first_bad("y", (y < 0) | (y >= h), y, f"in [0, {h})")
    _first_bad("p", (p != 0) & (p != 1), p, "0 (OFF) or 1 (ON)")
    _first_bad("t", t < 0, t, ">= 0 µs")
    if len(t) > 1:
        back = np.flatnonzero(np.diff(t) < 0)
        if len(back):
            i = int(back[0]) + 1
            raise InputError(f"events/t: must not decrease; event {i} has t={int(t[i])} after t={int(t[i - 1])}")
    return x, y, p, t, (w, h)


def _first_bad(field, bad, values, expected):
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"events/{field}: expected {expected}, event {i} has {int(values[i])}")


def time_high_steps(hi: np.ndarray, max_step: int) -> tuple[np.ndarray, np.ndarray]:
    """Time-high values to write: (event index, value) pairs, values in write order.

    A time high is written before every event whose ``hi`` differs from the previous event's, and
    extra ones in between so that no step exceeds ``max_step`` (a decoder takes a larger drop of
    the wrapped counter for a wrap, and a first value that large would be read modulo the counter).
    """
    n = len(hi)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    change = np.ones(n, bool)
    change[1:] = hi[1:] != hi[:-1]
    idx = np.flatnonzero(change)
    prev = np.concatenate(([0], hi[idx[:-1]])) if len(idx) else np.zeros(0, np.int64)
    big = (hi[idx] - prev) > max_step
    if not big.any():
        return idx, hi[idx]
    ev, val = [], []
    for k, i in enumerate(idx.tolist()):
        target = int(hi[i])
        if big[k]:
            start = int(prev[k])
            steps = list(range(start if k == 0 else start + max_step, target, max_step))
            ev += [i] * len(steps)
            val += steps
        ev.append(i)
        val.append(target)
    return np.asarray(ev, np.int64), np.asarray(val, np.int64)


def time_offset_for(t: np.ndarray, reach_us: int) -> int:
    """The ``time_offset_us`` to store for checked times ``t``: 0 or the first event's time.

    ``reach_us`` is the first time the format cannot place without filler words from zero (EVT3
    2^23, EVT2 2^33, DAT 2^32 µs). Below it the file is written exactly as before, with no key, so
    every reader agrees on its times; at or above it (epoch-stamped recordings, ~1.6e15 µs) the
    payload starts at zero instead of replaying time highs from t = 0.
    """
    if len(t) == 0 or int(t[0]) < reach_us:
        return 0
    first = int(t[0])
    if first > MAX_TIME_OFFSET:
        raise InputError(f"events/t: the first timestamp {first} µs exceeds 2^62 µs, the largest time offset")
    return first


def write_file(path, header: bytes, payload: bytes | np.ndarray) -> None:
    """Write header then payload to ``path``."""
    with open(Path(path), "wb") as f:
        f.write(header)
        f.write(payload.tobytes() if isinstance(payload, np.ndarray) else payload)


def raw_header(evt: str, fmt: str, geometry: tuple[int, int], time_offset: int = 0) -> bytes:
    """A RAW header naming the encoding, the geometry and any time offset, closed by ``% end``."""
    w, h = geometry
    offset = f"% {TIME_OFFSET_KEY} {time_offset}\n" if time_offset else ""
    return (
        f"% evt {evt}\n% format {fmt};height={h};width={w}\n% geometry {w}x{h}\n% integrator_name edgesnn\n"
        f"{offset}% end\n"
    ).encode("ascii")
