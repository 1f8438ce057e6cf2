"""Every subcommand's user errors: the exit code of the README's table and one line naming the file or flag.

Each row runs ``edgesnn.cli.main([...])`` in-process; the README's "Command line" table is this one.
Placeholders: {missing} a path that does not exist, {text} a text file (named .esnn, .nir or .npy),
{demo} the demo bundle, {nir} a NIR graph, {x} a valid input array, {out} a directory to write to.
"""

import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from edgesnn.cli import main

DEMO = str(resources.files("edgesnn") / "data" / "demo.esnn")
NIR = str(Path(__file__).parent / "data" / "nir" / "snntorch_leaky_synaptic.nir")

MISSING, WRONG_TYPE, BAD_FLAG, BAD_UNIT, NOT_APPLICABLE, BAD_OUTPUT = (
    "missing file", "wrong file type", "bad flag", "bare number for a time", "flag that does not apply",
    "output format",
)  # fmt: skip

#: (command, case, argv, exit code, text the one-line message must contain)
# fmt: off
CASES = [
    ("info", MISSING, ["info", "{missing}.esnn"], 3, "nope.esnn: no such file"),
    ("info", MISSING, ["info", "{missing}.nir"], 3, "nope.nir: no such file"),
    ("info", WRONG_TYPE, ["info", "{text}.nir"], 3, "text.nir: expected a model"),
    ("info", WRONG_TYPE, ["info", "{text}.esnn"], 3, "text.esnn: not a readable zip file"),
    ("info", BAD_FLAG, ["info", "{demo}", "--bogus"], 2, "unrecognized arguments: --bogus"),
    ("info", BAD_UNIT, ["info", "{nir}", "--dt", "1"], 2, "--dt: a duration needs a unit"),
    ("info", NOT_APPLICABLE, ["info", "{demo}", "--dt", "1ms"], 2, "--dt: applies to .nir inputs only"),
    ("run", MISSING, ["run", "{missing}.esnn", "{x}"], 3, "nope.esnn: no such file"),
    ("run", MISSING, ["run", "{demo}", "{missing}.npy"], 3, "nope.npy: no such file"),
    ("run", WRONG_TYPE, ["run", "{text}.esnn", "{x}"], 3, "text.esnn: not a readable zip file"),
    ("run", WRONG_TYPE, ["run", "{demo}", "{text}.npy"], 2, "text.npy: expected a .npy or .npz file"),
    ("run", BAD_FLAG, ["run", "{demo}", "{x}", "--bogus"], 2, "unrecognized arguments: --bogus"),
    ("run", BAD_UNIT, ["run", "{demo}", "{x}", "--session-dt", "2"], 2, "--session-dt: a duration needs a unit"),
    ("run", NOT_APPLICABLE, ["run", "{demo}", "{x}", "--from", "sinabs"], 2, "--from: applies to .nir inputs only"),
    ("run", NOT_APPLICABLE, ["run", "{demo}", "{x}", "--input-key", "a"], 2, "--input-key: applies to .npz inputs"),
    ("run", BAD_OUTPUT, ["run", "{demo}", "{x}", "-o", "{out}/out.csv"], 2, "-o/--out: expected a file ending in"),
    ("run", MISSING, ["run", "{demo}", "{x}", "--store", "{missing}"], 3, "no such directory (given as --store)"),
    ("convert", MISSING, ["convert", "{missing}.nir", "{out}/m.esnn"], 3, "nope.nir: no such file"),
    ("convert", WRONG_TYPE, ["convert", "{text}.nir", "{out}/m.esnn"], 3, "text.nir: expected a model"),
    ("convert", BAD_FLAG, ["convert", "{demo}", "{out}/m.nir", "--bogus"], 2, "unrecognized arguments: --bogus"),
    ("convert", BAD_UNIT, ["convert", "{nir}", "{out}/m.esnn", "--dt", "0.1"], 2, "--dt: a duration needs a unit"),
    ("convert", NOT_APPLICABLE, ["convert", "{demo}", "{out}/m.nir", "--dt", "1ms"], 2, "--dt: applies to .nir"),
    ("convert", NOT_APPLICABLE, ["convert", "{demo}", "-o", "{out}/m.esnn", "--nir-version", "1.0.4"], 2,
     "--nir-version: applies to .nir outputs only"),
    ("convert", BAD_OUTPUT, ["convert", "{demo}", "{out}/m.onnx"], 2, "-o/--out: expected a file ending in .esnn"),
    ("adapt", MISSING, ["adapt", "{missing}.esnn", "--dt", "1ms", "-o", "{out}/f.esnn"], 3, "nope.esnn: no such"),
    ("adapt", WRONG_TYPE, ["adapt", "{text}.esnn", "--dt", "1ms", "-o", "{out}/f.esnn"], 3, "text.esnn: not a"),
    ("adapt", BAD_FLAG, ["adapt", "{demo}", "--dt", "1ms", "-o", "{out}/f.esnn", "--bogus"], 2, "--bogus"),
    ("adapt", BAD_UNIT, ["adapt", "{demo}", "--dt", "0.5", "-o", "{out}/f.esnn"], 2, "--dt: a duration needs a unit"),
    ("adapt", BAD_OUTPUT, ["adapt", "{demo}", "--dt", "1ms", "-o", "{out}/f.nir"], 2, "-o/--out: expected a file"),
    ("bench", MISSING, ["bench", "{missing}.esnn"], 3, "nope.esnn: no such file"),
    ("bench", WRONG_TYPE, ["bench", "{text}.nir"], 3, "text.nir: expected a model"),
    ("bench", BAD_FLAG, ["bench", "{demo}", "--bogus"], 2, "unrecognized arguments: --bogus"),
    ("bench", BAD_UNIT, ["bench", "{nir}", "--dt", "1"], 2, "--dt: a duration needs a unit"),
    ("bench", NOT_APPLICABLE, ["bench", "{demo}", "--steps", "0"], 2, "--steps: must be at least 1"),
    ("learn", MISSING, ["learn", "{missing}.esnn", "--label", "a", "--example", "{x}", "--store", "{out}"], 3,
     "nope.esnn: no such file"),
    ("learn", WRONG_TYPE, ["learn", "{text}.esnn", "--label", "a", "--example", "{x}", "--store", "{out}"], 3,
     "text.esnn: not a readable zip file"),
    ("learn", BAD_FLAG, ["learn", "{demo}", "--label", "a", "--example", "{x}", "--store", "{out}", "--bogus"], 2,
     "unrecognized arguments: --bogus"),
    ("classes", MISSING, ["classes", "{missing}.esnn", "--store", "{out}"], 3, "nope.esnn: no such file"),
    ("classes", WRONG_TYPE, ["classes", "{text}.esnn", "--store", "{out}"], 3, "text.esnn: not a readable zip"),
    ("classes", BAD_FLAG, ["classes", "{demo}", "--store", "{out}", "--bogus"], 2, "unrecognized arguments"),
    ("classes", MISSING, ["classes", "{demo}", "--store", "{missing}"], 3, "no such directory (given as --store)"),
    ("forget", MISSING, ["forget", "{missing}.esnn", "--label", "a", "--store", "{out}"], 3, "nope.esnn: no such"),
    ("forget", WRONG_TYPE, ["forget", "{text}.esnn", "--label", "a", "--store", "{out}"], 3, "text.esnn: not a"),
    ("forget", BAD_FLAG, ["forget", "{demo}", "--label", "a", "--store", "{out}", "--bogus"], 2, "--bogus"),
    ("forget", MISSING, ["forget", "{demo}", "--label", "a", "--store", "{missing}"], 3, "no such directory"),
    ("events info", MISSING, ["events", "info", "{missing}.raw"], 3, "nope.raw: cannot read"),
    ("events info", WRONG_TYPE, ["events", "info", "{text}.npy"], 3, "text.npy: expected a numpy .npy file"),
    ("events info", BAD_FLAG, ["events", "info", "{text}.npy", "--bogus"], 2, "unrecognized arguments: --bogus"),
    ("events convert", MISSING, ["events", "convert", "{missing}.raw", "{out}/e.npz"], 3, "nope.raw: cannot read"),
    ("events convert", WRONG_TYPE, ["events", "convert", "{text}.npy", "{out}/e.npz"], 3, "text.npy: expected"),
    ("events convert", BAD_FLAG, ["events", "convert", "{text}.npy", "{out}/e.npz", "--bogus"], 2, "--bogus"),
    ("events convert", BAD_OUTPUT, ["events", "convert", "{text}.npy", "-o", "{out}/e.bin"], 2,
     "e.bin: cannot tell the output format"),
    ("events render", MISSING, ["events", "render", "{missing}.raw", "-o", "{out}/a.gif"], 3, "nope.raw: cannot"),
    ("events render", WRONG_TYPE, ["events", "render", "{text}.npy", "-o", "{out}/a.gif"], 3, "text.npy: expected"),
    ("events render", BAD_FLAG, ["events", "render", "{text}.npy", "-o", "{out}/a.gif", "--bogus"], 2, "--bogus"),
    ("events render", BAD_UNIT, ["events", "render", "{text}.npy", "-o", "{out}/a.gif", "--window", "10"], 2,
     "--window: a duration needs a unit"),
    ("events render", BAD_OUTPUT, ["events", "render", "{text}.npy", "-o", "{out}/a.jpg"], 2, "-o/--out: expected"),
    ("detect", MISSING, ["detect", "{missing}.esnn", "{missing}.raw", "--out", "-"], 3, "nope.esnn"),
    ("detect", WRONG_TYPE, ["detect", "{text}.esnn", "{missing}.raw", "--out", "-"], 3, "text.esnn: not a readable"),
    ("detect", WRONG_TYPE, ["detect", "{demo}", "{missing}.raw", "--out", "-"], 3, "not a detector"),
    ("detect", BAD_FLAG, ["detect", "{demo}", "{missing}.raw", "--out", "-", "--bogus"], 2, "--bogus"),
    ("serve", BAD_FLAG, ["serve", "--bogus"], 2, "unrecognized arguments: --bogus"),
    ("fsm compile", MISSING, ["fsm", "compile", "{missing}.json", "-o", "{out}/f.esnn"], 3, "nope.json: no such file"),
    ("fsm compile", WRONG_TYPE, ["fsm", "compile", "{text}.npy", "-o", "{out}/f.esnn"], 4, "text.npy: not valid JSON"),
    ("fsm compile", BAD_FLAG, ["fsm", "compile", "{text}.npy", "-o", "{out}/f.esnn", "--bogus"], 2, "--bogus"),
    ("fsm run", MISSING, ["fsm", "run", "{missing}.esnn", "--inputs", "{x}"], 3, "nope.esnn: no such file"),
    ("fsm run", WRONG_TYPE, ["fsm", "run", "{text}.esnn", "--inputs", "{x}"], 3, "text.esnn: not a readable zip"),
    ("fsm run", BAD_FLAG, ["fsm", "run", "{demo}", "--inputs", "{x}", "--bogus"], 2, "--bogus"),
    ("ipu plan", MISSING, ["ipu", "plan", "{missing}.esnn"], 3, "nope.esnn: no such file"),
    ("ipu plan", WRONG_TYPE, ["ipu", "plan", "{text}.esnn"], 3, "text.esnn: not a readable zip file"),
    ("ipu plan", BAD_FLAG, ["ipu", "plan", "{demo}", "--bogus"], 2, "unrecognized arguments: --bogus"),
    ("ipu plan", NOT_APPLICABLE, ["ipu", "plan", "{demo}", "--train", "--seq-len", "0"], 2, "seq_len: expected an int"),
    ("devices", BAD_FLAG, ["devices", "--bogus"], 2, "unrecognized arguments: --bogus"),
    ("devices", BAD_UNIT, ["devices", "127.0.0.1:1", "--timeout", "2"], 2, "--timeout: a duration needs a unit"),
]
# fmt: on


