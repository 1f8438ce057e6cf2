"""The one exception hierarchy of edgesnn.

Every error a user can cause derives from :class:`EdgeSNNError`; leaves also
subclass the matching builtin so that ``except ValueError`` keeps working.
The CLI maps these to one-line messages and exit codes, the daemon to gRPC
status codes, each through a single table.
"""

from __future__ import annotations

__all__ = [
    "EdgeSNNError",
    "ModelError",
    "GraphError",
    "NodeValidationError",
    "BundleError",
    "BundleFormatError",
    "BundleIntegrityError",
    "BundleValidationError",
    "UnsupportedVersionError",
    "NIRImportError",
    "InputError",
    "StateError",
    "NotFittedError",
    "OptionError",
    "MissingDependencyError",
    "EventFileError",
    "EventStreamError",
    "NotFoundError",
    "UnsupportedError",
    "DeviceError",
    "CapacityError",
    "LimitError",
    "AuthenticationError",
]


class EdgeSNNError(Exception):
    """Root of every error edgesnn raises on purpose.

    ``path`` names where the problem is (a bundle member, a node field, an
    edge); the message is prefixed with it.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)

    def with_prefix(self, prefix: str) -> EdgeSNNError:
        """Return a copy of this error whose path is nested under ``prefix``."""
        path = f"{prefix}/{self.path}" if self.path else prefix
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)  # keeps what a subclass adds (LimitError.limit, .value)
        EdgeSNNError.__init__(new, self.message, path=path)
        return new


class ModelError(EdgeSNNError, ValueError):
    """A model (graph, node or parameters) is not valid."""


class GraphError(ModelError):
    """The graph's structure is invalid: dangling edge, stateless cycle, shape clash."""


class NodeValidationError(ModelError):
    """A node's parameter has the wrong shape, dtype or value."""


class BundleError(EdgeSNNError, ValueError):
    """A .esnn bundle cannot be read or written."""


class BundleFormatError(BundleError):
    """The bundle's container is broken: not a zip, truncated, member missing, bad JSON."""


class BundleIntegrityError(BundleError):
    """A member's bytes do not match the hash recorded in the manifest."""


class BundleValidationError(BundleError):
    """A bundle member holds a value of the wrong shape, dtype or range."""


class UnsupportedVersionError(BundleError):
    """The bundle (or saved state) was written by a newer, unknown schema version."""


class NIRImportError(ModelError):
    """A NIR graph cannot be converted faithfully."""


class InputError(EdgeSNNError, ValueError):
    """Data handed to a session has the wrong name, shape or dtype."""


class StateError(EdgeSNNError, ValueError):
    """A saved session state does not belong to this model, dt or batch size."""


class NotFittedError(StateError, AttributeError):
    """A learner was asked to predict before it learned anything (as scikit-learn's NotFittedError)."""


class OptionError(EdgeSNNError, ValueError):
    """An option has a value outside its allowed set."""


class MissingDependencyError(EdgeSNNError, ImportError):
    """An optional dependency needed for this feature is not installed."""


class EventFileError(EdgeSNNError, ValueError):
    """An event file is broken: bad header, truncated, corrupt words, time going backwards."""


class EventStreamError(EdgeSNNError, ValueError):
    """A live event source failed: link lost, framing broken, device misbehaving."""


class NotFoundError(EdgeSNNError, LookupError):
    """A device does not know the model, session or class id it was given."""


class UnsupportedError(EdgeSNNError, NotImplementedError):
    """The device or model cannot do this at all (e.g. learning on a model without a learner)."""


class DeviceError(EdgeSNNError, RuntimeError):
    """A device failed or is unreachable: connection lost, deadline passed, internal failure."""


class CapacityError(DeviceError):
    """A device is out of room for now: too many sessions, a message over the size limit."""


class LimitError(EdgeSNNError, ValueError):
    """An input exceeds a configured bound (:mod:`edgesnn.limits`); names the limit and the value.

    A value error, not a device failure: code that catches RuntimeError around a library call
    (zipfile raises it) must not swallow it. The daemon answers it with RESOURCE_EXHAUSTED.
    """

    def __init__(self, message: str, *, limit: str = "", value: float = 0, path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.limit = limit
        self.value = value


class AuthenticationError(DeviceError):
    """A device refused the call: missing or wrong token."""
