"""What to generate: the glyph dataset's configuration, its classes, and every sample's pose.

Classes come from the fonts, not from a random draw: per alphabet, the letters its font really
draws (``_fonts.drawable``), minus any glyph that looks like one already taken from an earlier
alphabet (Latin A, Greek Alpha and Cyrillic A are one shape; keeping all three would let a
held-out class leak into meta-training), then at most ``max_classes_per_alphabet`` of them,
evenly spaced along the code points. Poses are drawn from ``np.random.default_rng([seed,
split_index])`` class by class, sample by sample, in a fixed order; each sample's simulator gets
its own generator seeded ``[seed, split_index, class, sample]``. So the dataset depends only on
the seed, the configuration and the font files, never on the number of worker processes.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

import numpy as np

from edgesnn.errors import OptionError
from edgesnn.events.simulator import SimulatorConfig
from tools.datasets import _fonts, _scripts
from tools.datasets._saccades import SACCADE_DIRECTIONS_DEG, Pose

GENERATOR_VERSION = "glyphs-1"
#: Columns of the per-sample parameter table stored with each split.
POSE_PARAM_NAMES: tuple[str, ...] = (
    "font_px", "stroke_px", "rotation_deg", "shear", "height_px", "offset_x", "offset_y",
    "background", "texture", "ink_ratio", "contrast_threshold",
)  # fmt: skip


def _range(name: str, value: tuple[float, float], low: float = -math.inf, high: float = math.inf) -> None:
    lo, hi = value
    if not (low <= lo <= hi <= high):
        raise OptionError(f"expected (low, high) with {low} <= low <= high <= {high}, got {value}", path=name)


@dataclass(frozen=True)
class GlyphConfig:
    """Everything that shapes the dataset except the seed and the fonts; its hash goes in every split file."""

    samples_per_class: int = 20
    max_classes_per_alphabet: int = 32
    alphabets_per_split: int | None = None  # None: every alphabet of _scripts.ALPHABETS
    width: int = 34  # N-MNIST's geometry
    height: int = 34
    duration_us: int = 300_000  # three saccades of 100 ms
    frame_us: int = 2_000  # 500 frames/s; the simulator interpolates between frames
    font_px_range: tuple[int, int] = (48, 80)
    stroke_px_range: tuple[int, int] = (0, 2)  # at font_px: thickens strokes by up to ~4 %
    rotation_deg: float = 10.0  # uniform in +-
    shear: float = 0.15  # uniform in +-
    height_px_range: tuple[float, float] = (18.0, 24.0)  # glyph's larger side on the sensor
    offset_px: float = 2.0  # uniform in +- per axis
    background_range: tuple[float, float] = (0.35, 0.75)
    texture_range: tuple[float, float] = (0.0, 0.06)
    ink_ratio_range: tuple[float, float] = (0.25, 0.5)  # ink / paper intensity: 0.7..1.4 log units of contrast
    saccade_px_range: tuple[float, float] = (2.0, 3.0)  # leg length
    saccade_angle_jitter_deg: float = 10.0
    tremor_px: float = 0.1  # amplitude of each of the two sinusoids per axis
    tremor_hz_range: tuple[float, float] = (3.0, 12.0)
    contrast_threshold_range: tuple[float, float] = (0.15, 0.25)  # nominal C+ and C- per sample
    threshold_sigma: float = 0.03  # per-pixel spread around the nominal thresholds
    refractory_us: int = 500
    shot_noise_rate_hz: float = 0.5
    leak_rate_hz: float = 0.1
    duplicate_correlation: float = 0.98  # drop a glyph this close to one of an earlier alphabet

    def __post_init__(self) -> None:
        for name in ("samples_per_class", "max_classes_per_alphabet", "width", "height", "duration_us", "frame_us"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise OptionError(f"expected a positive integer, got {v!r}", path=name)
        if self.alphabets_per_split is not None and self.alphabets_per_split < 1:
            raise OptionError(f"expected None or >= 1, got {self.alphabets_per_split}", path="alphabets_per_split")
        if self.frame_us >= self.duration_us:
            raise OptionError(f"must be shorter than duration_us={self.duration_us}", path="frame_us")
        _range("font_px_range", self.font_px_range, 8, 512)
        _range("stroke_px_range", self.stroke_px_range, 0, 16)
        _range("height_px_range", self.height_px_range, 2.0, float(max(self.width, self.height)))
        for name in ("background_range", "ink_ratio_range"):
            _range(name, getattr(self, name), 0.0, 1.0)
        _range("texture_range", self.texture_range, 0.0, 0.5)
        _range("saccade_px_range", self.saccade_px_range, 0.0, 16.0)
        _range("tremor_hz_range", self.tremor_hz_range, 0.0, 1e6 / self.frame_us / 2)  # below Nyquist
        _range("contrast_threshold_range", self.contrast_threshold_range, 0.01, 5.0)
        if not 0.0 < self.duplicate_correlation <= 1.0:
            raise OptionError(f"expected (0, 1], got {self.duplicate_correlation}", path="duplicate_correlation")
        self.simulator_config(self.contrast_threshold_range[0])  # validates the simulator's fields

    @property
    def margin(self) -> int:
        """Page pixels beyond the sensor on each side: the far vertex lies within two legs, plus the tremor."""
        return math.ceil(2 * self.saccade_px_range[1] + 4 * self.tremor_px) + 2

    def simulator_config(self, contrast_threshold: float) -> SimulatorConfig:
        """The event simulator's configuration for one sample's nominal threshold."""
        return SimulatorConfig(
            contrast_threshold_pos=contrast_threshold,
            contrast_threshold_neg=contrast_threshold,
            threshold_sigma=self.threshold_sigma,
            refractory_us=self.refractory_us,
            shot_noise_rate_hz=self.shot_noise_rate_hz,
            leak_rate_hz=self.leak_rate_hz,
        )

    def to_json(self) -> str:
        """Canonical JSON of the configuration and the generator version."""
        return json.dumps({"generator_version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)

    def config_hash(self) -> str:
        """First 16 hex digits of the SHA-256 of :meth:`to_json`."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GlyphClass:
    """One class: a code point of an alphabet, drawn with that alphabet's font."""

    alphabet: str
    font: str
    codepoint: int

    @property
    def name(self) -> str:
        """``Script U+XXXX``, e.g. ``Runic U+16A0``."""
        return f"{self.alphabet} U+{self.codepoint:04X}"


