"""Reproduce the figures of Cotteret et al. (Neural Computation 2024) for edgesnn.fsm on this machine.

    nice -n 10 .venv/bin/python -m tools.eval.fsm --out results/fsm [--parts a,b,c,d] [--quick]

(a) the example walk (N = 10,000, 8 states, 16 edges) under every non-ideality, reference and
    CPU engine; (b) the dense capacity boundary ``N_Z + beta N_E < c N`` over N = 1,000 to
    10,000; (c) the sparse capacity exponent; (d) the example walk as a Loihi 2 program in the
    runtime's Loihi numerics. Writes ``fsm.json``, ``fsm.md`` and the plots ``walk.png``,
    ``dense_capacity.png``, ``sparse_capacity.png`` into ``--out`` (parts not run keep what an
    earlier run wrote there). ``--quick`` shrinks every part to a smoke test.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgesnn.cli import HelpFormatter
from tools.eval.fsm import capacity, example, trials

log = logging.getLogger("edgesnn.tools.eval.fsm")


def part_a(n: int, seed: int) -> dict[str, Any]:
    """The example walk under each condition."""
    spec = example.example_spec()
    symbols = example.euler_walk(spec)
    out: dict[str, Any] = {"n": n, "seed": seed, "symbols": symbols, "states": list(spec.states),
                           "expected": spec.walk(symbols), "conditions": {}}  # fmt: skip
    for name, extra, hold in example.CONDITIONS:
        t0 = time.perf_counter()
        res = example.run_condition(spec, symbols, n, seed, extra, hold)
        log.info("(a) %s: walk %s, engine %s, %.0f s", name, res["walk_correct"], res.get("engine_walk_correct"),
                 time.perf_counter() - t0)  # fmt: skip
        out["conditions"][name] = res
    return out


def part_d(n: int, seed: int) -> dict[str, Any]:
    """The example walk as Loihi 2 programs, in the runtime's Loihi numerics, against the float reference."""
    spec = example.example_spec()
    symbols = example.euler_walk(spec)
    out: dict[str, Any] = {}
    for name, extra, n_loihi in example.LOIHI_CONDITIONS:
        size = min(n_loihi, n)
        out[name] = res = example.run_loihi_condition(spec, symbols, size, seed, extra)
        log.info("(d) Loihi numerics, %s, N=%d: walk %s", name, size, res["loihi_walk_correct"])
    return out


