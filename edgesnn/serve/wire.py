"""Registering the servicer with request decoding that cannot fail past the auth check.

grpc decodes a request with the method handler's ``request_deserializer`` before the handler
runs; when that raises, grpc answers INTERNAL and logs a traceback, and it does so for an
unauthenticated caller too. Here every deserializer returns an :class:`Undecodable` marker
instead, so that the auth interceptor refuses such a call as any other, and an authenticated
one gets INVALID_ARGUMENT with a one-line log. Decoded requests also have their strings
bounded (ids, names, labels: :attr:`edgesnn.limits.Limits.id_chars`) before any work.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import message as pb_message
from google.protobuf import message_factory

from edgesnn import limits
from edgesnn._proto.edgesnn.v1 import device_pb2 as pb
from edgesnn.errors import InputError, LimitError
from edgesnn.serve.errors import abort

log = logging.getLogger("edgesnn.serve")

SERVICE = pb.DESCRIPTOR.services_by_name["DeviceService"]
#: String fields that hold file paths, bounded by PATH_CHARS rather than id_chars.
_PATH_FIELDS = {("LoadModelRequest", "path")}
PATH_CHARS = 4096


@dataclasses.dataclass(frozen=True)
class Undecodable:
    """A request whose bytes are not a message of the method's type."""

    method: str
    size: int
    reason: str

    def error(self) -> InputError:
        """The error the caller gets."""
        return InputError(f"the {self.size}-byte request is not a valid {self.method} message ({self.reason})",
                          path="request")  # fmt: skip


def safe_deserializer(cls: type[pb_message.Message], method: str) -> Callable[[bytes], Any]:
    """``cls.FromString`` that returns an :class:`Undecodable` instead of raising."""

    def decode(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except Exception as exc:  # DecodeError, RecursionError for absurd nesting, ...
            return Undecodable(method, len(data), type(exc).__name__)

    return decode


def check_strings(msg: pb_message.Message, where: str = "") -> None:
    """Refuse a request whose ids, names or labels exceed ``limits.id_chars`` (paths: PATH_CHARS)."""
    bound = limits.current().id_chars
    for field, value in msg.ListFields():
        repeated = field.is_repeated
        items = list(enumerate(value)) if repeated else [(None, value)]
        if field.type == field.TYPE_STRING:
            cap = PATH_CHARS if (msg.DESCRIPTOR.name, field.name) in _PATH_FIELDS else bound
            for i, text in items:
                if len(text) > cap:
                    raise LimitError(
                        f"a string of {len(text)} characters exceeds the limit of {cap}"
                        + ("" if cap == PATH_CHARS else " (id_chars)"),
                        limit="id_chars", value=len(text), path=where + field.name + ("" if i is None else f"/{i}"),
                    )  # fmt: skip
        elif field.type == field.TYPE_MESSAGE and field.message_type.full_name.startswith("edgesnn."):
            for i, sub in items:
                check_strings(sub, where + field.name + ("/" if i is None else f"/{i}/"))


def checked(request: Any) -> Any:
    """The decoded request with its strings checked; raises for an :class:`Undecodable` one."""
    if isinstance(request, Undecodable):
        log.warning("undecodable request", extra={"method": request.method, "bytes": request.size})
        raise request.error()
    check_strings(request)
    return request


def _checked_iterator(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        yield checked(request)


def _unary_handler(fn: Callable[..., Any]) -> Callable[..., Any]:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            request = checked(request)
        except Exception as exc:
            abort(context, exc)
        return fn(request, context)

    return handle


def _stream_handler(fn: Callable[..., Any]) -> Callable[..., Any]:
    def handle(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        return fn(_checked_iterator(requests), context)

    return handle


def add_servicer(servicer: Any, server: grpc.Server) -> None:
    """Register ``servicer`` (a DeviceServiceServicer) with decoding and string checks before every method."""
    handlers = {}
    for method in SERVICE.methods:
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        fn = getattr(servicer, method.name)
        kind = (method.client_streaming, method.server_streaming)
        make = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[kind]
        if method.client_streaming and method.server_streaming:
            wrapped = fn  # a stream answers a bad request in the stream and goes on: Stream calls checked()
        elif method.client_streaming:
            wrapped = _stream_handler(fn)
        else:
            wrapped = _unary_handler(fn)
        handlers[method.name] = make(
            wrapped,
            request_deserializer=safe_deserializer(request_cls, method.name),
            response_serializer=response_cls.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
