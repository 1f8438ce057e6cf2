"""Training memory and time against sequence length for every checkpointing scheme (issue 20).

Each (scheme, T) runs in its own process: it builds the network, compiles one training step
(gradient and Adam update, tools.train.make_steps), runs it once, then resets the process's
peak-RSS counter and times ``--repeats`` steps. Reported per point: XLA's buffer assignment of
the compiled step (``memory_analysis().temp_size_in_bytes``, the memory an accelerator would
need: "local" memory), the peak RSS the steps added (everything, the host store of the remote
schemes included), the median time per sample-step, and the planner's prediction
(tools.train.memplan) beside them. The headline reruns plain BPTT at ``--base-steps`` and double
checkpointing at ten times that length with the planner's chunks for plain BPTT's local memory,
and compares their measured memory and time per sample-step.

The sparse section (``--activities``) times one training step of the 700-512-512-20 feed-forward
LIF network at batch 32 and T = ``--sparse-steps`` three ways, at each target activity: XLA's dense
products (plain BPTT as written in JAX), the zero-skipping spike kernels (model.native_kernels), and
sparse BPTT (train.sparse: id buffers of ``--headroom`` times the activity plus 2 % of the layer). The activity is set
by scaling each layer's initial weights until its mean spike rate per step is the target (input
spikes drawn at the same rate); the measured rates, the second-threshold fraction and every
buffer's tally (spikes and gradient entries seen and dropped) are reported beside the times.

    python tools/bench/train_memory.py [--steps 250 500 1000 2000] [--batch 16] [--repeats 3]
        [--base-steps 250] [--out results/train_memory.json] [--plot results/train_memory.png]
        [--activities 0.01 0.02 0.05 0.1] [--sparse-steps 100] [--headroom 3] [--sparse-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tools` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS"):
    os.environ.setdefault(_var, "1" if _var != "XLA_FLAGS" else "--xla_cpu_multi_thread_eigen=false")

SCHEMES = ("none", "standard", "hierarchical", "remote", "double")
MIB = 1 << 20
N_IN, HIDDEN, CLASSES, DENSITY = 700, 256, 20, 0.02
NATIVE = os.environ.get("EDGESNN_NATIVE", "1") == "1"  # 0: XLA's dense products instead of the spike kernels


def _config(checkpointing: dict[str, Any]) -> dict[str, Any]:
    """The 700-256 recurrent LIF-20 network of the trainer benchmark (workload D), with a scheme."""
    model = {"kind": "recurrent", "neuron": "lif", "hidden": [HIDDEN], "weight_scale": 3.0, "native_kernels": NATIVE}
    return {"model": model, "loss": {"readout": "mean"}, "train": {"checkpointing": checkpointing}}


def _status(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return float(line.split()[1]) * 1024
    return float("nan")


def child(checkpointing: dict[str, Any], steps: int, batch: int, repeats: int) -> dict[str, Any]:
    """Measure one (scheme, T) in this process; return its JSON entry."""
    import jax
    import numpy as np

    from tools.train import config_from_dict
    from tools.train.data import take_batch
    from tools.train.models import build_network, forward, init_params
    from tools.train.surrogate import make_spike_fn
    from tools.train.trainer import make_optimizer, make_steps

    cfg = config_from_dict(_config(checkpointing))
    net = build_network(cfg, (N_IN,), CLASSES)
    params = init_params(net, cfg, jax.random.key(0))
    opt = make_optimizer(cfg.optimizer, 1000, 1)
    opt_state = opt.init(params)
    fns = make_steps(net, cfg.surrogate, cfg.loss, opt)
    rng = np.random.default_rng(1)
    x = (rng.random((batch, steps, N_IN)) < DENSITY).astype(np.float32)
    x = take_batch(x, np.arange(batch), time_major=fns.time_major)
    y = rng.integers(0, CLASSES, batch)
    key = jax.random.key(2)
    compiled = fns.train.lower(params, opt_state, x, y, key).compile()
    temp = float(compiled.memory_analysis().temp_size_in_bytes)
    spike = make_spike_fn(cfg.surrogate.kind, cfg.surrogate.scale)

    def loss(p, x):  # type: ignore[no-untyped-def]
        return jax.numpy.sum(forward(net, spike, p, x if fns.time_major else jax.numpy.swapaxes(x, 0, 1))[0])

    gradient = float(jax.jit(jax.grad(loss)).lower(params, x).compile().memory_analysis().temp_size_in_bytes)
    jax.block_until_ready(fns.train(params, opt_state, x, y, key))  # warm: first run allocates pools
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak RSS to the current RSS (Linux)
    base = _status("VmRSS")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fns.train(params, opt_state, x, y, key)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t0)
    peak = _status("VmHWM") - base
    return {
        "scheme": checkpointing["scheme"], "chunks": list(checkpointing.get("chunks", [])), "steps": steps,
        "batch": batch, "xla_step_mib": round(temp / MIB, 3), "xla_gradient_mib": round(gradient / MIB, 3),
        "rss_added_mib": round(peak / MIB, 3),
        "us_per_sample_step": round(statistics.median(times) / (steps * batch) * 1e6, 3),
    }  # fmt: skip


SPARSE_HIDDEN, SPARSE_BATCH = (512, 512), 32
VARIANTS = ("dense", "native", "sparse")


def _sparse_config(variant: str, activity: float, headroom: float) -> dict[str, Any]:
    model = {"kind": "feedforward", "neuron": "lif", "hidden": list(SPARSE_HIDDEN),
             "native_kernels": variant != "dense"}  # fmt: skip
    # the buffers hold the spikes and the second threshold's list; a floor of 2 % of the layer keeps the
    # per-step spread of sparse layers (a few ids either way) from overflowing them
    sparse = {"enabled": variant == "sparse", "max_activity": min(1.0, headroom * activity + 0.02)}
    return {"model": model, "loss": {"readout": "mean"}, "train": {"sparse": sparse}}


def _calibrated(net, params, x, activity: float):  # type: ignore[no-untyped-def]
    """``params`` with each hidden layer's weights scaled so that its mean spike rate per step is ``activity``."""
    import jax
    import jax.numpy as jnp

    from tools.train.models import forward
    from tools.train.surrogate import make_spike_fn

    spike = make_spike_fn()

    @jax.jit
    def rates(p):  # type: ignore[no-untyped-def]
        _, spikes = forward(net, spike, p, jnp.swapaxes(x, 0, 1), record=True)
        return jnp.stack([jnp.mean(z) for z in spikes.values()])

    scales = [1.0] * len(net.layers)

    def scaled(s):  # type: ignore[no-untyped-def]
        layers = [{**layer, "w": layer["w"] * k} for layer, k in zip(params["layers"], s, strict=True)]
        return {**params, "layers": layers}

    for i in range(len(net.layers)):  # layer by layer: a layer's rate depends on the ones before it
        lo, hi = 0.01, 100.0
        for _ in range(20):  # bisection in log scale
            mid = (lo * hi) ** 0.5
            scales[i] = mid
            if float(rates(scaled(scales))[i]) < activity:
                lo = mid
            else:
                hi = mid
        scales[i] = (lo * hi) ** 0.5
    return scaled(scales), [float(r) for r in rates(scaled(scales))]


