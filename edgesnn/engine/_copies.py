"""Array copies that keep the GIL, for the per-step paths of a session.

numpy releases the GIL around copies of more than a few hundred elements. In a
process where other Python threads want the GIL (the gRPC server's stream
handlers, an application's own threads), each such release hands it away, and
taking it back waits for the other thread to let go: measured here at about
100 us per copy against one busy thread, twenty times a W1 step. Copying the
bytes through memoryviews is a plain memcpy under the GIL.
"""

from __future__ import annotations

import numpy as np


def byte_view(a: np.ndarray, writable: bool = True) -> memoryview | None:
    """The bytes of ``a`` as a flat view, or None when ``a`` is empty, not C-contiguous or (if asked) not writable."""
    if a.size == 0 or not a.flags.c_contiguous or (writable and not a.flags.writeable):
        return None
    return memoryview(a).cast("B")


def copy_into(dst: np.ndarray, dst_bytes: memoryview | None, src: np.ndarray) -> None:
    """Copy ``src`` (same shape) into ``dst``, as a memcpy when both share a dtype and are contiguous."""
    if dst_bytes is not None and src.dtype == dst.dtype and src.flags.c_contiguous:
        dst_bytes[:] = memoryview(src).cast("B")
    else:
        np.copyto(dst, src, casting="unsafe")


def fresh_copy(src: np.ndarray, src_bytes: memoryview | None) -> np.ndarray:
    """A new array equal to ``src``, filled by memcpy when ``src`` is contiguous."""
    if src_bytes is None:
        return src.copy()
    out = np.empty(src.shape, src.dtype)
    memoryview(out).cast("B")[:] = src_bytes
    return out
