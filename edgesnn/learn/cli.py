"""``edgesnn learn | classes | forget``: teach, list and remove learned classes of a model with a class store.

:func:`add_learn_commands` adds the three commands to the ``edgesnn`` parser;
each sets ``func(args) -> exit code`` and raises edgesnn errors for user
mistakes, which ``edgesnn.cli.main`` prints as one line. The model must carry a
learning configuration (see :func:`edgesnn.learn.enable_learning`); every
command opens a session on the store, so a class another command (or a running
application) wrote is there, and ``learn`` returns once the class is on disk.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def _session(args: argparse.Namespace, *, create: bool = False):
    """A session of the model on the store; unless ``create``, a store directory that is not there is an error."""
    from edgesnn.cli import existing_dir, load_model

    model = load_model(args.model, args)
    return model.session(store=args.store if create else existing_dir(args.store, flag="--store"))


def _read_example(path: str, session, key: str | None) -> Any:
    from edgesnn.cli import _read_inputs  # the same .npy/.npz rules as `edgesnn run`

    feed = _read_inputs(path, session.model, key)
    return next(iter(feed.values())) if len(feed) == 1 else feed


def _print(args: argparse.Namespace, doc: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(doc, indent=2))
    elif not args.quiet:
        print(text)


def _rounded(key: str, value: float) -> float:
    # Timings to 0.1 µs; scores keep 4 significant digits (they can be far below 1).
    return round(value, 1) if key.endswith("_us") else float(f"{value:.4g}")


def cmd_learn(args: argparse.Namespace) -> int:
    """Teach one class one example and store it durably."""
    session = _session(args, create=True)
    info = session.learn(args.label, _read_example(args.example, session, args.input_key))
    doc = {k: (_rounded(k, v) if isinstance(v, float) else v) for k, v in info.items()}
    doc["store"] = args.store
    _print(args, doc, f"{info['action']} {args.label!r}: {info['updates']} updates in {info['epochs']} epochs,"
                      f" score on the example {info['score_before']:.3g} -> {info['score_after']:.3g}"
                      f" (target {info['target']:.3g}); {info['classes']} classes in {args.store}")  # fmt: skip
    return 0


def cmd_classes(args: argparse.Namespace) -> int:
    """List learned classes with their example counts."""
    from edgesnn.learn.store import ClassStore

    session = _session(args)  # checks the store belongs to this model before anything is listed
    record = ClassStore(args.store).read()
    labels, counts = session.classes(), list(record.examples) if record is not None else []
    doc = {"store": args.store, "classes": [{"label": lb, "examples": n} for lb, n in zip(labels, counts, strict=True)]}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        for lb, n in zip(labels, counts, strict=True):
            print(f"{lb}\t{n}")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """Remove a learned class from the store."""
    session = _session(args)
    info = session.forget(args.label)
    _print(args, {**info, "store": args.store}, f"forgot {args.label!r}; {info['classes']} classes in {args.store}")
    return 0


def add_learn_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``learn``, ``classes`` and ``forget`` to the ``edgesnn`` command."""
    p = subparsers.add_parser("learn", help="teach a model a class from one example (stored durably)")
    p.add_argument("model", help=".esnn with a learning configuration")
    p.add_argument("--label", required=True, help="class name (new, or one to reinforce)")
    p.add_argument("--example", required=True, help=".npy or .npz input, shape (T, [1,] ...)")
    p.add_argument("--input-key", help="array name in the .npz for a single-input model")
    p.add_argument("--store", required=True, help="directory of the class store (made if missing)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_learn)

    p = subparsers.add_parser("classes", help="list the classes a store holds for a model")
    p.add_argument("model", help=".esnn with a learning configuration")
    p.add_argument("--store", required=True, help="directory of the class store (must exist)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_classes)

    p = subparsers.add_parser("forget", help="remove a learned class from a store")
    p.add_argument("model", help=".esnn with a learning configuration")
    p.add_argument("--label", required=True, help="class to remove")
    p.add_argument("--store", required=True, help="directory of the class store (must exist)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_forget)