def sparse_child(activity: float, steps: int, repeats: int, headroom: float, keep: bool) -> dict[str, Any]:
    """Time one training step of every variant at ``activity``, in this process.

    ``keep``: glibc keeps freed memory (tools.train.allocator, as ``python -m tools.train`` runs).
    """
    import jax
    import numpy as np

    from tools.train.allocator import keep_freed_memory

    kept = keep_freed_memory() if keep else False

    from tools.train import config_from_dict
    from tools.train.models import build_network, init_params
    from tools.train.trainer import TALLY_FIELDS, make_optimizer, make_steps

    rng = np.random.default_rng(1)
    x = (rng.random((SPARSE_BATCH, steps, N_IN)) < activity).astype(np.float32)
    y = rng.integers(0, CLASSES, SPARSE_BATCH)
    key = jax.random.key(2)
    out: dict[str, Any] = {"activity_target": activity, "steps": steps, "batch": SPARSE_BATCH,
                           "allocator": "keeps freed memory" if kept else "glibc defaults"}  # fmt: skip
    params = None
    for variant in VARIANTS:
        cfg = config_from_dict(_sparse_config(variant, activity, headroom))
        net = build_network(cfg, (N_IN,), CLASSES)
        if params is None:
            params, measured = _calibrated(net, init_params(net, cfg, jax.random.key(0)), x, activity)
            out["activity_measured"] = {
                "input": float(x.mean()),
                **{s.name: round(r, 5) for s, r in zip(net.layers, measured, strict=True)},
            }
        opt = make_optimizer(cfg.optimizer, 1000, 1)
        opt_state = opt.init(params)
        fns = make_steps(net, cfg.surrogate, cfg.loss, opt)
        result = jax.block_until_ready(fns.train(params, opt_state, x, y, key))  # compile and warm
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fns.train(params, opt_state, x, y, key))
            times.append(time.perf_counter() - t0)
        out[variant] = {"us_per_sample_step": round(statistics.median(times) / (steps * SPARSE_BATCH) * 1e6, 3),
                        "step_ms": round(statistics.median(times) * 1e3, 2)}  # fmt: skip
        if variant == "sparse":
            out["capacity_fraction"] = cfg.train.sparse.max_activity
            out["buffers"] = {name: dict(zip(TALLY_FIELDS, map(int, np.asarray(t)), strict=True))
                              for name, t in result[4].items()}  # fmt: skip
    out["dense_over_sparse"] = round(out["dense"]["us_per_sample_step"] / out["sparse"]["us_per_sample_step"], 3)
    out["native_over_sparse"] = round(out["native"]["us_per_sample_step"] / out["sparse"]["us_per_sample_step"], 3)
    return out


