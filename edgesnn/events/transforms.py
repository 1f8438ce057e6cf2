"""Frozen transform objects: configuration checked once, work forwarded to edgesnn.events.functional.

Each class holds the keyword parameters of one function and calls it in ``__call__``;
see that function for the semantics (tonic parity and the documented differences).

    >>> from edgesnn.events.transforms import Crop, Denoise
    >>> clean = Denoise(filter_us=5_000)(Crop(roi=(0, 0, 320, 240))(events))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgesnn.errors import OptionError
from edgesnn.events._dtype import empty_events
from edgesnn.events.functional import filters as F
from edgesnn.events.functional import slicing as S


@dataclass(frozen=True)
class Crop:
    """Keep the events inside ``roi = (x0, y0, width, height)`` (see :func:`~.filters.crop_roi`)."""

    roi: tuple[int, int, int, int]
    shift: bool = True

    def __post_init__(self) -> None:
        F.crop_roi(empty_events(), roi=self.roi)

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return F.crop_roi(events, roi=self.roi, shift=self.shift)


@dataclass(frozen=True)
class Downsample:
    """Scale coordinates and timestamps like tonic's Downsample (see :func:`~.filters.downsample`)."""

    spatial_factor: float | tuple[float, float] = 1.0
    time_factor: float = 1.0

    def __post_init__(self) -> None:
        F.downsample(empty_events(), spatial_factor=self.spatial_factor, time_factor=self.time_factor)

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return F.downsample(events, spatial_factor=self.spatial_factor, time_factor=self.time_factor)


@dataclass(frozen=True)
class PolarityFilter:
    """Keep one polarity: 1 = ON, 0 = OFF (see :func:`~.filters.polarity_filter`)."""

    polarity: int

    def __post_init__(self) -> None:
        F.polarity_filter(empty_events(), polarity=self.polarity)

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return F.polarity_filter(events, polarity=self.polarity)


@dataclass(frozen=True)
class Refractory:
    """Per-pixel refractory period in µs, tonic's RefractoryPeriod (see :func:`~.filters.refractory_filter`)."""

    refractory_us: int
    tonic_compat: bool = False

    def __post_init__(self) -> None:
        F._non_negative_int(self.refractory_us, "refractory_us")

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return F.refractory_filter(events, refractory_us=self.refractory_us, tonic_compat=self.tonic_compat)


@dataclass(frozen=True)
class Denoise:
    """Background-activity filter, tonic's Denoise (see :func:`~.filters.denoise`)."""

    filter_us: int
    tonic_compat: bool = False

    def __post_init__(self) -> None:
        F._non_negative_int(self.filter_us, "filter_us")

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return F.denoise(events, filter_us=self.filter_us, tonic_compat=self.tonic_compat)


@dataclass(frozen=True)
class SliceByTime:
    """Half-open time windows, tonic's SliceByTime (see :func:`~.slicing.slice_by_time`)."""

    window_us: int
    stride_us: int | None = None
    start_us: int | None = None
    end_us: int | None = None
    include_incomplete: bool = False

    def __post_init__(self) -> None:
        S._time_params(self.window_us, self.stride_us)
        for name in ("start_us", "end_us"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | np.integer)):
                raise OptionError(f"must be an integer time in µs or None, got {value!r}", path=name)

    def __call__(self, events: np.ndarray) -> list[np.ndarray]:
        return S.slice_by_time(
            events,
            window_us=self.window_us,
            stride_us=self.stride_us,
            start_us=self.start_us,
            end_us=self.end_us,
            include_incomplete=self.include_incomplete,
        )

    def slicer(self) -> S.TimeSlicer:
        """A streaming slicer with these windows, for chunked sources."""
        return S.TimeSlicer(window_us=self.window_us, stride_us=self.stride_us, start_us=self.start_us)


@dataclass(frozen=True)
class SliceByCount:
    """Windows of ``count`` events every ``stride`` events, as tonic's SliceByEventCount."""

    count: int
    stride: int | None = None
    include_incomplete: bool = False

    def __post_init__(self) -> None:
        S._positive_int(self.count, "count")
        if self.stride is not None:
            S._positive_int(self.stride, "stride")

    def __call__(self, events: np.ndarray) -> list[np.ndarray]:
        return S.slice_by_count(
            events, count=self.count, stride=self.stride, include_incomplete=self.include_incomplete
        )

    def slicer(self) -> S.CountSlicer:
        """A streaming slicer with these windows, for chunked sources."""
        return S.CountSlicer(count=self.count, stride=self.stride)
