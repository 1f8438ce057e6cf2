"""``edgesnn fsm compile | run``: compile a state-machine spec into a bundle, and walk a bundle through inputs.

:func:`add_fsm_commands` adds ``fsm`` with its two subcommands to the ``edgesnn`` parser;
user mistakes raise edgesnn errors, which ``edgesnn.cli.main`` prints as one line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any

import numpy as np

from edgesnn.errors import InputError


def read_symbols(path: str) -> list[str]:
    """Input symbols of a text file: separated by spaces or lines; ``#`` starts a comment."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the inputs: {exc}", path=path) from None
    out = []
    for line in lines:
        out += line.split("#", 1)[0].split()
    if not out:
        raise InputError("expected input symbols (separated by spaces or lines), found none", path=path)
    return out


def cmd_compile(args: argparse.Namespace) -> int:
    """Compile a spec into a bundle; warn (or refuse) when the machine is beyond the network's capacity."""
    from edgesnn.bundle import write_bundle
    from edgesnn.fsm import CompileOptions, compile_fsm, load_spec, to_model
    from edgesnn.fsm.capacity import CapacityWarning, check_capacity

    spec = load_spec(args.spec)
    options = CompileOptions(neurons=args.neurons, coding=args.sparse, seed=args.seed, weights=args.weights,
                             sparsity=args.sparsity, sparsity_scope=args.sparsity_per, noise_sigma=args.noise,
                             hold_steps=args.hold,
                             update_probability=args.update_probability)  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CapacityWarning)
        p_fail = check_capacity(spec, options, force=args.force)
    for w in caught:
        if not args.quiet:
            print(f"edgesnn fsm compile: warning: {w.message}", file=sys.stderr)
    net = compile_fsm(spec, options)
    if args.loihi:
        from edgesnn.fsm.loihi import to_loihi_model

        model = to_loihi_model(net)
    else:
        model = to_model(net)
    write_bundle(model, args.output)
    doc = {"output": args.output, "states": len(spec.states), "transitions": len(spec.transitions),
           "symbols": len(spec.symbols), "outputs": list(spec.output_names()), "neurons": options.neurons,
           "coding": options.coding, "predicted_failure_probability": p_fail}  # fmt: skip
    if args.json:
        print(json.dumps(doc, indent=2))
    elif not args.quiet:
        kind = f"sparse (k = {options.active})" if options.sparse else "dense"
        kind += " neurons as a Loihi 2 program" if args.loihi else " neurons"
        print(f"wrote {args.output}: {len(spec.states)} states, {len(spec.transitions)} transitions,"
              f" {len(spec.symbols)} symbols on {options.neurons} {kind}; predicted walk failure"
              f" probability {p_fail:.2g}")  # fmt: skip
    return 0


def _walk_doc(hops: list[Any], outs: dict[str, np.ndarray], info: dict[str, Any], hold: int) -> dict[str, Any]:
    attractors = info["attractors"]
    overlaps = outs["out_overlaps"]
    rows = []
    for i, h in enumerate(hops):
        end = 3 * hold * (i + 1) - 1
        overlap = float(overlaps[end, attractors.index(h.target)]) if h.target else None
        row = {"symbol": h.symbol, "from": h.source, "edge": h.edge, "to": h.target, "expected": h.expected,
               "ok": h.ok, "overlap": overlap}  # fmt: skip
        if "out_readout" in outs:
            row["outputs"] = {n: round(float(v), 4) for n, v in zip(info["outputs"], outs["out_readout"][end],
                                                                      strict=True)}  # fmt: skip
        rows.append(row)
    return {"walk": rows, "correct": all(h.ok for h in hops), "steps": int(overlaps.shape[0])}


def cmd_run(args: argparse.Namespace) -> int:
    """Walk a compiled machine through the symbols of a file; print the walk and the overlaps."""
    from edgesnn.cli import load_model
    from edgesnn.engine import SessionOptions
    from edgesnn.fsm import fsm_info, run_symbols

    model = load_model(args.model, args)
    info = fsm_info(model)
    symbols = read_symbols(args.inputs)
    hold = info["hold_steps"] if args.hold is None else args.hold
    session = model.session(options=SessionOptions(numerics=args.numerics or info.get("numerics", "float")))
    outs, hops = run_symbols(model, symbols, hold_steps=hold, session=session)
    doc = _walk_doc(hops, outs, info, hold)
    if args.plot:
        plot_overlaps(outs["out_overlaps"], info, args.plot, hold, len(info["spec"]["states"]))
        doc["plot"] = args.plot
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"{'#':>3}  {'input':<12} {'from':<14} {'to':<14} {'overlap':>7}  result")
        for i, r in enumerate(doc["walk"]):
            ov = "-" if r["overlap"] is None else f"{r['overlap']:.3f}"
            verdict = "ok" if r["ok"] else f"WRONG (expected {r['expected']})"
            extra = "".join(f"  {k}={v:.2f}" for k, v in r.get("outputs", {}).items())
            print(f"{i + 1:>3}  {r['symbol']:<12} {str(r['from']):<14} {str(r['to']):<14} {ov:>7}  {verdict}{extra}")
        print(
            f"walk {'correct' if doc['correct'] else 'WRONG'}: {sum(r['ok'] for r in doc['walk'])} of"
            f" {len(doc['walk'])} inputs, {doc['steps']} steps" + (f"; plot in {args.plot}" if args.plot else "")
        )
    return 0 if doc["correct"] or not args.check else 1


