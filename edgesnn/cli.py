"""The ``edgesnn`` command: info, run, convert, bench.

User errors print one line on stderr and exit non-zero; ``--debug`` shows the
traceback. Exit codes come from one table, :data:`EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgesnn import __version__
from edgesnn.adapt import METHODS as ADAPT_METHODS
from edgesnn.errors import (
    BundleError,
    DeviceError,
    EdgeSNNError,
    EventFileError,
    InputError,
    LimitError,
    MissingDependencyError,
    ModelError,
    NotFoundError,
    OptionError,
    StateError,
    UnsupportedError,
)  # fmt: skip
from edgesnn.neurons import METHODS as NEURON_METHODS
from edgesnn.units import parse_duration_s

log = logging.getLogger("edgesnn.cli")

#: First matching class wins: usage or unknown name 2, bundle or file 3, model or unsupported 4,
#: state 5, missing extra 6, device (capacity, authentication, link) 7, over a configured limit 8
#: (edgesnn.limits), other 1.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (LimitError, 8),
    (MissingDependencyError, 6),
    (OptionError, 2),
    (InputError, 2),
    (NotFoundError, 2),
    (BundleError, 3),
    (EventFileError, 3),
    (StateError, 5),
    (ModelError, 4),
    (UnsupportedError, 4),
    (DeviceError, 7),
    (EdgeSNNError, 1),
    (OSError, 3),
)

PROFILES = ("nir", "snntorch", "norse", "sinabs", "rockpool", "spyx", "lava-dl")


def exit_code_for(exc: BaseException) -> int:
    """Exit status for an exception, from :data:`EXIT_CODES` (70 for a bug)."""
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 70


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- model loading ---------------------------------------------------------------
def _nir_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"profile": getattr(args, "profile", None) or "nir"}
    if getattr(args, "dt", None):
        opts["dt_s"] = parse_duration_s(args.dt)
    for key in ("reset_mode", "reset_timing", "method", "max_spikes_per_step"):
        if getattr(args, key, None):
            opts[key] = getattr(args, key)
    if getattr(args, "norm_input", None):
        opts["norm_input"] = args.norm_input == "yes"
    return opts


def load_model(path: str, args: argparse.Namespace):
    """Read a .esnn bundle, or a .nir graph through the chosen import profile; apply ``--unit``."""
    if Path(path).suffix.lower() == ".nir":
        from edgesnn.bundle.nir import read_nir

        model = read_nir(path, **_nir_options(args))
    else:
        from edgesnn.bundle import read_bundle

        model = read_bundle(path)
    units = _input_units(getattr(args, "unit", None) or [])
    return model.with_input_units(units) if units else model


def _input_units(pairs: list[str]) -> dict[str, str]:
    """``--unit in=spikes`` flags as {input: unit}."""
    units = {}
    for pair in pairs:
        name, sep, unit = pair.partition("=")
        if not sep or not name or not unit:
            raise OptionError(f"expected NAME=UNIT (e.g. in=spikes), got {pair!r}", path="unit")
        units[name] = unit
    return units


# -- commands --------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    """Print a summary of a model; validation errors surface as one line."""
    model = load_model(args.model, args)
    g = model.graph
    nodes = []
    for name in g.nodes:
        node = g.nodes[name]
        n_params = sum(int(np.size(getattr(node, f))) for f in node.array_fields() if getattr(node, f) is not None)
        entry = {"name": name, "type": node.type_name(), "shape": list(g.shape(name)), "parameters": n_params}
        if getattr(node, "min_spike_interval_s", 0.0) > 0:
            entry["min_spike_interval_s"] = node.min_spike_interval_s
        nodes.append(entry)
    info = {
        "file": args.model,
        "dt_s": model.dt_s,
        "method": model.method,
        "adapt_method": model.adapt_method,
        "initial_state": model.initial_state,
        "loihi_network": model.loihi is not None,
        "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype, "unit": s.unit} for s in model.inputs],
        "outputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype, "unit": s.unit} for s in model.outputs],
        "labels": list(model.labels),
        "recurrent_edges": sorted([list(e) for e in g.back_edges]),
        "nodes": nodes,
        "parameters": sum(n["parameters"] for n in nodes),
        "producer": model.producer,
        "learning": model.learning is not None,
    }
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(
        f"{args.model}: {len(nodes)} nodes, {info['parameters']} parameters,"
        f" dt {model.dt_s * 1e3:g} ms ({model.method}, adapts by {model.adapt_method}, starts at {model.initial_state})"
    )
    if model.loihi is not None:
        print(f"  carries a Loihi integer network of {len(model.loihi.neurons)} layers (run as is by numerics=loihi)")
    for s in info["inputs"]:
        unit = s["unit"] or "(no unit: say spikes or a signal unit before adapting, --unit)"
        print(f"  input  {s['name']}: {tuple(s['shape'])} {s['dtype']} {unit}".rstrip())
    for s in info["outputs"]:
        print(f"  output {s['name']}: {tuple(s['shape'])} {s['dtype']} {s['unit']}".rstrip())
    if model.labels:
        print(f"  labels: {', '.join(model.labels)}")
    for n in nodes:
        hold = f"  (min spike interval {n['min_spike_interval_s'] * 1e3:g} ms)" if "min_spike_interval_s" in n else ""
        print(f"  {n['name']:<20} {n['type']:<12} {str(tuple(n['shape'])):<16} {n['parameters']}{hold}")
    if g.back_edges:
        print("  recurrent: " + ", ".join(f"{a} -> {b}" for a, b in sorted(g.back_edges)))
    for r in model.producer.get("retimed", []):
        print(f"  adapted: {r['from_dt_s'] * 1e3:g} ms -> {r['to_dt_s'] * 1e3:g} ms ({r['method']})")
    return 0


def _read_inputs(path: str, model, key: str | None) -> dict[str, np.ndarray]:
    names = [s.name for s in model.inputs]
    p = Path(path)
    if p.suffix == ".npy":
        if len(names) != 1:
            raise InputError(f"model has inputs {', '.join(names)}; give an .npz with one array per input", path=path)
        return {names[0]: np.load(p, allow_pickle=False)}
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            if key:
                if key not in z.files:
                    raise InputError(f"no array {key!r}; the file has {', '.join(z.files)}", path=path)
                return {names[0]: z[key]}
            if all(n in z.files for n in names):
                return {n: z[n] for n in names}
            if len(names) == 1 and len(z.files) == 1:
                return {names[0]: z[z.files[0]]}
            raise InputError(
                f"expected arrays named {', '.join(names)} (or --input-key), got {', '.join(z.files)}", path=path
            )
    raise InputError("expected a .npy or .npz file", path=path)


def cmd_run(args: argparse.Namespace) -> int:
    """Stream an input file through a model and write outputs (npz or JSON lines)."""
    from edgesnn.engine import SessionOptions

    model = load_model(args.model, args)
    feed = _read_inputs(args.input, model, args.input_key)
    first = model.inputs[0]
    arr = np.asarray(feed[first.name])
    if arr.ndim not in (len(first.shape) + 1, len(first.shape) + 2):
        raise InputError(f"expected (T, {first.shape}) or (T, batch, {first.shape}), got {arr.shape}", path=args.input)
    batch = arr.shape[1] if arr.ndim == len(first.shape) + 2 else 1
    feed = {k: (v if np.ndim(v) == len(model.graph.shape(k)) + 2 else np.asarray(v)[:, None]) for k, v in feed.items()}
    options = SessionOptions(backends=tuple(args.backend.split(","))) if args.backend else None
    dt = parse_duration_s(args.session_dt) if args.session_dt else None
    session = model.session(dt=dt, batch=batch, options=options, initial_state=args.initial_state)
    record = [n for n in args.record.split(",") if n] if args.record else None
    names = [s.name for s in model.outputs] + (record or [])
    t0 = time.perf_counter()
    result = session.run(feed, outputs=names)
    elapsed = time.perf_counter() - t0
    steps = len(next(iter(feed.values())))
    log.info("%d steps x batch %d in %.3f s (%.1f us/step)", steps, batch, elapsed, elapsed / max(steps, 1) * 1e6)
    out = args.output
    if out.endswith(".npz"):
        np.savez_compressed(out, **result)
        return 0
    stream = sys.stdout if out == "-" else open(out, "w", encoding="utf-8")
    try:
        first_out = model.outputs[0].name
        for t in range(steps):
            line: dict[str, Any] = {"t": t}
            for n in names:
                line[n] = result[n][t].tolist()
            if model.labels and len(model.labels) == int(np.prod(model.graph.shape(first_out))):
                line["decision"] = [model.labels[int(i)] for i in result[first_out][t].reshape(batch, -1).argmax(1)]
            stream.write(json.dumps(line) + "\n")
    finally:
        if stream is not sys.stdout:
            stream.close()
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert between .nir and .esnn (either direction) or re-write a bundle."""
    src, dst = Path(args.input), Path(args.output)
    if dst.suffix.lower() not in (".esnn", ".nir"):
        raise OptionError(f"output must end in .esnn or .nir, got {dst.name!r}", path="output")
    model = load_model(str(src), args)
    if src.suffix.lower() == ".nir" and not args.quiet:
        from edgesnn.bundle.nir import describe_assumptions

        line = describe_assumptions(model)
        if line:
            print(line)  # what a NIR file cannot say and the profile assumed, so a user can correct it
    if dst.suffix.lower() == ".nir":
        from edgesnn.bundle.nir import write_nir

        write_nir(model, str(dst), nir_version=args.nir_version)
    else:
        from edgesnn.bundle import write_bundle

        write_bundle(model, str(dst))
    if not args.quiet:
        print(f"wrote {dst} ({len(model.graph.nodes)} nodes, dt {model.dt_s * 1e3:g} ms, {model.method})")
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    """Re-map a model to another time step and write it as a new bundle."""
    from edgesnn.adapt import retime_model
    from edgesnn.bundle import write_bundle

    if Path(args.model).suffix.lower() == ".nir":
        raise OptionError("adapt takes a .esnn bundle; convert the NIR file first (edgesnn convert)", path="model")
    model = load_model(args.model, args)
    adapted = retime_model(model, parse_duration_s(args.dt, name="dt"), args.method)
    write_bundle(adapted, args.output)
    if not args.quiet:
        method = args.method or model.adapt_method
        print(f"wrote {args.output}: dt {model.dt_s * 1e3:g} ms -> {adapted.dt_s * 1e3:g} ms (method {method})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Time session.step on random spike input; print JSON (median, min, max µs/step)."""
    from edgesnn.engine import SessionOptions

    model = load_model(args.model, args)
    options = SessionOptions(backends=tuple(args.backend.split(","))) if args.backend else None
    session = model.session(batch=args.batch, options=options)
    rng = np.random.default_rng(args.seed)
    feeds = [
        {s.name: (rng.random((args.batch, *s.shape)) < args.density).astype(np.float32) for s in model.inputs}
        for _ in range(min(args.steps, 256))
    ]
    for t in range(min(args.steps, 100)):
        session.step(feeds[t % len(feeds)])
    times = []
    for _ in range(args.repeats):
        session.reset()
        t0 = time.perf_counter()
        for t in range(args.steps):
            session.step(feeds[t % len(feeds)])
        times.append((time.perf_counter() - t0) / args.steps * 1e6)
    report = {
        "model": args.model,
        "backend": session.backend,
        "batch": args.batch,
        "steps": args.steps,
        "repeats": args.repeats,
        "input_density": args.density,
        "us_per_step": {"median": float(np.median(times)), "min": float(min(times)), "max": float(max(times))},
        "sample_steps_per_s": float(args.batch / np.median(times) * 1e6),
    }
    print(json.dumps(report, indent=2))
    return 0


# -- parser ----------------------------------------------------------------------
def _add_unit_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--unit", action="append", metavar="INPUT=UNIT",
                   help="what an input's values are, e.g. in=spikes (events per step) or in=mV (a signal);"
                        " adapting to another step needs it for inputs without a unit")  # fmt: skip


