"""Training speed: edgesnn's JAX trainer against snnTorch and Norse on identical workloads, in one run.

Workloads (batch 32, 2 % input spikes, LIF tau 20 ms at 1 ms, LI read-out, fast-sigmoid surrogate,
cross-entropy of the read-out's time mean, Adam): 700-256-20 at T = 100 and T = 1000, 700-512-512-20
at T = 250, 700-256 recurrent-20 at T = 250. Each framework runs in its own process (the peers in
``tools/bench/.venv-peers``: torch 2.13.0 from this machine's disk, snntorch 1.0.0, norse 1.1.0, made on
first use), the processes interleaved over ``--repeats``; the figure is the median of the per-process
median step times. ``--threads 1`` pins every framework to one thread (XLA flags for JAX,
``torch.set_num_threads`` for torch); ``--threads 0`` leaves each its default. edgesnn's worker keeps
freed memory as ``python -m tools.train`` does (tools.train.allocator); ``--same-allocator`` gives the
peers' processes the same glibc setting.

    python tools/bench/train.py [--repeats 3] [--threads 1] [--workloads A B C D] [--frameworks ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edgesnn.cli import HelpFormatter  # noqa: E402

WORKLOADS = {
    "A": {"sizes": [700, 256, 20], "T": 100, "batch": 32, "recurrent": False},
    "B": {"sizes": [700, 256, 20], "T": 1000, "batch": 32, "recurrent": False},
    "C": {"sizes": [700, 512, 512, 20], "T": 250, "batch": 32, "recurrent": False},
    "D": {"sizes": [700, 256, 20], "T": 250, "batch": 32, "recurrent": True},
}
PEERS = ROOT / "tools" / "bench" / ".venv-peers"
PEER_REQUIREMENTS = ["torch==2.13.0", "snntorch==1.0.0", "norse==1.1.0", "numpy==2.4.6"]
ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def peer_python() -> Path:
    """The peers' interpreter, its environment made on first use (torch from disk, the rest from PyPI)."""
    stamp = PEERS / ".requirements"
    want = "\n".join(PEER_REQUIREMENTS)
    if not stamp.exists() or stamp.read_text() != want:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEERS)], check=True)
        py = PEERS / "bin" / "python"
        subprocess.run([str(py), "-m", "pip", "install", "-qq", *PEER_REQUIREMENTS], check=True)
        stamp.write_text(want)
    return PEERS / "bin" / "python"


def edgesnn_worker(workload: dict, steps: int, warmup: int) -> dict:
    """The edgesnn side, in this (worker) process: tools.train.Trainer on the same network and batch."""
    import jax
    import numpy as np

    from tools.train import Trainer, config_from_dict
    from tools.train.allocator import keep_freed_memory

    kept = keep_freed_memory()  # as python -m tools.train does, before the first computation
    sizes = workload["sizes"]
    cfg = config_from_dict({
        "dt_s": 1e-3, "method": "zoh",
        "model": {"kind": "recurrent" if workload["recurrent"] else "feedforward", "neuron": "lif",
                  "hidden": sizes[1:-1], "tau_mem_s": 0.02, "tau_out_s": 0.02, "tau_jitter": 0.0,
                  "reset_mode": "subtract", "weight_scale": 1.0, "readout_scale": 1.0},
        "surrogate": {"kind": "fast_sigmoid", "scale": 10.0},
        "loss": {"readout": "mean"},
        "optimizer": {"lr": 1e-3, "schedule": "constant", "clip_norm": None},
    })  # fmt: skip
    rng = np.random.default_rng(0)
    x = (rng.random((workload["batch"], workload["T"], sizes[0])) < workload.get("rate", 0.02)).astype(np.float32)
    y = rng.integers(0, sizes[-1], workload["batch"])
    trainer = Trainer(cfg, input_shape=(sizes[0],), n_classes=sizes[-1], total_steps=10**6)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    trainer.step(x, y)
    first_s = time.perf_counter() - t0
    for _ in range(warmup - 1):
        trainer.step(x, y)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        trainer.step(x, y)  # float() of the loss waits for the step
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"framework": "edgesnn", "version": jax.__version__, "steps_per_s": 1 / med,
            "sample_steps_per_s": workload["batch"] * workload["T"] / med, "first_step_s": first_s,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            # what training adds on top of the process with its batch in memory (compilation included)
            "rss_before_training_mib": rss_before, "input_mib": x.nbytes / 2**20,
            "keeps_freed_memory": kept}  # fmt: skip


