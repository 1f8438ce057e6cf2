"""Checks of what a caller hands a session (inputs by name and shape, output names), shared by every session kind.

The engine's :class:`~edgesnn.engine.session.Session` and sessions that keep the
engine's plan as their image of a device (the IPU bridge's) raise the same errors
with the same paths and words: the device conformance suite compares them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from edgesnn.errors import InputError


def check_output_names(names: Iterable[str], known: Mapping[str, object], records: Iterable[str],
                       buffers: Iterable[str]) -> list[str]:  # fmt: skip
    """``names`` as a list if each is a node or recorded state in ``known``; else an error naming the miss."""
    names = list(names)
    for n in names:
        if n not in known:
            if "/" in n:
                node = n.split("/", 1)[0]
                have = [r for r in records if r.startswith(f"{node}/")]
                what = f"{node!r} records {', '.join(have)}" if have else f"{node!r} has no recordable state"
                raise InputError(f"no state named {n!r}; {what}", path="outputs")
            raise InputError(f"no node named {n!r}; nodes are {', '.join(buffers)}", path="outputs")
    return names


def check_feed_names(feed: Mapping[str, object], in_names: Sequence[str]) -> None:
    """A feed must name exactly the model's inputs."""
    missing = [n for n in in_names if n not in feed]
    extra = [n for n in feed if n not in in_names]
    if missing or extra:
        raise InputError(
            f"expected inputs {', '.join(in_names)}; missing {missing or 'none'}, unknown {extra or 'none'}",
            path="inputs",
        )


def coerce_input(name: str, value: object, want: tuple[int, ...]) -> np.ndarray:
    """One step's input as an array of shape ``want`` (the batch axis may be left out at batch 1)."""
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"expected a numeric array, got dtype {arr.dtype}", path=f"inputs/{name}")
    if arr.shape != want:
        if arr.shape == want[1:] and want[0] == 1:
            return arr.reshape(want)
        raise InputError(f"expected shape {want}, got {arr.shape}", path=f"inputs/{name}")
    return arr


def as_feed(x: object, in_names: Sequence[str]) -> Mapping[str, object]:
    """A mapping by input name: a bare array is the single input's (an error for a model with several)."""
    if isinstance(x, Mapping):
        check_feed_names(x, in_names)
        return x
    if len(in_names) != 1:
        raise InputError(f"model has inputs {', '.join(in_names)}; pass a dict by name", path="inputs")
    return {in_names[0]: x}


def split_sequence(xs: object, in_names: Sequence[str], shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """Whole sequences (T, *shape) per input, in input order, all of one length T."""
    feed = as_feed(xs, in_names)
    seqs = []
    for name, shape in zip(in_names, shapes, strict=True):
        arr = np.asarray(feed[name])
        if arr.dtype.kind not in "biuf":
            raise InputError(f"expected a numeric array, got dtype {arr.dtype}", path=f"inputs/{name}")
        if arr.shape[1:] != shape:
            if shape[0] == 1 and arr.shape[1:] == shape[1:]:
                arr = arr.reshape((arr.shape[0], *shape))
            else:
                raise InputError(f"expected shape (T, {', '.join(map(str, shape))}), got {arr.shape}",
                                 path=f"inputs/{name}")  # fmt: skip
        seqs.append(arr)
    lengths = {len(s) for s in seqs}
    if len(lengths) > 1:
        raise InputError(f"inputs have different lengths {sorted(lengths)}", path="inputs")
    return seqs