def _add_nir_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("NIR import (for .nir inputs)")
    g.add_argument("--from", dest="profile", choices=PROFILES, help="framework that wrote the NIR file (default: nir)")
    g.add_argument("--dt", help="step the exporter assumed, e.g. 1ms or 100us (NIR stores none)")
    g.add_argument("--reset", dest="reset_mode", choices=("to_value", "subtract"), help="override the reset mode")
    g.add_argument("--reset-timing", choices=("immediate", "next_step"), help="override when the reset applies")
    g.add_argument("--method", choices=NEURON_METHODS, help="override the discretisation")
    g.add_argument("--max-spikes", dest="max_spikes_per_step", type=int,
                   help="spikes per neuron and step (1 = binary; sinabs/rockpool default to graded)")  # fmt: skip
    g.add_argument("--norm-input", choices=("yes", "no"),
                   help="sinabs: LIF layers scaled their input by 1 - alpha (Sinabs default: yes)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``edgesnn`` command."""
    parser = argparse.ArgumentParser(prog="edgesnn", description="Run spiking neural networks on edge devices.")
    parser.add_argument("--version", action="version", version=f"edgesnn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--quiet", action="store_true", help="only print results and errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="describe and validate a model (.esnn or .nir)")
    p.add_argument("model")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_nir_flags(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("run", help="stream an input file (.npy/.npz, time first) through a model")
    p.add_argument("model")
    p.add_argument("input", help=".npy (single input) or .npz (arrays named after inputs), shape (T, [batch,] ...)")
    p.add_argument("-o", "--output", default="-", help="out.npz, out.jsonl, or - for JSON lines on stdout")
    p.add_argument("--input-key", help="array name in the .npz for a single-input model")
    p.add_argument("--record", help="comma-separated nodes or neuron states (lif1/v, lif1/i, adlif/w) to record")
    p.add_argument("--session-dt", help="step of the session (default: the model's own)")
    p.add_argument("--initial-state", choices=("rest", "zero"),
                   help="membranes start at v_leak (rest) or 0 (default: the model's own)")  # fmt: skip
    _add_unit_flag(p)
    p.add_argument("--backend", help="comma-separated backends in order of preference (native,numpy)")
    _add_nir_flags(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("convert", help="convert .nir <-> .esnn")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--nir-version", choices=("current", "1.0.4"), default="current",
                   help="nir release the .nir output is for (1.0.4: what Sinabs 3.1 and Rockpool 3.1 pin)")  # fmt: skip
    _add_unit_flag(p)
    _add_nir_flags(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("adapt", help="re-map a model to another time step (no retraining)")
    p.add_argument("model", help="input .esnn")
    p.add_argument("--dt", required=True, help="target step, e.g. 0.5ms")
    p.add_argument("--method", choices=ADAPT_METHODS, help="adaptation method (default: the bundle's adapt_method)")
    p.add_argument("-o", "--output", required=True, help="output .esnn")
    _add_unit_flag(p)
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("bench", help="time one step of a model on random spike input")
    p.add_argument("model")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--density", type=float, default=0.02, help="spike probability per input per step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", help="comma-separated backends in order of preference (native,numpy)")
    _add_nir_flags(p)
    p.set_defaults(func=cmd_bench)

    from edgesnn.detect.cli import add_detect_command
    from edgesnn.events.cli import add_events_commands
    from edgesnn.learn.cli import add_learn_commands
    from edgesnn.serve.cli import add_serve_commands

    add_learn_commands(sub)
    add_events_commands(sub)
    add_serve_commands(sub)
    add_detect_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run, and turn errors into one line and an exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.debug else logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="edgesnn: %(levelname)s: %(message)s", stream=sys.stderr)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("edgesnn: interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:  # every failure ends as one line, or a traceback with --debug
        if args.debug or isinstance(exc, SystemExit):
            raise
        code = exit_code_for(exc)
        hint = "" if code != 70 else " (internal error; run with --debug for the traceback)"
        print(f"edgesnn {args.command}: error: {_one_line(exc)}{hint}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
