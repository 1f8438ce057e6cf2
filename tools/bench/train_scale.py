"""Data-parallel scaling of ``python -m tools.train``: one process against N on this machine, same global batch.

Each configuration trains the same run (synthetic recurrent adaptive LIF by default) and reports the
trainer's steady throughput (epochs after the first, which holds XLA compilation); median of
``--repeats``. ``threads=1`` pins XLA to one thread per process, so N processes on N cores is the
fair comparison with one process on one core; the default-threads single process is measured too.

    python tools/bench/train_scale.py [--processes 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edgesnn.cli import HelpFormatter  # noqa: E402

CONFIG = ROOT / "tools" / "train" / "configs" / "synthetic_recurrent_adlif.json"
ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(processes: int, one_thread: bool, sets: list[str]) -> float:
    """Steady samples/s of one training run over ``processes`` processes."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if one_thread:
        env["XLA_FLAGS"] = ONE_THREAD
    with tempfile.TemporaryDirectory() as out:
        argv = [sys.executable, "-m", "tools.train", str(CONFIG), "--out", out, "--quiet", *sets]
        if processes > 1:
            argv += ["--coordinator", f"127.0.0.1:{_port()}", "--num-processes", str(processes)]
            procs = [subprocess.Popen([*argv, "--process-id", str(i)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for i in range(processes)]  # fmt: skip
        else:
            procs = [
                subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            ]
        outs = [p.communicate(timeout=1800) for p in procs]
        for p, (_, err) in zip(procs, outs, strict=True):
            if p.returncode:
                raise SystemExit(f"training failed: {err[-2000:]}")
        return float(json.loads(outs[0][0])["steady_throughput_samples_per_s"])


def main() -> int:
    """Print the figures as JSON."""
    ap = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=2, help="processes of the data-parallel run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", help="configuration overrides (tools.train --set)")
    args = ap.parse_args()
    sets = ["--set", "epochs=4", "--set", "data/n_train=1024", "--set", "batch_size=64", "--set", "model/hidden=[128]"]
    for item in args.set or ():
        sets += ["--set", item]
    rows = {}
    for name, procs, pinned in (("1 process, default threads", 1, False), ("1 process, 1 thread", 1, True),
                                (f"{args.processes} processes, 1 thread each", args.processes, True)):  # fmt: skip
        times = [run(procs, pinned, sets) for _ in range(args.repeats)]
        rows[name] = {"samples_per_s_median": statistics.median(times), "samples_per_s": times}
    base = rows["1 process, 1 thread"]["samples_per_s_median"]
    report = {
        "config": str(CONFIG.relative_to(ROOT)),
        "overrides": sets[1::2],
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "runs": rows,
        "scaling_vs_one_thread": rows[f"{args.processes} processes, 1 thread each"]["samples_per_s_median"] / base,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
