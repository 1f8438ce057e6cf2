"""The ``edgesnn`` command: info, run, convert, adapt, bench, and the commands other packages register.

User errors print one line on stderr and exit non-zero; ``--debug`` shows the
traceback. Exit codes come from one table, :data:`EXIT_CODES`. ``--debug`` and
``--quiet`` work before or after any subcommand, and ``--help`` shows defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import logging
import os
import sys
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from edgesnn import __version__
from edgesnn.adapt import METHODS as ADAPT_METHODS
from edgesnn.catalog import resolve
from edgesnn.errors import (
    BundleError,
    BundleFormatError,
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
#: Exit status when the reader of stdout went away (``edgesnn run ... | head -1``): 128 + SIGPIPE, silently.
CLOSED_PIPE = 141
#: Flags every command takes, before or after the subcommand.
GLOBAL_FLAGS = (
    ("--debug", "show tracebacks and debug logs"),
    ("--quiet", "only print results and errors"),
    ("--progress", "show progress bars on stderr even when it is not a terminal (events convert, detect)"),
)
#: NIR import flags (dest -> flag): refused for a .esnn input, which records all of this itself.
NIR_FLAGS = {"profile": "--from", "dt": "--dt", "reset_mode": "--reset", "reset_timing": "--reset-timing",
             "method": "--method", "max_spikes_per_step": "--max-spikes", "norm_input": "--norm-input"}  # fmt: skip
#: Output extensions of ``run`` (``-`` is JSON lines on stdout).
RUN_OUTPUTS = (".jsonl", ".npz")
_HDF5 = b"\x89HDF\r\n\x1a\n"
_NPY = b"\x93NUMPY"
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")


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


# -- files -----------------------------------------------------------------------
def file_head(path: str, *, size: int = 8) -> bytes:
    """The first ``size`` bytes of ``path``; a missing file or a directory raises the OSError naming it."""
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", path)
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "no such file", path) from None


def describe_head(head: bytes) -> str:
    """What a file's first bytes look like, for an error message."""
    if head.startswith(_HDF5):
        return "an HDF5 file"
    if head.startswith(_NPY):
        return "a numpy .npy array"
    if head.startswith(_ZIP):
        return "a zip file"
    if not head:
        return "an empty file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data"
    return "text"


def existing_dir(path: str, *, flag: str) -> str:
    """``path`` if it is a directory, else the OSError naming it and ``flag``."""
    if not os.path.isdir(path):
        what = "not a directory" if os.path.exists(path) else "no such directory"
        raise FileNotFoundError(errno.ENOENT, f"{what} (given as {flag})", path)
    return path


# -- model loading ---------------------------------------------------------------
def _nir_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"profile": getattr(args, "profile", None) or "nir"}
    if getattr(args, "dt", None):
        opts["dt_s"] = parse_duration_s(args.dt, name="--dt")
    for key in ("reset_mode", "reset_timing", "method", "max_spikes_per_step"):
        if getattr(args, key, None):
            opts[key] = getattr(args, key)
    if getattr(args, "norm_input", None):
        opts["norm_input"] = args.norm_input == "yes"
    return opts


def _refuse_nir_flags(args: argparse.Namespace, path: str) -> None:
    """NIR import flags given for a .esnn bundle are an error naming the flag (a bundle records all of it)."""
    if not getattr(args, "nir_import", False):
        return
    for dest, flag in NIR_FLAGS.items():
        if getattr(args, dest, None) is not None:
            fix = "; change its step with edgesnn adapt --dt (or run --session-dt)" if dest == "dt" else ""
            raise OptionError(f"applies to .nir inputs only, and {path} is a .esnn bundle{fix}", path=flag)


def load_model(path: str, args: argparse.Namespace):
    """Read a .esnn bundle, a .nir graph (told apart by content, NIR by its profile) or a shipped model by name."""
    path = resolve(path)
    head = file_head(path)
    if head.startswith(_HDF5):
        from edgesnn.bundle.nir import read_nir

        model = read_nir(path, **_nir_options(args))
    elif head.startswith(_ZIP) or not (head.startswith(_NPY) or Path(path).suffix.lower() == ".nir"):
        from edgesnn.bundle import read_bundle

        _refuse_nir_flags(args, path)
        model = read_bundle(path)  # its own messages for damage (a cut front, a truncated zip)
    else:
        raise BundleFormatError(
            f"expected a model (.esnn bundle, a zip, or .nir graph, HDF5), found {describe_head(head)}", path=path
        )
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
    from edgesnn.detect import describe, describe_line

    detector = describe(model, resolve(args.model))  # the file load_model read
    if detector is not None:
        info.update(kind="detector", detector=detector, parameters=detector["parameters"]["total"])
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(
        f"{args.model}: {len(nodes)} nodes, {info['parameters']} parameters,"
        f" dt {model.dt_s * 1e3:g} ms ({model.method}, adapts by {model.adapt_method}, starts at {model.initial_state})"
    )
    if detector is not None:
        print("  " + describe_line(detector))
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
    _print_provenance(model.producer)
    return 0


