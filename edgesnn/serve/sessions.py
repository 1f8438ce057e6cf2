"""The server's table of open sessions: ids, the session limit, idle eviction, stream ownership."""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Callable

from edgesnn.devices.base import Device, DeviceSession
from edgesnn.errors import CapacityError, NotFoundError

log = logging.getLogger("edgesnn.serve")


@dataclasses.dataclass
class Entry:
    """An open session, when it was last used, and the name of its input if it has only one."""

    session: DeviceSession
    last_used: float
    only_input: str | None


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; absent on musl, macOS
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Hand memory freed by a closed session back to the system.

    A session's arrays below the allocator's mmap threshold are freed into the heap, which
    glibc keeps (and counts as the daemon's RSS) until trimmed; a daemon that opens and closes
    sessions for days would otherwise grow to its busiest moment and stay there.
    """
    if _TRIM is not None:
        _TRIM(0)


class SessionTable:
    """Open sessions by id. Thread-safe; each session also locks itself while it steps.

    When the table is full, sessions idle for more than ``idle_timeout_s`` are closed
    to make room (oldest first); otherwise OpenSession fails with CapacityError.
    """

    def __init__(self, device: Device, *, max_sessions: int, idle_timeout_s: float) -> None:
        self._device = device
        self._max = max_sessions
        self._idle_s = idle_timeout_s
        self._entries: dict[str, Entry] = {}
        self._pending = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def open(
        self, model_id: str, *, dt: float | None, batch: int, adapt_method: str | None, initial_state: object = None
    ) -> tuple[str, DeviceSession]:
        """Open a session on the device and give it a fresh id."""
        with self._lock:
            if len(self._entries) + self._pending >= self._max:
                self._evict_idle()
            if len(self._entries) + self._pending >= self._max:
                raise CapacityError(
                    f"{len(self._entries)} sessions are open, the server's limit (--max-sessions {self._max});"
                    " close one first",
                    path="session",
                )
            self._pending += 1
        try:
            session = self._device.open_session(
                model_id, dt=dt, batch=batch, adapt_method=adapt_method, initial_state=initial_state
            )
        finally:
            with self._lock:
                self._pending -= 1
        sid = secrets.token_hex(12)
        with self._lock:
            names = [spec.name for spec in session.inputs]
            self._entries[sid] = Entry(session, time.monotonic(), names[0] if len(names) == 1 else None)
        log.info("session opened", extra={"session": sid, "model": model_id, "open_sessions": len(self._entries)})
        return sid, session

    def get(self, session_id: str) -> DeviceSession:
        """The session with this id, marked as used now."""
        return self.entry(session_id).session

    def entry(self, session_id: str) -> Entry:
        """The table entry of this session id, marked as used now."""
        entry = self._entries.get(session_id)
        if entry is None:
            raise NotFoundError(f"no open session with id {session_id!r}", path="session_id")
        entry.last_used = time.monotonic()
        return entry

    def close(self, session_id: str, reason: str = "closed by the client") -> None:
        """Close and forget a session."""
        with self._lock:
            entry = self._entries.pop(session_id, None)
        if entry is None:
            raise NotFoundError(f"no open session with id {session_id!r}", path="session_id")
        entry.session.close()
        del entry
        release_freed_memory()
        log.info("session closed", extra={"session": session_id, "reason": reason})

    def discard(self, session_ids: set[str], reason: str) -> None:
        """Close those of ``session_ids`` that are still open."""
        for sid in session_ids:
            if sid in self._entries:
                try:
                    self.close(sid, reason)
                except NotFoundError:
                    pass  # closed meanwhile by another call

    def close_all(self, reason: str) -> None:
        """Close every session (shutdown)."""
        self.discard(set(self._entries), reason)

    def _evict_idle(self) -> None:
        now = time.monotonic()
        idle = sorted((e.last_used, sid) for sid, e in self._entries.items() if now - e.last_used > self._idle_s)
        for _, sid in idle[: len(self._entries) + self._pending - self._max + 1]:
            entry = self._entries.pop(sid)
            entry.session.close()
            log.warning("session evicted", extra={"session": sid, "reason": f"idle > {self._idle_s:g} s"})
