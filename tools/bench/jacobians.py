"""Cross-country elimination on the AlphaGrad tasks and the trainer's neuron cells (issue 25).

For every task (tools.jacobians.tasks) this counts the multiplications and additions of the
forward, reverse, greedy minimal Markowitz and searched (simulated annealing) orders and puts the
published counts beside them (best of forward/reverse/Markowitz, and AlphaGrad's order); only the
tasks rebuilt exactly as published (``exact``: scalar graphs, whose count is the Markowitz degree
in both codes) are comparable. Then it times the Jacobian of a batch of ``--batch`` inputs under
``jax.jit(jax.vmap(...))`` for every order and for ``jax.jacfwd`` and ``jax.jacrev``, in the same
run, as the median of ``--repeats`` calls after one warm-up (compile) call, and checks every
order's batch of Jacobians against ``jax.jacfwd``'s (largest difference relative to its largest entry).

    python tools/bench/jacobians.py [--tasks RoeFlux_1d ...] [--batch 512] [--repeats 50]
        [--iterations 3000] [--cell-size 16] [--out results/jacobians.json]

``--online`` instead compares forward-mode training (tools.train.online) with BPTT on the keyword
set: XLA's buffer assignment of one compiled training step (gradient and Adam update) as T grows,
for both, up to ten times the T at which BPTT's step would fill ``--budget-mib`` (default: the
memory available on this machine), and short training runs of both (accuracy on the test split,
time per sample, the exported bundle) for a feed-forward layer (online is exact there) and a
recurrent one (online is e-prop).

    python tools/bench/jacobians.py --online [--data data/keywords] [--limit 800] [--epochs 4]
        [--hidden 64] [--batch 32] [--out results/jacobians_online.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tools` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from tools.jacobians import graph_of, jacobian, search_order  # noqa: E402
from tools.jacobians.eliminate import eliminate, forward_order, markowitz_order, reverse_order  # noqa: E402
from tools.jacobians.tasks import PUBLISHED, Task, benchmark_tasks, cell_tasks  # noqa: E402

ORDERS = ("forward", "reverse", "markowitz", "search")


def _batched(args: tuple[Any, ...], batch: int, key: jax.Array) -> tuple[Any, ...]:
    """Every input leaf repeated ``batch`` times, each copy moved by up to 1 % (so no two samples are equal)."""
    leaves, tree = jax.tree_util.tree_flatten(args)
    keys = jax.random.split(key, len(leaves))
    out = []
    for k, x in zip(keys, leaves, strict=True):
        x = jnp.asarray(x, jnp.float32)
        noise = jax.random.uniform(k, (batch, *x.shape), jnp.float32, -0.01, 0.01)
        out.append(x[None] * (1.0 + noise))
    return jax.tree_util.tree_unflatten(tree, out)


def _time(fn: Any, args: tuple[Any, ...], repeats: int) -> tuple[dict[str, float], Any]:
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"median_ms": 1e3 * statistics.median(times), "p05_ms": 1e3 * times[len(times) // 20],
            "p95_ms": 1e3 * times[-1 - len(times) // 20], "first_call_s": compile_s}, out  # fmt: skip


def _error(ours: Any, reference: Any) -> float:
    """Largest absolute difference, relative to the largest entry of the reference Jacobian."""
    a, b = jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(reference)
    scale = max(float(jnp.max(jnp.abs(y))) for y in b)
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(a, b, strict=True)) / scale


def run_task(task: Task, *, batch: int, repeats: int, iterations: int) -> dict[str, Any]:
    """Counts per order, the published counts, and the batched run times of every order and of jacfwd/jacrev."""
    graph = graph_of(task.fn, *task.args, argnums=task.argnums)
    t0 = time.perf_counter()
    found = search_order(task.fn, *task.args, argnums=task.argnums, iterations=iterations)
    search_s = time.perf_counter() - t0
    orders = {"forward": forward_order(graph), "reverse": reverse_order(graph), "markowitz": markowitz_order(graph),
              "search": found.order}  # fmt: skip
    counts = {name: eliminate(graph, order)[2].as_dict() for name, order in orders.items()}
    published = PUBLISHED.get(task.name)
    args = _batched(task.args, batch, jax.random.PRNGKey(0))
    fns = {name: jacobian(task.fn, order=name, argnums=task.argnums) for name in ORDERS}
    fns["jacfwd"] = jax.jacfwd(task.fn, argnums=task.argnums)
    fns["jacrev"] = jax.jacrev(task.fn, argnums=task.argnums)
    timed = {name: _time(jax.jit(jax.vmap(fn)), args, repeats) for name, fn in fns.items()}
    times = {name: t for name, (t, _) in timed.items()}
    # Every order's Jacobian of the whole batch against jax.jacfwd's.
    errors = {name: _error(timed[name][1], timed["jacfwd"][1]) for name in (*ORDERS, "jacrev")}
    best = min(ORDERS, key=lambda name: (counts[name]["mults"], ORDERS.index(name)))
    best_prior = min(counts[name]["mults"] for name in ("forward", "reverse", "markowitz"))
    return {
        "task": task.name,
        "exact": task.exact,
        "note": task.note,
        "vertices": len(graph.intermediates),
        "counts": counts,
        "best_prior_mults": best_prior,
        "published": None if published is None else {"best_prior": published[0], "alphagrad": published[1]},
        "search": {
            "iterations": iterations,
            "start": found.start,
            "start_mults": found.start_mults,
            "seconds": search_s,
        },  # fmt: skip
        "times": times,
        "max_rel_error_vs_jacfwd": errors,
        "best_order": best,
        "best_vs_faster_jax": times[best]["median_ms"]
        / min(times["jacfwd"]["median_ms"], times["jacrev"]["median_ms"]),  # fmt: skip
    }


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    exact = [r for r in rows if r["exact"] and r["published"]]
    return {
        "markowitz_le_published_best_prior": {r["task"]: r["counts"]["markowitz"]["mults"] <= r["published"]
                                              ["best_prior"] for r in exact},
        "best_prior_le_published_best_prior": {r["task"]: r["best_prior_mults"] <= r["published"]["best_prior"]
                                               for r in exact},
        "search_below_markowitz": {r["task"]: r["counts"]["search"]["mults"] < r["counts"]["markowitz"]["mults"]
                                   for r in rows},
        "search_below_best_prior": {r["task"]: r["counts"]["search"]["mults"] < r["best_prior_mults"] for r in rows},
        "best_order_at_least_as_fast_as_faster_jax": {r["task"]: r["best_vs_faster_jax"] <= 1.0 for r in rows},
    }  # fmt: skip


def _table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'task':24} {'exact':5} {'fwd':>7} {'rev':>7} {'mM':>7} {'search':>7} {'pub.prior':>9} {'pub.AG':>6}"
            f" | ms: {'fwd':>7} {'rev':>7} {'mM':>7} {'search':>7} {'jacfwd':>7} {'jacrev':>7}")  # fmt: skip
    lines = [head]
    for r in rows:
        c, t, p = r["counts"], r["times"], r["published"] or {}
        pub = [str(p.get("best_prior", "-")), str(p.get("alphagrad") or "-")]
        lines.append(f"{r['task']:24} {str(r['exact']):5} " + " ".join(f"{c[o]['mults']:>7}" for o in ORDERS)
                     + f" {pub[0]:>9} {pub[1]:>6} |     "
                     + " ".join(f"{t[o]['median_ms']:>7.3f}" for o in (*ORDERS, "jacfwd", "jacrev")))  # fmt: skip
    return "\n".join(lines)


#: The ways of computing the gradient compared: plain BPTT, BPTT with the time loop checkpointed
#: (issue 20's standard scheme, chunks at the planner's memory optimum) and online training.
MODES = ("bptt", "checkpointed", "online")


def _train_section(mode: str) -> dict:
    if mode == "online":
        return {"online": True}
    if mode == "checkpointed":
        return {"checkpointing": {"scheme": "standard"}}
    return {}


def _online_config(kind: str, mode: str, data: str, limit: int, epochs: int, hidden: int, batch: int) -> dict:
    """The keyword model of the comparison: one adaptive-LIF layer, mean read-out, rate penalty."""
    return {"name": f"{kind}_{mode}", "seed": 0, "dt_s": 0.004, "method": "cascade",
            "epochs": epochs, "batch_size": batch, "eval_batch_size": 256,
            "data": {"kind": "keywords", "path": data, "limit": limit},
            "model": {"kind": kind, "neuron": "adlif", "hidden": [hidden], "tau_out_s": 0.2, "tau_max_s": 1.0,
                      "tau_mem_range_s": [0.005, 0.025], "tau_adapt_range_s": [0.03, 0.35], "weight_scale": 3.0,
                      "recurrent_scale": 1.0, "readout_scale": 3.0, "weight_dt_s": 0.004},
            "loss": {"readout": "mean", "max_rate_hz": 50.0},
            "optimizer": {"lr": 0.005, "schedule": "warmup_cosine", "warmup_epochs": 1},
            "train": _train_section(mode)}  # fmt: skip


def _step_memory_mib(raw: dict, steps: int, n_in: int, n_classes: int) -> float:
    """XLA's temporary buffers of one compiled training step at sequence length ``steps`` (compiled, not run)."""
    from tools.train import config_from_dict
    from tools.train.models import build_network, init_params
    from tools.train.trainer import make_optimizer, make_steps

    cfg = config_from_dict({k: v for k, v in raw.items() if k != "data"})
    net = build_network(cfg, (n_in,), n_classes)
    params = init_params(net, cfg, jax.random.key(0))
    opt = make_optimizer(cfg.optimizer, 10, 1)
    fns = make_steps(net, cfg.surrogate, cfg.loss, opt)
    shape = (steps, cfg.batch_size, n_in) if fns.time_major else (cfg.batch_size, steps, n_in)  # checkpointed: (T, B)
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    y = jax.ShapeDtypeStruct((cfg.batch_size,), jnp.int32)
    compiled = fns.train.lower(params, opt.init(params), x, y, jax.random.key(1)).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def _available_mib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) / 1024
    return float("nan")


