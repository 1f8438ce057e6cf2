"""tools.models makes a shipped bundle end to end: dataset, training, measurement, producer record."""

import pytest

from edgesnn.catalog import evaluations
from edgesnn.detect import load_detector


@pytest.mark.slow
def test_the_detector_builder_trains_measures_and_stamps_a_bundle(tmp_path):
    pytest.importorskip("jax")
    from tools.datasets import detection
    from tools.models.detector import build

    assert detection.main(["--out", str(tmp_path / "data"), "--size", "tiny", "--quiet"]) == 0
    summary = build(tmp_path / "data", tmp_path / "work", tmp_path / "out", steps=2, quiet=True)
    det = load_detector(tmp_path / "out" / "detector.esnn")
    got = evaluations(det.front.producer)
    assert [e.metric for e in got] == ["mAP", "mAP50"] and [e.value for e in got] == [
        e["value"] for e in summary["evaluation"]
    ]
    assert det.front.producer["made_by"] == "python -m tools.models detector"
    assert f"{det.parameters()['total']} parameters" in det.front.producer["description"]


def test_the_few_shot_builders_share_one_measurement():
    from tools.models import _ship, glyphs, keywords

    assert glyphs.few_shot_accuracy is keywords.few_shot_accuracy is _ship.few_shot_accuracy
    assert keywords.CONFIG.exists() and glyphs.CONFIG.exists()
