"""The part of the sensor a detector sees: crop to a region, then pool f x f pixel blocks into one.

Events go through :class:`~edgesnn.events.transforms.Crop` (``shift=True``: the region's
top-left pixel becomes (0, 0)) and then :class:`~edgesnn.events.transforms.Downsample` with
``spatial_factor = 1 / f`` (coordinates truncated, so sensor column ``x`` lands in column
``(x - x0) // f``). Boxes come back through the inverse affine map, in sensor pixels: a box
``(x, y, w, h)`` in the model's pixels is ``(x0 + f * x, y0 + f * y, f * w, f * h)`` on the sensor.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgesnn.errors import OptionError
from edgesnn.events.transforms import Crop, Downsample

#: Largest downsampling factor: up to 16, ``x * (1 / f)`` truncates to ``x // f`` for every uint16 ``x``
#: (at 49 it no longer does), so Downsample's float factor pools exact f x f blocks.
MAX_DOWNSAMPLE = 16


@dataclasses.dataclass(frozen=True)
class SensorView:
    """Crop to ``roi = (x0, y0, width, height)`` (None: the whole sensor), then downsample by an integer factor."""

    roi: tuple[int, int, int, int] | None = None
    downsample: int = 1
    _crop: Crop | None = dataclasses.field(init=False, repr=False, compare=False, default=None)
    _pool: Downsample | None = dataclasses.field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        f = self.downsample
        if isinstance(f, bool) or not isinstance(f, int | np.integer) or not 1 <= f <= MAX_DOWNSAMPLE:
            raise OptionError(f"expected an integer factor from 1 to {MAX_DOWNSAMPLE}, got {f!r}", path="downsample")
        object.__setattr__(self, "downsample", int(f))
        if self.roi is not None:
            if not isinstance(self.roi, tuple | list):
                raise OptionError(f"must be four integers (x0, y0, width, height), got {self.roi!r}", path="roi")
            object.__setattr__(self, "roi", tuple(int(v) if isinstance(v, np.integer) else v for v in self.roi))
            object.__setattr__(self, "_crop", Crop(roi=self.roi))  # Crop checks the four integers
        if f > 1:
            object.__setattr__(self, "_pool", Downsample(spatial_factor=1.0 / f))

    @property
    def is_identity(self) -> bool:
        """Whether events and boxes pass unchanged (no crop, factor 1)."""
        return self.roi is None and self.downsample == 1

    def geometry(self, sensor: tuple[int, int] | None) -> tuple[int, int] | None:
        """(width, height) the detector receives from a ``sensor`` of (width, height) pixels; None when unknown."""
        size = self.roi[2:] if self.roi is not None else sensor
        if size is None:
            return None
        f = self.downsample
        return (-(-int(size[0]) // f), -(-int(size[1]) // f))  # a partial last block still makes a pixel

    def __call__(self, events: np.ndarray) -> np.ndarray:
        """Events in sensor pixels -> events in the model's pixels."""
        if self._crop is not None:
            events = self._crop(events)
        if self._pool is not None:
            events = self._pool(events)
        return events

    def to_sensor(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes (BOX_DTYPE) in the model's pixels -> the same boxes in sensor pixels."""
        if self.is_identity:
            return boxes
        x0, y0 = self.roi[:2] if self.roi is not None else (0, 0)
        return _affine(boxes, float(self.downsample), x0, y0)

    def to_model(self, boxes: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_sensor`: boxes in sensor pixels -> the model's pixels."""
        if self.is_identity:
            return boxes
        x0, y0 = self.roi[:2] if self.roi is not None else (0, 0)
        f = float(self.downsample)
        return _affine(boxes, 1.0 / f, -x0 / f, -y0 / f)

    def flags(self, *, cli: bool) -> str:
        """This view as ``--roi X,Y,W,H --downsample F`` (``cli``) or as ``roi=(...), downsample=F`` keywords."""
        parts = []
        if self.roi is not None:
            parts.append("--roi " + ",".join(map(str, self.roi)) if cli else f"roi={self.roi}")
        if self.downsample > 1:
            parts.append(f"--downsample {self.downsample}" if cli else f"downsample={self.downsample}")
        return (" " if cli else ", ").join(parts)


def _affine(boxes: np.ndarray, scale: float, dx: float, dy: float) -> np.ndarray:
    out = boxes.copy()
    # float64 arithmetic, one rounding to the float32 fields
    out["x"] = boxes["x"].astype(np.float64) * scale + dx
    out["y"] = boxes["y"].astype(np.float64) * scale + dy
    out["w"] = boxes["w"].astype(np.float64) * scale
    out["h"] = boxes["h"].astype(np.float64) * scale
    return out


def suggest(
    area: tuple[int, int, int, int], model: tuple[int, int], sensor: tuple[int, int] | None
) -> list[SensorView]:
    """Views that turn ``area`` (x0, y0, width, height) into ``model`` pixels: most of the field of view first.

    The largest factor f with ``f * model`` inside the area, its region centred; then, when
    f > 1, a centred full-resolution crop. Empty when the area is smaller than the model's input.
    """
    ax, ay, aw, ah = area
    mw, mh = model
    f = min(aw // mw, ah // mh, MAX_DOWNSAMPLE)
    views = []
    for k in dict.fromkeys((f, 1)):
        if not 1 <= k <= f:  # k = 1 fits only when f does
            continue
        roi = (ax + (aw - k * mw) // 2, ay + (ah - k * mh) // 2, k * mw, k * mh)
        whole = sensor is not None and roi == (0, 0, *sensor)
        views.append(SensorView(roi=None if whole else roi, downsample=k))
    return views


def check_fit(
    view: SensorView, sensor: tuple[int, int] | None, model: tuple[int, int], *, cli: bool, path: str
) -> None:
    """Raise :class:`OptionError` unless ``view`` turns the ``sensor`` into the ``model``'s (width, height).

    The message names the recording's geometry, what the view makes of it, the model's, and a
    crop and downsample that would fit. Nothing is checked when neither the sensor's size nor a
    region is known.
    """
    roi_flag = "--roi" if cli else "roi"
    if sensor is not None and view.roi is not None:
        x0, y0, w, h = view.roi
        if x0 + w > sensor[0] or y0 + h > sensor[1]:
            raise OptionError(f"{view.flags(cli=cli)} reaches past the {sensor[0]}x{sensor[1]} recording "
                              f"(x0 + width <= {sensor[0]}, y0 + height <= {sensor[1]})", path=roi_flag)  # fmt: skip
    got = view.geometry(sensor)
    if got is None or tuple(got) == tuple(model):
        return
    head = f"recording is {sensor[0]}x{sensor[1]}" if sensor is not None else "recording of unknown size"
    if not view.is_identity:
        head += f", {view.flags(cli=cli)} gives {got[0]}x{got[1]}"
    area = view.roi if view.roi is not None else (0, 0, *sensor)  # type: ignore[misc]
    fits = [v.flags(cli=cli) or "no crop" for v in suggest(area, model, sensor)]
    if not fits:
        hint = f"the {'region' if view.roi is not None else 'recording'} is smaller than the model's input"
    else:
        hint = f"try {fits[0]}" + (f" (or {fits[1]} at full resolution)" if len(fits) > 1 else "")
    raise OptionError(f"{head}, the model expects {model[0]}x{model[1]}; {hint}", path=path)