def online_comparison(a: argparse.Namespace) -> dict[str, Any]:
    """Memory against T, and short keyword training runs, for BPTT and online training."""
    import tempfile

    from tools.train import config_from_dict, train

    n_in, n_classes = 64, 22  # the keyword set's channels and classes
    memory: dict[str, Any] = {}
    for kind in a.kinds:
        rows: dict[str, list] = {mode: [] for mode in a.modes}
        for mode in a.modes:
            raw = _online_config(kind, mode, a.data, a.limit, a.epochs, a.hidden, a.batch)
            for steps in a.memory_steps:
                rows[mode].append([steps, _step_memory_mib(raw, steps, n_in, n_classes)])
        (t0, m0), (t1, m1) = rows["bptt"][0], rows["bptt"][-1]
        slope = (m1 - m0) / (t1 - t0)  # MiB per step: BPTT keeps every step's state for the backward pass
        budget = a.budget_mib if a.budget_mib else _available_mib()
        limit = int(t0 + (budget - m0) / slope) if slope > 0 else None
        # Beyond plain BPTT's limit: the T where it would fill the budget, and ten times that.
        far = [] if limit is None else [limit, 10 * limit]
        for mode in (m for m in a.modes if m != "bptt"):
            raw = _online_config(kind, mode, a.data, a.limit, a.epochs, a.hidden, a.batch)
            rows[mode] += [[steps, _step_memory_mib(raw, steps, n_in, n_classes)] for steps in far]
        memory[kind] = {"step_memory_mib": rows, "bptt_mib_per_step": slope, "budget_mib": budget,
                        "bptt_limit_steps": limit}  # fmt: skip
        print(f"memory {kind}: done", file=sys.stderr, flush=True)
    runs = []
    for kind in a.kinds if a.train_runs else ():
        for mode in a.modes:
            raw = _online_config(kind, mode, a.data, a.limit, a.epochs, a.hidden, a.batch)
            with tempfile.TemporaryDirectory() as out:
                s = train(config_from_dict(raw), out, quiet=True)
                bundle = s.get("bundle") is not None and Path(s["bundle"]).exists()
            online = mode == "online"
            runs.append({"model": kind, "mode": mode,
                         "online_gradient": None if not online else ("exact" if kind == "feedforward" else "e-prop"),
                         "test_accuracy": s.get("test_accuracy"), "best_val_accuracy": s["best_val_accuracy"],
                         "steady_samples_per_s": s["steady_throughput_samples_per_s"],
                         "ms_per_sample": 1e3 / s["steady_throughput_samples_per_s"]
                         if s["steady_throughput_samples_per_s"] else None,
                         "train_seconds": s["train_seconds"], "bundle_exported": bundle})  # fmt: skip
            print(f"run {kind} {mode}: done", file=sys.stderr, flush=True)
    settings = {"data": a.data, "limit_per_split": a.limit, "epochs": a.epochs, "hidden": a.hidden,
                "batch": a.batch, "dt_s": 0.004, "neuron": "adlif", "memory_steps": a.memory_steps,
                "lr": 0.005}  # fmt: skip
    return {"settings": settings, "memory": memory, "runs": runs}