@pytest.fixture
def paths(tmp_path):
    for ext in (".esnn", ".nir", ".npy"):
        (tmp_path / f"text{ext}").write_text("hello, not a binary file\n")
    np.save(tmp_path / "x.npy", np.zeros((5, 32), np.float32))
    out = tmp_path / "out"
    out.mkdir()
    return {"missing": str(tmp_path / "nope"), "text": str(tmp_path / "text"), "demo": DEMO, "nir": NIR,
            "x": str(tmp_path / "x.npy"), "out": str(out)}  # fmt: skip


@pytest.mark.parametrize(("command", "case", "argv", "code", "says"), CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_user_error_is_one_line_and_the_tables_exit_code(paths, capsys, command, case, argv, code, says):
    assert main([arg.format(**paths) for arg in argv]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"edgesnn {command}: error: "), err
    assert says in err and "Traceback" not in err and "internal error" not in err, err


def test_every_subcommand_is_in_the_table():
    from edgesnn.cli import build_parser, subparsers

    leaves = {p.prog.removeprefix("edgesnn ") for p in subparsers(build_parser()) if not p._subparsers}
    assert leaves <= {c[0] for c in CASES} | {"models"}  # `models` is registered by its own engineer


def test_serve_with_a_missing_model_exits_3_naming_it(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edgesnn.cli", "serve", "--model", str(tmp_path / "nope.esnn"),
                        "--port", "0"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1] == f"edgesnn serve: error: {tmp_path / 'nope.esnn'}: No such file or directory"


def test_a_text_file_named_npy_is_one_line_without_numpys_advice(tmp_path):
    (tmp_path / "x.npy").write_text("1,2,3\n")
    r = subprocess.run([sys.executable, "-m", "edgesnn.cli", "run", DEMO, str(tmp_path / "x.npy")],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == f"edgesnn run: error: {tmp_path / 'x.npy'}: expected a .npy or .npz file (numpy.save,"\
                       " numpy.savez), found text\n"  # fmt: skip


def test_a_closed_pipe_ends_quietly_with_141(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((20_000, 32), np.float32))  # far more JSON lines than a pipe holds
    with subprocess.Popen([sys.executable, "-m", "edgesnn.cli", "run", DEMO, str(tmp_path / "x.npy")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:  # fmt: skip
        assert proc.stdout.readline().startswith(b'{"t": 0,')  # what `| head -1` reads, before it exits
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == 141
    assert err == b""


def test_an_unreachable_device_exits_7_as_the_table_says(capsys):
    assert main(["devices", "127.0.0.1:1", "--timeout", "500ms"]) == 7
    assert "127.0.0.1:1: unreachable" in capsys.readouterr().out
