"""``edgesnn learn | classes | forget`` on a bundle and a store directory."""

import argparse
import json

import numpy as np
import pytest

from edgesnn.bundle import write_bundle
from edgesnn.cli import exit_code_for
from edgesnn.errors import InputError, NotFoundError, StateError, UnsupportedError
from edgesnn.learn import enable_learning
from edgesnn.learn.cli import add_learn_commands
from tools.bench.learn_task import ToyTask

TASK = ToyTask(steps=40)


def edgesnn(*argv: str) -> int:
    """Parse and run like ``edgesnn.cli.main`` (which the lead wires these commands into)."""
    parser = argparse.ArgumentParser(prog="edgesnn")
    parser.add_argument("--quiet", action="store_true")
    add_learn_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    write_bundle(enable_learning(TASK.model(), "features"), tmp_path / "m.esnn")
    write_bundle(TASK.model(), tmp_path / "plain.esnn")
    np.save(tmp_path / "wave.npy", TASK.example(0, rng))
    np.savez(tmp_path / "stop.npz", x=TASK.example(1, rng)[:, None])  # (T, 1, 64), named after the input
    return tmp_path


def test_learn_list_forget(files, capsys):
    m, store = str(files / "m.esnn"), str(files / "store")
    assert edgesnn("learn", m, "--label", "wave", "--example", str(files / "wave.npy"), "--store", store) == 0
    out = capsys.readouterr().out
    # An imprinted row already scores its target on its own example (the normalised step's unit): no update.
    assert out.startswith("added 'wave': 0 updates") and "score on the example 0.123 -> 0.123 (target 0.123);" in out
    assert edgesnn("learn", m, "--label", "stop", "--example", str(files / "stop.npz"), "--store", store) == 0
    assert edgesnn("learn", m, "--label", "wave", "--example", str(files / "wave.npy"), "--store", store, "--json") == 0
    out = capsys.readouterr().out
    doc = json.loads(out[out.index("{") :])
    assert doc["action"] == "reinforced" and doc["classes"] == 2 and doc["elapsed_us"] > 0
    assert doc["target"] > 0 and doc["overshot"] in (True, False) and isinstance(doc["score_after"], float)
    assert edgesnn("classes", m, "--store", store) == 0
    assert capsys.readouterr().out == "wave\t2\nstop\t1\n"
    assert edgesnn("forget", m, "--label", "wave", "--store", store) == 0
    assert "forgot 'wave'; 1 classes" in capsys.readouterr().out
    assert edgesnn("classes", m, "--store", store, "--json") == 0
    assert json.loads(capsys.readouterr().out)["classes"] == [{"label": "stop", "examples": 1}]


def test_errors_are_edgesnn_errors_with_exit_codes(files):
    m, store = str(files / "m.esnn"), str(files / "store")
    with pytest.raises(FileNotFoundError, match="no such directory") as err:
        edgesnn("classes", m, "--store", store)  # a typo'd store is not an empty one
    assert exit_code_for(err.value) == 3
    (files / "store").mkdir()
    with pytest.raises(NotFoundError, match="label: no class 'ghost'") as err:
        edgesnn("forget", m, "--label", "ghost", "--store", store)
    assert exit_code_for(err.value) == 2
    with pytest.raises(UnsupportedError, match="store: the model has no learning configuration"):
        edgesnn("classes", str(files / "plain.esnn"), "--store", store)
    with pytest.raises(InputError, match="a zip but no .npz") as err:
        edgesnn("learn", m, "--label", "a", "--example", str(files / "m.esnn"), "--store", store)
    assert exit_code_for(err.value) == 2
    (files / "store" / "classes.msgpack").write_bytes(b"not msgpack at all")
    with pytest.raises(StateError, match="classes.msgpack: not a class store") as err:
        edgesnn("classes", m, "--store", store)
    assert exit_code_for(err.value) == 5


def test_run_uses_the_learned_classes_of_a_store(files, capsys):
    from edgesnn.cli import main

    m, store = str(files / "m.esnn"), str(files / "store")
    assert main(["--quiet", "learn", m, "--label", "wave", "--example", str(files / "wave.npy"), "--store", store]) == 0
    assert main(["run", m, str(files / "wave.npy"), "--store", store, "--quiet"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines[-1]["classes"][0]) == 1 and lines[-1]["learned"] == ["wave"]
    assert main(["run", m, str(files / "wave.npy"), "--store", str(files / "typo")]) == 3
    assert "typo: no such directory (given as --store)" in capsys.readouterr().err
