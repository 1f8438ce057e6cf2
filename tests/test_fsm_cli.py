"""``edgesnn fsm compile | run``: the walk, JSON, the plot, and one-line errors for user mistakes."""

from __future__ import annotations

import json

import pytest

import edgesnn
from edgesnn.cli import main

DOOR = {
    "states": ["idle", "armed", "open"], "symbols": ["arm", "key", "reset"],
    "transitions": ["idle --arm--> armed", "armed --key--> open", "open --reset--> idle", "armed --reset--> idle"],
    "outputs": {"open": ["unlock"]},
}  # fmt: skip


@pytest.fixture
def door(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "door.json").write_text(json.dumps(DOOR))
    (tmp_path / "symbols.txt").write_text("arm key  # a comment\nreset\n")
    return tmp_path


def test_compile_then_run_prints_the_walk(door, capsys) -> None:
    assert main(["fsm", "compile", "door.json", "-o", "door.esnn", "--neurons", "1000", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wrote door.esnn: 3 states, 4 transitions, 3 symbols on 1000 dense neurons;")
    assert edgesnn.load("door.esnn").graph.metadata["fsm"]["neurons"] == 1000

    assert main(["fsm", "run", "door.esnn", "--inputs", "symbols.txt", "--plot", "door.png"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:5] == ["1", "arm", "idle", "armed", "1.000"] and lines[1].split()[5] == "ok"
    assert lines[2].split()[:4] == ["2", "key", "armed", "open"] and "unlock=1.00" in lines[2]
    assert lines[-1] == "walk correct: 3 of 3 inputs, 100 steps; plot in door.png"
    assert (door / "door.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_json_output_and_sparse_machines(door, capsys) -> None:
    assert main(["fsm", "compile", "door.json", "-o", "sparse.esnn", "--neurons", "1000", "--sparse", "0.1",
                 "--json"]) == 0  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert doc["coding"] == 0.1 and doc["transitions"] == 4 and 0 <= doc["predicted_failure_probability"] < 0.01
    assert main(["fsm", "run", "sparse.esnn", "--inputs", "symbols.txt", "--json"]) == 0
    walk = json.loads(capsys.readouterr().out)
    assert walk["correct"] and [r["to"] for r in walk["walk"]] == ["armed", "open", "idle"]
    assert walk["walk"][1]["edge"] == "armed --key--> open"


def test_user_errors_are_one_line(door, capsys) -> None:
    (door / "lost.json").write_text(json.dumps({**DOOR, "states": [*DOOR["states"], "lost"]}))
    (door / "bad.txt").write_text("arm kick\n")
    assert main(["fsm", "compile", "door.json", "-o", "door.esnn", "--neurons", "500"]) == 0
    capsys.readouterr()
    cases = [
        (["fsm", "compile", "lost.json", "-o", "x.esnn"], "lost.json/states/3: state 'lost' is unreachable"),
        (["fsm", "compile", "nope.json", "-o", "x.esnn"], "nope.json: no such file"),
        (["fsm", "compile", "door.json", "-o", "x.esnn", "--sparse", "0.9"], "coding: expected 0 (dense)"),
        (["fsm", "run", "door.esnn", "--inputs", "bad.txt"], "inputs/1: unknown symbol 'kick'"),
        (["fsm", "run", "door.esnn", "--inputs", "none.txt"], "none.txt: no such file"),
    ]
    for argv, message in cases:
        assert main(argv) != 0, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, err
        assert "Traceback" not in err


def test_over_capacity_warns_or_refuses(door, capsys) -> None:
    ring = {"states": [f"q{i}" for i in range(40)],
            "transitions": [[f"q{i}", f"s{i}", f"q{(i + 1) % 40}"] for i in range(40)]}  # fmt: skip
    (door / "ring.json").write_text(json.dumps(ring))

    assert main(["fsm", "compile", "ring.json", "-o", "ring.esnn", "--neurons", "300"]) != 0
    err = capsys.readouterr().err
    assert "neurons: beyond capacity: 40 states and 40 transitions on 300 dense neurons: predicted walk failure" in err
    assert "(--force compiles it anyway)" in err and not (door / "ring.esnn").exists()

    assert main(["fsm", "compile", "ring.json", "-o", "ring.esnn", "--neurons", "300", "--force"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("edgesnn fsm compile: warning: beyond capacity: 40 states and 40 transitions")
    assert (door / "ring.esnn").exists()


def test_a_loihi_program_runs_in_loihi_numerics_by_default(door, capsys) -> None:
    assert main(["fsm", "compile", "door.json", "-o", "door_loihi.esnn", "--neurons", "600", "--weights", "binary",
                 "--loihi"]) == 0  # fmt: skip
    assert "on 600 dense neurons as a Loihi 2 program; predicted" in capsys.readouterr().out
    assert edgesnn.load("door_loihi.esnn").loihi is not None
    assert main(["fsm", "run", "door_loihi.esnn", "--inputs", "symbols.txt", "--json"]) == 0
    walk = json.loads(capsys.readouterr().out)
    assert walk["correct"] and walk["walk"][1]["outputs"]["unlock"] > 0.5 > walk["walk"][0]["outputs"]["unlock"]
    assert main(["fsm", "compile", "door.json", "-o", "x.esnn", "--neurons", "600", "--loihi"]) != 0
    err = capsys.readouterr().err
    assert "weights: Loihi stores 8-bit integer weights" in err or "neurons: a unit's input can reach" in err


def test_sparse_ternary_weights_per_neuron_from_the_command_line(door, capsys) -> None:
    assert main(["fsm", "compile", "door.json", "-o", "fanin.esnn", "--neurons", "1000", "--weights", "ternary",
                 "--sparsity", "0.9", "--sparsity-per", "neuron", "--seed", "1"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["fsm", "run", "fanin.esnn", "--inputs", "symbols.txt", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["correct"]