def sparse_section(activities: list[float], steps: int, repeats: int, headroom: float) -> dict[str, Any]:
    """Sparse against dense training time at each activity, with the trainer's allocator setting and
    with glibc's defaults (one process per activity and setting)."""
    points = []
    for keep in (True, False):
        for a in activities:
            cmd = [sys.executable, __file__, "--sparse-child", str(a), "--sparse-steps", str(steps), "--repeats",
                   str(repeats), "--headroom", str(headroom)] + ([] if keep else ["--glibc-defaults"])  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                points.append({"activity_target": a, "error": done.stderr.strip().splitlines()[-1:]})
            else:
                points.append(json.loads(done.stdout.strip().splitlines()[-1]))
    low = [p["dense_over_sparse"] for p in points if "error" not in p and p["activity_target"] <= 0.05
           and p["allocator"] == "keeps freed memory"]  # fmt: skip
    return {
        "network": f"{N_IN}-{SPARSE_HIDDEN[0]}-{SPARSE_HIDDEN[1]}-{CLASSES} feed-forward LIF, batch {SPARSE_BATCH}, "
                   f"T {steps}, one thread",
        "variants": {"dense": "XLA's dense products (native_kernels false)",
                     "native": "zero-skipping spike kernels (native_kernels true)",
                     "sparse": f"sparse BPTT, buffers of {headroom} x the activity + 2 % of the layer"},
        "points": points,
        "min_speedup_at_or_below_5_percent": min(low) if low else None,  # as the trainer runs (kept memory)
        "meets_2x_target": bool(low) and min(low) >= 2.0,
    }  # fmt: skip


