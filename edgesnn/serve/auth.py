"""Bearer-token authentication: every call but health checks needs ``authorization: Bearer <token>``."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

import grpc

from edgesnn.serve.errors import ERROR_METADATA_KEY

log = logging.getLogger("edgesnn.serve")

#: Load balancers and orchestrators probe health without credentials.
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)


def _refusal(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that fails with UNAUTHENTICATED."""
    payload = json.dumps({"type": "AuthenticationError", "path": "authorization", "message": message}).encode()

    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        context.set_trailing_metadata(((ERROR_METADATA_KEY, payload),))
        context.abort(grpc.StatusCode.UNAUTHENTICATED, f"authorization: {message}")

    kinds: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler]] = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(handler.request_streaming, handler.response_streaming)]
    return make(refuse, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)  # fmt: skip


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Refuses calls whose ``authorization`` metadata is not ``Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:  # fmt: skip
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        given = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
        if given is None:
            log.warning("call refused", extra={"method": method, "reason": "no authorization metadata"})
            return _refusal(handler, "missing; expected 'Bearer <token>'")
        if not hmac.compare_digest(given, self._expected):
            log.warning("call refused", extra={"method": method, "reason": "wrong token"})
            return _refusal(handler, "wrong token")
        return handler
