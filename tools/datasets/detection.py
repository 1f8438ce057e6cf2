"""Event-camera detection dataset made here: cars and pedestrians over a moving, textured world, Gen1-style boxes.

Each clip is a :mod:`._det_scene` scene (textured background with clutter, camera pan and
shake, 1-4 actors of varied size and speed that occlude each other, 0-2 foreground poles)
rendered every ``frame_us`` and turned into events by
:class:`edgesnn.events.simulator.EventSimulator` (per-clip contrast thresholds, per-pixel
threshold spread, refractory period, shot noise and leak events). Boxes follow the Gen1
convention: a structured array ``t, x, y, w, h, class_id, track_id, class_confidence`` with
``t`` in µs, ``(x, y)`` the top-left corner, labelled every ``label_every_us`` (50 ms, the
detector's window end) for every actor whose box, clipped to the sensor, keeps at least half
its area, is at least 8 px on each side, and has at least a quarter of its pixels visible.

Generate::

    python -m tools.datasets.detection --out data/detect --size small

Use::

    split = load_split("data/detect", "test")
    events, boxes = split.clip(0)      # EVENT_DTYPE, GEN1_BOX_DTYPE

Same seed and size, same arrays. Files: ``DIR/{train,val,test}.npz``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from edgesnn.cli import HelpFormatter
from edgesnn.events._dtype import EVENT_DTYPE
from edgesnn.events.simulator import EventSimulator, SimulatorConfig
from tools.datasets import _det_scene
from tools.datasets._npz import read_members, read_split_of, write_members

log = logging.getLogger("tools.datasets.detection")

GENERATOR_VERSION = "1"
SPLITS = ("train", "val", "test")
CLASSES = _det_scene.CLASSES
#: Gen1's label layout (Prophesee ATIS Gen1 automotive dataset).
GEN1_BOX_DTYPE = np.dtype([("t", "<u8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"),
                           ("class_id", "<u4"), ("track_id", "<u4"), ("class_confidence", "<f4")])  # fmt: skip


@dataclasses.dataclass(frozen=True)
class DetectionConfig:
    """What to generate: clips per split, their length, geometry and sampling."""

    clips: tuple[int, int, int] = (96, 16, 24)
    duration_us: int = 250_000
    width: int = 304
    height: int = 240
    frame_us: int = 1000
    label_every_us: int = 50_000
    max_actors: int = 4
    seed: int = 0


SIZES = {
    "tiny": DetectionConfig(clips=(2, 1, 1), duration_us=100_000, frame_us=2000),
    "small": DetectionConfig(clips=(24, 6, 6)),
    "full": DetectionConfig(),
}

_MEMBERS = {
    "x": ("uint16", 1), "y": ("uint16", 1), "p": ("int8", 1), "t": ("int64", 1), "event_offsets": ("int64", 1),
    "box_t": ("uint64", 1), "box_x": ("float32", 1), "box_y": ("float32", 1), "box_w": ("float32", 1),
    "box_h": ("float32", 1), "box_class": ("uint32", 1), "box_track": ("uint32", 1), "box_offsets": ("int64", 1),
    "classes": ("str", 1), "width": ("int64", 0), "height": ("int64", 0), "duration_us": ("int64", 0),
    "split": ("str", 0), "generator_version": ("str", 0), "config_json": ("str", 0),
}  # fmt: skip


@dataclasses.dataclass(frozen=True, eq=False)
class DetectionSplit:
    """One split in memory: flat event and box columns with per-clip offsets."""

    arrays: dict[str, np.ndarray]

    @property
    def split(self) -> str:
        """Name of the split this file holds."""
        return str(self.arrays["split"])

    def __len__(self) -> int:
        return len(self.arrays["event_offsets"]) - 1

    @property
    def geometry(self) -> tuple[int, int]:
        """(width, height) of the sensor."""
        return int(self.arrays["width"]), int(self.arrays["height"])

    def events(self, i: int) -> np.ndarray:
        """Events of clip ``i`` (EVENT_DTYPE, time-sorted, µs from the clip start)."""
        a, o = self.arrays, self.arrays["event_offsets"]
        out = np.empty(int(o[i + 1] - o[i]), EVENT_DTYPE)
        for f in ("x", "y", "p", "t"):
            out[f] = a[f][o[i] : o[i + 1]]
        return out

    def boxes(self, i: int) -> np.ndarray:
        """Boxes of clip ``i`` (GEN1_BOX_DTYPE)."""
        a, o = self.arrays, self.arrays["box_offsets"]
        out = np.zeros(int(o[i + 1] - o[i]), GEN1_BOX_DTYPE)
        for f, col in (("t", "box_t"), ("x", "box_x"), ("y", "box_y"), ("w", "box_w"), ("h", "box_h"),
                       ("class_id", "box_class"), ("track_id", "box_track")):  # fmt: skip
            out[f] = a[col][o[i] : o[i + 1]]
        out["class_confidence"] = 1.0
        return out

    def clip(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(events, boxes) of clip ``i``."""
        return self.events(i), self.boxes(i)