@dataclass(frozen=True)
class SampleTask:
    """One class's samples to render in a worker: poses and simulator seeds already drawn."""

    cls: GlyphClass
    poses: tuple[Pose, ...]
    entropy: tuple[tuple[int, ...], ...]  # seed of each sample's simulator generator


def split_index(split: str) -> int:
    """Position of ``split`` in SPLITS; OptionError for an unknown name."""
    if split not in _scripts.SPLITS:
        raise OptionError(f"expected one of {', '.join(_scripts.SPLITS)}, got {split!r}", path="split")
    return _scripts.SPLITS.index(split)


def split_alphabets(config: GlyphConfig, split: str) -> tuple[_scripts.Alphabet, ...]:
    """The alphabets of ``split`` that ``config`` uses."""
    split_index(split)
    alphabets = _scripts.ALPHABETS[split]
    return alphabets if config.alphabets_per_split is None else alphabets[: config.alphabets_per_split]


def enumerate_classes(config: GlyphConfig) -> dict[str, list[GlyphClass]]:
    """Classes per split, alphabet by alphabet (see the module docstring for the selection rule)."""
    kept_prints: list[np.ndarray] = []
    out: dict[str, list[GlyphClass]] = {}
    for split in _scripts.SPLITS:
        out[split] = []
        for alphabet in split_alphabets(config, split):
            glyphs = _fonts.drawable(alphabet)
            if kept_prints:
                earlier = np.stack(kept_prints)
                glyphs = [(cp, fp) for cp, fp in glyphs if float((earlier @ fp).max()) < config.duplicate_correlation]
            n = min(len(glyphs), config.max_classes_per_alphabet)
            if n == 0:
                raise OptionError(f"alphabet {alphabet.name} has no drawable glyph left", path=alphabet.font)
            pick = np.unique(np.round(np.linspace(0, len(glyphs) - 1, n)).astype(np.int64))
            for i in pick:
                cp, fp = glyphs[int(i)]
                out[split].append(GlyphClass(alphabet.name, alphabet.font, cp))
                kept_prints.append(fp)
    return out


def draw_pose(config: GlyphConfig, rng: np.random.Generator) -> Pose:
    """One sample's pose, drawn in a fixed order."""
    c = config
    vertices = []
    for direction in SACCADE_DIRECTIONS_DEG[:2]:
        # the far vertices of the triangle 0 -> v1 -> v2 -> 0: v1 along the first leg's direction,
        # v2 = v1 + the second leg
        length = rng.uniform(*c.saccade_px_range)
        angle = math.radians(direction + rng.uniform(-1, 1) * c.saccade_angle_jitter_deg)
        vertices.append((length * math.cos(angle), length * math.sin(angle)))
    v1 = vertices[0]
    v2 = (v1[0] + vertices[1][0], v1[1] + vertices[1][1])
    tremor = []
    for _axis in range(2):
        for _term in range(2):
            tremor += [c.tremor_px, float(rng.uniform(*c.tremor_hz_range)), float(rng.uniform(0, 2 * math.pi))]
    return Pose(
        font_px=int(rng.integers(c.font_px_range[0], c.font_px_range[1] + 1)),
        stroke_px=int(rng.integers(c.stroke_px_range[0], c.stroke_px_range[1] + 1)),
        rotation_deg=float(rng.uniform(-c.rotation_deg, c.rotation_deg)),
        shear=float(rng.uniform(-c.shear, c.shear)),
        height_px=float(rng.uniform(*c.height_px_range)),
        offset_x=float(rng.uniform(-c.offset_px, c.offset_px)),
        offset_y=float(rng.uniform(-c.offset_px, c.offset_px)),
        background=float(rng.uniform(*c.background_range)),
        texture=float(rng.uniform(*c.texture_range)),
        ink_ratio=float(rng.uniform(*c.ink_ratio_range)),
        vertices=(v1, v2),
        tremor=tuple(tremor),
        contrast_threshold=float(rng.uniform(*c.contrast_threshold_range)),
    )


def pose_params(pose: Pose) -> tuple[float, ...]:
    """The pose's values in the order of POSE_PARAM_NAMES."""
    return tuple(float(getattr(pose, name)) for name in POSE_PARAM_NAMES)


def plan_split(config: GlyphConfig, split: str, classes: list[GlyphClass], seed: int) -> list[SampleTask]:
    """Every sample of ``split``: one task per class, ``samples_per_class`` poses each."""
    index = split_index(split)
    rng = np.random.default_rng([seed, index])
    tasks = []
    for label, cls in enumerate(classes):
        poses = tuple(draw_pose(config, rng) for _ in range(config.samples_per_class))
        entropy = tuple((seed, index, label, k) for k in range(config.samples_per_class))
        tasks.append(SampleTask(cls, poses, entropy))
    return tasks
