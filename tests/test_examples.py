"""The scripts in examples/ run as a new user would run them."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example_runs(script, tmp_path):
    args = [str(tmp_path / "model.esnn")] if script == "build_and_save.py" else []
    r = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, cwd=tmp_path,
                       timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()


def test_demo_recognises_the_patterns_and_survives_a_finer_sensor(capsys):
    from edgesnn.demo import main

    assert main([]) == 0
    out = capsys.readouterr().out
    assert "recognised 12/12 patterns" in out.split("the same stream")[0]
    adapted, tau = out.split("the same stream")[1].strip().splitlines()[1:3]
    n_adapted = int(adapted.split("recognised ")[1].split("/")[0])
    n_tau = int(tau.split("recognised ")[1].split("/")[0])
    assert n_adapted >= 11 and n_tau < n_adapted
