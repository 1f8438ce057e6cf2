"""The one event-array contract: every reader returns it, every consumer reads fields by name."""

from __future__ import annotations

import numpy as np

#: Structured dtype of an event array: pixel column ``x``, row ``y``, polarity ``p``
#: (1 = ON, brighter; 0 = OFF, darker) and timestamp ``t`` in microseconds.
EVENT_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("p", "i1"), ("t", "<i8")])


def empty_events(n: int = 0) -> np.ndarray:
    """A zero-filled event array of length ``n``."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def make_events(x, y, p, t) -> np.ndarray:
    """Build an event array from four equally long sequences."""
    x, y, p, t = (np.asarray(a) for a in (x, y, p, t))
    out = np.empty(len(t), dtype=EVENT_DTYPE)
    out["x"], out["y"], out["p"], out["t"] = x, y, p, t
    return out
