"""Detection on real cameras: sensors larger than the model (--roi, --downsample), epoch timestamps, long gaps.

Recordings are written by faery (EVT3 .raw, AEDAT4), as third-party files; the detector is a
small untrained 304x240 one with score threshold 0, so every window yields boxes to compare.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("jax")
faery = pytest.importorskip("faery", reason="faery is not installed (dev dependency for cross-checks)")

from edgesnn.cli import main  # noqa: E402
from edgesnn.detect import BOX_DTYPE, SensorView, describe, describe_line, load_detector, write_detector  # noqa: E402
from edgesnn.errors import BundleFormatError, OptionError  # noqa: E402
from edgesnn.events import make_events  # noqa: E402
from edgesnn.events.arrays import write_npz  # noqa: E402
from tools.train_detect.arch import ArchSpec  # noqa: E402
from tools.train_detect.export import build_detector  # noqa: E402
from tools.train_detect.model import init_params  # noqa: E402

#: The shipped geometry (304x240) with few channels and 20 ms windows (4 bins of 5 ms), to stay fast.
SPEC = ArchSpec(width=304, height=240, n_bins=4, bin_us=5000, front_channels=(4, 8, 8), bridge_context=8,
                bridge_dim=4, ann_channels=(8, 8), head_channels=8)  # fmt: skip
EPOCH_US = 1_589_000_000_000_000  # a DAVIS346 recording's first timestamp: µs since 1970


def random_events(width: int, height: int, n: int, t0: int, span_us: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = t0 + np.sort(rng.integers(0, span_us, n))
    return make_events(x=rng.integers(0, width, n), y=rng.integers(0, height, n), p=rng.integers(0, 2, n), t=t)


def faery_write(path, ev: np.ndarray, geometry: tuple[int, int]) -> None:
    """Write ``ev`` with faery; EVT3 keeps absolute times (faery's zero_t0 header field is its own)."""
    arr = np.zeros(len(ev), dtype=faery.events_stream.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"]
    faery.events_stream_from_array(arr, geometry).to_file(str(path), zero_t0=False)


def rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("realcam")
    write_detector(build_detector(init_params(SPEC, seed=1), SPEC, score_threshold=0.0, max_detections=5), d / "m.esnn")
    ev = random_events(1280, 720, 20_000, 1000, 70_000, seed=0)
    faery_write(d / "hd.raw", ev, (1280, 720))
    np.save(d / "hd.npy", ev)
    return d


def detect(files, recording, out, *flags) -> int:
    return main(["detect", str(files / "m.esnn"), str(recording), "--out", str(out), "--quiet", *flags])


def reference(files, events: np.ndarray, name: str, start_us: int) -> list[dict]:
    """Boxes of ``events`` already in the model's 304x240 pixels, written as a file of that size.

    Windows start at ``start_us``: the whole recording's first event, where the crop's own may come later.
    """
    write_npz(files / f"{name}.npz", events, geometry=(304, 240))
    assert detect(files, files / f"{name}.npz", files / f"{name}.jsonl", "--start-us", str(start_us)) == 0
    return rows(files / f"{name}.jsonl")


def assert_mapped(got: list[dict], want: list[dict], x0: int, y0: int, f: int) -> None:
    """``got`` (sensor pixels) is ``want`` (model pixels) through x -> x0 + f x, w -> f w."""
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        assert (g["t_us"], g["class_id"], g["score"]) == (w["t_us"], w["class_id"], w["score"])
        for k, off in (("x", x0), ("y", y0), ("w", 0), ("h", 0)):
            assert g[k] == pytest.approx(off + f * w[k], abs=0.011 * f)  # both rounded to 2 decimals


def test_roi_crops_a_1280x720_evt3_recording_for_a_304x240_detector(files):
    out = files / "roi.jsonl"
    assert detect(files, files / "hd.raw", out, "--roi", "488,240,304,240") == 0
    ev = np.load(files / "hd.npy")
    inside = ev[(ev["x"] >= 488) & (ev["x"] < 792) & (ev["y"] >= 240) & (ev["y"] < 480)]
    inside["x"] -= 488
    inside["y"] -= 240
    got, want = rows(out), reference(files, inside, "roi_ref", int(ev["t"][0]))
    assert {r["t_us"] for r in got} == {21_000, 41_000, 61_000, 81_000}  # windows from the first event, at 1000
    assert_mapped(got, want, 488, 240, 1)


def test_render_draws_what_the_model_sees(files):
    from PIL import Image

    gif = files / "roi.gif"
    flags = ["--roi", "184,0,912,720", "--downsample", "3", "--render", str(gif)]
    assert detect(files, files / "hd.raw", "-", *flags) == 0
    with Image.open(gif) as img:
        assert img.size == (304, 240) and img.n_frames == 4


def test_roi_then_downsample_fits_the_whole_height(files):
    out = files / "ds.jsonl"
    assert detect(files, files / "hd.raw", out, "--roi", "184,0,912,720", "--downsample", "3") == 0
    ev = np.load(files / "hd.npy")
    seen = ev[(ev["x"] >= 184) & (ev["x"] < 184 + 912)]
    seen["x"] = (seen["x"] - 184) // 3
    seen["y"] //= 3
    assert_mapped(rows(out), reference(files, seen, "ds_ref", int(ev["t"][0])), 184, 0, 3)


def test_downsample_alone_when_the_sensor_is_a_multiple(files):
    ev = random_events(1216, 960, 8000, 0, 30_000, seed=2)
    faery_write(files / "big.raw", ev, (1216, 960))
    out = files / "big.jsonl"
    assert detect(files, files / "big.raw", out, "--downsample", "4") == 0
    small = ev.copy()
    small["x"] //= 4
    small["y"] //= 4
    assert_mapped(rows(out), reference(files, small, "big_ref", int(ev["t"][0])), 0, 0, 4)


def test_a_mismatch_names_both_geometries_and_suggests_flags_that_fit(files, capsys):
    assert detect(files, files / "hd.raw", files / "x.jsonl") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "hd.raw: recording is 1280x720, the model expects 304x240" in err
    assert "try --roi 184,0,912,720 --downsample 3 (or --roi 488,240,304,240 at full resolution)" in err
    assert detect(files, files / "hd.raw", files / "x.jsonl", "--downsample", "4") == 2
    assert "--downsample 4 gives 320x180" in capsys.readouterr().err
    assert detect(files, files / "hd.raw", files / "x.jsonl", "--roi", "1000,0,304,240") == 2
    err = capsys.readouterr().err
    assert "--roi: --roi 1000,0,304,240 reaches past the 1280x720 recording" in err
    assert detect(files, files / "hd.raw", files / "x.jsonl", "--roi", "0,0,100,100") == 2
    assert "smaller than the model's input" in capsys.readouterr().err
    for bad in (["--roi", "1,2,3"], ["--roi", "0,0,0,240"], ["--downsample", "0"], ["--downsample", "17"]):
        assert detect(files, files / "hd.raw", files / "x.jsonl", *bad) == 2
        assert "Traceback" not in capsys.readouterr().err


def test_python_sessions_check_the_geometry_with_keyword_suggestions(files):
    det = load_detector(files / "m.esnn")
    with pytest.raises(OptionError, match=r"try roi=\(184, 0, 912, 720\), downsample=3") as err:
        det.session(geometry=(1280, 720))
    assert err.value.path == "geometry"
    assert det.session(geometry=(1280, 720), roi=(184, 0, 912, 720), downsample=3).view.downsample == 3
    with pytest.raises(OptionError, match="integer factor from 1 to 16"):
        det.session(downsample=2.0)
    with pytest.raises(OptionError):
        det.session(max_gap_windows=-1)


def test_an_epoch_stamped_davis346_aedat4_recording_finishes(files, capsys):
    ev = random_events(346, 260, 6000, EPOCH_US, 60_000, seed=3)
    arr = np.zeros(len(ev), dtype=faery.events_stream.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"]
    faery.events_stream_from_array(arr, (346, 260)).to_file(str(files / "davis.aedat4"))
    out = files / "davis.jsonl"
    assert detect(files, files / "davis.aedat4", out, "--roi", "21,10,304,240") == 0
    first = int(ev["t"][0])
    assert {r["t_us"] for r in rows(out)} == {first + k * 20_000 for k in (1, 2, 3)}
    # windows from t = 0, as the old README snippet asked: the gap guard skips 79 years of empty windows
    zero = files / "davis0.jsonl"
    args = ["detect", str(files / "m.esnn"), str(files / "davis.aedat4"), "--out", str(zero)]
    assert main([*args, "--roi", "21,10,304,240", "--start-us", "0"]) == 0
    assert "empty windows not run (gaps over 500 windows)" in capsys.readouterr().err
    ends = sorted({r["t_us"] for r in rows(zero)})
    assert ends[0] == (first // 20_000 - 499) * 20_000  # the last 500 windows of the gap still run
    assert len(ends) == 500 + 3 and all(t % 20_000 == 0 for t in ends)


def small_detector():
    spec = ArchSpec(width=64, height=48, n_bins=4, bin_us=5000)
    return build_detector(init_params(spec, seed=3), spec, score_threshold=0.0, max_detections=20)


def test_a_1e15_us_jump_skips_the_gap_and_keeps_the_state_running():
    det = small_detector()
    before = random_events(64, 48, 2000, 0, 40_000, seed=4)
    after = random_events(64, 48, 2000, 10**15, 40_000, seed=5)
    s = det.session(start_us=0, max_gap_windows=30)
    out = s.push(before) + s.push(after) + s.finish()
    # 2 windows, the last 30 of the gap, 2 after it (the second partial); none of the ~5e10 others
    assert len(out) == 2 + 30 + 2 and s.skipped_windows == (10**15 - 40_000) // 20_000 - 30
    assert all(b.dtype == BOX_DTYPE for b in out)
    assert int(out[-1]["t_us"][0]) == 10**15 + 40_000
    # the state the gap leaves has settled: running 50 more empty windows changes nothing after it
    longer = det.session(start_us=0, max_gap_windows=80)
    ref = longer.push(before) + longer.push(after) + longer.finish()
    assert len(ref) == 2 + 80 + 2
    for a, b in zip(out[-2:], ref[-2:], strict=True):
        np.testing.assert_array_equal(a, b)
    # the default bound is 10 s of windows, and the same jump still finishes
    s = det.session(start_us=0)
    assert s.max_gap_windows == 500 and len(s.push(before) + s.push(after) + s.finish()) == 2 + 500 + 2


def test_windows_align_to_the_first_event_unless_start_us_is_given():
    det = small_detector()
    ev = random_events(64, 48, 500, EPOCH_US + 123, 50_000, seed=6)
    s = det.session()
    s.push(ev)
    s.finish()
    assert s.last_window_ends_us == [int(ev["t"][0]) + 60_000]
    s = det.session(start_us=EPOCH_US)
    s.push(ev)
    assert s.last_window_ends_us == [EPOCH_US + 20_000, EPOCH_US + 40_000]


def test_boxes_map_back_to_sensor_pixels():
    view = SensorView(roi=(100, 50, 608, 480), downsample=2)
    box = np.zeros(1, BOX_DTYPE)
    box[["x", "y", "w", "h"]] = (10.5, 20.0, 30.0, 40.25)
    s = view.to_sensor(box)[0]
    assert (s["x"], s["y"], s["w"], s["h"]) == (121.0, 90.0, 60.0, 80.5)
    np.testing.assert_array_equal(view.to_model(view.to_sensor(box)), box)
    # every sensor pixel lands in the model pixel whose box, mapped back, covers it
    xs, ys = np.meshgrid(np.arange(100, 708), np.arange(50, 530))
    ev = make_events(x=xs.ravel(), y=ys.ravel(), p=np.ones(xs.size, int), t=np.zeros(xs.size, int))
    m = view(ev)
    assert m["x"].max() == 303 and m["y"].max() == 239
    px = np.zeros(len(m), BOX_DTYPE)
    px["x"], px["y"], px["w"], px["h"] = m["x"], m["y"], 1, 1
    back = view.to_sensor(px)
    assert np.all((back["x"] <= ev["x"]) & (ev["x"] + 1 <= back["x"] + back["w"]))
    assert np.all((back["y"] <= ev["y"]) & (ev["y"] + 1 <= back["y"] + back["h"]))
    assert view.geometry(None) == (304, 240) and SensorView(downsample=3).geometry((1280, 720)) == (427, 240)


def test_downsample_pools_exact_blocks_up_to_its_largest_factor():
    from edgesnn.detect.view import MAX_DOWNSAMPLE
    from edgesnn.events.transforms import Downsample

    x = np.arange(1 << 16)
    ev = make_events(x=x, y=x[::-1], p=np.zeros(len(x), int), t=np.zeros(len(x), int))
    for f in range(1, MAX_DOWNSAMPLE + 1):
        got = Downsample(spatial_factor=1.0 / f)(ev)
        np.testing.assert_array_equal(got["x"], x // f)
        np.testing.assert_array_equal(got["y"], x[::-1] // f)


def test_describe_counts_parameters_as_the_readme(files, tmp_path):
    import onnx

    from edgesnn.bundle import read_bundle, write_bundle
    from edgesnn.detect.pipeline import onnx_parameter_count
    from tools.train_detect.arch import preset

    path = files / "m.esnn"
    info = describe(read_bundle(path), path)
    det = load_detector(path)
    assert info == {"kind": "detector", "parameters": det.parameters(), "classes": ["car", "pedestrian"],
                    "geometry": [304, 240], "window_us": 20_000, "n_bins": 4, "bin_us": 5000}  # fmt: skip
    onnx_count = int(sum(np.prod(t.dims) for t in onnx.load_from_string(det.ann).graph.initializer))
    assert info["parameters"]["ann"] == onnx_count == onnx_parameter_count(det.ann)
    line = describe_line(info)
    assert line.startswith("detector: 304x240 events, 2 classes (car, pedestrian), 20 ms windows of 4 bins,")
    hybrid = build_detector(init_params(preset("hybrid")), preset("hybrid"))
    write_detector(hybrid, tmp_path / "hybrid.esnn")
    counts = describe(read_bundle(tmp_path / "hybrid.esnn"), tmp_path / "hybrid.esnn")["parameters"]
    assert counts == {"snn": 3643, "ann": 46133, "total": 49776}  # the README's table
    write_bundle(hybrid.front, tmp_path / "plain.esnn")  # a built front: no detector settings
    assert describe(read_bundle(tmp_path / "plain.esnn"), tmp_path / "plain.esnn") is None
    write_bundle(det.front, tmp_path / "noann.esnn")  # a loaded front keeps them: a detector without its ONNX
    with pytest.raises(BundleFormatError) as err:
        describe(read_bundle(tmp_path / "noann.esnn"), tmp_path / "noann.esnn")
    assert err.value.path == "attachments/detect.onnx"
