"""``edgesnn events info|convert|render`` on small generated recordings."""

import argparse
import json

import numpy as np
import pytest

import edgesnn.cli
from edgesnn.errors import OptionError
from edgesnn.events._dtype import make_events
from edgesnn.events.arrays import write_npz
from edgesnn.events.cli import add_events_commands, window_frames
from edgesnn.events.io import read_events

W, H = 64, 48


def events_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgesnn")
    add_events_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def run(argv):
    args = events_parser().parse_args(argv)
    return args.func(args)


@pytest.fixture
def recording(tmp_path):
    rng = np.random.default_rng(0)
    n = 20_000
    ev = make_events(rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, 2, n),
                     np.sort(rng.integers(1_000, 201_000, n)))  # fmt: skip
    path = tmp_path / "rec.npz"
    write_npz(path, ev, geometry=(W, H))
    return path, ev


def test_info_prints_format_geometry_count_duration_and_rate(recording, capsys):
    path, ev = recording
    assert run(["events", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "npz, 64x48 pixels" in out and f"{len(ev):,}" in out
    assert f"{int(ev['t'][0])} .. {int(ev['t'][-1])} us" in out and "ev/s" in out


def test_info_json(recording, capsys):
    path, ev = recording
    assert run(["events", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    duration = (int(ev["t"][-1]) - int(ev["t"][0])) * 1e-6
    assert info["format"] == "npz" and info["geometry"] == [W, H] and info["count"] == len(ev)
    assert info["on"] == int(ev["p"].sum()) and info["duration_s"] == pytest.approx(duration)
    assert info["rate_ev_per_s"] == pytest.approx(len(ev) / duration)


def test_convert_to_npz_round_trips(recording, tmp_path, capsys):
    path, ev = recording
    out = tmp_path / "copy.npz"
    assert run(["events", "convert", str(path), str(out), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    np.testing.assert_array_equal(read_events(out), ev)


@pytest.mark.parametrize(
    ("name", "fmt", "module"), [("out.raw", None, "evt3"), ("out.raw", "evt2", "evt2"), ("out.dat", None, "dat")]
)
def test_convert_to_prophesee_formats_round_trips(recording, tmp_path, capsys, name, fmt, module):
    pytest.importorskip(f"edgesnn.events.{module}")
    path, ev = recording
    out = tmp_path / name
    assert run(["events", "convert", str(path), str(out)] + (["--format", fmt] if fmt else [])) == 0
    assert f"{len(ev):,} events" in capsys.readouterr().out
    np.testing.assert_array_equal(read_events(out), ev)


def test_convert_refuses_an_unknown_output_extension(recording, tmp_path):
    path, _ = recording
    with pytest.raises(OptionError, match="cannot tell the output format"):
        run(["events", "convert", str(path), str(tmp_path / "out.bin")])


def test_window_frames_accumulate_across_chunk_boundaries():
    ev = make_events([0, 1, 1, 2, 0], [0, 0, 0, 0, 0], [1, 1, 0, 0, 1], [0, 5, 12, 14, 35])
    chunks = [ev[:2], ev[2:3], ev[3:]]
    frames = [(t, f.copy()) for t, f in window_frames(chunks, width=3, height=1, window_us=10)]
    assert [t for t, _ in frames] == [0, 10, 20, 30]
    assert [f.ravel().tolist() for _, f in frames] == [[1, 1, 0], [0, -1, -1], [0, 0, 0], [1, 0, 0]]


def test_render_gif_has_one_frame_per_window(recording, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    path, ev = recording
    out = tmp_path / "anim.gif"
    assert run(["events", "render", str(path), "--out", str(out), "--window", "10ms", "--quiet"]) == 0
    with Image.open(out) as img:
        n_windows = (int(ev["t"][-1]) - int(ev["t"][0])) // 10_000 + 1
        assert img.n_frames == n_windows and img.size == (W, H)


def test_render_png_colours_on_and_off_pixels(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    ev = make_events([1, 2, 2, 3], [0, 1, 1, 2], [1, 0, 0, 1], [0, 10, 20, 30])
    src = tmp_path / "tiny.npz"
    write_npz(src, ev, geometry=(4, 3))
    out = tmp_path / "frame.png"
    argv = ["events", "render", str(src), "--out", str(out), "--on-color", "#ff0000", "--off-color", "00ff00"]
    assert run(argv + ["--quiet"]) == 0
    rgb = np.asarray(Image.open(out).convert("RGB"))
    assert rgb[0, 1].tolist() == [255, 0, 0] and rgb[1, 2].tolist() == [0, 255, 0]
    assert rgb[2, 3].tolist() == [255, 0, 0] and rgb[0, 0].tolist() == [0, 0, 0]


def test_render_refuses_other_outputs_and_bad_colours(recording, tmp_path):
    path, _ = recording
    with pytest.raises(OptionError, match="--out"):
        run(["events", "render", str(path), "--out", str(tmp_path / "a.jpg")])
    with pytest.raises(OptionError, match="--on-color"):
        run(["events", "render", str(path), "--out", str(tmp_path / "a.png"), "--on-color", "red"])


HOOKED = "events" in edgesnn.cli.build_parser().format_help()


@pytest.mark.skipif(not HOOKED, reason="edgesnn.cli.build_parser does not call add_events_commands yet")
def test_edgesnn_main_runs_events_info_and_reports_errors_in_one_line(recording, tmp_path, capsys):
    path, ev = recording
    assert edgesnn.cli.main(["events", "info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == len(ev)
    missing = tmp_path / "missing.raw"
    assert edgesnn.cli.main(["events", "info", str(missing)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.raw" in err and "Traceback" not in err


def test_render_says_when_max_frames_cuts_the_recording(recording, tmp_path, caplog):
    pytest.importorskip("PIL.Image")
    path, _ = recording
    out = tmp_path / "anim.gif"
    assert run(["events", "render", str(path), "-o", str(out), "--window", "10ms", "--max-frames", "3"]) == 0
    assert "stopped at --max-frames 3 frames; the recording goes on from t = 31013 us" in caplog.text


def test_convert_takes_the_output_as_o_or_out(recording, tmp_path):
    path, ev = recording
    assert run(["events", "convert", str(path), "-o", str(tmp_path / "a.npz"), "--quiet"]) == 0
    np.testing.assert_array_equal(read_events(tmp_path / "a.npz"), ev)
    with pytest.raises(OptionError, match="no output given"):
        run(["events", "convert", str(path)])


@pytest.mark.parametrize("where", ["before", "after"])
def test_progress_shows_a_bar_in_a_log_when_asked_and_leaves_its_count(recording, tmp_path, capsys, where):
    pytest.importorskip("tqdm")
    path, ev = recording
    argv = ["events", "convert", str(path), str(tmp_path / "copy.npz")]
    argv = ["--progress", *argv] if where == "before" else [*argv, "--progress"]
    assert edgesnn.cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "rec.npz: 20.0kev" in err  # the last state of the bar stays in the log
    assert edgesnn.cli.main([a for a in argv if a != "--progress"]) == 0
    assert "kev" not in capsys.readouterr().err  # without the flag, no bar off a terminal
