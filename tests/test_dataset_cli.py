"""The dataset generators' shared command line: files written, JSON summary printed, errors in one line."""

import json

import pytest

from tools.datasets import glyphs, keywords


@pytest.mark.parametrize("module, count_key", [(keywords, "spikes"), (glyphs, "events")])
def test_generator_writes_the_splits_and_summarises_them(module, count_key, tmp_path, capsys):
    assert module.main(["--out", str(tmp_path), "--size", "small", "--quiet", "--workers", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["size"] == "small" and summary["config_hash"] == module.SIZES["small"].config_hash()
    for name in ("train", "val", "test"):
        split = summary["splits"][name]
        assert split["samples"] > 0 and split[count_key] > 0
        assert split["bytes"] == (tmp_path / f"{name}.npz").stat().st_size


def test_generator_reports_an_unwritable_output_in_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert keywords.main(["--out", str(blocker / "sub"), "--size", "small", "--quiet", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_set_changes_one_field_of_the_size_and_is_recorded(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--size", "small", "--quiet", "--workers", "1", "--set", "samples_per_class=3"]
    assert glyphs.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["set"] == ["samples_per_class=3"] and summary["splits"]["train"]["samples"] == 3 * 4
    assert summary["config_hash"] != glyphs.SIZES["small"].config_hash()


@pytest.mark.parametrize(
    ("item", "message"),
    [("speaker=[2,2,2]", "FIELD one of"), ("speakers=[2", "not a JSON value"), ("speakers=[2]", "speakers")],
)
def test_set_errors_name_the_field(item, message, tmp_path, capsys):
    assert keywords.main(["--out", str(tmp_path), "--size", "small", "--quiet", "--set", item]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
