"""The edgesnn command: one line and a non-zero exit for user errors, results on stdout."""

import json
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest

from edgesnn.cli import main

DEMO = str(resources.files("edgesnn") / "data" / "demo.esnn")


def test_info_describes_the_demo_bundle(capsys):
    assert main(["info", DEMO]) == 0
    out = capsys.readouterr().out
    assert "labels: sweep_up, sweep_down, low_burst, high_burst" in out
    assert "recurrent: rec -> lif" in out


def test_info_shows_what_an_adaptation_kept(tmp_path, capsys):
    fine = tmp_path / "fine.esnn"
    assert main(["adapt", DEMO, "--dt", "0.25ms", "--method", "zoh-rate", "-o", str(fine)]) == 0
    capsys.readouterr()
    assert main(["info", str(fine)]) == 0
    out = capsys.readouterr().out
    assert "adapted: 1 ms -> 0.25 ms (zoh-rate)" in out
    assert "(min spike interval 1 ms)" in out


def test_info_json_lists_nodes(capsys):
    assert main(["info", DEMO, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["inputs"][0]["shape"] == [32]
    assert {n["type"] for n in info["nodes"]} >= {"LIF", "LI", "Linear"}


def test_truncated_bundle_is_one_line_and_exit_3(tmp_path, capsys):
    bad = tmp_path / "bad.esnn"
    with open(DEMO, "rb") as f:
        bad.write_bytes(f.read()[:2000])
    assert main(["info", str(bad)]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.esnn" in err and "Traceback" not in err


def test_missing_file_is_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.esnn")]) == 3
    assert "nope.esnn" in capsys.readouterr().err


def test_run_writes_json_lines_with_decisions(tmp_path, capsys):
    with np.load(resources.files("edgesnn") / "data" / "demo_input.npz") as z:
        np.save(tmp_path / "x.npy", z["spikes"][:300])
    assert main(["run", DEMO, str(tmp_path / "x.npy")]) == 0
    out = capsys.readouterr()
    lines = [json.loads(line) for line in out.out.splitlines()]
    assert [line["t"] for line in lines] == list(range(300))
    assert len(lines[-1]["scores"][0]) == 4
    assert lines[-1]["decision"][0] in {"sweep_up", "sweep_down", "low_burst", "high_burst"}
    assert out.err.startswith("edgesnn run: 300 steps x batch 1 in ") and "wrote scores to stdout" in out.err


def test_run_makes_no_decision_while_nothing_scores(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((5, 32), np.float32))
    assert main(["--quiet", "run", DEMO, str(tmp_path / "x.npy")]) == 0
    out = capsys.readouterr()
    lines = [json.loads(line) for line in out.out.splitlines()]
    assert lines[0]["scores"] == [[0.0, 0.0, 0.0, 0.0]] and lines[0]["decision"] == [None]
    assert out.err == ""  # --quiet: no summary


def test_run_to_npz_records_named_nodes(tmp_path):
    with np.load(resources.files("edgesnn") / "data" / "demo_input.npz") as z:
        np.savez(tmp_path / "in.npz", spikes=z["spikes"][:100])
    out = tmp_path / "out.npz"
    assert main(["run", DEMO, str(tmp_path / "in.npz"), "-o", str(out), "--record", "lif"]) == 0
    with np.load(out) as r:
        assert r["scores"].shape == (100, 1, 4) and r["lif"].shape == (100, 1, 128)
        assert r["lif"].sum() > 0


def test_run_with_wrong_input_shape_names_the_input(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((5, 31), np.float32))
    assert main(["run", DEMO, str(tmp_path / "x.npy")]) == 2
    assert "inputs/spikes: expected shape (T, 1, 32), got (5, 1, 31)" in capsys.readouterr().err


def test_bad_duration_is_a_usage_error(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((5, 32), np.float32))
    assert main(["run", DEMO, str(tmp_path / "x.npy"), "--session-dt", "fast"]) == 2
    assert "expected a duration" in capsys.readouterr().err


def test_bench_prints_json(capsys):
    assert main(["bench", DEMO, "--steps", "50", "--repeats", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["us_per_step"]["median"] > 0 and report["steps"] == 50


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["--debug", "info", str(tmp_path / "nope.esnn")])


def test_console_entry_point_never_shows_a_traceback(tmp_path):
    bad = tmp_path / "bad.esnn"
    bad.write_bytes(b"not a zip")
    r = subprocess.run([sys.executable, "-m", "edgesnn.cli", "info", str(bad)], capture_output=True, text=True)
    assert r.returncode == 3
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1


NIR_DATA = __import__("pathlib").Path(__file__).parent / "data" / "nir"


def test_convert_round_trip_through_nir(tmp_path, capsys):
    nir_path, back = tmp_path / "demo.nir", tmp_path / "back.esnn"
    assert main(["convert", DEMO, str(nir_path)]) == 0
    assert main(["convert", str(nir_path), str(back)]) == 0
    import edgesnn
    from tests.helpers import assert_models_equal

    assert_models_equal(edgesnn.load(back), edgesnn.load(DEMO))


def test_convert_for_sinabs_says_the_input_scaling_and_writes_for_its_nir(tmp_path, capsys):
    # A Sinabs LIF trained with norm_input=False; the .nir back out for Sinabs's nir 1.0.4.
    src, out = NIR_DATA / "sinabs_lossy.nir", tmp_path / "lif.esnn"
    assert main(["convert", "--from", "sinabs", "--norm-input", "no", str(src), str(out)]) == 0
    assert "LIF adds x (norm_input=False)" in capsys.readouterr().out.splitlines()[0]
    assert main(["convert", str(out), str(tmp_path / "lif.nir"), "--nir-version", "1.0.4"]) == 0
    import h5py

    with h5py.File(tmp_path / "lif.nir") as f:
        assert "v_reset" not in f["node"]["nodes"]["1"] and "tau" in f["node"]["nodes"]["1"]
    assert main(["convert", "--from", "snntorch", "--norm-input", "no", str(src), str(tmp_path / "x.esnn")]) == 2
    assert "norm_input is a Sinabs LIF setting" in capsys.readouterr().err


def test_convert_snntorch_export_reproduces_its_spikes(tmp_path, capsys):
    out = tmp_path / "snn.esnn"
    assert main(["convert", "--from", "snntorch", str(NIR_DATA / "snntorch_leaky_synaptic.nir"), str(out)]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith("read as snntorch: dt 0.1 ms (NIR stores none)")  # what the file could not say
    import edgesnn

    model = edgesnn.load(out)
    assert model.producer["profile"] == "snntorch" and model.producer["origin"]["name"] == "nir-import"
    with np.load(NIR_DATA / "snntorch_leaky_synaptic.npz") as z:
        x, want = z["x"], z["y"]
    got = model.session().run(x)[model.outputs[0].name]
    np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_convert_plain_nir_without_dt_says_how_to_fix(tmp_path, capsys):
    assert main(["convert", str(NIR_DATA / "snntorch_leaky_synaptic.nir"), str(tmp_path / "x.esnn")]) == 2
    assert "--dt" in capsys.readouterr().err


def test_convert_refuses_unknown_output_suffix(tmp_path, capsys):
    assert main(["convert", DEMO, str(tmp_path / "x.onnx")]) == 2
    assert "-o/--out: expected a file ending in .esnn or .nir, got" in capsys.readouterr().err


def test_adapt_writes_a_retimed_bundle(tmp_path, capsys):
    out = tmp_path / "fine.esnn"
    assert main(["adapt", DEMO, "--dt", "0.25ms", "--method", "zoh-rate", "-o", str(out)]) == 0
    import edgesnn

    model = edgesnn.load(out)
    assert model.dt_s == 0.25e-3 and model.producer["retimed"][-1]["method"] == "zoh-rate"
    assert main(["adapt", DEMO, "--dt", "0ms", "-o", str(out)]) == 2
    assert "expected a duration" in capsys.readouterr().err


def test_run_records_neuron_states_and_starts_where_asked(tmp_path):
    from edgesnn.bundle import write_bundle
    from edgesnn.graph import LIF, Graph, Input, Output
    from edgesnn.model import Model

    g = Graph({"x": Input((2,), unit="spikes"), "lif": LIF.uniform(2, tau_mem_s=10e-3, v_leak=0.3, v_threshold=1.0),
               "y": Output((2,))}, [("x", "lif"), ("lif", "y")])  # fmt: skip
    write_bundle(Model(g, dt_s=1e-3), tmp_path / "m.esnn")
    np.save(tmp_path / "x.npy", np.zeros((3, 2), np.float32))
    first = {}
    for start in ("rest", "zero"):
        out = tmp_path / f"{start}.npz"
        assert main(["run", str(tmp_path / "m.esnn"), str(tmp_path / "x.npy"), "-o", str(out), "--record", "lif/v",
                     "--initial-state", start]) == 0  # fmt: skip
        with np.load(out) as f:
            assert f["lif/v"].shape == (3, 1, 2)
            first[start] = f["lif/v"][0, 0, 0]
    assert first["rest"] == pytest.approx(0.3)  # no input: the membrane stays at v_leak
    assert first["zero"] == pytest.approx(0.3 * (1 - np.exp(-0.1)), rel=1e-6)  # it relaxes from 0 towards v_leak


def test_adapting_an_input_without_a_unit_is_one_line_saying_how_to_fix(tmp_path, capsys):
    import dataclasses

    from edgesnn.bundle import read_bundle, write_bundle
    from edgesnn.graph import Graph

    demo = read_bundle(DEMO)
    g = demo.graph
    nodes = {**g.nodes, "spikes": g.nodes["spikes"].replace(unit="")}
    write_bundle(dataclasses.replace(demo, graph=Graph(nodes, list(g.edges), g.metadata)), tmp_path / "nounit.esnn")
    fine = str(tmp_path / "fine.esnn")
    assert main(["adapt", str(tmp_path / "nounit.esnn"), "--dt", "0.5ms", "-o", fine]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "inputs/spikes: input 'spikes' has no unit" in err
    assert "--unit spikes=spikes" in err
    assert main(["adapt", str(tmp_path / "nounit.esnn"), "--dt", "0.5ms", "-o", fine, "--unit", "spikes=spikes"]) == 0
    assert read_bundle(fine).inputs[0].unit == "spikes"
    assert main(["adapt", str(tmp_path / "nounit.esnn"), "--dt", "0.5ms", "-o", fine, "--unit", "spikes"]) == 2
    assert "expected NAME=UNIT" in capsys.readouterr().err


def test_info_says_how_a_model_discretises_adapts_and_starts(tmp_path, capsys):
    from edgesnn.bundle import write_bundle
    from edgesnn.graph import CubaLIF, Graph, Input, Output
    from edgesnn.model import Model

    g = Graph({"x": Input((2,)), "n": CubaLIF.uniform(2, tau_syn_s=5e-3, tau_mem_s=2e-2, v_threshold=1.0),
               "y": Output((2,))}, [("x", "n"), ("n", "y")])  # fmt: skip
    write_bundle(Model(g, dt_s=1e-3, method="cascade-euler", initial_state="zero"), tmp_path / "m.esnn")
    assert main(["info", str(tmp_path / "m.esnn")]) == 0
    out = capsys.readouterr().out
    assert "(cascade-euler, adapts by euler-rate, starts at zero)" in out
    assert "input  x: (2,) float32 (no unit: say spikes or a signal unit before adapting, --unit)" in out


def test_global_flags_work_after_the_subcommand_too(tmp_path, capsys):
    assert main(["info", DEMO, "--quiet"]) == 0 and "7 nodes" in capsys.readouterr().out  # results still print
    with pytest.raises(FileNotFoundError):
        main(["info", str(tmp_path / "nope.esnn"), "--debug"])
    out = tmp_path / "m.esnn"
    assert main(["convert", DEMO, str(out), "--quiet"]) == 0 and capsys.readouterr().out == ""
    with pytest.raises(FileNotFoundError):
        main(["events", "info", str(tmp_path / "nope.npz"), "--debug"])


def test_outputs_are_o_or_out_everywhere(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((5, 32), np.float32))
    assert main(["run", DEMO, str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npz"), "--quiet"]) == 0
    assert main(["adapt", DEMO, "--dt", "500us", "--out", str(tmp_path / "fine.esnn"), "--quiet"]) == 0
    assert main(["convert", DEMO, "-o", str(tmp_path / "m.nir"), "--quiet"]) == 0
    assert (tmp_path / "y.npz").exists() and (tmp_path / "fine.esnn").exists() and (tmp_path / "m.nir").exists()
    assert main(["convert", DEMO, str(tmp_path / "a.esnn"), "-o", str(tmp_path / "b.esnn")]) == 2
    assert "give the output once" in capsys.readouterr().err


def test_file_types_are_told_apart_by_content(tmp_path, capsys):
    import shutil

    shutil.copy(DEMO, tmp_path / "demo.nir")  # a bundle under a NIR name is read as the bundle it is
    assert main(["info", str(tmp_path / "demo.nir"), "--quiet"]) == 0
    np.save(tmp_path / "x.npy", np.zeros((5, 32), np.float32))
    (tmp_path / "x.npy").rename(tmp_path / "x.npz")  # an .npy under an .npz name is read as an .npy
    assert main(["run", DEMO, str(tmp_path / "x.npz"), "--quiet"]) == 0


def test_help_pages_show_defaults_and_every_option_has_help(capsys):
    import argparse

    from edgesnn.cli import build_parser, subparsers

    assert main(["run", "--help"]) == 0
    text = capsys.readouterr().out
    assert "(default: -)" in text and "--debug" in text and "--quiet" in text
    owned_elsewhere = {"edgesnn serve", "edgesnn devices"}  # the serving engineer's options
    for parser in subparsers(build_parser()):
        if parser.prog in owned_elsewhere:
            continue
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{parser.prog} {action.option_strings or action.dest} has no help"


def test_model_repr_is_one_short_line():
    import edgesnn

    text = repr(edgesnn.load(DEMO))
    assert text == "Model(7 nodes, inputs spikes(32,), outputs scores(4,), dt 1 ms, zoh, 4 labels, by edgesnn)"
