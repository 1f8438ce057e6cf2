"""Choosing the backend that executes a plan: native kernel first, numpy as reference."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from edgesnn.engine import _numpy_kernels
from edgesnn.engine.plan import Plan
from edgesnn.errors import OptionError

if TYPE_CHECKING:
    from edgesnn.engine.session import SessionOptions

log = logging.getLogger("edgesnn.engine")

KNOWN = ("native", "numpy")
_warned: set[str] = set()


def native_available() -> bool:
    """True when the compiled step kernel was built and imports."""
    try:
        from edgesnn.engine import _native  # noqa: F401
    except ImportError:
        return False
    return _native.AVAILABLE


def available_backends() -> list[str]:
    """Backends usable in this process, fastest first."""
    return [b for b in KNOWN if b != "native" or native_available()]


def normalize_backends(requested: tuple[str, ...]) -> list[str]:
    """Validate a preference list; unknown names raise an error listing the known ones."""
    if not requested:
        raise OptionError(f"expected at least one backend of {', '.join(KNOWN)}", path="backends")
    for name in requested:
        if name not in KNOWN:
            raise OptionError(
                f"unknown backend {name!r}; known: {', '.join(KNOWN)};"
                f" available here: {', '.join(available_backends())}",
                path="backends",
            )
    usable = [b for b in requested if b in available_backends()]
    if not usable:
        raise OptionError(
            f"none of {', '.join(requested)} is available here; available: {', '.join(available_backends())}",
            path="backends",
        )
    if usable[0] != requested[0] and requested[0] not in _warned:
        _warned.add(requested[0])  # once per process: a device without a compiler is a known state
        log.warning("backend %r is not available (extension not built); using %r", requested[0], usable[0])
    return usable


def _limit_blas_threads(num_threads: int) -> None:
    # More BLAS threads slow batch-1 steps down (measured up to 2.5x on convolutions).
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        log.debug("threadpoolctl not installed; BLAS thread count left as is")
        return
    threadpool_limits(limits=num_threads, user_api="blas")


def make_runner(plan: Plan, options: SessionOptions) -> tuple[str, Callable[[], None]]:
    """Return (backend name, step function) for the first usable backend."""
    backend = normalize_backends(options.backends)[0]
    if backend == "native":
        from edgesnn.engine import _native

        return backend, _native.make_step(plan.ops)
    _limit_blas_threads(options.num_threads)
    return backend, _numpy_kernels.make_step(plan.ops)


def sequence_runner(
    plan: Plan, options: SessionOptions, backend: str, step: Callable[[], None]
) -> Callable[..., None] | None:
    """The native whole-sequence loop for ``step``, its batch split over ``options.num_threads``; or None."""
    if backend != "native":
        return None
    from edgesnn.engine import _native

    return _native.sequence_runner(step, plan.ops, plan.batch, options.num_threads)
