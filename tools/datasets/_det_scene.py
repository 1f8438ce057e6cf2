"""One driving-like scene for the detection dataset: textured world, ego-motion, cars and pedestrians.

Every random choice of a clip is drawn once into a :class:`Scene`; :func:`render` then draws
the sensor image at any time, with the per-object visible pixel counts needed to judge
occlusion. Objects live in world coordinates; the camera pans (``cam_velocity``) and shakes
(a small sinusoid), so the background and the clutter move on the sensor too. Shapes are
drawn analytically with one pixel of anti-aliasing (coverage from a clipped signed distance).

Silhouettes (box = the whole shape, the Gen1 convention of amodal boxes):

- car (class 0): a body over the lower two thirds, a narrower cabin on top, two dark wheels;
  width 26-90 px, height 0.42-0.6 of the width; 30-220 px/s.
- pedestrian (class 1): head, torso and two legs that swing with the gait; height 24-80 px,
  width 0.3-0.42 of the height; 8-70 px/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CLASSES = ("car", "pedestrian")
#: World margin around the sensor, in pixels, so ego-motion never reveals an edge.
MARGIN = 64


@dataclass(frozen=True)
class Actor:
    """A moving object: class, size, world position at t = 0, velocity (px/s), intensity, depth."""

    class_id: int
    track_id: int
    w: float
    h: float
    x0: float  # world x of the box's left edge at t = 0
    y0: float
    vx: float
    vy: float
    intensity: float
    detail: float  # intensity of wheels / cabin windows (cars) or legs (pedestrians)
    depth: float  # larger is nearer; nearer objects occlude farther ones
    gait_hz: float
    phase: float


@dataclass(frozen=True)
class Scene:
    """Everything one clip needs: background texture, clutter, camera path, actors, poles."""

    width: int
    height: int
    background: np.ndarray  # (height + 2 MARGIN, width + 2 MARGIN) world texture in [0, 1]
    cam_velocity: tuple[float, float]  # px/s
    shake: tuple[float, float, float]  # amplitude px, frequency Hz, phase
    actors: tuple[Actor, ...]
    poles: tuple[tuple[float, float, float], ...]  # foreground occluders: world x, width, intensity


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Random values on a coarse grid, bilinearly upsampled to ``shape``: smooth texture in [0, 1]."""
    h, w = shape
    gh, gw = max(2, h // cells), max(2, w // cells)
    coarse = rng.random((gh + 1, gw + 1))
    ys = np.linspace(0, gh, h)
    xs = np.linspace(0, gw, w)
    y0 = np.minimum(ys.astype(int), gh - 1)
    x0 = np.minimum(xs.astype(int), gw - 1)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    c = coarse
    top = c[y0][:, x0] * (1 - fx) + c[y0][:, x0 + 1] * fx
    bot = c[y0 + 1][:, x0] * (1 - fx) + c[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bot * fy


def make_scene(rng: np.random.Generator, *, width: int, height: int, duration_s: float, max_actors: int) -> Scene:
    """Draw one scene: texture, clutter blobs, camera motion, 1..max_actors actors, 0-2 poles."""
    shape = (height + 2 * MARGIN, width + 2 * MARGIN)
    octaves = [(_smooth_noise(rng, shape, cells), amp) for cells, amp in ((48, 0.5), (16, 0.3), (5, 0.2))]
    tex = sum(a * n for n, a in octaves)
    tex = (tex - tex.min()) / max(float(np.ptp(tex)), 1e-6)
    lo = rng.uniform(0.15, 0.35)
    contrast = rng.uniform(0.25, 0.6)
    bg = lo + contrast * tex
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    for _ in range(int(rng.integers(3, 10))):  # clutter: static blobs that are not objects
        cx, cy = rng.uniform(0, shape[1]), rng.uniform(0, shape[0])
        rx, ry = rng.uniform(4, 22), rng.uniform(4, 22)
        inside = np.clip(1.5 - np.hypot((xx - cx) / rx, (yy - cy) / ry) * 1.5, 0, 1)
        bg = bg * (1 - inside) + rng.uniform(0.05, 0.95) * inside
    speed = rng.uniform(0, min(120.0, 0.9 * MARGIN / 2 / duration_s))  # the view stays inside the margin
    angle = rng.uniform(0, 2 * math.pi)
    cam = (speed * math.cos(angle), 0.35 * speed * math.sin(angle))
    shake = (rng.uniform(0, 1.5), rng.uniform(2, 8), rng.uniform(0, 2 * math.pi))
    actors = []
    for k in range(int(rng.integers(1, max_actors + 1))):
        cls = int(rng.random() < 0.45)
        if cls == 0:
            w = rng.uniform(26, 90)
            h = w * rng.uniform(0.42, 0.6)
            v = rng.uniform(30, 220) * rng.choice((-1, 1))
            vy = rng.uniform(-10, 10)
        else:
            h = rng.uniform(24, 80)
            w = h * rng.uniform(0.3, 0.42)
            v = rng.uniform(8, 70) * rng.choice((-1, 1))
            vy = rng.uniform(-6, 6)
        # start so that the box centre is on the sensor half-way through the clip
        cx = rng.uniform(0.1, 0.9) * width + MARGIN - v * duration_s / 2
        cy = rng.uniform(0.2, 0.85) * height + MARGIN - vy * duration_s / 2
        dark = rng.random() < 0.5
        inten = rng.uniform(0.02, 0.15) if dark else rng.uniform(0.75, 1.0)
        detail = rng.uniform(0.6, 0.95) if dark else rng.uniform(0.0, 0.2)
        actors.append(Actor(cls, k, float(w), float(h), float(cx - w / 2), float(cy - h / 2), float(v), float(vy),
                            float(inten), float(detail), float(rng.random()), float(rng.uniform(1.2, 2.5)),
                            float(rng.uniform(0, 2 * math.pi))))  # fmt: skip
    poles = tuple(
        (float(rng.uniform(MARGIN, MARGIN + width)), float(rng.uniform(4, 12)), float(rng.uniform(0.05, 0.9)))
        for _ in range(int(rng.choice((0, 0, 1, 2))))
    )
    return Scene(width, height, bg.astype(np.float32), cam, shake, tuple(actors), poles)


def camera_offset(scene: Scene, t_s: float) -> tuple[float, float]:
    """World position of the sensor's top-left pixel at ``t_s`` (inside the margin)."""
    amp, freq, ph = scene.shake
    ox = MARGIN + scene.cam_velocity[0] * t_s + amp * math.sin(2 * math.pi * freq * t_s + ph)
    oy = MARGIN + scene.cam_velocity[1] * t_s + amp * math.cos(2 * math.pi * freq * t_s + ph)
    return ox - MARGIN / 2 * np.sign(scene.cam_velocity[0]), oy - MARGIN / 2 * np.sign(scene.cam_velocity[1])


def _sample(img: np.ndarray, ox: float, oy: float, width: int, height: int) -> np.ndarray:
    """Bilinear crop of ``img`` with top-left at the sub-pixel position (ox, oy)."""
    ix, iy = int(math.floor(ox)), int(math.floor(oy))
    fx, fy = ox - ix, oy - iy
    a = img[iy : iy + height + 1, ix : ix + width + 1]
    top = a[:-1, :-1] * (1 - fx) + a[:-1, 1:] * fx
    bot = a[1:, :-1] * (1 - fx) + a[1:, 1:] * fx
    return top * (1 - fy) + bot * fy


def _rect(u, v, x0, x1, y0, y1):
    return np.clip(np.minimum(np.minimum(u - x0, x1 - u), np.minimum(v - y0, y1 - v)) + 0.5, 0, 1)


def _disc(u, v, cx, cy, r):
    return np.clip(r - np.hypot(u - cx, v - cy) + 0.5, 0, 1)


def _shape(actor: Actor, u: np.ndarray, v: np.ndarray, t_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, detail coverage) of an actor at local pixel coordinates u, v from its box's top-left."""
    w, h = actor.w, actor.h
    if actor.class_id == 0:
        body = _rect(u, v, 0, w, 0.35 * h, 0.85 * h)
        cabin = _rect(u, v, 0.2 * w, 0.78 * w, 0.0, 0.4 * h)
        wheels = np.maximum(_disc(u, v, 0.22 * w, 0.85 * h, 0.15 * h), _disc(u, v, 0.78 * w, 0.85 * h, 0.15 * h))
        window = _rect(u, v, 0.27 * w, 0.71 * w, 0.07 * h, 0.33 * h)
        return np.maximum(np.maximum(body, cabin), wheels), np.maximum(wheels, window)
    swing = 0.22 * w * math.sin(2 * math.pi * actor.gait_hz * t_s + actor.phase)
    head = _disc(u, v, 0.5 * w, 0.1 * h, 0.1 * h)
    torso = _rect(u, v, 0.12 * w, 0.88 * w, 0.19 * h, 0.6 * h)
    leg1 = _rect(u, v, 0.5 * w + swing - 0.14 * w, 0.5 * w + swing + 0.14 * w, 0.58 * h, h)
    leg2 = _rect(u, v, 0.5 * w - swing - 0.14 * w, 0.5 * w - swing + 0.14 * w, 0.58 * h, h)
    legs = np.maximum(leg1, leg2)
    return np.maximum(np.maximum(head, torso), legs), legs


def actor_box(actor: Actor, scene: Scene, t_s: float) -> tuple[float, float, float, float]:
    """Sensor-coordinate box (x, y, w, h) of an actor at ``t_s``, before clipping to the sensor."""
    ox, oy = camera_offset(scene, t_s)
    return actor.x0 + actor.vx * t_s - ox, actor.y0 + actor.vy * t_s - oy, actor.w, actor.h


def render(scene: Scene, t_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sensor image (H, W) in [0, 1] at ``t_s``, and per actor its drawn and its visible pixel coverage."""
    ox, oy = camera_offset(scene, t_s)
    img = _sample(scene.background, ox, oy, scene.width, scene.height).astype(np.float64)
    order = sorted(range(len(scene.actors)), key=lambda k: scene.actors[k].depth)
    owner = np.full(img.shape, -1, np.int32)
    drawn = np.zeros(len(scene.actors))
    for k in order:
        a = scene.actors[k]
        x, y, w, h = actor_box(a, scene, t_s)
        x0, y0 = max(0, int(math.floor(x)) - 1), max(0, int(math.floor(y)) - 1)
        x1, y1 = min(scene.width, int(math.ceil(x + w)) + 2), min(scene.height, int(math.ceil(y + h)) + 2)
        if x1 <= x0 or y1 <= y0:
            continue
        v, u = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        cover, detail = _shape(a, u - x, v - y, t_s)
        shade = a.intensity * (1 - detail) + a.detail * detail
        patch = img[y0:y1, x0:x1]
        img[y0:y1, x0:x1] = patch * (1 - cover) + shade * cover
        drawn[k] = float(cover.sum())
        owner[y0:y1, x0:x1][cover > 0.5] = k
    for px, pw, inten in scene.poles:
        u = np.arange(scene.width) + ox
        cover = np.clip(np.minimum(u - px, px + pw - u) + 0.5, 0, 1)[None, :]
        img = img * (1 - cover) + inten * cover
        owner[np.broadcast_to(cover > 0.5, owner.shape)] = -1
    visible = np.bincount(owner[owner >= 0].ravel(), minlength=len(scene.actors)).astype(np.float64)
    return np.clip(img, 0.0, 1.0), drawn, visible
