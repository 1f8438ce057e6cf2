"""Binning one step's events into a model input: counts per address, as float32."""

from __future__ import annotations

import numpy as np

from edgesnn.errors import InputError
from edgesnn.events.functional.to_histogram import to_histogram


def bin_events(events: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Counts of ``events`` in an input of ``shape`` (no batch): (N,) by x, (H, W) by pixel, (P, H, W) by both.

    Returns float32 of shape (1, *shape). For (N,) inputs every event needs y == 0.
    """
    where = f"events/{name}"
    if len(shape) == 1:
        sensor = (shape[0], 1, 1)
    elif len(shape) == 2:
        sensor = (shape[1], shape[0], 1)
    elif len(shape) == 3 and shape[0] in (1, 2):
        sensor = (shape[2], shape[1], shape[0])
    else:
        raise InputError(f"input of shape {shape} cannot take events; they bin into (N,), (H, W) or (P, H, W)",
                         path=where)  # fmt: skip
    try:
        counts = to_histogram(events, sensor_size=sensor, dtype=np.float32)
    except InputError as exc:
        raise exc.with_prefix(where) from exc
    return counts.reshape((1, *shape))