def part_b(ns: list[int], rays: list[int], seeds: int, walks: int) -> dict[str, Any]:
    """Critical dense machine sizes along rays N_E = rho N_Z: ``seeds`` machines per size, ``walks`` walks each."""
    rows, points = [], []
    for n in ns:
        for rho in rays:
            t0 = time.perf_counter()
            guess = max(2, int(0.10 * n / (1 + 2.2 * rho)))

            def passes(nz: int, seed: int, n: int = n, rho: int = rho) -> float:
                if rho == 0:
                    return float(trials.attractor_trial(n, nz, seed))
                return trials.trial(n, nz, rho * nz, seed, walks=walks)

            crit, seen = capacity.critical_size(passes, max(2, guess // 2), guess * 2, seeds=seeds, floor=2)
            rows.append({"n": n, "rho": rho, "states": crit, "edges": rho * crit})
            samples = seeds * (walks if rho else 1)
            points += [{"n": n, "states": s, "edges": rho * s, "pass_rate": r, "seeds": samples} for s, r in seen]
            log.info("(b) N=%d rho=%d: critical N_Z %.1f (%.0f s)", n, rho, crit, time.perf_counter() - t0)
    return {"rows": rows, "points": points, "seeds": seeds, "walks": walks}


def fits_b(b: dict[str, Any]) -> dict[str, Any]:
    """Boundary fits over every ray, and over the machines with edges only (N_E >= N_Z, the paper's family)."""
    out = {}
    for label, min_rho in (("all rays (N_E = 0, 1, 2, 4 N_Z)", 0), ("machines with edges (N_E = 1, 2, 4 N_Z)", 1)):
        rows = [r for r in b["rows"] if r["rho"] >= min_rho]
        if len({r["rho"] for r in rows}) < 2:
            continue
        fit = capacity.fit_boundary(rows)
        pts = [p for p in b["points"] if p["edges"] >= min_rho * p["states"]]
        fit["width"] = capacity.fit_width(pts, fit["c"], fit["beta"])
        out[label] = fit
    # Per N, machines with edges only: how the boundary settles as N grows (finite-size effects at small N).
    for n in sorted({r["n"] for r in b["rows"]}):
        rows = [r for r in b["rows"] if r["n"] == n and r["rho"] >= 1]
        if len({r["rho"] for r in rows}) < 2:
            continue
        fit = capacity.fit_boundary(rows)
        pts = [p for p in b["points"] if p["n"] == n and p["edges"] >= p["states"]]
        fit["width"] = capacity.fit_width(pts, fit["c"], fit["beta"])
        out[f"N = {n}, machines with edges"] = fit
    return out


def part_c(ns: list[int], ks: list[int], seeds: int, budget_s: float) -> dict[str, Any]:
    """Critical sparse ring sizes (N_Z = N_E) for a few winner counts k per N; capacity = the best k's."""
    rows, best = [], []
    start = time.perf_counter()
    prev: tuple[int, float] | None = None
    for n in ns:
        if time.perf_counter() - start > budget_s:
            log.info("(c) time budget of %.0f s spent; stopping before N=%d", budget_s, n)
            break
        t0 = time.perf_counter()
        per_k = []
        for k in ks:
            guess = int(prev[1] * (n / prev[0]) ** 2) if prev else max(4, n // 20)

            def passes(nz: int, seed: int, n: int = n, k: int = k) -> bool:
                return trials.sparse_trial(n, nz, k, seed)

            crit, seen = capacity.critical_size(passes, max(2, guess // 2), max(4, guess * 3 // 2), seeds=seeds,
                                                floor=2)  # fmt: skip
            per_k.append({"n": n, "k": k, "coding": k / n, "capacity": crit, "points": seen})
            log.info("(c) N=%d k=%d: capacity %.0f", n, k, crit)
        rows += per_k
        top = max(per_k, key=lambda r: r["capacity"])
        best.append({"n": n, "k": top["k"], "coding": top["coding"], "capacity": top["capacity"],
                     "seconds": time.perf_counter() - t0})  # fmt: skip
        prev = (n, top["capacity"])
    return {"rows": rows, "best": best, "seeds": seeds, "ks": ks, "n_measured": [b["n"] for b in best],
            "budget_s": budget_s}  # fmt: skip


def fits_c(c: dict[str, Any]) -> dict[str, Any]:
    """The power law through the best k's capacities, and the failure probability's width in log size."""
    best = c["best"]
    if len(best) < 2:
        return {}
    fit = capacity.fit_power([b["n"] for b in best], [b["capacity"] for b in best])
    tops = [max((r for r in c["rows"] if r["n"] == b["n"]), key=lambda r: r["capacity"]) for b in best]
    fit["log_width"] = capacity.fit_log_width([(s, r["capacity"], rate, c["seeds"]) for r in tops
                                               for s, rate in r["points"]])  # fmt: skip
    return fit


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown(res: dict[str, Any]) -> str:
    """The tables of every part that ran."""
    lines = ["# edgesnn.fsm: figures of Cotteret et al. (2024) on this machine", ""]
    if "a" in res:
        a = res["a"]
        lines += [f"## (a) Example walk: N = {a['n']}, 8 states, 16 edges, {len(a['symbols'])} inputs"
                  f" (seed {a['seed']})", "",
                  _row("condition", "walk (reference)", "phases > 0.5", "min / mean overlap mid-phase",
                       "walk (engine)", "engine = reference walk", "max overlap difference"),
                  _row(*["---"] * 7)]  # fmt: skip
        for name, c in a["conditions"].items():
            ok = "correct" if c["walk_correct"] else "WRONG"
            eng = "correct" if c.get("engine_walk_correct") else "WRONG"
            diff = c.get("engine_max_overlap_diff", float("nan"))
            lines.append(_row(name, f"{ok} ({c['hops_correct']}/{c['hops']})", f"{c['phases_passed']}/{c['phases']}",
                              f"{c['min_mid_overlap']:.3f} / {c['mean_mid_overlap']:.3f}", eng,
                              c.get("engine_same_walk"), f"{diff:.2g}"))  # fmt: skip
        lines.append("")
    if res.get("d"):
        lines += ["## (d) The example walk as Loihi 2 programs (edgesnn.fsm.loihi)", "",
                  "Runtime Loihi numerics: the integers Lava's fixed_pt models run (tests/test_fsm_loihi.py holds the"
                  " two equal spike for spike); exact only while every unit's drive stays under 1024, which leaves"
                  " sparse ternary weights at this N.", "",
                  _row("weights", "N", "walk (float reference)", "walk (Loihi numerics)", "same states"),
                  _row(*["---"] * 5)]  # fmt: skip
        for name, c in res["d"].items():
            lines.append(_row(name, c["neurons"], "correct" if c["reference_walk_correct"] else "WRONG",
                              f"{'correct' if c['loihi_walk_correct'] else 'WRONG'} ({c['loihi_hops_correct']}"
                              f"/{c['hops']})", c["same_states_as_reference"]))  # fmt: skip
        lines.append("")
    if "b" in res:
        b = res["b"]
        lines += ["## (b) Dense capacity boundary", ""]
        for label, f in b.get("fits", {}).items():
            lines.append(f"- {label}: **N_Z + {f['beta']:.2f} (+-{f['beta_se']:.2f}) N_E = {f['c']:.4f}"
                         f" (+-{f['c_se']:.4f}) N**, logistic width in load {f['width']:.4f}")  # fmt: skip
        lines += ["", f"{b['seeds']} random machines per size, {b.get('walks', 1)} random walks on each.", "",
                  _row("N", "N_E / N_Z", "critical N_Z", "critical N_E", "N_Z / N"), _row(*["---"] * 5)]  # fmt: skip
        for r in b["rows"]:
            lines.append(
                _row(r["n"], r["rho"], f"{r['states']:.1f}", f"{r['edges']:.1f}", f"{r['states'] / r['n']:.4f}")
            )
        lines.append("")
    if "c" in res:
        c = res["c"]
        fit = c["fit"]
        lines += ["## (c) Sparse capacity (k-WTA, ring of N_Z = N_E)", ""]
        if fit:
            ns = ", ".join(str(n) for n in c["n_measured"])
            lines.append(f"Fit: **C = {fit['a']:.3g} N^{fit['gamma']:.2f} (+-{fit['gamma_se']:.2f})** over N = {ns};"
                         f" {c['seeds']} machines per size, k in {c['ks']}; logistic width of the failure"
                         f" probability in log(size / C): {fit.get('log_width', float('nan')):.3f}.")  # fmt: skip
        lines += ["", _row("N", "best k", "coding f", "capacity C (states = edges)", "C / N", "seconds"),
                  _row(*["---"] * 6)]  # fmt: skip
        for r in c["best"]:
            lines.append(_row(r["n"], r["k"], f"{r['coding']:.4f}", f"{r['capacity']:.0f}",
                              f"{r['capacity'] / r['n']:.3f}", f"{r['seconds']:.0f}"))  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def plots(res: dict[str, Any], out: Path) -> None:
    """walk.png, dense_capacity.png and sparse_capacity.png for the parts that ran."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "a" in res and any("overlaps" in c for c in res["a"]["conditions"].values()):
        conds = res["a"]["conditions"]
        fig, axes = plt.subplots(len(conds), 1, figsize=(11, 2.0 * len(conds)), sharex=False)
        for ax, (name, c) in zip(np.atleast_1d(axes), conds.items(), strict=True):
            o = np.asarray(c["overlaps"])
            n_states = len(res["a"]["states"])
            for j in range(o.shape[1]):
                ax.plot(o[:, j], lw=1.0 if j < n_states else 0.5, alpha=1.0 if j < n_states else 0.4,
                        label=res["a"]["states"][j] if j < n_states else None)  # fmt: skip
            ax.set_ylim(-0.3, 1.1)
            ax.set_ylabel("overlap")
            ax.set_title(name, fontsize=9)
        np.atleast_1d(axes)[0].legend(ncol=8, fontsize=7, loc="upper right")
        np.atleast_1d(axes)[-1].set_xlabel("step")
        fig.tight_layout()
        fig.savefig(out / "walk.png", dpi=110)
        plt.close(fig)
    if "b" in res:
        b = res["b"]
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for rho in sorted({r["rho"] for r in b["rows"]}):
            rs = [r for r in b["rows"] if r["rho"] == rho]
            ax.plot([r["n"] for r in rs], [r["states"] for r in rs], "o-", label=f"N_E = {rho} N_Z")
        ax.set_xlabel("N")
        ax.set_ylabel("critical N_Z (pass rate 0.5)")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "dense_capacity.png", dpi=110)
        plt.close(fig)
    if "c" in res and res["c"]["best"]:
        c = res["c"]
        fig, ax = plt.subplots(figsize=(5.5, 4))
        ns = np.array([r["n"] for r in c["best"]])
        ax.loglog(ns, [r["capacity"] for r in c["best"]], "o", label="measured (best k)")
        if c["fit"]:
            ax.loglog(ns, c["fit"]["a"] * ns ** c["fit"]["gamma"], "k--", label=f"N^{c['fit']['gamma']:.2f}")
        ax.set_xlabel("N")
        ax.set_ylabel("capacity (states = edges)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "sparse_capacity.png", dpi=110)
        plt.close(fig)


def _jsonable(res: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(res, default=lambda o: None if isinstance(o, np.ndarray) else str(o)))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for and write the results."""
    ap = argparse.ArgumentParser(prog="python -m tools.eval.fsm", description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--parts", default="a,b,c,d", help="comma-separated parts: a (example walk), b (dense capacity),"
                    " c (sparse capacity), d (the example walk as Loihi programs); empty: refit and redraw the"
                    " folder's results")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test of every part")
    ap.add_argument("--seeds", type=int, default=0, help="random machines per size (default: 8 dense, 4 sparse)")
    ap.add_argument("--sparse-budget-s", type=float, default=2400, help="time for part c; larger N are skipped")
    ap.add_argument("--sparse-ns", default="1000,2000,4000,8000,16000,20000", help="N of part c")
    ap.add_argument("--dense-ns", default="1000,2000,4000,7000,10000", help="N of part b")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one BLAS thread: faster on a shared 2-core machine, and what the engine uses
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "fsm.json"
    res: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    parts = {p for p in args.parts.split(",") if p}  # none: refit and redraw what the folder holds
    if parts - {"a", "b", "c", "d"}:
        ap.error(f"unknown part(s) {', '.join(sorted(parts - {'a', 'b', 'c', 'd'}))}; expected a, b, c, d")
    t0 = time.perf_counter()
    if "a" in parts:
        res["a"] = part_a(1000 if args.quick else 10_000, seed=1)
    if "d" in parts:
        res["d"] = part_d(1000 if args.quick else 10_000, seed=1)
    if "b" in parts:
        ns = [1000, 2000] if args.quick else [int(v) for v in args.dense_ns.split(",")]
        res["b"] = part_b(ns, [0, 1, 2, 4], args.seeds or (3 if args.quick else 6), 2 if args.quick else 4)
    if "c" in parts:
        ns = [1000, 2000] if args.quick else [int(v) for v in args.sparse_ns.split(",")]
        ks = [40, 80] if args.quick else [32, 48, 80, 128]
        res["c"] = part_c(ns, ks, args.seeds or (2 if args.quick else 4), args.sparse_budget_s)
    res.setdefault("runs", []).append({"parts": sorted(parts), "quick": args.quick, "seconds": time.perf_counter() - t0,
                                       "command": " ".join(sys.argv)})  # fmt: skip
    if "b" in res:
        res["b"]["fits"] = fits_b(res["b"])
    if "c" in res:
        res["c"]["fit"] = fits_c(res["c"])
    plots(res, out)
    doc = _jsonable(res)
    if "a" in doc:  # overlap traces stay in the plot; the JSON keeps the figures
        for c in doc["a"]["conditions"].values():
            c.pop("overlaps", None)
    path.write_text(json.dumps(doc, indent=2))
    (out / "fsm.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