def plot_memory(result: dict[str, Any], path: Path) -> None:
    """Step memory against T (log-log) per model and gradient mode, with the budget and BPTT's limit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(result["memory"])
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4.2), squeeze=False)
    styles = {"bptt": ("tab:red", "o"), "checkpointed": ("tab:orange", "s"), "online": ("tab:blue", "^")}
    for ax, kind in zip(axes[0], kinds, strict=True):
        m = result["memory"][kind]
        for mode, rows in m["step_memory_mib"].items():
            colour, marker = styles.get(mode, ("gray", "x"))
            ts, mib = zip(*sorted(rows), strict=True)
            ax.plot(ts, mib, marker=marker, color=colour, label=mode)
        if m["bptt_limit_steps"]:  # plain BPTT extrapolated to where it fills the budget
            (t0, m0) = m["step_memory_mib"]["bptt"][0]
            t1 = m["bptt_limit_steps"]
            ax.plot([t0, t1], [m0, m0 + m["bptt_mib_per_step"] * (t1 - t0)], ":", color="tab:red",
                    label="bptt, extrapolated")  # fmt: skip
            ax.axvline(t1, color="gray", lw=0.8, ls="--")
            ax.axvline(10 * t1, color="gray", lw=0.8, ls=":")
        ax.axhline(
            m["budget_mib"], color="black", lw=0.8, ls="--", label=f"free memory ({m['budget_mib'] / 1024:.1f} GiB)"
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T (steps)")
        ax.set_ylabel("XLA temporary buffers of one training step (MiB)")
        ax.set_title(f"{kind} layer: BPTT limit T = {m['bptt_limit_steps']:,} (dashed), 10x (dotted)", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; JSON to ``--out`` (and stdout), the table to stderr."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="*", help="task names (default: all, cells included)")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--iterations", type=int, default=3000, help="annealing moves of the order search")
    ap.add_argument("--cell-size", type=int, default=16, help="neurons of the cell tasks (inputs: half as many)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--online", action="store_true", help="compare online training with BPTT instead")
    ap.add_argument("--data", default="data/keywords")
    ap.add_argument("--limit", type=int, default=800, help="samples per split of the keyword set")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--memory-steps", type=int, nargs="+", default=[125, 250, 500, 1000])
    ap.add_argument("--kinds", nargs="+", default=["feedforward", "recurrent"], choices=["feedforward", "recurrent"])
    ap.add_argument("--budget-mib", type=float, help="memory BPTT may use (default: available memory)")
    ap.add_argument(
        "--modes",
        nargs="+",
        default=list(MODES),
        choices=MODES,
        help="gradient modes compared (bptt is always measured: it sets the limit)",
    )
    ap.add_argument("--plot", type=Path, help="with --online: write the memory-against-T plot (PNG) here")
    ap.add_argument(
        "--no-train",
        dest="train_runs",
        action="store_false",
        help="with --online: the memory figures only, no training runs",
    )
    a = ap.parse_args(argv)
    if a.online:
        if a.batch == 512:
            a.batch = 32
        a.modes = ["bptt", *[m for m in a.modes if m != "bptt"]]
        result = online_comparison(a)
        if a.plot:
            plot_memory(result, a.plot)
        return _emit(result, a.out)
    tasks = benchmark_tasks() + cell_tasks(n=a.cell_size, n_in=max(a.cell_size // 2, 1))
    if a.tasks:
        unknown = set(a.tasks) - {t.name for t in tasks}
        if unknown:
            ap.error(f"unknown task(s) {sorted(unknown)}; expected some of {[t.name for t in tasks]}")
        tasks = [t for t in tasks if t.name in a.tasks]
    rows = []
    for task in tasks:
        rows.append(run_task(task, batch=a.batch, repeats=a.repeats, iterations=a.iterations))
        print(f"{task.name}: done", file=sys.stderr, flush=True)
    result = {
        "settings": {
            "batch": a.batch,
            "repeats": a.repeats,
            "iterations": a.iterations,
            "cell_size": a.cell_size,
            "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
            "jax": jax.__version__,
        },  # fmt: skip
        "tasks": rows,
        "summary": _summary(rows),
    }
    print(_table(rows), file=sys.stderr)
    return _emit(result, a.out)


def _emit(result: dict[str, Any], out: Path | None) -> int:
    """Print the JSON document, and write it to ``out`` when given."""
    text = json.dumps(result, indent=1)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
