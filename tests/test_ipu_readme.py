"""The README's "Graphcore IPU (simulated)" section: its snippet and commands run, its figures are the code's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgesnn.cli import main
from firmware_bridges.ipu.compiler import CompileOptions
from firmware_bridges.ipu.config import SOURCES, IPUConfig
from firmware_bridges.ipu.netspec import dense_stack
from firmware_bridges.ipu.trainplan import TrainOptions, longest_sequence, train_plan

ROOT = Path(__file__).resolve().parents[1]


def section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## Graphcore IPU (simulated)\n", 1)[1].split("\n## ", 1)[0]


def prose() -> str:
    return " ".join(re.sub(r"```.*?```", "", section(), flags=re.S).split())


def test_the_snippet_runs() -> None:
    (block,) = re.findall(r"```python\n(.*?)```", section(), flags=re.S)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - the README's own code
    program, s = scope["program"], scope["s"]
    assert program.tiles_used > 0 and program.tile_bytes_mean <= program.tile_bytes_max and program.predicted_step_s > 0
    assert s.stats()["steps"] == 100 and s.stats()["dropped_spikes"] == {"hidden0": 0, "hidden1": 0}
    assert scope["ys"]["output"].shape == (100, 2, 12)


def test_the_commands_run(tmp_path, monkeypatch, capsys: pytest.CaptureFixture) -> None:
    from firmware_bridges.ipu.launch import bridge

    (block,) = re.findall(r"```sh\n(.*?)```", section(), flags=re.S)
    lines = [line.split("  #", 1)[0].split() for line in block.splitlines() if line.strip()]
    assert lines[0] == ["python", "-m", "firmware_bridges.ipu", "--port", "50062"]
    with bridge() as address:  # the same process on a free port
        assert address.startswith("127.0.0.1:")
    monkeypatch.chdir(tmp_path)
    for words in lines[1:]:
        assert words[0] == "edgesnn"
        assert main(words[1:]) == 0, words
    out = capsys.readouterr().out
    assert (tmp_path / "map.png").is_file() and "double chunks" in out


def test_the_placement_figures_are_the_configs() -> None:
    cfg, text = IPUConfig(), prose()
    assert "2 to 32 neurons per tile" in text and (cfg.min_neurons_per_tile, cfg.max_neurons_per_tile) == (2, 32)
    assert "1,471 tiles (1,472 on further chips)" in text and (cfg.usable_tiles(0), cfg.usable_tiles(1)) == (1471, 1472)
    assert "4 bytes per cycle of exchange, 600 cycles of sync" in text
    assert (cfg.exchange_bytes_per_cycle, cfg.sync_cycles) == (4, 600)
    assert "46,868 neurons" in text and 1464 * 32 + 20 == 46_868  # tests/test_ipu_simulator.py runs them
    assert "ASSUMED" in text and any(tag == "ASSUMED" for tag, _ in SOURCES.values())
    from tests.conformance import test_device_contract

    assert "ipu" in test_device_contract.DEVICES


def test_the_training_figures_are_the_planners() -> None:
    from tools.bench.ipu import shd_hidden

    text = prose()
    hidden = shd_hidden(3)
    assert "3 x 974 LIF" in text and hidden == [974, 974, 974]
    spec, opt = dense_stack(700, tuple(hidden), 20), CompileOptions(max_activity=0.05, input_capacity=96, batch=48)
    plain, _ = longest_sequence(spec, "none", opt)
    double = train_plan(spec, TrainOptions(10 * plain, "double"), opt)
    said = re.search(
        r"plain BPTT fits ([\d,]+) steps .* ten times as many \(([\d,]+)\) .* predicted at ([\d.]+) times", text
    )
    assert said, text
    assert int(said[1].replace(",", "")) == plain and int(said[2].replace(",", "")) == 10 * plain
    assert float(said[3]) == round(double.time_factor, 2)


def test_the_sparse_against_dense_figures_are_the_cycle_models() -> None:
    from firmware_bridges.ipu.compiler import compile_program
    from firmware_bridges.ipu.cycles import assumed_work, step_cycles
    from tools.bench.ipu import shd_hidden

    said = re.search(r"([\d.]+)x, ([\d.]+)x and ([\d.]+)x faster per forward step at 1, 5 and 10 %", prose())
    assert said
    spec = dense_stack(700, tuple(shd_hidden(2)), 20)
    for activity, quoted in zip((0.01, 0.05, 0.10), said.groups(), strict=True):
        t = {}
        for exchange in ("sparse", "dense"):
            program = compile_program(spec, CompileOptions(max_activity=activity, input_capacity=96, batch=48,
                                                           exchange=exchange))  # fmt: skip
            t[exchange] = step_cycles(program, assumed_work(program, activity)).seconds_per_step[0]
        assert round(t["dense"] / t["sparse"], 1) == float(quoted)
