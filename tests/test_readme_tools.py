"""Every command of the README's tools/ sections runs as written, in order, from a fresh folder.

The full-size runs take hours, so each command gets flags appended that shrink it (argparse keeps the
last value of a repeated option, so ``--size full ... --size small`` makes the small set); every other
word of the command is the README's. A command without an entry in ``SHRINK`` fails the test, so a
new README command cannot go untested. The folder holds only a link to the checkout's ``tools`` (the
configuration paths are written relative to the checkout, as the README runs them).
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Flags appended to each README command (matched by its first words) to make it a small run.
SHRINK: dict[str, list[str]] = {
    "python -m tools.datasets.keywords": ["--size", "small", "--set", "speakers=[2,2,3]", "--quiet"],
    "python -m tools.train tools/train/configs/keywords_recurrent_adlif.json": [
        "--set", "epochs=1", "--set", "batch_size=16", "--set", "model/hidden=[16,16]", "--quiet",
    ],
    "python -m tools.eval.timeres": [
        "--epochs", "1", "--batch-size", "16", "--kinds", "lif", "--limit", "8", "--quiet",
    ],
    "python -m tools.eval.keywords": [
        "--epochs", "1", "--batch-size", "16", "--limit", "8", "--quiet",
    ],
    "python -m tools.datasets.glyphs": ["--size", "small", "--quiet"],
    "python -m tools.metatrain": [
        "--set", "features/train/epochs=1", "--set", "features/train/batch_size=4",
        "--set", "features/train/model/hidden=[32,16]",
        "--set", "features/meta_iterations=0", "--set", "meta/iterations=2", "--set", "meta/val_episodes=2",
        "--set", "meta/t_epoch_grid=[10]", "--set", "episodes/n_way=3", "--set", "episodes/k_shot=[1]",
        "--set", "episodes/n_query=1", "--quiet",
    ],
    "python -m tools.eval.fewshot": ["--episodes", "3", "--shots", "1", "--n-query", "1", "--forget-repeats", "1",
                                     "--quiet"],
    "python -m tools.datasets.detection": ["--size", "tiny", "--quiet"],
    "python -m tools.train_detect": ["--steps", "2", "--batch", "1", "--quiet"],
    "python -m tools.eval.detect": [],
    "python tools/bench/detect.py": ["--seconds", "0.2", "--repeats", "1"],
    ".venv/bin/python tools/bench/engine.py": ["--quick", "--repeats", "1"],
}  # fmt: skip


def section_commands(heading: str, *, comments: bool = False) -> list[str]:
    """The command lines of every sh block in the README section ``heading`` (comments removed unless asked)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    body = re.split(r"\n## ", text.split(f"\n## {heading}\n", 1)[1], maxsplit=1)[0]
    lines = [
        (line if comments else line.split("  #", 1)[0]).strip()
        for block in re.findall(r"```sh\n(.*?)```", body, flags=re.S)
        for line in block.splitlines()
    ]
    return [line for line in lines if line and not line.startswith("#")]


