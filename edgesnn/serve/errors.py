"""The one table between edgesnn exceptions and gRPC status codes, both directions.

The server turns an exception into a status code, a message (``str(exc)``, which
starts with the path at fault) and binary trailing metadata ``edgesnn-error-bin``
(JSON: exception class, path, message); the client rebuilds the same exception
class from it, or from the code alone when another server answered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import grpc

from edgesnn import errors
from edgesnn.errors import (
    AuthenticationError,
    CapacityError,
    DeviceError,
    EdgeSNNError,
    InputError,
    LimitError,
    MissingDependencyError,
    NotFoundError,
    UnsupportedError,
)  # fmt: skip

log = logging.getLogger("edgesnn.serve")

ERROR_METADATA_KEY = "edgesnn-error-bin"

#: First matching class wins. Input, option, state, bundle and model errors are the caller's: INVALID_ARGUMENT.
STATUS_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (AuthenticationError, grpc.StatusCode.UNAUTHENTICATED),
    (CapacityError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (LimitError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (UnsupportedError, grpc.StatusCode.UNIMPLEMENTED),
    (MissingDependencyError, grpc.StatusCode.FAILED_PRECONDITION),
    (DeviceError, grpc.StatusCode.UNAVAILABLE),
    (EdgeSNNError, grpc.StatusCode.INVALID_ARGUMENT),
    (FileNotFoundError, grpc.StatusCode.NOT_FOUND),
    (PermissionError, grpc.StatusCode.PERMISSION_DENIED),
    (OSError, grpc.StatusCode.FAILED_PRECONDITION),
)

#: Exception class for a status code when the server sent no edgesnn-error metadata.
ERRORS_BY_CODE: dict[grpc.StatusCode, type[EdgeSNNError]] = {
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: AuthenticationError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: CapacityError,
    grpc.StatusCode.UNIMPLEMENTED: UnsupportedError,
    grpc.StatusCode.INVALID_ARGUMENT: InputError,
    grpc.StatusCode.OUT_OF_RANGE: InputError,
}
_CODES_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """Status code and message for an exception raised while serving a call."""
    for cls, code in STATUS_CODES:
        if isinstance(exc, cls):
            return code, str(exc)
    log.error("internal error while serving a call", exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


def error_payload(exc: BaseException) -> dict[str, str]:
    """What the client needs to rebuild ``exc``: its class, path and message."""
    if isinstance(exc, EdgeSNNError):
        return {"type": type(exc).__name__, "path": exc.path or "", "message": exc.message}
    return {"type": "", "path": "", "message": str(exc)}


def error_metadata(exc: BaseException) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata carrying :func:`error_payload`."""
    return ((ERROR_METADATA_KEY, json.dumps(error_payload(exc)).encode()),)


def abort(context: grpc.ServicerContext, exc: BaseException) -> None:
    """End a unary call with the status for ``exc`` (raises, as ``context.abort`` does)."""
    code, message = status_for(exc)
    context.set_trailing_metadata(error_metadata(exc))
    context.abort(code, message)


def code_from_value(value: int) -> grpc.StatusCode:
    """The grpc.StatusCode with numeric value ``value`` (UNKNOWN for others)."""
    return _CODES_BY_VALUE.get(value, grpc.StatusCode.UNKNOWN)


def rebuild_error(code: grpc.StatusCode, details: str, payload: dict[str, str] | None) -> EdgeSNNError:
    """The edgesnn exception a failed call stands for."""
    if payload and payload.get("type") in errors.__all__:
        cls = getattr(errors, payload["type"])
        return cls(payload.get("message", details), path=payload.get("path") or None)
    cls = ERRORS_BY_CODE.get(code, DeviceError)
    return cls(f"{details or 'no details'} (status {code.name})", path=None)


def payload_from_metadata(metadata: Sequence[tuple[str, str | bytes]] | None) -> dict[str, str] | None:
    """The edgesnn-error payload in a call's trailing metadata, if any."""
    for key, value in metadata or ():
        if key == ERROR_METADATA_KEY:
            try:
                data = json.loads(value)
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
    return None


def error_from_rpc(exc: grpc.RpcError) -> EdgeSNNError:
    """The edgesnn exception for a failed call seen by a client."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    return rebuild_error(code, details or "", payload_from_metadata(trailing))