def _print_provenance(producer: dict[str, Any]) -> None:
    """What a model does, how it was made and what it scored, where its producer record says so."""
    from edgesnn.catalog import DESCRIPTION, MADE_BY, TASK, evaluations

    for key in (TASK, DESCRIPTION, MADE_BY):
        if producer.get(key):
            print(f"  {key.replace('_', ' ')}: {producer[key]}")
    for e in evaluations(producer):
        print(f"  measured: {e}")


def cmd_models(args: argparse.Namespace) -> int:
    """List the shipped models: name, size, task and what each scored."""
    from edgesnn.catalog import models

    shipped = models()
    if args.json:
        print(json.dumps([dataclasses.asdict(m) for m in shipped], indent=2))
        return 0
    if not shipped:
        log.warning("this installation ships no models")
    for m in shipped:
        print(f"{m.name:<10} {m.size_bytes / 1e6:5.2f} MB  {m.task}")
        for e in m.evaluation:
            print(f"{'':<10} measured: {e}")
    if shipped and not args.quiet:
        print(f"load one by name: edgesnn info {shipped[0].name}, edgesnn.load({shipped[0].name!r})", file=sys.stderr)
    return 0


def _load_array_file(path: str):
    """``np.load`` without pickles; a file numpy cannot read is an InputError naming it, never numpy's advice."""
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise InputError("holds Python objects (pickled); expected numeric arrays", path=path) from None
        raise InputError(f"not a readable numpy file ({_one_line(exc)})", path=path) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"not a readable numpy file ({_one_line(exc)})", path=path) from None


def _read_inputs(path: str, model, key: str | None) -> dict[str, np.ndarray]:
    """Input arrays from a .npy or .npz file, told apart by content; ``key`` picks one array of an .npz."""
    names = [s.name for s in model.inputs]
    head = file_head(path)
    if head.startswith(_NPY):
        if key:
            raise OptionError(f"applies to .npz inputs only, and {path} is a .npy array", path="--input-key")
        if len(names) != 1:
            raise InputError(f"model has inputs {', '.join(names)}; give an .npz with one array per input", path=path)
        return {names[0]: _load_array_file(path)}
    if head.startswith(_ZIP):
        with _load_array_file(path) as z:
            others = [n for n in z.zip.namelist() if not n.endswith(".npy")]
            if others:
                raise InputError(f"a zip but no .npz (it holds {others[0]}); expected numpy.savez output", path=path)
            if key:
                if key not in z.files:
                    raise InputError(f"no array {key!r}; the file has {', '.join(z.files)}", path=path)
                picked = {names[0]: key}
            elif all(n in z.files for n in names):
                picked = {n: n for n in names}
            elif len(names) == 1 and len(z.files) == 1:
                picked = {names[0]: z.files[0]}
            else:
                raise InputError(
                    f"expected arrays named {', '.join(names)} (or --input-key), got {', '.join(z.files)}", path=path
                )
            try:
                return {name: z[member] for name, member in picked.items()}
            except ValueError:
                raise InputError("holds Python objects (pickled); expected numeric arrays", path=path) from None
    raise InputError(f"expected a .npy or .npz file (numpy.save, numpy.savez), found {describe_head(head)}", path=path)


def output_kind(path: str, accepted: Sequence[str], *, flag: str = "-o/--out") -> str:
    """The lower-case extension of an output path if it is one of ``accepted``, else an OptionError listing them."""
    ext = Path(path).suffix.lower()
    if ext not in accepted:
        raise OptionError(f"expected a file ending in {' or '.join(accepted)}, got {path!r}", path=flag)
    return ext


def decisions(labels: Sequence[str], scores: np.ndarray) -> list[str | None]:
    """Per stream (rows of ``scores``), the label scoring highest, or None where nothing scores (all zero)."""
    return [labels[int(row.argmax())] if np.any(row) else None for row in scores]


