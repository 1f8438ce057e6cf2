"""The detection dataset generator: Gen1 boxes, determinism by seed, split files, labelling rules."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgesnn.errors import EventFileError, OptionError
from edgesnn.events import EVENT_DTYPE
from tools.datasets import _det_scene
from tools.datasets.detection import (
    GEN1_BOX_DTYPE,
    SIZES,
    DetectionConfig,
    clip_rng,
    label_boxes,
    load_split,
    main,
    make_clip,
    make_split,
    read_split,
    write_split,
)

TINY = dataclasses.replace(SIZES["tiny"], clips=(2, 1, 1), duration_us=100_000)


@pytest.fixture(scope="module")
def train():
    return make_split(TINY, "train")


def test_clips_have_events_and_gen1_boxes(train):
    assert len(train) == 2 and train.geometry == (304, 240)
    for i in range(len(train)):
        ev, bx = train.clip(i)
        assert ev.dtype == EVENT_DTYPE and len(ev) > 1000
        assert np.all(np.diff(ev["t"]) >= 0) and ev["t"].max() < 100_000
        assert ev["x"].max() < 304 and ev["y"].max() < 240
        assert bx.dtype == GEN1_BOX_DTYPE
        assert set(np.unique(bx["t"])) <= {50_000, 100_000}
        assert np.all(bx["x"] >= 0) and np.all(bx["x"] + bx["w"] <= 304 + 1e-3)
        assert np.all(bx["y"] >= 0) and np.all(bx["y"] + bx["h"] <= 240 + 1e-3)
        assert np.all(bx["w"] >= 8) and np.all(bx["h"] >= 8) and set(np.unique(bx["class_id"])) <= {0, 1}


def test_same_seed_same_clip_other_seed_other_clip():
    a = make_clip(clip_rng(0, "val", 0), TINY)
    b = make_clip(clip_rng(0, "val", 0), TINY)
    c = make_clip(clip_rng(1, "val", 0), TINY)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert len(a[0]) != len(c[0]) or not np.array_equal(a[0], c[0])


def test_both_classes_and_moving_boxes_over_a_few_clips():
    cfg = dataclasses.replace(TINY, frame_us=5000)
    boxes = np.concatenate([make_clip(clip_rng(3, "train", i), cfg)[1] for i in range(6)])
    assert set(np.unique(boxes["class_id"])) == {0, 1}
    scene = _det_scene.make_scene(clip_rng(0, "train", 0), width=304, height=240, duration_s=0.1, max_actors=4)
    a = scene.actors[0]
    x0 = _det_scene.actor_box(a, scene, 0.0)[0]
    x1 = _det_scene.actor_box(a, scene, 0.1)[0]
    assert x0 != x1


def test_labelling_rules_visibility_and_clipping():
    m = _det_scene.MARGIN
    bg = np.full((240 + 2 * m, 304 + 2 * m), 0.5, np.float32)
    car = _det_scene.Actor(0, 7, 40.0, 20.0, 100.0 + m, 100.0 + m, 0.0, 0.0, 0.1, 0.9, 0.5, 2.0, 0.0)
    scene = _det_scene.Scene(304, 240, bg, (0.0, 0.0), (0.0, 1.0, 0.0), (car,), ())
    img, drawn, visible = _det_scene.render(scene, 0.05)
    assert img.shape == (240, 304) and drawn[0] > 0 and visible[0] > 0.9 * drawn[0]
    (row,) = label_boxes(scene, 50_000, drawn, visible)
    x, y = _det_scene.actor_box(car, scene, 0.05)[:2]
    assert row[0] == 50_000 and row[1:5] == pytest.approx((x, y, 40.0, 20.0)) and row[5:7] == (0, 7)
    assert label_boxes(scene, 50_000, drawn, drawn * 0.2) == []  # under a quarter visible
    pole = _det_scene.Scene(304, 240, bg, (0.0, 0.0), (0.0, 1.0, 0.0), (car,), ((float(x + m - 5), 60.0, 0.3),))
    _, drawn, visible = _det_scene.render(pole, 0.05)
    assert visible[0] < 0.25 * drawn[0] and label_boxes(pole, 50_000, drawn, visible) == []
    edge = dataclasses.replace(car, x0=-30.0 + m)  # 30 of 40 px off the left edge
    out = _det_scene.Scene(304, 240, bg, (0.0, 0.0), (0.0, 1.0, 0.0), (edge,), ())
    assert label_boxes(out, 50_000, *_det_scene.render(out, 0.05)[1:]) == []


def test_split_file_round_trip_and_errors(train, tmp_path):
    write_split(tmp_path / "train.npz", train)
    back = load_split(tmp_path, "train")
    np.testing.assert_array_equal(back.events(1), train.events(1))
    np.testing.assert_array_equal(back.boxes(0), train.boxes(0))
    with pytest.raises(OptionError):
        load_split(tmp_path, "nope")
    with pytest.raises(EventFileError):
        load_split(tmp_path, "test")
    np.savez(tmp_path / "other.npz", x=np.zeros(3, np.uint16))
    with pytest.raises(EventFileError, match="missing members"):
        read_split(tmp_path / "other.npz")


def test_command_line_writes_three_splits(tmp_path):
    assert isinstance(SIZES["tiny"], DetectionConfig)
    assert main(["--out", str(tmp_path), "--size", "tiny", "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.npz", "train.npz", "val.npz"]
    assert len(load_split(tmp_path, "val")) == SIZES["tiny"].clips[1]
