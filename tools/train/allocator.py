"""Keep freed memory in the training process (glibc's allocator), instead of mapping it afresh each step.

XLA's CPU runtime allocates every step's buffers anew, on its worker threads. With glibc's
defaults those threads have their own arenas and large blocks are memory-mapped, so each
step's buffers arrive as fresh pages that the kernel must fault in and clear; on the trainer's
benchmarks this was 30-45 % of a training step (tools/bench/train_memory.py, sparse section).
One arena, no mapped blocks and no trimming let each step reuse the last step's memory; the
process's resident size then stays at its peak instead of falling between steps.

This changes the whole process, so only entry points call it (``python -m tools.train`` and the
benchmarks), before the first jax computation starts XLA's threads; ``EDGESNN_KEEP_MEMORY=0``
turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger("edgesnn.train")

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_KEEP = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))  # trim: never (the largest int)


def keep_freed_memory() -> bool:
    """Set glibc's allocator to reuse freed memory; return whether it was set (False off glibc Linux)."""
    if os.environ.get("EDGESNN_KEEP_MEMORY") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    done = all(mallopt(param, value) == 1 for param, value in _KEEP)
    if not done:
        log.info("could not set the allocator to keep freed memory; training runs with its defaults")
    return done