def label_boxes(scene: _det_scene.Scene, t_us: int, drawn: np.ndarray, visible: np.ndarray) -> list[tuple]:
    """Gen1 rows (t, x, y, w, h, class, track, 1.0) of the actors labelled at ``t_us`` (rules in the module doc)."""
    rows = []
    for k, a in enumerate(scene.actors):
        x, y, w, h = _det_scene.actor_box(a, scene, t_us * 1e-6)
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(float(scene.width), x + w), min(float(scene.height), y + h)
        cw, ch = x1 - x0, y1 - y0
        if cw < 8 or ch < 8 or cw * ch < 0.5 * w * h or drawn[k] <= 0 or visible[k] < 0.25 * drawn[k]:
            continue
        rows.append((t_us, x0, y0, cw, ch, a.class_id, a.track_id, 1.0))
    return rows


def make_clip(rng: np.random.Generator, cfg: DetectionConfig) -> tuple[np.ndarray, np.ndarray]:
    """Render one clip: (events EVENT_DTYPE, boxes GEN1_BOX_DTYPE)."""
    duration_s = cfg.duration_us * 1e-6
    scene = _det_scene.make_scene(rng, width=cfg.width, height=cfg.height, duration_s=duration_s,
                                  max_actors=cfg.max_actors)  # fmt: skip
    threshold = float(rng.uniform(0.15, 0.3))
    sim_cfg = SimulatorConfig(
        contrast_threshold_pos=threshold, contrast_threshold_neg=threshold * float(rng.uniform(0.85, 1.15)),
        threshold_sigma=0.03, refractory_us=int(rng.integers(0, 500)), shot_noise_rate_hz=float(rng.uniform(0.1, 2.0)),
        leak_rate_hz=float(rng.uniform(0.0, 0.5)),
    )  # fmt: skip
    sim = EventSimulator(cfg.width, cfg.height, sim_cfg, rng=rng)
    chunks, rows = [], []
    for t_us in range(0, cfg.duration_us + 1, cfg.frame_us):
        img, drawn, visible = _det_scene.render(scene, t_us * 1e-6)
        chunks.append(sim.step(img, t_us))
        if t_us > 0 and t_us % cfg.label_every_us == 0:
            rows += label_boxes(scene, t_us, drawn, visible)
    events = np.concatenate(chunks)
    events = events[events["t"] < cfg.duration_us]
    return events, np.array(rows, dtype=GEN1_BOX_DTYPE)


def clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one clip: independent of every other clip and of the order of generation."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


def make_split(cfg: DetectionConfig, split: str, *, progress: bool = False) -> DetectionSplit:
    """Generate every clip of ``split`` in memory."""
    n = cfg.clips[SPLITS.index(split)]
    events, boxes = [], []
    for i in range(n):
        ev, bx = make_clip(clip_rng(cfg.seed, split, i), cfg)
        events.append(ev)
        boxes.append(bx)
        if progress:
            log.info("%s clip %d/%d: %d events, %d boxes", split, i + 1, n, len(ev), len(bx))
    ev_all = np.concatenate(events) if events else np.empty(0, EVENT_DTYPE)
    bx_all = np.concatenate(boxes) if boxes else np.empty(0, GEN1_BOX_DTYPE)
    arrays = {f: np.ascontiguousarray(ev_all[f]) for f in ("x", "y", "p", "t")}
    arrays["event_offsets"] = np.concatenate(([0], np.cumsum([len(e) for e in events]))).astype(np.int64)
    for f, col in (("t", "box_t"), ("x", "box_x"), ("y", "box_y"), ("w", "box_w"), ("h", "box_h"),
                   ("class_id", "box_class"), ("track_id", "box_track")):  # fmt: skip
        arrays[col] = np.ascontiguousarray(bx_all[f])
    arrays["box_offsets"] = np.concatenate(([0], np.cumsum([len(b) for b in boxes]))).astype(np.int64)
    arrays.update(
        classes=np.array(CLASSES), width=np.int64(cfg.width), height=np.int64(cfg.height),
        duration_us=np.int64(cfg.duration_us), split=np.array(split), generator_version=np.array(GENERATOR_VERSION),
        config_json=np.array(json.dumps(dataclasses.asdict(cfg), sort_keys=True)),
    )  # fmt: skip
    return DetectionSplit(arrays)


def write_split(path: str | Path, data: DetectionSplit) -> None:
    """Write one split as a checked, compressed .npz (atomically)."""
    write_members(Path(path), data.arrays, _MEMBERS)


def read_split(path: str | Path) -> DetectionSplit:
    """Read one split file; a broken file raises EventFileError naming the member."""
    return DetectionSplit(read_members(Path(path), _MEMBERS, "detection split"))


def load_split(path_or_dir: str | Path, split: str) -> DetectionSplit:
    """Read ``split`` from a dataset directory (or a split file)."""
    return read_split_of(path_or_dir, split, SPLITS, read_split)


def main(argv: list[str] | None = None) -> int:
    """Command line: generate the train, val and test splits of one size into a directory."""
    parser = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="python -m tools.datasets.detection", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    cfg = dataclasses.replace(SIZES[args.size], seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        t0 = time.perf_counter()
        data = make_split(cfg, split, progress=not args.quiet)
        write_split(out / f"{split}.npz", data)
        n_ev = int(data.arrays["event_offsets"][-1])
        log.info("wrote %s: %d clips, %d events (%.2f Mev/s of recording), %d boxes, %.1f s", out / f"{split}.npz",
                 len(data), n_ev, n_ev / max(1, len(data)) / cfg.duration_us, len(data.arrays["box_t"]),
                 time.perf_counter() - t0)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
