"""``edgesnn ipu plan MODEL``: where a model goes on IPU tiles, what it occupies and costs, for inference or training.

:func:`add_ipu_commands` registers the command on the ``edgesnn`` parser; it imports only
argparse, and the command imports the compiler when it runs. Errors are edgesnn errors, which
``edgesnn.cli.main`` prints as one line (a model too large for the chips: a CapacityError
naming the population and the bytes missing).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from firmware_bridges.ipu.trainplan import TrainPlan

SCHEMES = ("none", "standard", "hierarchical", "remote", "double")


def add_ipu_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``edgesnn ipu plan`` to the command line."""
    from edgesnn.cli import HelpFormatter

    ipu = sub.add_parser("ipu", help="Graphcore IPU (simulated): plans of a model on tiles")
    cmds = ipu.add_subparsers(dest="ipu_command", required=True, metavar="COMMAND")
    p = cmds.add_parser("plan", formatter_class=HelpFormatter,
                        help="place a model on IPU tiles: memory per tile, exchanges, time per step")  # fmt: skip
    p.add_argument("model", help="a .esnn bundle, a .nir graph or a shipped model's name")
    p.add_argument("--batch", type=int, default=1, help="samples stepped together")
    p.add_argument("--ipus", type=int, default=1, help="IPUs the program may use")
    p.add_argument("--max-activity", type=float, default=None,
                   help="spike-buffer capacity as a fraction of each population (default 1 for inference: nothing"
                        " dropped; 0.1 with --train, the trainer's train.sparse default)")  # fmt: skip
    p.add_argument("--input-capacity", type=int, help="send inputs as spike ids, this many per step and sample")
    p.add_argument("--exchange", choices=("sparse", "dense"), default="sparse",
                   help="spike ids in capacity-bounded buffers, or float32 vectors (the dense baseline)")  # fmt: skip
    p.add_argument("--activity", type=float, default=0.05,
                   help="fraction of each spiking source active per step, for the predicted time")  # fmt: skip
    p.add_argument("--train", action="store_true", help="plan sparse BPTT training instead of inference")
    p.add_argument("--seq-len", type=int, default=100, help="with --train: steps per sequence")
    p.add_argument("--scheme", choices=(*SCHEMES, "all"), default="none",
                   help="with --train: gradient checkpointing scheme (all: one line per scheme)")  # fmt: skip
    p.add_argument("--dense-bptt", action="store_true", help="with --train: keep every state per step")
    p.add_argument("--png", metavar="FILE", help="write a PNG map of the memory of every tile")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_plan, cli_prog="edgesnn ipu plan")


def cmd_plan(args: argparse.Namespace) -> int:
    """Compile the model for the chips and print its plan."""
    from edgesnn.cli import load_model
    from edgesnn.engine.plan import compile_plan
    from edgesnn.errors import CapacityError
    from firmware_bridges.ipu.compiler import CompileOptions
    from firmware_bridges.ipu.netspec import from_plan
    from firmware_bridges.ipu.plan import program_dict, program_table, write_tile_map

    model = load_model(args.model, args)
    default_activity = 0.1 if args.train else 1.0
    options = CompileOptions(max_activity=default_activity if args.max_activity is None else args.max_activity,
                             input_capacity=args.input_capacity, exchange=args.exchange, ipus=args.ipus,
                             batch=args.batch)  # fmt: skip
    if not args.train:
        from firmware_bridges.ipu.plan import inference_program

        program = inference_program(model, options)
        doc = program_dict(program, args.activity)
        print(json.dumps(doc, indent=2) if args.json else program_table(doc))
    else:
        from firmware_bridges.ipu.trainplan import TrainOptions, train_plan

        spec = from_plan(compile_plan(model.graph, model.dt_s, model.method, 1))
        schemes = SCHEMES if args.scheme == "all" else (args.scheme,)
        plans, refused = [], {}
        for s in schemes:
            try:
                train = TrainOptions(args.seq_len, s, sparse=not args.dense_bptt, activity=args.activity)
                plans.append(train_plan(spec, train, options))
            except CapacityError as exc:
                if len(schemes) == 1:
                    raise
                refused[s] = str(exc)
        if not plans:
            raise CapacityError(f"no scheme fits T = {args.seq_len:,}: {refused['double']}", path="seq_len")
        program = plans[-1].program
        if args.json:
            doc = {"program": program_dict(program, args.activity), "plans": [p.to_dict() for p in plans],
                   "refused": refused}  # fmt: skip
            print(json.dumps(doc, indent=2))
        else:
            print(program_table(program_dict(program, args.activity)))
            print()
            for p in plans:
                print(_train_line(p))
            for s, why in refused.items():
                print(f"{s}: does not fit ({why})")
    if args.png:
        write_tile_map(program, args.png)
        if not args.quiet:
            print(f"tile memory map written to {args.png}")
    return 0


def _train_line(plan: TrainPlan) -> str:
    d = plan.to_dict()
    chunks = f" chunks {d['chunks']}" if d["chunks"] else ""
    remote = f", Streaming Memory {d['streaming_bytes'] / 2**20:,.1f} MiB" if d["streaming_bytes"] else ""
    return (f"{d['scheme']}{chunks}: T = {d['steps']:,}, batch {d['batch']}, tile memory max"
            f" {d['tile_bytes_max'] / 1024:,.1f} KiB (checkpoints and residuals {d['checkpoint_bytes_max'] / 1024:,.1f}"
            f" KiB){remote}; predicted {d['step_s'] * 1e3:,.3f} ms per training step, x{d['time_factor']:.2f} of plain"
            " BPTT")  # fmt: skip