def _run_child(checkpointing: dict[str, Any], steps: int, batch: int, repeats: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", json.dumps(checkpointing), "--batch", str(batch),
           "--repeats", str(repeats), "--steps", str(steps)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"scheme": checkpointing["scheme"], "steps": steps, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _network():  # type: ignore[no-untyped-def]
    from tools.train import config_from_dict
    from tools.train.models import build_network

    return build_network(config_from_dict(_config({"scheme": "none"})), (N_IN,), CLASSES)


def planned_chunks(model, scheme: str, steps: int, batch: int) -> list[int]:  # type: ignore[no-untyped-def]
    """The planner's chunks for ``scheme`` at ``steps`` without a budget."""
    from tools.train import memplan

    return list(memplan.default_chunks(scheme, steps, model))


def headline(base_steps: int, batch: int, repeats: int, model) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Plain BPTT at T against double checkpointing at 10 T, planned for plain BPTT's local memory."""
    from edgesnn.errors import OptionError
    from tools.train import memplan

    plain = _run_child({"scheme": "none"}, base_steps, batch, repeats)
    if "error" in plain:
        return {"plain": plain}
    budget = plain["xla_step_mib"]
    try:
        plan = memplan.choose(10 * base_steps, batch, model, budget * MIB, schemes=["double"])
    except OptionError as exc:  # the planner finds nothing: say so, with its numbers
        return {"plain": plain, "budget_mib": budget, "error": str(exc)}
    double = _run_child({"scheme": "double", "chunks": list(plan.plan.chunks)}, 10 * base_steps, batch, repeats)
    out: dict[str, Any] = {"plain": plain, "double_10x": double, "budget_mib": budget, "plan": plan.to_dict()}
    if "error" not in double:
        out["gradient_memory_ratio"] = round(double["xla_gradient_mib"] / plain["xla_gradient_mib"], 3)
        out["step_memory_ratio"] = round(double["xla_step_mib"] / plain["xla_step_mib"], 3)
        out["time_ratio"] = round(double["us_per_sample_step"] / plain["us_per_sample_step"], 3)
        out["meets_targets"] = out["step_memory_ratio"] <= 1.0 and out["time_ratio"] <= 1.5
    return out


def _plot(points: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_m, ax_t) = plt.subplots(1, 2, figsize=(10, 4))
    for scheme in SCHEMES:
        rows = sorted((p for p in points if p.get("scheme") == scheme and "error" not in p), key=lambda p: p["steps"])
        if not rows:
            continue
        t = [p["steps"] for p in rows]
        (line,) = ax_m.plot(t, [p["xla_step_mib"] for p in rows], "o-", label=f"{scheme} measured")
        ax_m.plot(t, [p["predicted"]["local_mib"] for p in rows], "x--", color=line.get_color(), alpha=0.6)
        ax_t.plot(t, [p["us_per_sample_step"] for p in rows], "o-", color=line.get_color(), label=scheme)
    ax_m.set(xlabel="T (steps)", ylabel="local memory (MiB; x: planner)", xscale="log", yscale="log")
    ax_t.set(xlabel="T (steps)", ylabel="µs per sample-step", xscale="log")
    ax_m.legend(fontsize=7)
    ax_t.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    """Run the sweep and the headline; print (and optionally write) JSON."""
    from edgesnn.cli import HelpFormatter

    ap = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[250, 500, 1000, 2000], help="sequence lengths T")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3, help="timed training steps per point (median)")
    ap.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=SCHEMES)
    ap.add_argument("--base-steps", type=int, default=250, help="T of the headline's plain BPTT (double runs 10 T)")
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--plot", help="draw memory and time against T here (PNG; needs matplotlib)")
    ap.add_argument(
        "--activities",
        type=float,
        nargs="*",
        default=[0.01, 0.02, 0.05, 0.1],
        help="target activities of the sparse section (none: skip it)",
    )
    ap.add_argument("--sparse-steps", type=int, default=100, help="T of the sparse section")
    ap.add_argument("--headroom", type=float, default=3.0, help="sparse buffer capacity / target activity")
    ap.add_argument("--sparse-only", action="store_true", help="run only the sparse section")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--sparse-child", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--glibc-defaults", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child), args.steps[0], args.batch, args.repeats)))
        return 0
    if args.sparse_child is not None:
        print(
            json.dumps(
                sparse_child(args.sparse_child, args.sparse_steps, args.repeats, args.headroom, not args.glibc_defaults)
            )
        )
        return 0
    sparse = None
    if args.activities:
        sparse = sparse_section(args.activities, args.sparse_steps, args.repeats, args.headroom)
    if args.sparse_only:
        text = json.dumps({"benchmark": "sparse against dense BPTT (issue 20)", "sparse": sparse}, indent=2)
        print(text)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text + "\n")
        return 0
    from tools.train import memplan
    from tools.train.models import memory_model
    from tools.train.timeloop import Checkpointing

    model = memory_model(_network(), args.batch)
    points = []
    for scheme in args.schemes:
        for t in args.steps:
            chunks = planned_chunks(model, scheme, t, args.batch)
            point = _run_child({"scheme": scheme, "chunks": chunks} if chunks else {"scheme": scheme}, t,
                               args.batch, args.repeats)  # fmt: skip
            if "error" not in point:
                pred = memplan.predict(Checkpointing(scheme, tuple(chunks)), t, args.batch, model)
                point["predicted"] = pred.to_dict()
                point["prediction_error"] = round(pred.local_bytes / MIB / point["xla_gradient_mib"] - 1.0, 3)
            points.append(point)
    errors = [abs(p["prediction_error"]) for p in points if "prediction_error" in p]
    doc = {
        "benchmark": "training memory and time against T per checkpointing scheme (issue 20)",
        "network": f"{N_IN} -> {HIDDEN} recurrent LIF -> {CLASSES} LI, input density {DENSITY}",
        "batch": args.batch, "repeats": args.repeats, "threads": 1,
        "memory": "xla_gradient_mib: XLA's buffers of the compiled gradient (what the planner is calibrated on"
                  " and predicts); xla_step_mib: the whole training step, gradient and Adam (local memory as it"
                  " runs); rss_added_mib: peak RSS the steps added, host stores of the remote schemes included",
        "points": points,
        "max_prediction_error": round(max(errors), 3) if errors else None,
        "predictions_within_20_percent": bool(errors) and max(errors) <= 0.2,
        "headline": headline(args.base_steps, args.batch, args.repeats, model),
        "sparse": sparse,
    }  # fmt: skip
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    if args.plot:
        _plot(points, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
