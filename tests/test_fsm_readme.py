"""The README's "Finite-state machines" section runs as written: its spec, its commands and its snippet."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
from pathlib import Path

from edgesnn.cli import main

ROOT = Path(__file__).resolve().parents[1]


def section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## Finite-state machines\n", 1)[1].split("\n## ", 1)[0]


def block(kind: str) -> str:
    return section().split(f"```{kind}\n", 1)[1].split("```", 1)[0]


def test_the_commands_and_the_snippet_run_as_written(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "door.json").write_text(block("json"))
    for line in block("sh").splitlines():
        command = line.split("  #", 1)[0].strip()
        if command.startswith("edgesnn "):
            assert main(shlex.split(command)[1:]) == 0, command
        elif command:
            subprocess.run(["bash", "-c", command], check=True)
    out = capsys.readouterr().out
    assert "walk correct: 3 of 3 inputs" in out and "unlock=1.00" in out
    assert (tmp_path / "door.png").stat().st_size > 1000

    code = block("python")
    expected = re.search(r"print\(.*\)  # (.*)", code).group(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    assert printed.getvalue().strip() == expected


def test_the_bundle_is_what_the_section_says(tmp_path, monkeypatch) -> None:
    import edgesnn
    from edgesnn.engine import SessionOptions
    from edgesnn.errors import NIRImportError, UnsupportedError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "door.json").write_text(block("json"))
    assert main(["fsm", "compile", "door.json", "-o", "door.esnn", "--neurons", "500", "--quiet"]) == 0
    model = edgesnn.load("door.esnn")
    assert [s.name for s in model.inputs] == ["stimulus"] and model.graph.metadata["fsm"]["channels"][:2] == [
        "arm/a", "arm/b"]  # fmt: skip
    assert [s.name for s in model.outputs] == ["out_overlaps", "out_readout"]
    assert model.labels[:3] == ("idle", "armed", "open")
    from edgesnn.bundle.nir import to_nir

    try:
        to_nir(model)
    except NIRImportError as exc:
        assert "nodes/state" in str(exc) and "ThresholdUnit" in str(exc)
    else:
        raise AssertionError("NIR export of a ThresholdUnit must be refused")
    try:
        model.session(options=SessionOptions(numerics="loihi"))
    except UnsupportedError as exc:
        assert "nodes/state" in str(exc) and "no Loihi mapping" in str(exc)
    else:
        raise AssertionError("Loihi numerics of a ThresholdUnit must be refused")