#: glibc's settings for tools.train.allocator.keep_freed_memory, as environment variables (for the peers)
KEPT_MEMORY_ENV = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}


def measure(
    framework: str, workload: dict, steps: int, warmup: int, threads: int, same_allocator: bool = False
) -> dict:
    """One process of one framework on one workload (``same_allocator``: the peers keep freed memory too)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if same_allocator and framework != "edgesnn":
        env.update(KEPT_MEMORY_ENV)
    if framework == "edgesnn":
        if threads == 1:
            env["XLA_FLAGS"] = ONE_THREAD
        argv = [sys.executable, __file__, "--worker", json.dumps(workload), "--steps", str(steps),
                "--warmup", str(warmup)]  # fmt: skip
    else:
        argv = [str(peer_python()), str(ROOT / "tools" / "bench" / "train_peers.py"), framework,
                json.dumps(workload), "--steps", str(steps), "--warmup", str(warmup),
                "--threads", str(threads or os.cpu_count())]  # fmt: skip
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode:
        raise SystemExit(f"{framework} failed on {workload}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    """Print the figures as JSON."""
    ap = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS), default=sorted(WORKLOADS))
    ap.add_argument("--frameworks", nargs="+", default=["edgesnn", "snntorch", "norse"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per process")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (the first compiles)")
    ap.add_argument("--threads", type=int, default=1, help="threads per framework (0: each one's default)")
    ap.add_argument(
        "--same-allocator",
        action="store_true",
        help="run the peers with the allocator setting edgesnn's trainer uses (glibc keeps freed memory)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(edgesnn_worker(json.loads(args.worker), args.steps, args.warmup)))
        return 0
    report: dict = {"threads": args.threads or "default", "cpus": os.cpu_count(), "repeats": args.repeats,
                    "steps": args.steps, "peers_keep_freed_memory": args.same_allocator,
                    "workloads": {}}  # fmt: skip
    for name in args.workloads:
        w = WORKLOADS[name]
        runs: dict[str, list[dict]] = {fw: [] for fw in args.frameworks}
        for _ in range(args.repeats):
            for fw in args.frameworks:  # interleaved, so drift in the machine's load hits all alike
                runs[fw].append(measure(fw, w, args.steps, args.warmup, args.threads, args.same_allocator))
        row: dict = {"workload": w}
        for fw, rs in runs.items():
            row[fw] = {"steps_per_s": statistics.median(r["steps_per_s"] for r in rs),
                       "sample_steps_per_s": statistics.median(r["sample_steps_per_s"] for r in rs),
                       "first_step_s": statistics.median(r["first_step_s"] for r in rs),
                       "peak_rss_mib": max(r["peak_rss_mib"] for r in rs), "version": rs[0]["version"]}  # fmt: skip
            if "input_mib" in rs[0]:
                row[fw]["input_mib"] = rs[0]["input_mib"]
                row[fw]["added_by_training_mib"] = max(r["peak_rss_mib"] - r["rss_before_training_mib"] for r in rs)
        if "edgesnn" in runs:
            for fw in runs:
                if fw != "edgesnn":
                    row[f"edgesnn_vs_{fw}"] = row["edgesnn"]["steps_per_s"] / row[fw]["steps_per_s"]
        report["workloads"][name] = row
        print(json.dumps({name: row}), file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