def plot_overlaps(overlaps: np.ndarray, info: dict[str, Any], path: str, hold: int, n_states: int) -> None:
    """Overlap of the network state with every attractor over time (states bold, edges thin), as a PNG."""
    from edgesnn.errors import MissingDependencyError

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("--plot needs matplotlib (pip install matplotlib)", path="--plot") from None
    fig, ax = plt.subplots(figsize=(10, 3.2))
    for j, name in enumerate(info["attractors"]):
        if j < n_states:
            ax.plot(overlaps[:, j], lw=1.4, label=name)
        else:
            ax.plot(overlaps[:, j], lw=0.6, alpha=0.5, color="grey")
    for t in range(0, overlaps.shape[0], 3 * hold):
        ax.axvline(t, color="k", lw=0.3, alpha=0.3)
    ax.set_xlabel("step")
    ax.set_ylabel("overlap")
    ax.set_ylim(-0.3, 1.1)
    ax.legend(ncol=min(8, n_states), fontsize=7, loc="upper right")
    fig.tight_layout()
    tmp = f"{path}.tmp{os.getpid()}.png"
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)  # a plot is there whole or not at all
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


def add_fsm_commands(sub: Any) -> None:
    """Add ``edgesnn fsm compile`` and ``edgesnn fsm run``."""
    from edgesnn.cli import Parser
    from edgesnn.fsm.compile import SPARSITY_SCOPES, WEIGHTS

    fsm = sub.add_parser("fsm", help="finite-state machines compiled into attractor networks")
    fsub = fsm.add_subparsers(dest="fsm_command", required=True, metavar="COMMAND", parser_class=Parser)
    p = fsub.add_parser("compile", help="compile a state-machine spec (.json, or .yaml with PyYAML) into a bundle")
    p.add_argument("spec", help="the spec: states, symbols, transitions, outputs")
    p.add_argument("-o", "--out", "--output", dest="output", metavar="FILE", required=True, help="output .esnn")
    p.add_argument("--neurons", type=int, default=10_000, help="neurons N (default 10000)")
    p.add_argument("--sparse", type=float, default=0.0, metavar="F",
                   help="coding level of sparse binary states with k-WTA units (default 0: dense bipolar)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of every random vector and of the weight noise")
    p.add_argument("--weights", choices=WEIGHTS, default="ideal", help="weight precision (default ideal)")
    p.add_argument("--sparsity", type=float, default=0.0, help="fraction of weights zeroed, smallest first")
    p.add_argument(
        "--sparsity-per",
        choices=SPARSITY_SCOPES,
        default="matrix",
        help="keep the largest weights of the whole matrix, or the same number per neuron (fan-in)",
    )
    p.add_argument("--noise", type=float, default=0.0, metavar="SIGMA", help="Gaussian weight noise (+-1 weights)")
    p.add_argument("--hold", type=int, default=10, help="steps each input phase (none, s_a, s_b) is held")
    p.add_argument("--async", dest="update_probability", type=float, default=1.0, metavar="P",
                   help="update each unit with probability P per step (default 1: synchronous)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="compile even when the machine is far beyond capacity")
    p.add_argument("--loihi", action="store_true",
                   help="a Loihi 2 program (dense states, binary or ternary weights) that Loihi numerics and the"
                        " Loihi 2 bridge run exactly")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_compile)
    p = fsub.add_parser("run", help="walk a compiled machine through input symbols; print the walk and overlaps")
    p.add_argument("model", help="a bundle written by edgesnn fsm compile")
    p.add_argument("--inputs", required=True, help="text file of input symbols (spaces or lines; # comments)")
    p.add_argument("--hold", type=int, help="steps each input phase is held (default: the bundle's)")
    p.add_argument("--numerics", choices=("float", "loihi"), help="session numerics (default: the bundle's own)")
    p.add_argument("--plot", metavar="PNG", help="write the overlaps over time as a PNG")
    p.add_argument("--check", action="store_true", help="exit 1 when the walk differs from the spec's")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_run)


__all__ = ["add_fsm_commands", "read_symbols"]
