"""One image per event array: signed polarity sum (ON +1, OFF -1) or a binary "any event" mask.

tonic has no direct equivalent (its ``ToImage`` counts per polarity, which is
:func:`edgesnn.events.functional.to_histogram.to_histogram`).
"""

from __future__ import annotations

import numpy as np

from edgesnn.errors import OptionError
from edgesnn.events.functional._repr_checks import check_events, on_mask, sensor_dims

__all__ = ["to_event_frame"]

_MODES = ("signed", "binary")


def to_event_frame(events: np.ndarray, *, sensor_size, mode: str = "signed") -> np.ndarray:
    """Event frame of shape (H, W).

    Parameters
    ----------
    events : ndarray of EVENT_DTYPE
        Events in any order.
    sensor_size : (W, H, P)
        As tonic; P is not used.
    mode : {"signed", "binary"}, default "signed"
        "signed": int32 sum of +1 per ON and -1 per OFF event at each pixel.
        "binary": uint8, 1 where the pixel has at least one event of either polarity.
    """
    w, h, _ = sensor_dims(sensor_size)
    if mode not in _MODES:
        raise OptionError(f"expected one of {', '.join(_MODES)}, got {mode!r}", path="mode")
    check_events(events, w, h)
    pix = np.multiply(events["y"], w, dtype=np.intp)
    pix += events["x"]
    if mode == "binary":
        out = np.zeros(h * w, dtype=np.uint8)
        out[pix] = 1
        return out.reshape(h, w)
    on = on_mask(events["p"])
    # ON count minus OFF count, both from one bincount over 2 * H * W cells
    counts = np.bincount(pix + on * (h * w), minlength=2 * h * w)
    return (counts[h * w :] - counts[: h * w]).astype(np.int32).reshape(h, w)
