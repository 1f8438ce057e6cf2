"""Shipped models: listed by `edgesnn models`, loaded by name, each saying what it does and what it scored."""

import json
import os

import numpy as np
import pytest

import edgesnn
from edgesnn.catalog import Evaluation, describe, evaluations, models, names, resolve
from edgesnn.cli import main
from edgesnn.detect import load_detector

SHIPPED = ("detector", "glyphs", "keywords")


def test_three_models_ship_each_under_a_few_megabytes_with_what_it_scored():
    assert names() == SHIPPED
    for m in models():
        assert m.size_bytes < 4_000_000, m.name
        assert m.task and m.description and m.made_by == f"python -m tools.models {m.name}"
        assert m.evaluation and all(isinstance(e, Evaluation) and e.samples > 0 for e in m.evaluation)
        assert all(0.0 <= e.value <= 1.0 for e in m.evaluation)


def test_a_shipped_model_loads_by_name_and_runs():
    kw = edgesnn.load("keywords")
    assert kw.learning is not None and len(kw.labels) == 12 and "yes" in kw.labels
    scores = kw.session().run(np.zeros((5, 1, 64), np.float32))[kw.outputs[0].name]
    assert scores.shape == (5, 1, 12)
    assert edgesnn.load("glyphs").learning is not None
    det = load_detector(resolve("detector"))
    assert det.config.classes and (det.config.width, det.config.height) == (304, 240)


def test_a_file_of_that_name_wins_over_the_shipped_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keywords").write_bytes(b"mine")
    assert resolve("keywords") == "keywords"


def test_an_unknown_name_lists_the_shipped_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no shipped model of that name .shipped: detector, glyphs, keywords"):
        edgesnn.load("keyword")
    assert main(["info", "keyword"]) == 3
    assert "keyword: no such file, and no shipped model of that name" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        describe("nope")


def test_edgesnn_models_lists_them_and_info_shows_the_measured_figures(capsys):
    assert main(["models", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines() if not line.startswith(" ")] == list(SHIPPED)
    assert out.count("measured: ") == sum(len(m.evaluation) for m in models())
    assert main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listed] == list(SHIPPED) and all(os.path.exists(m["path"]) for m in listed)
    assert main(["info", "keywords"]) == 0
    out = capsys.readouterr().out
    first = evaluations(edgesnn.load("keywords").producer)[0]
    assert f"measured: {first}" in out and "made by: python -m tools.models keywords" in out


def test_evaluation_entries_are_checked():
    with pytest.raises(edgesnn.errors.BundleValidationError, match="producer/evaluation/0"):
        evaluations({"evaluation": [{"metric": "accuracy"}]})
    e = evaluations({"evaluation": [{"metric": "accuracy", "value": 0.5, "unit": "%", "split": "test",
                                     "samples": 10, "dataset": "d"}]})[0]  # fmt: skip
    assert str(e) == "accuracy 50.0 % (d test, 10 samples)"


def test_the_readme_table_quotes_what_each_bundle_scored():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`"): line for line in text.splitlines() if line.startswith("| `")}
    for m in models():
        for e in m.evaluation:
            shown = f"{e.metric} {100 * e.value:.1f} %" if e.unit == "%" else f"{e.metric} {e.value:.3f}"
            assert shown in rows[m.name], (m.name, shown)
