"""Every bound on untrusted input in one place: bundles, sessions, event files and the daemon.

Defaults suit a small device (a few hundred MB of memory for the runtime). A process
changes them once, at start-up, with :func:`configure` (``edgesnn serve`` does so from
its flags); code reads them with :func:`current` at the point of use, so a test can
narrow one for a block with :func:`override`. Exceeding a limit raises
:class:`LimitError`, which names the limit (its field name here) and the value that
exceeded it, and maps to exit code 8 in the CLI and RESOURCE_EXHAUSTED in the daemon.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator

from edgesnn.errors import LimitError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@dataclasses.dataclass(frozen=True)
class Limits:
    """The bounds; every size is in bytes, every time in seconds."""

    #: manifest.json of a bundle, before it is parsed.
    manifest_bytes: int = 32 * MiB
    #: Nesting of JSON objects and lists (manifest, NIR metadata records, learning configurations).
    json_depth: int = 64
    #: One tensor or part of a bundle, uncompressed, as its index declares it.
    member_bytes: int = 256 * MiB
    #: A whole bundle, uncompressed.
    bundle_bytes: int = 1 * GiB
    #: Entries in a bundle's zip directory (each costs memory before anything is checked).
    bundle_members: int = 65536
    #: Dimensions of one tensor or node shape.
    max_rank: int = 8
    #: Elements of one node's output (its shape, without the batch).
    node_elements: int = 16 * 1024 * 1024
    #: Nodes and edges of one graph (its checks visit every edge for every back edge).
    graph_nodes: int = 4096
    graph_edges: int = 16384
    #: Steps one Delay spans at a session's step (its ring holds that many copies of its input).
    delay_steps: int = 1 << 20
    #: Everything a session allocates: buffers and state over all nodes, times the batch.
    session_bytes: int = 512 * MiB
    #: Streams stepped together in one session.
    batch: int = 4096
    #: The range of a model's step and of any time it states (delays, intervals, time constants).
    min_time_s: float = 1e-9
    max_time_s: float = 1e4
    #: Event-file packets (AEDAT4) and frames, as their headers declare them, compressed and decompressed.
    packet_bytes: int = 64 * MiB
    #: Event-file headers: the AEDAT4 IOHeader with its XML description, a Prophesee ``%`` header.
    header_bytes: int = 1 * MiB
    #: gRPC messages in either direction.
    message_bytes: int = 64 * MiB
    #: Ids and names a client sends (model and session ids, labels, state names).
    id_chars: int = 256
    #: Open streaming calls per client address, and in all.
    streams_per_client: int = 16
    streams: int = 64
    #: A stream that sends nothing for this long is closed by the daemon.
    stream_idle_s: float = 60.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"limit {f.name} must be a positive number, got {value!r}")
        if self.min_time_s >= self.max_time_s:
            raise ValueError("min_time_s must be below max_time_s")

    def check(self, name: str, value: float, what: str = "", *, path: str | None = None) -> None:
        """Raise :class:`LimitError` when ``value`` exceeds the limit ``name`` (a field of this class)."""
        bound = getattr(self, name)
        if value > bound:
            raise LimitError(
                f"{what or name.replace('_', ' ')} of {_show(value, name)} exceeds the limit"
                f" {name} = {_show(bound, name)}",
                limit=name,
                value=value,
                path=path,
            )


def _show(value: float, name: str) -> str:
    if name.endswith("bytes") and value >= KiB:
        for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
            if value >= size:
                return f"{value / size:.4g} {unit} ({int(value)} bytes)"
    return f"{value:g}" if isinstance(value, float) else str(value)


_lock = threading.Lock()
_current = Limits()


def current() -> Limits:
    """The limits in force."""
    return _current


def configure(**changes: float) -> Limits:
    """Replace the limits in force (process-wide) with these changes applied; returns the new limits."""
    global _current
    names = [f.name for f in dataclasses.fields(Limits)]
    unknown = [k for k in changes if k not in names]
    if unknown:
        raise ValueError(f"unknown limit {unknown[0]!r}; limits are {', '.join(names)}")
    with _lock:
        _current = dataclasses.replace(_current, **changes)
        return _current


@contextlib.contextmanager
def override(**changes: float) -> Iterator[Limits]:
    """Apply ``changes`` for the duration of a block (tests, tools), then restore the limits."""
    global _current
    before = _current
    try:
        yield configure(**changes)
    finally:
        with _lock:
            _current = before


__all__ = ["Limits", "LimitError", "configure", "current", "override"]
