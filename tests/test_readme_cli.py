"""Every command of the README's "Command line" block runs as written, on files named as it names them.

The files are made here: ``model.esnn`` is the demo bundle with a learning configuration, ``model.nir``
an snnTorch export, ``rec.raw`` an EVT 3.0 recording at the shipped detector's geometry, and
``detector.esnn`` the shipped detector. ``[...]`` parts are optional and left out; the daemon runs on
a free port instead of 50051.
"""

import json
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import edgesnn
from edgesnn.bundle import write_bundle
from edgesnn.catalog import models_dir
from edgesnn.cli import main
from edgesnn.events._dtype import EVENT_DTYPE
from edgesnn.events.evt3 import write_evt3
from edgesnn.learn import enable_learning

ROOT = Path(__file__).resolve().parents[1]
DEMO = resources.files("edgesnn") / "data" / "demo.esnn"


def readme_commands() -> list[str]:
    """The lines of the sh block under '## Command line', comments and optional [...] parts removed."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Command line", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [re.sub(r"\[[^\]]*\]", "", line.split("  #", 1)[0]).strip() for line in block.splitlines()]
    return [line for line in lines if line]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_bundle(enable_learning(edgesnn.load(DEMO), "lif"), tmp_path / "model.esnn")
    with np.load(resources.files("edgesnn") / "data" / "demo_input.npz") as z:
        spikes = z["spikes"][:300].astype(np.float32)
    np.save(tmp_path / "input.npy", spikes)
    np.savez(tmp_path / "input.npz", spikes=spikes)
    np.save(tmp_path / "wave.npy", spikes[:150])
    shutil.copy(ROOT / "tests" / "data" / "nir" / "snntorch_esnn_if.nir", tmp_path / "model.nir")
    shutil.copy(Path(models_dir()) / "detector.esnn", tmp_path / "detector.esnn")
    rng = np.random.default_rng(0)
    ev = np.zeros(20_000, EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 300_000, len(ev)))
    ev["x"], ev["y"], ev["p"] = (
        rng.integers(0, 304, len(ev)),
        rng.integers(0, 240, len(ev)),
        rng.integers(0, 2, len(ev)),
    )
    write_evt3(tmp_path / "rec.raw", ev, geometry=(304, 240))
    (tmp_path / "srv_models").mkdir()
    shutil.copy(tmp_path / "model.esnn", tmp_path / "srv_models" / "model.esnn")
    return tmp_path


def _daemon(argv: list[str]) -> tuple[subprocess.Popen, int]:
    """Start ``edgesnn serve`` with ``argv`` on a free port; its process and port once it listens."""
    argv = [a for a in argv]
    if "--port" in argv:
        argv[argv.index("--port") + 1] = "0"
    else:
        argv += ["--port", "0"]
    proc = subprocess.Popen([sys.executable, "-m", "edgesnn.cli", *argv], stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    proc.reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True)
    proc.reader.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            entry = json.loads(lines.get(timeout=max(0.1, deadline - time.monotonic())))
        except queue.Empty:
            break
        except json.JSONDecodeError:
            continue
        if entry.get("msg") == "listening":
            return proc, int(entry["port"])
    _stop(proc)
    raise AssertionError(f"edgesnn {' '.join(argv)} did not start listening")


def _stop(proc: subprocess.Popen) -> int:
    """SIGTERM (the daemon drains and exits), then its exit status."""
    proc.terminate()
    code = proc.wait(timeout=30)
    proc.reader.join(timeout=10)
    proc.stderr.close()
    return code


def test_every_command_of_the_readme_runs(workdir, capsys):
    commands = readme_commands()
    assert len(commands) >= 20
    daemon = port = None
    try:
        for line in commands:
            argv = shlex.split(line)
            assert argv[0] == "edgesnn", line
            argv = [a.replace("/srv/models", str(workdir / "srv_models")) for a in argv[1:]]
            if argv[0] == "serve":
                proc, p = _daemon(argv)
                if daemon is None:
                    daemon, port = proc, p  # the first one answers `edgesnn devices`
                else:
                    assert _stop(proc) == 0, line
                continue
            if argv[0] == "devices":
                argv = [a.replace("127.0.0.1:50051", f"127.0.0.1:{port}") for a in argv]
            code = main(argv)
            err = capsys.readouterr().err
            assert code == 0, f"{line}: exit {code}: {err}"
    finally:
        if daemon is not None:
            assert _stop(daemon) == 0
    assert (workdir / "fine.esnn").exists() and (workdir / "exported.nir").exists()
    assert (workdir / "boxes.jsonl").exists() and (workdir / "boxes.gif").exists()
    assert (workdir / "rec.npz").exists() and (workdir / "classes").is_dir()
