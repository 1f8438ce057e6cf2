"""``edgesnn detect``: every event format in, JSON lines and a GIF out, damaged recordings as events defines."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("jax")
pytest.importorskip("PIL")

from edgesnn.cli import main  # noqa: E402
from edgesnn.detect import write_detector  # noqa: E402
from edgesnn.events import make_events, write_dat, write_evt2, write_evt3  # noqa: E402
from edgesnn.events.arrays import write_npz  # noqa: E402
from tools.train_detect.arch import ArchSpec  # noqa: E402
from tools.train_detect.export import build_detector  # noqa: E402
from tools.train_detect.model import init_params  # noqa: E402

SPEC = ArchSpec(width=64, height=48, n_bins=4, bin_us=5000)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("detect_cli")
    write_detector(build_detector(init_params(SPEC, seed=0), SPEC, score_threshold=0.0, max_detections=5), d / "m.esnn")
    rng = np.random.default_rng(0)
    n = 4000
    ev = make_events(x=rng.integers(0, 64, n), y=rng.integers(0, 48, n), p=rng.integers(0, 2, n),
                     t=np.sort(rng.integers(0, 70_000, n)))  # fmt: skip
    write_evt3(d / "rec.raw", ev, geometry=(64, 48))
    write_evt2(d / "rec2.raw", ev, geometry=(64, 48))
    write_dat(d / "rec.dat", ev, geometry=(64, 48))
    write_npz(d / "rec.npz", ev, geometry=(64, 48))
    return d


@pytest.mark.parametrize("name", ["rec.raw", "rec2.raw", "rec.dat", "rec.npz"])
def test_every_format_gives_the_same_boxes(files, name, capsys):
    out = files / f"{name}.jsonl"
    assert main(["detect", str(files / "m.esnn"), str(files / name), "--out", str(out), "--quiet"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["t_us"] for r in rows} == {20_000, 40_000, 60_000, 80_000}  # 3 full windows and the last, partial
    assert all(r["class"] in ("car", "pedestrian") and 0 <= r["score"] <= 1 for r in rows)
    reference = files / "rec.npz.jsonl"
    if reference.exists():
        assert out.read_text() == reference.read_text()


def test_realtime_replay_gives_the_same_boxes(files):
    out = files / "paced.jsonl"
    args = ["detect", str(files / "m.esnn"), str(files / "rec.npz"), "--out", str(out), "--quiet"]
    assert main([*args, "--realtime", "--speed", "20"]) == 0
    assert main([*args[:3], "--out", str(files / "fast.jsonl"), "--quiet"]) == 0
    assert out.read_text() == (files / "fast.jsonl").read_text() and out.read_text()


def test_windows_can_start_at_a_given_time(files):
    out = files / "start.jsonl"
    assert main(["detect", str(files / "m.esnn"), str(files / "rec.npz"), "--out", str(out), "--quiet",
                 "--start-us", "-10000"]) == 0  # fmt: skip
    assert {json.loads(line)["t_us"] for line in out.read_text().splitlines()} == {10_000, 30_000, 50_000, 70_000}


def test_render_writes_one_gif_frame_per_window(files):
    from PIL import Image

    gif = files / "out.gif"
    assert main(["detect", str(files / "m.esnn"), str(files / "rec.raw"), "--out", "-", "--render", str(gif),
                 "--quiet"]) == 0  # fmt: skip
    with Image.open(gif) as img:
        assert img.size == (64, 48) and img.n_frames == 4


def test_truncated_recording_fails_with_one_line_unless_lenient(files, capsys):
    data = (files / "rec.raw").read_bytes()
    bad = files / "cut.raw"
    bad.write_bytes(data[: len(data) - 3])  # an EVT3 word cut in half
    code = main(["detect", str(files / "m.esnn"), str(bad), "--out", str(files / "cut.jsonl"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 3 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["detect", str(files / "m.esnn"), str(bad), "--out", str(files / "cut.jsonl"), "--lenient"]) == 0
    assert "skipped" in capsys.readouterr().err


def test_bad_inputs_exit_codes(files, capsys):
    m = str(files / "m.esnn")
    assert main(["detect", m, str(files / "missing.raw"), "--out", "-"]) == 3
    assert main(["detect", str(files / "rec.npz"), str(files / "rec.raw"), "--out", "-"]) == 3  # not a bundle
    assert main(["detect", m, str(files / "rec.raw"), "--out", "-", "--render", "x.png"]) == 2
    big = files / "big.raw"
    write_evt3(big, make_events(x=[1], y=[1], p=[1], t=[5]), geometry=(640, 480))
    assert main(["detect", m, str(big), "--out", "-"]) == 2
    err = capsys.readouterr().err
    assert "640x480" in err and "Traceback" not in err
