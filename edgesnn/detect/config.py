"""The detector's settings, stored in a bundle's graph metadata under ``"detect"``."""

from __future__ import annotations

import dataclasses
from typing import Any

from edgesnn.errors import OptionError

#: Key of the detector settings in ``graph.metadata``.
METADATA_KEY = "detect"
#: Name of the bundle attachment holding the bridge, ANN and head as one ONNX model.
ANN_ATTACHMENT = "detect.onnx"


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"expected an integer >= 1, got {value!r}", path=name)
    return value


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """How events become boxes: sensor geometry, time bins, the head's levels and the post-processing.

    A window of ``n_bins * bin_us`` µs (50 ms by default) gives one detection set; each bin
    (5 ms) is one step of the SNN front. ``level_shapes`` and ``strides`` describe the
    head's grids (rows, columns) and their strides in pixels, in the order the ONNX part
    concatenates them. Only the ``pre_nms_top_k`` best-scoring cells above
    ``score_threshold`` enter non-maximum suppression, which bounds its cost.
    """

    width: int = 304
    height: int = 240
    n_bins: int = 10
    bin_us: int = 5000
    classes: tuple[str, ...] = ("car", "pedestrian")
    level_shapes: tuple[tuple[int, int], ...] = ((30, 38), (15, 19))
    strides: tuple[int, ...] = (8, 16)
    front_output: str = "spikes"
    count_cutoff: int | None = None
    score_threshold: float = 0.3
    iou_threshold: float = 0.5
    max_detections: int = 100
    pre_nms_top_k: int = 300

    def __post_init__(self) -> None:
        for name in ("width", "height", "n_bins", "bin_us", "max_detections", "pre_nms_top_k"):
            _positive_int(getattr(self, name), name)
        if self.count_cutoff is not None:
            _positive_int(self.count_cutoff, "count_cutoff")
        classes = tuple(self.classes)
        if not classes or not all(isinstance(c, str) and c for c in classes):
            raise OptionError(f"expected a non-empty list of class names, got {self.classes!r}", path="classes")
        object.__setattr__(self, "classes", classes)
        try:
            shapes = tuple((int(h), int(w)) for h, w in self.level_shapes)
            strides = tuple(int(s) for s in self.strides)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"expected [[rows, cols], ...], got {self.level_shapes!r}", path="level_shapes") from exc
        if not shapes or len(shapes) != len(strides) or min(min(s) for s in shapes) < 1 or min(strides) < 1:
            raise OptionError(f"expected one positive (rows, cols) per stride {strides}, got {shapes}",
                              path="level_shapes")  # fmt: skip
        object.__setattr__(self, "level_shapes", shapes)
        object.__setattr__(self, "strides", strides)
        for name in ("score_threshold", "iou_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise OptionError(f"expected a number in [0, 1], got {value!r}", path=name)
        if not isinstance(self.front_output, str) or not self.front_output:
            raise OptionError(f"expected a node name, got {self.front_output!r}", path="front_output")

    @property
    def window_us(self) -> int:
        """Length of one detection window in µs."""
        return self.n_bins * self.bin_us

    @property
    def n_cells(self) -> int:
        """Number of grid cells over all levels (rows of the raw prediction)."""
        return sum(h * w for h, w in self.level_shapes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, for the bundle manifest."""
        d = dataclasses.asdict(self)
        d["classes"] = list(self.classes)
        d["level_shapes"] = [list(s) for s in self.level_shapes]
        d["strides"] = list(self.strides)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        """Inverse of :meth:`to_dict`; an unknown key is an error naming it."""
        if not isinstance(data, dict):
            raise OptionError(f"expected an object, got {type(data).__name__}", path="")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise OptionError(f"unknown field; expected only {', '.join(sorted(known))}", path=key)
        return cls(**data)