def cmd_run(args: argparse.Namespace) -> int:
    """Stream an input file through a model and write outputs (npz or JSON lines); a summary goes to stderr."""
    from edgesnn.engine import SessionOptions

    out = args.output
    kind = "-" if out == "-" else output_kind(out, RUN_OUTPUTS)
    store = existing_dir(args.store, flag="--store") if args.store else None
    dt = parse_duration_s(args.session_dt, name="--session-dt") if args.session_dt else None
    model = load_model(args.model, args)
    feed = _read_inputs(args.input, model, args.input_key)
    first = model.inputs[0]
    arr = np.asarray(feed[first.name])
    if arr.ndim not in (len(first.shape) + 1, len(first.shape) + 2):
        raise InputError(f"expected (T, {first.shape}) or (T, batch, {first.shape}), got {arr.shape}", path=args.input)
    batch = arr.shape[1] if arr.ndim == len(first.shape) + 2 else 1
    feed = {k: (v if np.ndim(v) == len(model.graph.shape(k)) + 2 else np.asarray(v)[:, None]) for k, v in feed.items()}
    options = SessionOptions(backends=tuple(args.backend.split(","))) if args.backend else None
    session = model.session(dt=dt, batch=batch, options=options, initial_state=args.initial_state, store=store)
    record = [n for n in args.record.split(",") if n] if args.record else []
    names = [s.name for s in session.outputs] + record
    t0 = time.perf_counter()
    result = session.run(feed, outputs=names)
    elapsed = time.perf_counter() - t0
    steps = len(next(iter(feed.values())))
    if kind == ".npz":
        with open(out, "wb") as f:
            np.savez_compressed(f, **result)
    else:
        _write_json_lines(out, session, result, names, steps, batch)
    if not args.quiet:
        where = "stdout" if out == "-" else out
        print(f"edgesnn run: {steps} steps x batch {batch} in {elapsed:.3g} s ({elapsed / max(steps, 1) * 1e6:.1f} us"
              f"/step, {session.backend}); wrote {', '.join(names)} to {where}", file=sys.stderr)  # fmt: skip
    if store and not session.classes():
        log.warning("the store %s holds no learned classes yet (edgesnn learn adds them)", store)
    return 0


def _write_json_lines(out: str, session, result: dict[str, np.ndarray], names: list[str], steps: int, batch: int):
    """One JSON object per step: the outputs, a ``decision`` over the labels and a ``learned`` one over the store's."""
    from edgesnn.learn.config import SCORES

    model = session.model
    first_out = model.outputs[0].name
    labelled = bool(model.labels) and len(model.labels) == int(np.prod(model.graph.shape(first_out)))
    learned = session.classes() if SCORES in names else []
    stream = sys.stdout if out == "-" else open(out, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for t in range(steps):
            line: dict[str, Any] = {"t": t}
            for n in names:
                line[n] = result[n][t].tolist()
            if labelled:
                line["decision"] = decisions(model.labels, result[first_out][t].reshape(batch, -1))
            if learned:
                line["learned"] = decisions(learned, result[SCORES][t].reshape(batch, -1))
            stream.write(json.dumps(line) + "\n")
    finally:
        if stream is not sys.stdout:
            stream.close()


def output_arg(args: argparse.Namespace) -> str:
    """The output path given as the second positional argument or as ``-o/--out`` (one of them)."""
    if args.output and args.out:
        raise OptionError(f"give the output once, as OUTPUT or -o/--out (got {args.output!r} and {args.out!r})",
                          path="-o/--out")  # fmt: skip
    if not (args.output or args.out):
        raise OptionError("no output given: add OUTPUT or -o/--out FILE", path="-o/--out")
    return args.output or args.out


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert between .nir and .esnn (either direction) or re-write a bundle."""
    src, dst = Path(args.input), Path(output_arg(args))
    kind = output_kind(str(dst), (".esnn", ".nir"))
    if args.nir_version is not None and kind != ".nir":
        raise OptionError(f"applies to .nir outputs only, and {dst} is a .esnn bundle", path="--nir-version")
    model = load_model(str(src), args)
    if file_head(str(resolve(str(src)))).startswith(_HDF5) and not args.quiet:
        from edgesnn.bundle.nir import describe_assumptions

        line = describe_assumptions(model)
        if line:
            print(line)  # what a NIR file cannot say and the profile assumed, so a user can correct it
    if dst.suffix.lower() == ".nir":
        from edgesnn.bundle.nir import write_nir

        write_nir(model, str(dst), nir_version=args.nir_version or "current")
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

    output_kind(args.output, (".esnn",))  # a .nir would lose what adapting recorded: convert the result instead
    dt = parse_duration_s(args.dt, name="--dt")
    if file_head(resolve(args.model)).startswith(_HDF5):
        raise OptionError("adapt takes a .esnn bundle; convert the NIR file first (edgesnn convert)", path=args.model)
    model = load_model(args.model, args)
    adapted = retime_model(model, dt, args.method)
    write_bundle(adapted, args.output)
    if not args.quiet:
        method = args.method or model.adapt_method
        print(f"wrote {args.output}: dt {model.dt_s * 1e3:g} ms -> {adapted.dt_s * 1e3:g} ms (method {method})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Time session.step on random spike input; print JSON (median, min, max µs/step)."""
    from edgesnn.engine import SessionOptions

    for flag in ("steps", "repeats", "batch"):
        if getattr(args, flag) < 1:
            raise OptionError(f"must be at least 1, got {getattr(args, flag)}", path=f"--{flag}")
    if not 0 <= args.density <= 1:
        raise OptionError(f"must lie in 0..1 (a probability), got {args.density}", path="--density")
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
class HelpFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, unless it is None or False or the text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if default is None or default is False or default == argparse.SUPPRESS or "default" in text:
            return action.help
        return f"{text} (default: %(default)s)".lstrip()


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, and whose help pages show defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Print one line naming the argument and exit 2 (argparse prints the usage too)."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        """Parse, naming the subcommand whose usage an unknown argument breaks."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            prog = getattr(parsed, "cli_prog", self.prog)
            self.exit(2, f"{prog}: error: unrecognized arguments: {' '.join(extras)} (see {prog} --help)\n")
        return parsed


def subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser below ``parser`` (subcommands, and theirs), each once."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
                yield child
                yield from subparsers(child)


def share_global_flags(parser: argparse.ArgumentParser) -> None:
    """Let every subcommand, wherever it was registered, take the global flags, and name itself in errors."""
    for child in subparsers(parser):
        for flag, text in GLOBAL_FLAGS:
            if flag not in child._option_string_actions:
                # SUPPRESS: without the flag, keep the value given before the subcommand
                child.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=text)
        child.set_defaults(cli_prog=child.prog)


