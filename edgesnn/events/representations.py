"""Frozen transforms that turn an event array into a dense representation.

Each class only holds configuration, checked once at construction, and forwards to the
function of the same name in :mod:`edgesnn.events.functional` (``ToFrame`` ->
``functional.to_frame.to_frame``), which does the work and documents the semantics and every
difference from tonic. Calling a transform never modifies the events it is given.

Example
-------
>>> from edgesnn.events._dtype import make_events
>>> to_bins = ToTimeBins(sensor_size=(4, 3, 2), n_bins=2, t_start_us=0, t_end_us=100)
>>> to_bins(make_events([0, 3], [0, 2], [1, 0], [10, 60])).shape
(2, 2, 3, 4)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from edgesnn.events.functional._repr_checks import sensor_dims
from edgesnn.events.functional.to_event_frame import to_event_frame
from edgesnn.events.functional.to_frame import to_frame
from edgesnn.events.functional.to_histogram import to_histogram, to_stacked_histogram, to_time_bins
from edgesnn.events.functional.to_timesurface import to_timesurface
from edgesnn.events.functional.to_voxel_grid import to_voxel_grid

__all__ = [
    "ToHistogram",
    "ToTimeBins",
    "ToStackedHistogram",
    "ToFrame",
    "ToVoxelGrid",
    "ToTimesurface",
    "ToEventFrame",
]


class _Forwarding:
    """Shared ``__post_init__``/``_kwargs`` of the representation transforms (configuration only)."""

    sensor_size: tuple[int, int, int]

    def __post_init__(self) -> None:
        # normalise to a tuple of ints so that equal configurations compare and hash equal
        object.__setattr__(self, "sensor_size", sensor_dims(self.sensor_size))

    def _kwargs(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class ToHistogram(_Forwarding):
    """Counts per polarity and pixel, (P, H, W); see :func:`~edgesnn.events.functional.to_histogram.to_histogram`."""

    sensor_size: tuple[int, int, int]
    dtype: type = np.int32

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return to_histogram(events, **self._kwargs())


@dataclass(frozen=True)
class ToTimeBins(_Forwarding):
    """Time-binned histograms (T, P, H, W), the hybrid detector's input; see ``to_time_bins``."""

    sensor_size: tuple[int, int, int]
    n_bins: int
    t_start_us: int | None = None
    t_end_us: int | None = None
    count_cutoff: int | None = None
    dtype: type = np.int32

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return to_time_bins(events, **self._kwargs())


@dataclass(frozen=True)
class ToStackedHistogram(_Forwarding):
    """RVT's uint8 stacked histogram, (2T, H, W) by default; see ``to_stacked_histogram``."""

    sensor_size: tuple[int, int, int]
    n_bins: int
    count_cutoff: int | None = None
    layout: str = "rvt"

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return to_stacked_histogram(events, **self._kwargs())


@dataclass(frozen=True)
class ToFrame(_Forwarding):
    """tonic's ToFrame, (T, P, H, W); see :mod:`edgesnn.events.functional.to_frame` for the differences."""

    sensor_size: tuple[int, int, int]
    time_window_us: float | None = None
    event_count: int | None = None
    n_time_bins: int | None = None
    n_event_bins: int | None = None
    overlap: float = 0
    include_incomplete: bool = False
    start_time_us: int | None = None
    end_time_us: int | None = None
    dtype: type = np.int16
    tonic_compat: bool = False

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return to_frame(events, **self._kwargs())


@dataclass(frozen=True)
class ToVoxelGrid(_Forwarding):
    """Voxel grid bilinear in time, (T, 1, H, W) float64; see :mod:`edgesnn.events.functional.to_voxel_grid`."""

    sensor_size: tuple[int, int, int]
    n_time_bins: int = 10
    tonic_compat: bool = False

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return to_voxel_grid(events, **self._kwargs())


@dataclass(frozen=True)
class ToTimesurface(_Forwarding):
    """Global time surfaces after each window, (N, P, H, W); see ``to_timesurface``."""

    sensor_size: tuple[int, int, int]
    dt_us: float
    tau_us: float
    overlap_us: float = 0
    include_incomplete: bool = False
    tonic_compat: bool = False

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return to_timesurface(events, **self._kwargs())


@dataclass(frozen=True)
class ToEventFrame(_Forwarding):
    """Signed polarity sum or binary mask, (H, W); see ``to_event_frame``."""

    sensor_size: tuple[int, int, int]
    mode: str = "signed"

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return to_event_frame(events, **self._kwargs())
