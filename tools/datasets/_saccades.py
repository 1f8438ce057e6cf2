"""From a glyph mask to events: compose a page, move the sensor in saccades, run the event-camera simulator.

As in N-MNIST (Orchard et al. 2015), the sensor makes three straight saccades of equal duration
that trace a triangle and return to the start: directions 60°, 180° and 300° (image
coordinates, y down), each vertex jittered in angle and length. A smooth tremor (two sinusoids
per axis, random frequency and phase) is added on top. The whole page moves, so a textured
paper gives events too, weaker than the glyph's edges.

The page is drawn ``SUPERSAMPLE`` times finer than the sensor and box-averaged, so edges are
anti-aliased; the sensor image at a sub-pixel offset is the bilinear interpolation of the page.
Frames are rendered every ``frame_us`` and passed to :class:`edgesnn.events.simulator.EventSimulator`,
which places events between frames on its linear log-intensity ramp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgesnn.events.simulator import EventSimulator, SimulatorConfig
from tools.datasets._fonts import _pil

#: Page rendering resolution, in page pixels per sensor pixel.
SUPERSAMPLE = 4
#: Nominal saccade directions in degrees (image coordinates: x right, y down).
SACCADE_DIRECTIONS_DEG = (60.0, 180.0, 300.0)


@dataclass(frozen=True)
class Pose:
    """How one sample draws its glyph and moves: every random choice, already made."""

    font_px: int
    stroke_px: int
    rotation_deg: float
    shear: float
    height_px: float  # glyph's larger side on the sensor, in sensor pixels
    offset_x: float  # glyph centre from the sensor centre, sensor pixels
    offset_y: float
    background: float  # paper intensity in [0, 1]
    texture: float  # relative amplitude of the paper's texture
    ink_ratio: float  # ink intensity / paper's mean intensity
    vertices: tuple[tuple[float, float], ...]  # saccade triangle's two far vertices (x, y), sensor pixels
    tremor: tuple[float, ...]  # per axis: amplitude px, frequency Hz, phase rad (x then y; two terms each)
    contrast_threshold: float


def glyph_on_page(mask: np.ndarray, pose: Pose, size: tuple[int, int]) -> np.ndarray:
    """Ink coverage (page_h, page_w) at sensor resolution: ``mask`` scaled, rotated, sheared and placed."""
    image, _, _ = _pil()
    page_w, page_h = size
    s = SUPERSAMPLE
    h, w = mask.shape
    scale = pose.height_px * s / max(h, w)
    theta = math.radians(pose.rotation_deg)
    # forward map (glyph pixel -> page pixel, about the centres): scale, then shear, then rotate
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    fwd = rot @ np.array([[1.0, pose.shear], [0.0, 1.0]]) * scale
    inv = np.linalg.inv(fwd)
    c_out = np.array([page_w * s / 2 + pose.offset_x * s, page_h * s / 2 + pose.offset_y * s])
    c_in = np.array([w / 2, h / 2])
    shift = c_in - inv @ c_out  # Pillow wants the map page -> glyph: in = inv @ out + shift
    src = image.fromarray(np.uint8(np.round(mask * 255)))
    big = src.transform(
        (page_w * s, page_h * s),
        image.Transform.AFFINE,
        (inv[0, 0], inv[0, 1], shift[0], inv[1, 0], inv[1, 1], shift[1]),
        resample=image.Resampling.BILINEAR,
    )
    arr = np.asarray(big, dtype=np.float64) / 255.0
    return arr.reshape(page_h, s, page_w, s).mean(axis=(1, 3))


def paper(size: tuple[int, int], pose: Pose, rng: np.random.Generator) -> np.ndarray:
    """Paper intensity (page_h, page_w): the background level times (1 + texture x smooth noise)."""
    w, h = size
    field = rng.standard_normal((h, w))
    kernel = np.exp(-0.5 * (np.arange(-4, 5) / 1.5) ** 2)  # Gaussian blur, sigma 1.5 px
    kernel /= kernel.sum()
    for axis in (0, 1):
        field = np.apply_along_axis(np.convolve, axis, field, kernel, mode="same")
    field /= max(float(field.std()), 1e-12)
    return pose.background * np.clip(1.0 + pose.texture * field, 0.0, None)


def saccade_path(pose: Pose, times_us: np.ndarray, duration_us: int) -> np.ndarray:
    """Sensor offset (T, 2) in pixels at each time: 0 -> v1 -> v2 -> 0 in three equal legs, plus tremor."""
    corners = np.array([(0.0, 0.0), *pose.vertices, (0.0, 0.0)])
    legs = len(corners) - 1
    phase = np.clip(times_us / duration_us, 0.0, 1.0) * legs
    leg = np.minimum(phase.astype(np.int64), legs - 1)
    frac = (phase - leg)[:, None]
    path = corners[leg] * (1.0 - frac) + corners[leg + 1] * frac
    t_s = times_us * 1e-6
    trem = np.asarray(pose.tremor).reshape(2, -1, 3)  # axis, term, (amplitude, frequency, phase)
    for axis in (0, 1):
        for amp, freq, ph in trem[axis]:
            path[:, axis] += amp * (np.sin(2 * np.pi * freq * t_s + ph) - np.sin(ph))  # zero at t = 0
    return path


def view(page: np.ndarray, offset: np.ndarray, sensor: tuple[int, int], margin: int) -> np.ndarray:
    """The sensor's (H, W) image of ``page`` when the sensor sits ``offset`` pixels from its rest position."""
    w, h = sensor
    x, y = margin + offset[0], margin + offset[1]
    ix, iy = math.floor(x), math.floor(y)
    fx, fy = x - ix, y - iy
    a = page[iy : iy + h + 1, ix : ix + w + 1]
    top = a[:-1, :-1] * (1 - fx) + a[:-1, 1:] * fx
    bottom = a[1:, :-1] * (1 - fx) + a[1:, 1:] * fx
    return top * (1 - fy) + bottom * fy


def simulate(
    mask: np.ndarray,
    pose: Pose,
    *,
    sensor: tuple[int, int],
    margin: int,
    duration_us: int,
    frame_us: int,
    simulator: SimulatorConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Events (EVENT_DTYPE, sorted by time, 0 < t < duration_us) of one sample."""
    w, h = sensor
    size = (w + 2 * margin, h + 2 * margin)
    coverage = glyph_on_page(mask, pose, size)
    page = paper(size, pose, rng) * (1.0 - coverage) + pose.background * pose.ink_ratio * coverage
    times = np.append(np.arange(0, duration_us, frame_us), duration_us - 1)  # the last frame stays inside
    path = saccade_path(pose, times.astype(np.float64), duration_us)
    sim = EventSimulator(w, h, simulator, rng=rng)
    chunks = [sim.step(view(page, off, sensor, margin), int(t)) for off, t in zip(path, times, strict=True)]
    return np.concatenate(chunks)
