"""The README's detection snippet runs as written: a 1280x720 EVT3 recording into a 304x240 detector."""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("jax")

from edgesnn.cli import main  # noqa: E402
from edgesnn.detect import BOX_DTYPE, write_detector  # noqa: E402
from edgesnn.events import make_events, write_evt3  # noqa: E402
from tools.train_detect.arch import ArchSpec  # noqa: E402
from tools.train_detect.export import build_detector  # noqa: E402
from tools.train_detect.model import init_params  # noqa: E402

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
SPEC = ArchSpec(width=304, height=240, n_bins=4, bin_us=5000, front_channels=(4, 8, 8), bridge_context=8,
                bridge_dim=4, ann_channels=(8, 8), head_channels=8)  # fmt: skip


def detection_snippet() -> str:
    """The one Python block of the README's "Event-camera object detection" section."""
    text = README.read_text(encoding="utf-8").split("## Event-camera object detection", 1)[1].split("\n## ")[0]
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_the_detection_snippet_runs_and_matches_the_command_line(tmp_path, monkeypatch):
    write_detector(build_detector(init_params(SPEC, seed=2), SPEC, score_threshold=0.0, max_detections=5),
                   tmp_path / "detector.esnn")  # fmt: skip
    rng = np.random.default_rng(7)
    n = 20_000
    t = 1000 + np.sort(rng.integers(0, 70_000, n))  # windows from the first event, not from 0
    ev = make_events(x=rng.integers(0, 1280, n), y=rng.integers(0, 720, n), p=rng.integers(0, 2, n), t=t)
    write_evt3(tmp_path / "rec.raw", ev, geometry=(1280, 720))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(detection_snippet(), str(README), "exec"), scope)  # noqa: S102 - the README's own code
    boxes = scope["boxes"]
    assert len(boxes) == 4 and all(b.dtype == BOX_DTYPE and len(b) for b in boxes)  # 3 full windows, the last
    assert [int(b["t_us"][0]) for b in boxes] == [int(t[0]) + k * 20_000 for k in (1, 2, 3, 4)]
    assert main(["detect", "detector.esnn", "rec.raw", "--roi", "184,0,912,720", "--downsample", "3",
                 "--out", "boxes.jsonl", "--quiet"]) == 0  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "boxes.jsonl").read_text().splitlines()]
    flat = np.concatenate(boxes)
    assert len(rows) == len(flat)
    for r, b in zip(rows, flat, strict=True):
        assert (r["t_us"], r["class_id"]) == (int(b["t_us"]), int(b["class_id"]))
        assert (r["x"], r["y"], r["w"], r["h"]) == tuple(round(float(b[k]), 2) for k in "xywh")
    # sensor pixels: the boxes' centres lie around the 912x720 region, not the 304x240 model frame
    assert flat["x"].max() > 304
