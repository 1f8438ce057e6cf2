"""The one import of scipy.signal, with an error naming the missing dependency."""

from __future__ import annotations

from edgesnn.errors import MissingDependencyError

try:
    from scipy import signal
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("the keyword dataset generator needs scipy (pip install scipy)") from exc

__all__ = ["signal"]
