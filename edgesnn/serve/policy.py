"""What a client may make the daemon do on its own machine: which files LoadModel opens, how many streams it holds."""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable

from edgesnn import limits
from edgesnn.errors import CapacityError, InputError

log = logging.getLogger("edgesnn.serve")

PathLike = str | os.PathLike[str]


class PathRefused(PermissionError):
    """LoadModel named a file outside the directories the daemon serves (PERMISSION_DENIED)."""


@dataclasses.dataclass(frozen=True)
class ModelPaths:
    """The files LoadModel may open by path: these files, and regular files under these directories.

    Paths are compared after resolving symbolic links, so no link leads out of a directory; a
    refused path gets the same answer whether it exists or not.
    """

    files: frozenset[str] = frozenset()
    dirs: tuple[str, ...] = ()

    @classmethod
    def of(cls, files: Iterable[PathLike] = (), dirs: Iterable[PathLike] = ()) -> ModelPaths:
        """Allow ``files`` and everything under ``dirs`` (resolved now)."""
        return cls(frozenset(os.path.realpath(f) for f in files), tuple(os.path.realpath(d) for d in dirs))

    def resolve(self, path: str, max_bytes: int) -> str:
        """The real path of ``path`` if a client may load it; refuses it otherwise."""
        if "\x00" in path or not path:
            raise InputError("expected a file path (no NUL characters)", path="path")
        real = os.path.realpath(path)
        inside = real in self.files or any(os.path.commonpath((real, d)) == d for d in self.dirs)
        if not inside:
            where = ", ".join(sorted(self.dirs)) or "none"
            raise PathRefused(
                f"loading by path is limited to the served models (--model) and directories (--models-dir: {where});"
                " send the bundle's bytes instead"
            )
        try:
            info = os.stat(real)
        except FileNotFoundError:
            raise FileNotFoundError(f"no bundle at {path!r}") from None
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{path!r} is not a regular file", path="path")
        if info.st_size > max_bytes:
            raise CapacityError(f"{path!r} has {info.st_size} bytes, over the server's limit of {max_bytes}",
                                path="path")  # fmt: skip
        return real


@dataclasses.dataclass
class StreamTicket:
    """One admitted stream: its client, when it last sent a request, and how to end it."""

    client: str
    cancel: Callable[[], object]
    last_seen: float = dataclasses.field(default_factory=time.monotonic)

    def touch(self) -> None:
        """The stream sent a request."""
        self.last_seen = time.monotonic()


class StreamAdmission:
    """Open streams per client and in all, with idle ones ended.

    Each open stream holds a worker thread of the synchronous server; refusing a stream over
    ``streams_per_client`` or ``streams``, and cancelling one silent for ``stream_idle_s``,
    keeps threads free for health checks and other clients' calls.
    """

    def __init__(self, check_every_s: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._open: set[int] = set()
        self._tickets: dict[int, StreamTicket] = {}
        self._check_every_s = check_every_s
        self._stop = threading.Event()
        self._watch: threading.Thread | None = None

    @staticmethod
    def client_of(peer: str) -> str:
        """The client's host from a grpc peer string ("ipv4:127.0.0.1:5000" -> "ipv4:127.0.0.1")."""
        return peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer

    def open(self, peer: str, cancel: Callable[[], object]) -> StreamTicket:
        """Admit a stream of ``peer`` (``cancel`` ends it); raises CapacityError over a limit."""
        client = self.client_of(peer)
        bounds = limits.current()
        with self._lock:
            mine = sum(t.client == client for t in self._tickets.values())
            if mine >= bounds.streams_per_client:
                raise CapacityError(f"this client has {mine} streams open, the limit (streams_per_client);"
                                    " close one first", path="stream")  # fmt: skip
            if len(self._tickets) >= bounds.streams:
                raise CapacityError(f"{len(self._tickets)} streams are open, the server's limit (streams);"
                                    " try again later", path="stream")  # fmt: skip
            ticket = StreamTicket(client, cancel)
            self._tickets[id(ticket)] = ticket
            if self._watch is None:
                self._watch = threading.Thread(target=self._end_idle, name="edgesnn-stream-idle", daemon=True)
                self._watch.start()
        return ticket

    def close(self, ticket: StreamTicket) -> None:
        """A stream ended."""
        with self._lock:
            self._tickets.pop(id(ticket), None)

    def stop(self) -> None:
        """End the idle watch (server shutdown)."""
        self._stop.set()

    def _end_idle(self) -> None:
        while not self._stop.wait(self._check_every_s):
            idle_s = limits.current().stream_idle_s
            now = time.monotonic()
            with self._lock:
                idle = [t for t in self._tickets.values() if now - t.last_seen > idle_s]
            for ticket in idle:
                log.info("stream ended", extra={"client": ticket.client, "reason": f"idle > {idle_s:g} s"})
                ticket.cancel()

    def __len__(self) -> int:
        with self._lock:
            return len(self._tickets)
