"""The CPU executor: compiled plans, backends and stateful sessions."""

from edgesnn.engine.backends import available_backends as available_backends
from edgesnn.engine.session import Session as Session
from edgesnn.engine.session import SessionOptions as SessionOptions

__all__ = ["Session", "SessionOptions", "available_backends"]
