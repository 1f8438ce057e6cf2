"""The IPU bridge: its device, its process, and ``edgesnn ipu plan``."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from edgesnn.cli import main
from edgesnn.errors import CapacityError
from edgesnn.graph import LI, Affine, Graph, Input, Output
from edgesnn.model import Model
from firmware_bridges.ipu.compiler import CompileOptions
from firmware_bridges.ipu.device import IPUDevice
from firmware_bridges.ipu.launch import bridge
from tests.conformance._models import bundle_bytes, remote, small_model, spikes


def _too_wide() -> Model:
    """200,000 inputs into 4 read-out neurons: 800,000 bytes of weights per neuron, more than a tile."""
    w = np.zeros((4, 200_000), np.float32)
    nodes = {"in": Input((200_000,)), "fc": Affine(w, np.zeros(4, np.float32)), "li": LI.uniform(4, tau_mem_s=0.01),
             "out": Output((4,))}  # fmt: skip
    return Model(Graph(nodes, (("in", "fc"), ("fc", "li"), ("li", "out"))), 1e-3)


def test_capabilities_carry_each_programs_tiles_memory_and_predicted_step(caplog: pytest.LogCaptureFixture) -> None:
    with IPUDevice() as dev:
        caps = dev.capabilities()
        assert (caps.device_kind, caps.simulated, caps.tiles, caps.programs) == ("ipu", True, 1471, ())
        with caplog.at_level(logging.INFO, logger="edgesnn.ipu"):
            model_id = dev.load_model(bundle_bytes(small_model()))
        assert f"model {model_id[:12]}" in caplog.text and "tiles, tile memory max" in caplog.text  # the bridge's log
        (summary,) = dev.capabilities().programs
        program = dev.program(model_id)
        assert summary.model_id == model_id and summary.tiles_used == program.tiles_used
        assert summary.tile_bytes_max == program.max_tile_bytes
        assert 0 < summary.tile_bytes_mean <= program.max_tile_bytes
        assert 0 < summary.predicted_step_s < 1e-3
        with dev.open_session(model_id, batch=2) as s:
            s.run(spikes(10, batch=2))
            assert s.stats()["steps"] == 10 and s.backend == "ipu-bsp-sim"


def test_a_model_too_large_for_the_chip_is_refused_when_it_loads() -> None:
    with IPUDevice() as dev, pytest.raises(CapacityError) as err:
        dev.load_model(bundle_bytes(_too_wide()))
    assert err.value.path == "graph/li" and "bytes missing" in str(err.value)


def test_the_bridge_process_serves_simulated_ipus_and_refuses_what_does_not_fit(tmp_path) -> None:
    with bridge("--max-activity", "0.5") as address, remote(address) as dev:
        caps = dev.capabilities()
        assert caps.device_kind == "ipu" and caps.simulated and caps.backends == ("ipu-bsp-sim",)
        assert caps.model_figures == {}
        with pytest.raises(CapacityError, match="bytes missing"):
            dev.load_model(bundle_bytes(_too_wide()))
        model_id = dev.load_model(bundle_bytes(small_model()))
        figures = dev.capabilities().model_figures[model_id]  # each program's figures cross the wire
        with IPUDevice(options=CompileOptions(max_activity=0.5)) as local:  # the same program in process
            local.load_model(bundle_bytes(small_model()))
            (summary,) = local.capabilities().programs
        assert figures["tiles_used"] == summary.tiles_used and figures["tile_bytes_max"] == summary.tile_bytes_max
        assert figures["tile_bytes_mean"] == summary.tile_bytes_mean
        assert figures["predicted_step_s"] == pytest.approx(summary.predicted_step_s)
        with dev.open_session(model_id) as s:
            np.testing.assert_array_equal(s.run(spikes(20))["out"], small_model().session().run(spikes(20))["out"])
    (tmp_path / "bad.esnn").write_bytes(b"not a bundle")
    run = subprocess.run([sys.executable, "-m", "firmware_bridges.ipu", "--port", "0", "--model",
                          str(tmp_path / "bad.esnn")], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 2 and run.stderr.strip().splitlines()[-1].startswith("ipu bridge: ")


def test_the_command_line_does_not_load_the_bridge_until_the_command_runs() -> None:
    code = ("import sys, edgesnn.cli as c; assert not any(m.startswith('firmware_bridges') for m in sys.modules);"
            " c.build_parser(); assert 'firmware_bridges.ipu.compiler' not in sys.modules")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plan_prints_a_table_json_and_a_png_map(tmp_path, capsys: pytest.CaptureFixture) -> None:
    assert main(["ipu", "plan", "keywords", "--png", str(tmp_path / "map.png")]) == 0
    out = capsys.readouterr().out
    assert "tiles used" in out and "hidden0" in out and "predicted" in out and "map.png" in out
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["ipu", "plan", "keywords", "--json", "--batch", "4", "--max-activity", "0.1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["batch"] == 4 and [p["population"] for p in doc["populations"]] == ["hidden0", "hidden1", "readout"]
    assert doc["populations"][0]["capacity"] == 26 and doc["tile_bytes_max"] <= doc["tile_memory_bytes"]


def test_plan_for_training_under_each_scheme(capsys: pytest.CaptureFixture) -> None:
    argv = ["ipu", "plan", "keywords", "--train", "--seq-len", "5000", "--batch", "16", "--scheme", "all"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "none: does not fit" in out and "double chunks" in out and "Streaming Memory" in out
    assert "x1.00 of plain" not in out.split("double chunks")[1]
    assert main(["ipu", "plan", "keywords", "--train", "--seq-len", "5000", "--batch", "16"]) != 0  # scheme none
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "graph/hidden0" in err and "bytes missing" in err


def test_plan_errors_are_one_line(tmp_path, capsys: pytest.CaptureFixture) -> None:
    from edgesnn.bundle import write_bundle

    write_bundle(_too_wide(), tmp_path / "wide.esnn")
    assert main(["ipu", "plan", str(tmp_path / "wide.esnn")]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("edgesnn ipu plan: error: graph/li:") and "bytes missing" in err
    assert main(["ipu", "plan", str(tmp_path / "nope.esnn")]) != 0
    assert capsys.readouterr().err.strip().count("\n") == 0
