"""The README's Python snippets run as written, on the shipped demo bundle."""

import pathlib
import re
import shutil
from importlib import resources

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_python_api_snippet_runs_on_a_real_bundle(tmp_path, monkeypatch):
    shutil.copy(resources.files("edgesnn") / "data" / "demo.esnn", tmp_path / "model.esnn")
    monkeypatch.chdir(tmp_path)
    snippet = python_blocks()[0]
    scope: dict = {}
    exec(compile(snippet, str(README), "exec"), scope)  # noqa: S102 - the README's own code
    assert set(scope["vs"]) == {"lif/v", "li/v"} and scope["vs"]["lif/v"].shape == (10, 1, 128)
    assert scope["s0"].initial_state == "zero"


def interop_table() -> list[list[str]]:
    """The rows of the framework x direction x model kind table, as cells."""
    text = README.read_text(encoding="utf-8").split("## Moving models between frameworks", 1)[1].split("\n## ")[0]
    rows = [[c.strip() for c in line.strip()[1:-1].split("|")] for line in text.splitlines() if line.startswith("| ")]
    return rows[1:]  # the header; the |---| line does not start with "| "


def test_the_interop_table_has_every_framework_direction_and_kind_with_a_verdict():
    rows = interop_table()
    frameworks = [r[0] for r in rows if r[0]]
    assert frameworks == ["snnTorch 1.0", "Norse 1.1", "Sinabs 3.1", "Rockpool 3.1", "Spyx 1.0", "Lava-dl 0.6 (netx)"]
    assert [r[1] for r in rows] == ["import", "export", "round trip"] * len(frameworks)
    verdicts = ("exact", "bit-exact", "no", "refused", "runs", "its importer", "not written")
    for row in rows:
        assert len(row) == 5, row
        for cell in row[2:]:
            assert cell.startswith(verdicts), cell  # "exact" or a reason
    root = README.parent
    for name in ("snntorch", "norse", "sinabs", "rockpool", "spyx", "lavadl"):
        assert (root / "tools" / "fixtures" / f"{name}.py").is_file()
        assert (root / "tools" / "fixtures" / f"{name}.requirements.txt").is_file()