def _add_unit_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--unit", action="append", metavar="INPUT=UNIT",
                   help="what an input's values are, e.g. in=spikes (events per step) or in=mV (a signal);"
                        " adapting to another step needs it for inputs without a unit")  # fmt: skip


def _add_out_flag(p: argparse.ArgumentParser, text: str, **kwargs: Any) -> None:
    p.add_argument("-o", "--out", "--output", dest="output", metavar="FILE", help=text, **kwargs)


def _add_nir_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("NIR import (for .nir inputs; an error for a .esnn bundle)")
    g.add_argument("--from", dest="profile", choices=PROFILES, help="framework that wrote the NIR file (default: nir)")
    g.add_argument("--dt", help="step the exporter assumed, with a unit: 1ms, 100us (NIR stores none)")
    g.add_argument("--reset", dest="reset_mode", choices=("to_value", "subtract"), help="override the reset mode")
    g.add_argument("--reset-timing", choices=("immediate", "next_step"), help="override when the reset applies")
    g.add_argument("--method", choices=NEURON_METHODS, help="override the discretisation")
    g.add_argument("--max-spikes", dest="max_spikes_per_step", type=int,
                   help="spikes per neuron and step (1 = binary; sinabs/rockpool default to graded)")  # fmt: skip
    g.add_argument("--norm-input", choices=("yes", "no"),
                   help="sinabs: LIF layers scaled their input by 1 - alpha (Sinabs default: yes)")  # fmt: skip
    p.set_defaults(nir_import=True)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``edgesnn`` command."""
    parser = Parser(prog="edgesnn", description="Run spiking neural networks on edge devices.")
    parser.add_argument("--version", action="version", version=f"edgesnn {__version__}")
    for flag, text in GLOBAL_FLAGS:
        parser.add_argument(flag, action="store_true", help=f"{text} (also after the subcommand)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model_help = "model: a .esnn bundle or a .nir graph (told apart by content)"

    p = sub.add_parser("info", help="describe and validate a model (.esnn or .nir)")
    p.add_argument("model", help=model_help)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_nir_flags(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("run", help="stream an input file (.npy/.npz, time first) through a model")
    p.add_argument("model", help=model_help)
    p.add_argument("input", help=".npy (single input) or .npz (arrays named after inputs), shape (T, [batch,] ...)")
    _add_out_flag(p, "out.npz, out.jsonl, or - for JSON lines on stdout", default="-")
    p.add_argument("--input-key", help="array name in the .npz for a single-input model")
    p.add_argument("--record", help="comma-separated nodes or neuron states (lif1/v, lif1/i, adlif/w) to record")
    p.add_argument("--session-dt", help="step of the session, with a unit: 0.5ms, 250us (default: the model's own)")
    p.add_argument("--initial-state", choices=("rest", "zero"),
                   help="membranes start at v_leak (rest) or 0 (default: the model's own)")  # fmt: skip
    p.add_argument("--store", metavar="DIR",
                   help="class store of a model that learns (edgesnn learn): adds its 'classes' scores and,"
                        " in JSON lines, a 'learned' decision")  # fmt: skip
    _add_unit_flag(p)
    p.add_argument("--backend", help="comma-separated backends in order of preference (native,numpy)")
    _add_nir_flags(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("convert", help="convert .nir <-> .esnn")
    p.add_argument("input", help=model_help)
    p.add_argument("output", nargs="?", help="model.esnn or model.nir (or give it as -o/--out)")
    p.add_argument("-o", "--out", metavar="FILE", help="the output, instead of the second argument")
    p.add_argument("--nir-version", choices=("current", "1.0.4"),
                   help="nir release a .nir output is for (1.0.4: what Sinabs 3.1 and Rockpool 3.1 pin;"
                        " default: current)")  # fmt: skip
    _add_unit_flag(p)
    _add_nir_flags(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("adapt", help="re-map a model to another time step (no retraining)")
    p.add_argument("model", help="input .esnn bundle")
    p.add_argument("--dt", required=True, help="target step, with a unit: 0.5ms, 500us, 1s")
    p.add_argument("--method", choices=ADAPT_METHODS, help="adaptation method (default: the bundle's adapt_method)")
    _add_out_flag(p, "output .esnn bundle", required=True)
    _add_unit_flag(p)
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("bench", help="time one step of a model on random spike input")
    p.add_argument("model", help=model_help)
    p.add_argument("--steps", type=int, default=1000, help="steps per timed repeat")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (median, min and max are reported)")
    p.add_argument("--batch", type=int, default=1, help="streams stepped together")
    p.add_argument("--density", type=float, default=0.02, help="spike probability per input per step")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input")
    p.add_argument("--backend", help="comma-separated backends in order of preference (native,numpy)")
    _add_nir_flags(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("models", help="list the models shipped with edgesnn (load them by name)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_models)

    from edgesnn.detect.cli import add_detect_command
    from edgesnn.events.cli import add_events_commands
    from edgesnn.fsm.cli import add_fsm_commands
    from edgesnn.learn.cli import add_learn_commands
    from edgesnn.serve.cli import add_serve_commands

    add_learn_commands(sub)
    add_events_commands(sub)
    add_serve_commands(sub)
    add_detect_command(sub)
    add_fsm_commands(sub)
    try:  # firmware_bridges/ is in the source tree, not in the installed package: no `edgesnn ipu` without it
        from firmware_bridges.ipu.cli import add_ipu_commands  # argparse only; the compiler loads in the command
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("firmware_bridges"):
            raise
    else:
        add_ipu_commands(sub)
    share_global_flags(parser)  # last: reaches every command registered above
    return parser


def _stdout_gone() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush after a closed pipe stays silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout replaced (tests) or already closed: nothing to flush
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run, and turn errors into one line and an exit code."""
    parser = build_parser()
    share_global_flags(parser)  # again, for commands registered after build_parser's own call
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error, already printed in one line
        return exc.code if isinstance(exc.code, int) else 0
    level = logging.DEBUG if args.debug else logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="edgesnn: %(levelname)s: %(message)s", stream=sys.stderr)
    func: Callable[[argparse.Namespace], int] = args.func
    prog = getattr(args, "cli_prog", f"edgesnn {args.command}")
    try:
        return func(args)
    except KeyboardInterrupt:
        print("edgesnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): not an error of ours, and nothing left to say
        _stdout_gone()
        return CLOSED_PIPE
    except BaseException as exc:  # every failure ends as one line, or a traceback with --debug
        if args.debug or isinstance(exc, SystemExit):
            raise
        code = exit_code_for(exc)
        hint = "" if code != 70 else " (internal error; run with --debug for the traceback)"
        print(f"{prog}: error: {_one_line(exc)}{hint}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
