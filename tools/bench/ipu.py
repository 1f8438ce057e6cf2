"""IPU bridge figures: the cycle model on the paper's SHD configurations, training plans, simulator speed.

``python -m tools.bench.ipu [--out ipu.json] [--plot tile_memory.png] [--keywords DIR] [--repeats 3]``

- ``shd``: Finkbeiner et al. (AAAI-24) benchmark the multi-layer SHD network at batch 48 with 2-5
  hidden layers and buffer capacities of 1 %, 5 % and 10 % of each layer (``jrfinkbeiner/
  graphcore_snn`` benchmarking_script.py: 1,471 x 2 hidden neurons split over the layers, 96 input
  ids). For each, the cycle model's forward step and plain-BPTT training step (T = 100) with sparse
  ids at that activity, and the same model with the dense exchange; the paper's own figures beside
  (what its abstract states; its tables could not be read, and it compares against an A100, which
  this model does not simulate, so none of it can be checked without the hardware).
- ``train``: tile memory of the SHD 3-layer network at T = 100 to 10,000 under every scheme, the
  longest sequence each fits, double checkpointing at ten times plain BPTT's longest sequence
  with its predicted time overhead, and the widest 3-layer network each scheme trains at T = 1,000.
- ``models``: W1, W2, W3, the shipped keyword network and the 46,868-neuron network: inference plans,
  and training plans at T = 100, 1,000 and 10,000 under every scheme (least-memory chunks, batch 16).
- ``keywords``: the shipped keyword network over a keyword test split on the simulator against the
  CPU engine in the same run (wall time, median of ``--repeats``; outputs compared element by element).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgesnn.errors import CapacityError
from firmware_bridges.ipu.compiler import CompileOptions, compile_program
from firmware_bridges.ipu.cycles import assumed_work, step_cycles
from firmware_bridges.ipu.netspec import NetSpec, dense_stack
from firmware_bridges.ipu.trainplan import TrainOptions, largest_network, longest_sequence, train_plan
from tools.train.schemes import SCHEMES

ROOT = Path(__file__).resolve().parents[2]
PAPER = {
    "source": "Finkbeiner, Gmeinder, Pupilli, Titterton, Neftci, AAAI-24 (arXiv 2311.04386), abstract",
    "claims": ["training throughput 5-10x an A100 GPU", "up to 38x at higher activation sparsity"],
    "per_configuration": None,
    "note": "the abstract's figures are IPU (sparse) against A100 (dense); which configuration gives which is not in"
    " the public text read (../shared/research/round2.md section 2); no GPU is modelled here, so these cannot be"
    " checked without hardware. The ratio below is this model's IPU sparse against IPU dense on the same model.",
}


def shd_hidden(layers: int, per_tile: int = 2, classes: int = 20, tiles: int = 1471) -> list[int]:
    """Hidden sizes of the paper's runs on one IPU (benchmarking_script.py: HIDDEN_LAYER_DENSE_SIZES_LAST)."""
    split = tiles * per_tile - math.ceil(classes / per_tile) * per_tile
    return [int(per_tile * (split / layers // per_tile + ((split % (layers * per_tile)) > per_tile * k)))
            for k in range(layers)]  # fmt: skip


def _train_step(spec: NetSpec, opt: CompileOptions, activity: float) -> dict[str, Any]:
    try:
        plan = train_plan(spec, TrainOptions(100, "none", activity=activity), opt)
    except CapacityError as exc:
        return {"fits": False, "why": str(exc)}
    return {"fits": True, "step_s": plan.step_s, "tile_bytes_max": plan.program.max_tile_bytes}


def shd_section() -> list[dict[str, Any]]:
    """Cycle-model predictions for the 12 SHD configurations, sparse and dense."""
    rows = []
    for layers in (2, 3, 4, 5):
        hidden = shd_hidden(layers)
        spec = dense_stack(700, tuple(hidden), 20)
        for activity in (0.01, 0.05, 0.10):
            row: dict[str, Any] = {"hidden_layers": layers, "hidden": hidden, "activity": activity, "batch": 48}
            for exchange in ("sparse", "dense"):
                opt = CompileOptions(max_activity=activity, input_capacity=96, batch=48, exchange=exchange)
                program = compile_program(spec, opt)
                cyc = step_cycles(program, assumed_work(program, activity))
                row[exchange] = {"forward_step_s": float(cyc.seconds_per_step[0]),
                                 "forward_cycles": float(cyc.per_step[0]), "breakdown": cyc.breakdown(),
                                 "tiles_used": program.tiles_used, "tile_bytes_max": program.max_tile_bytes,
                                 "train_step_T100": _train_step(spec, opt, activity)}  # fmt: skip
            row["dense_over_sparse_forward"] = row["dense"]["forward_step_s"] / row["sparse"]["forward_step_s"]
            s, d = row["sparse"]["train_step_T100"], row["dense"]["train_step_T100"]
            row["dense_over_sparse_train"] = d["step_s"] / s["step_s"] if s["fits"] and d["fits"] else None
            rows.append(row)
    return rows


def train_section(plot: str | None) -> dict[str, Any]:
    """Tile memory against T per scheme, longest sequences, double at 10x plain, widest networks."""
    hidden = tuple(shd_hidden(3))
    spec = dense_stack(700, hidden, 20)
    opt = CompileOptions(max_activity=0.05, input_capacity=96, batch=48)
    grid = [100, 200, 500, 1000, 2000, 5000, 10_000]
    memory: dict[str, list[Any]] = {}
    for scheme in SCHEMES:
        memory[scheme] = []
        for t in grid:
            try:
                p = train_plan(spec, TrainOptions(t, scheme, chunks_for="least"), opt)
                memory[scheme].append({"steps": t, "tile_bytes_max": p.program.max_tile_bytes,
                                       "checkpoint_bytes_max": int(p.program.memory["checkpoints"].max()),
                                       "streaming_bytes": p.streaming_bytes, "time_factor": p.time_factor,
                                       "chunks": list(p.checkpointing.chunks)})  # fmt: skip
            except CapacityError as exc:
                memory[scheme].append({"steps": t, "fits": False, "why": str(exc)})
    longest = {s: dict(zip(("steps", "bounded_by"), longest_sequence(spec, s, opt), strict=True)) for s in SCHEMES}
    plain = longest["none"]["steps"]
    double = train_plan(spec, TrainOptions(10 * plain, "double"), opt)
    widest = {}
    for s in SCHEMES:
        n = largest_network(lambda n: dense_stack(700, (n, n, n), 20), TrainOptions(1000, s), opt, limit=50_000)
        widest[s] = {"width_per_layer": n, "hidden_neurons": 3 * n}
    if plot:
        _plot(memory, hidden, opt, plot)
    name = f"700 -> {' -> '.join(map(str, hidden))} LIF -> 20, batch 48, capacity 5 %, 96 input ids"
    return {"network": name, "tile_memory_vs_T (least-memory chunks)": memory,
            "longest_sequence": longest,
            "double_at_10x_plain": {"steps": 10 * plain, "chunks": list(double.checkpointing.chunks),
                                    "tile_bytes_max": double.program.max_tile_bytes,
                                    "time_factor_vs_plain": double.time_factor,
                                    "streaming_bytes": double.streaming_bytes},
            "widest_at_T1000": widest}  # fmt: skip


def _specs() -> dict[str, Any]:
    """W1, W2, W3, the shipped keyword network and the 46,868-neuron one-chip network, as the compiler sees them."""
    import edgesnn
    from edgesnn.engine.plan import compile_plan
    from firmware_bridges.ipu.netspec import from_plan
    from tools.bench.workloads import WORKLOADS

    models = {name: make(np.random.default_rng(1)).model for name, make in WORKLOADS.items()}
    models["keywords"] = edgesnn.load("keywords")
    specs = {n: from_plan(compile_plan(m.graph, m.dt_s, m.method, 1)) for n, m in models.items()}
    specs["wide-46868"] = dense_stack(700, (1464 * 32,), 20)  # the shape of tests/test_ipu_simulator.py's network
    return specs


def models_section(batch: int) -> dict[str, Any]:
    """Inference plans (batch 1) and training plans at T = 100 to 10,000 under every scheme for each model."""
    out: dict[str, Any] = {}
    for name, spec in _specs().items():
        entry: dict[str, Any] = {"neurons": spec.neurons}
        # spike inputs travel as ids (10 % of the input per step); the keyword network's counts as values
        ids = None if name == "keywords" else max(math.ceil(0.1 * n) for n in spec.inputs.values())
        try:
            program = compile_program(spec, CompileOptions(max_activity=0.1))
            cyc = step_cycles(program, assumed_work(program, 0.05))
            entry["inference"] = {"tiles_used": program.tiles_used, "tile_bytes_max": program.max_tile_bytes,
                                  "tile_bytes_mean": round(program.mean_tile_bytes, 1),
                                  "predicted_step_s_at_5pct": float(cyc.seconds_per_step[0])}  # fmt: skip
        except CapacityError as exc:
            entry["inference"] = {"fits": False, "why": str(exc)}
        entry["input_capacity"] = ids
        entry["train"] = {}
        for scheme in SCHEMES:
            row = []
            for t in (100, 1000, 10_000):
                why: dict[str, str] = {}
                for ipus in (1, 2):  # one chip, else two over IPU-Links
                    opt = CompileOptions(max_activity=0.1, batch=batch, input_capacity=ids, ipus=ipus)
                    try:
                        p = train_plan(spec, TrainOptions(t, scheme, chunks_for="least"), opt)
                    except CapacityError as exc:
                        why[f"{ipus}_ipu"] = str(exc)
                        continue
                    row.append({"steps": t, "ipus": p.program.ipus, "tile_bytes_max": p.program.max_tile_bytes,
                                "chunks": list(p.checkpointing.chunks), "streaming_bytes": p.streaming_bytes,
                                "step_s": p.step_s, "time_factor": round(p.time_factor, 3),
                                **({"refused": why} if why else {})})  # fmt: skip
                    break
                else:
                    row.append({"steps": t, "fits": False, "refused": why})
            entry["train"][scheme] = row
        out[name] = entry
    return {"batch": batch, "max_activity": 0.1, "models": out}


def _plot(memory: dict[str, list[Any]], hidden: tuple[int, ...], opt: CompileOptions, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from firmware_bridges.ipu.config import IPUConfig

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for scheme, points in memory.items():
        ok = [p for p in points if p.get("fits", True)]
        ax.plot([p["steps"] for p in ok], [p["tile_bytes_max"] / 1024 for p in ok], marker="o", label=scheme)
    ax.axhline(IPUConfig().tile_memory_bytes / 1024, color="k", ls="--", lw=1, label="tile memory")
    ax.set_xscale("log")
    ax.set_xlabel("sequence length T (steps)")
    ax.set_ylabel("fullest tile (KiB)")
    ax.set_title(f"SHD {len(hidden)} x {hidden[0]} LIF, batch {opt.batch}: sparse BPTT, least-memory chunks",
                 fontsize=9)  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def keywords_section(data: str, repeats: int, limit: int, batch: int) -> dict[str, Any]:
    """The keyword network over a test split in batches of ``batch``: simulator against engine, same run."""
    import edgesnn
    from firmware_bridges.ipu.session import IPUSession
    from tools.datasets.keywords import load_split

    model = edgesnn.load("keywords")
    x, y = load_split(data, "test", dt_s=model.dt_s)
    if limit:
        x, y = x[:limit], y[:limit]
    name = model.outputs[0].name
    chunks = [np.ascontiguousarray(x[k : k + batch].transpose(1, 0, 2)) for k in range(0, len(x), batch)]

    def engine() -> list[np.ndarray]:
        return [model.session(batch=xs.shape[1]).run(xs)[name] for xs in chunks]

    def simulator() -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        sessions = [IPUSession(model, batch=xs.shape[1]) for xs in chunks]
        return [s.run(xs)[name] for s, xs in zip(sessions, chunks, strict=True)], [s.stats() for s in sessions]

    times: dict[str, list[float]] = {"engine": [], "simulator": []}
    for _ in range(repeats):
        t = time.perf_counter()
        want = engine()
        times["engine"].append(time.perf_counter() - t)
        t = time.perf_counter()
        got, stats = simulator()
        times["simulator"].append(time.perf_counter() - t)
    chip_s = sum(st["seconds_per_step_mean"] * st["steps"] for st in stats)
    dropped = {k: sum(st["dropped_spikes"][k] for st in stats) for k in stats[0]["dropped_spikes"]}
    return {"data": data, "samples": int(len(y)), "steps": int(x.shape[1]), "batch": batch,
            "simulator_s": statistics.median(times["simulator"]), "engine_s": statistics.median(times["engine"]),
            "simulator_over_engine": statistics.median(times["simulator"]) / statistics.median(times["engine"]),
            "repeats": repeats, "outputs_equal": all(np.array_equal(g, w) for g, w in zip(got, want, strict=True)),
            "predicted_chip_s_total": chip_s, "dropped_spikes": dropped}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the sections and print (and write) the JSON."""
    ap = argparse.ArgumentParser(prog="python -m tools.bench.ipu", description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--plot", help="draw tile memory against T per scheme here (PNG)")
    ap.add_argument("--keywords", help="folder of a keyword dataset with test.npz (default: data/keywords if it"
                    " exists, else tests/data/keywords)")  # fmt: skip
    ap.add_argument("--limit", type=int, default=0, help="keyword test samples to run (0: all)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats of the keyword runs (median)")
    ap.add_argument("--batch", type=int, default=64, help="keyword samples per session (tile memory bounds it)")
    ap.add_argument("--train-batch", type=int, default=16, help="batch of the models section's training plans")
    ap.add_argument("--sections", nargs="+", default=["shd", "train", "models", "keywords"],
                    choices=("shd", "train", "models", "keywords"))  # fmt: skip
    args = ap.parse_args(argv)
    data = args.keywords or str(ROOT / ("data/keywords" if (ROOT / "data/keywords/test.npz").exists()
                                        else "tests/data/keywords"))  # fmt: skip
    doc: dict[str, Any] = {"benchmark": "IPU bridge (issue 21)", "machine": platform.processor() or platform.machine(),
                           "cpus": os.cpu_count(), "paper": PAPER}  # fmt: skip
    if "shd" in args.sections:
        doc["shd"] = shd_section()
    if "train" in args.sections:
        doc["train"] = train_section(args.plot)
    if "models" in args.sections:
        doc["models"] = models_section(args.train_batch)
    if "keywords" in args.sections:
        doc["keywords"] = keywords_section(data, args.repeats, args.limit, args.batch)
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
