"""The README's "Jacobians by cross-country elimination" section: its snippet runs and prints what it says."""

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADING = "### Jacobians by cross-country elimination"


def section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.split(r"\n##+ ", text.split(f"\n{HEADING}\n", 1)[1], maxsplit=1)[0]


def test_the_snippet_runs_and_its_figures_hold(tmp_path, monkeypatch, capsys):
    jax = pytest.importorskip("jax")
    (code,) = re.findall(r"```py\n(.*?)```", section(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102
    printed = capsys.readouterr().out.split()
    # "the same numbers as jax.jacfwd"
    reference = jax.jacfwd(scope["robot_arm_6dof"], argnums=tuple(range(6)))(*scope["angles"])
    for ours, theirs in zip(jax.tree_util.tree_leaves(scope["jac"]), jax.tree_util.tree_leaves(reference),
                            strict=True):  # fmt: skip
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)
    # The comment's counts: reverse 301 as published graphs give it, Markowitz 221, a search no worse.
    reverse, markowitz, found = (int(v) for v in printed[-3:])
    assert (reverse, markowitz) == (301, 221) and found <= markowitz
    # d px / d angles for a batch of 4 under jit + vmap: each row is the unbatched one
    assert scope["batched"].shape == (4, 6)
    np.testing.assert_allclose(scope["batched"], np.tile(np.stack(reference[0]), (4, 1)), rtol=1e-4, atol=1e-3)


def test_the_online_sentence_matches_the_configuration():
    text = section()
    assert '"train": {"online": true}' in text
    from tools.train.config import config_from_dict

    cfg = config_from_dict({"train": {"online": True}})
    assert cfg.train.online.enabled and cfg.train.online.order == "markowitz"