def run_as_written(line: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run one README line with its shrinking flags; ``python`` and ``.venv/bin/python`` are this interpreter."""
    (prefix,) = [p for p in SHRINK if line == p or line.startswith(p + " ")] or [None]
    assert prefix is not None, f"no SHRINK entry for the README command {line!r}"
    argv = shlex.split(line) + SHRINK[prefix]
    argv[0] = sys.executable
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # tools is found as the venv finds it
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{line}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture
def checkout_like(tmp_path):
    (tmp_path / "tools").symlink_to(ROOT / "tools", target_is_directory=True)
    return tmp_path


@pytest.mark.slow
def test_the_training_section_runs_as_written(checkout_like):
    pytest.importorskip("jax")
    commands = section_commands("Training and time-resolution adaptation (tools/)")
    assert len(commands) == 5
    for line in commands:
        run_as_written(line, checkout_like)
    assert (checkout_like / "data/keywords/test.npz").exists()
    assert (checkout_like / "runs/adlif/model.esnn").exists()
    assert {"timeres.md", "timeres.json", "timeres.png"} <= {
        p.name for p in (checkout_like / "results/timeres").iterdir()
    }


@pytest.mark.slow
def test_the_learning_section_runs_as_written(checkout_like):
    pytest.importorskip("jax")
    commands = section_commands("Learning new classes on the device (tools/metatrain, tools/eval/fewshot)")
    assert len(commands) == 4
    # The keyword meta-training reads the keyword set the training section generates.
    run_as_written("python -m tools.datasets.keywords --out data/keywords", checkout_like)
    for line in commands:
        run_as_written(line, checkout_like)
    for run in ("meta_keywords", "meta_glyphs"):
        assert (checkout_like / "runs" / run / "model.esnn").exists()
    assert (checkout_like / "results/fewshot/fewshot.json").exists()


@pytest.mark.slow
def test_the_detection_section_runs_as_written(checkout_like):
    pytest.importorskip("jax")
    pytest.importorskip("onnx")
    commands = section_commands("Event-camera object detection")
    assert len(commands) == 7
    for line in commands:
        if line.startswith("python -m tools.eval.detect") and "snn.esnn" in line:
            # "also snn, ann, ...": the README's comment on the training line makes the other two.
            for v in ("snn", "ann"):
                run_as_written(f"python -m tools.train_detect --data data/detect --variant {v} --out {v}.esnn",
                               checkout_like)  # fmt: skip
        run_as_written(line, checkout_like)
    for name in ("hybrid", "hybrid-noattn", "hybrid-nogate", "snn", "ann"):
        assert (checkout_like / f"{name}.esnn").exists()


@pytest.mark.slow
def test_the_benchmark_section_runs_as_written(checkout_like):
    (line,) = section_commands("Benchmark", comments=True)
    make, alternative = (part.strip() for part in line.split("# or:", 1))
    assert make == "make bench"
    dry = subprocess.run(["make", "-n", "bench"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "tools/bench/engine.py" in dry and "tools/bench/events.py" in dry
    proc = run_as_written(alternative, checkout_like)
    assert "W1" in proc.stdout


def test_tools_run_from_any_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-m", "tools.train", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "--set KEY=VALUE" in proc.stdout


def test_every_shrunk_command_is_still_in_the_readme():
    written = [
        line
        for heading in (
            "Training and time-resolution adaptation (tools/)",
            "Learning new classes on the device (tools/metatrain, tools/eval/fewshot)",
            "Event-camera object detection",
        )
        for line in section_commands(heading)
    ] + [section_commands("Benchmark", comments=True)[0].split("# or:", 1)[1].strip()]
    for prefix in SHRINK:
        assert any(line == prefix or line.startswith(prefix + " ") for line in written), prefix


SCALE_OUT = "Training from Python, and on many processes (tools/train)"


def test_the_trainer_snippet_runs_as_written(tmp_path, monkeypatch):
    pytest.importorskip("jax")
    text = (ROOT / "README.md").read_text(encoding="utf-8").split(f"\n## {SCALE_OUT}\n", 1)[1].split("\n## ")[0]
    trainer, checkpointed, sparse = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(trainer, "README.md", "exec"), scope)  # noqa: S102
    assert scope["model"].labels == ("a", "b", "c") and scope["trainer"].steps_done == 20
    scope = {}
    exec(compile(checkpointed, "README.md", "exec"), scope)  # noqa: S102
    assert scope["trainer"].steps_done == 1 and scope["trainer"].net.checkpointing.scheme == "double"
    scope = {}
    exec(compile(sparse, "README.md", "exec"), scope)  # noqa: S102
    assert scope["trainer"].steps_done == 1 and scope["trainer"].net.sparse.max_activity == 0.2


@pytest.mark.slow
def test_the_two_host_commands_run_as_two_processes_here(checkout_like):
    pytest.importorskip("jax")
    import socket

    commands = section_commands(SCALE_OUT)
    assert len(commands) == 2 and all("--coordinator hostA:8476" in c for c in commands)
    run_as_written("python -m tools.datasets.keywords --out data/keywords", checkout_like)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    shrink = ["--set", "epochs=1", "--set", "batch_size=8", "--set", "model/hidden=[16]", "--quiet"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    procs = [
        subprocess.Popen(
            [sys.executable, *shlex.split(line.replace("hostA:8476", f"127.0.0.1:{port}"))[1:], *shrink],
            cwd=checkout_like, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for line in commands
    ]  # fmt: skip
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    assert '"processes": 2' in outs[0][0]
    assert (checkout_like / "runs/lif/model.esnn").exists()
