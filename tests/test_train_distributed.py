"""Data-parallel training: two processes on this machine reach the parameters one process reaches."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import msgpack
import numpy as np
import pytest

pytest.importorskip("jax")

from edgesnn.errors import OptionError  # noqa: E402
from tools.train.distributed import ENV, Cluster, DataParallel, cluster_from  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tools" / "train" / "configs" / "synthetic_recurrent_adlif.json"
SMALL = ["--set", "epochs=2", "--set", "data/n_train=128", "--set", "data/n_val=64", "--set", "data/n_test=64",
         "--quiet"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(out: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "tools.train", str(CONFIG), "--out", str(out), *SMALL, *extra]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _params(folder: Path) -> dict[str, np.ndarray]:
    record = msgpack.unpackb((folder / "checkpoint.msgpack").read_bytes(), raw=False)
    return {k: np.frombuffer(v["data"], v["dtype"]).reshape(v["shape"]) for k, v in record["params"].items()}


@pytest.mark.slow
def test_two_processes_reach_the_parameters_of_one_on_the_same_global_batch(tmp_path):
    one = _train(tmp_path / "one")
    port = _free_port()
    base = {**os.environ, ENV["coordinator"]: f"127.0.0.1:{port}", ENV["num_processes"]: "2"}
    # process 0 is told by flags, process 1 by the environment alone
    procs = [
        _train(tmp_path / "two", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "0"),
        _train(tmp_path / "two", env={**base, ENV["process_id"]: "1"}),
    ]
    outs = [p.communicate(timeout=300) for p in (one, *procs)]
    for p, (_, err) in zip((one, *procs), outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    summaries = [json.loads(out) for out, _ in outs]
    assert [s["processes"] for s in summaries] == [1, 2, 2]
    assert summaries[1]["test_accuracy"] == summaries[0]["test_accuracy"]
    want, got = _params(tmp_path / "one"), _params(tmp_path / "two")
    assert want.keys() == got.keys()
    for key in want:  # the same sums in another order: float32 rounding apart
        np.testing.assert_allclose(got[key], want[key], rtol=2e-4, atol=2e-5, err_msg=key)
    assert (tmp_path / "two" / "model.esnn").exists() and (tmp_path / "two" / "summary.json").exists()


def test_the_cluster_comes_from_flags_else_the_environment():
    assert cluster_from(None, None, None, env={}) is None
    env = {ENV["coordinator"]: "10.0.0.1:1234", ENV["num_processes"]: "4", ENV["process_id"]: "3"}
    assert cluster_from(None, None, None, env=env) == Cluster("10.0.0.1:1234", 4, 3)
    assert cluster_from(None, None, 0, env=env) == Cluster("10.0.0.1:1234", 4, 0)  # a flag wins
    assert cluster_from("auto", None, None, env={}) == Cluster("auto")


@pytest.mark.parametrize(
    ("args", "path"),
    [(("localhost", 2, 0), "--coordinator"), (("h:1", None, 0), "--num-processes"), (("h:1", 2, 2), "--process-id"),
     (("h:1", 0, 0), "--num-processes")],
)  # fmt: skip
def test_cluster_errors_name_the_flag(args, path):
    with pytest.raises(OptionError, match=path):
        Cluster(*args)
    with pytest.raises(OptionError, match=ENV["num_processes"]):
        cluster_from("h:1", None, 0, env={ENV["num_processes"]: "two"})


def test_one_process_passes_everything_through():
    dp = DataParallel()
    idx = np.arange(8)
    assert dp.count == 1 and dp.writer and dp.shard(idx) is idx and dp.batch(idx, 8) is idx
    tree = {"w": np.ones(3)}
    assert dp.replicate(tree) is tree and dp.local(tree) is tree
    dp.check_batch(7)
