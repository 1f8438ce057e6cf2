"""`make demo`'s story on the shipped models: a word spoken now is recognised, two are taught, a restart keeps them."""

import shutil

import pytest

from tools.demo import main


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the story speaks with espeak-ng (make sysdeps)")
def test_the_keyword_story_runs_and_a_restarted_process_still_knows_the_taught_words(tmp_path, capfd):
    assert main(["--store", str(tmp_path / "store"), "--skip-adapt"]) == 0
    out = capfd.readouterr().out
    assert "1. words spoken now by espeak-ng" in out and "decided" in out
    assert "2. teaching 'seven' and 'three'" in out and "now holds seven, three" in out
    assert "new process: keywords on store" in out and "knows seven, three" in out
    assert (tmp_path / "store").is_dir()
