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
