"""The DeviceService servicer: converts messages to domain calls on a Device and back, nothing more."""

from __future__ import annotations

import functools
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np
from google.protobuf import struct_pb2

from edgesnn._proto.edgesnn.v1 import device_pb2 as pb
from edgesnn._proto.edgesnn.v1 import device_pb2_grpc as pb_grpc
from edgesnn.devices import _codec as codec
from edgesnn.devices import _names as names
from edgesnn.devices.base import Device, DeviceSession
from edgesnn.errors import CapacityError, InputError
from edgesnn.serve import wire
from edgesnn.serve.errors import abort, error_payload, status_for
from edgesnn.serve.events import bin_events
from edgesnn.serve.policy import ModelPaths, StreamAdmission
from edgesnn.serve.sessions import SessionTable
from edgesnn.serve.streaming import StreamCache

log = logging.getLogger("edgesnn.serve")


def _unary(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn exceptions of a unary handler into the mapped status (see serve.errors)."""

    @functools.wraps(fn)
    def handler(self: DeviceServicer, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(self, request, context)
        except Exception as exc:  # every failure becomes a status; the server keeps serving
            abort(context, exc)

    return handler


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _struct(info: dict[str, Any]) -> struct_pb2.Struct:
    """A learner's report as a Struct (numbers, strings, lists, maps)."""
    struct = struct_pb2.Struct()
    struct.update(json.loads(json.dumps(info, default=_jsonable)))
    return struct


def session_info(session_id: str, s: DeviceSession) -> pb.SessionInfo:
    """The SessionInfo message of an open session."""
    return pb.SessionInfo(
        session_id=session_id, model_id=s.model_id, dt_s=s.dt_s, batch=s.batch,
        inputs=[codec.spec_to_pb(x) for x in s.inputs], outputs=[codec.spec_to_pb(x) for x in s.outputs],
        backend=s.backend, adapt_method=s.adapt_method, initial_state=s.initial_state, recordable=s.recordable,
    )  # fmt: skip


def _was_cancelled(context: grpc.ServicerContext) -> bool:
    """True when a finished call ended cancelled (client gone), not with its status delivered.

    The synchronous ServicerContext has no public accessor for this; grpc's server records it
    in the call state as ``client == "cancelled"``. Unknown state counts as cancelled, so a
    future grpc only makes sessions close more eagerly, never leak.
    """
    return getattr(getattr(context, "_state", None), "client", "cancelled") == "cancelled"


class DeviceServicer(pb_grpc.DeviceServiceServicer):
    """Serves one Device; sessions live in a :class:`SessionTable`."""

    def __init__(
        self, device: Device, sessions: SessionTable, *, max_model_bytes: int, max_message_bytes: int,
        model_paths: ModelPaths | None = None, streams: StreamAdmission | None = None,
    ) -> None:  # fmt: skip
        self._device = device
        self._sessions = sessions
        self._max_model_bytes = max_model_bytes
        self._max_message_bytes = max_message_bytes
        self._max_sessions = sessions._max
        self._model_paths = model_paths or ModelPaths()
        self._streams = streams or StreamAdmission()

    # -- device and models ---------------------------------------------------------------
    @_unary
    def GetCapabilities(self, request: pb.GetCapabilitiesRequest, context: grpc.ServicerContext) -> pb.Capabilities:
        msg = codec.capabilities_to_pb(self._device.capabilities())
        msg.max_sessions = self._max_sessions
        msg.max_message_bytes = self._max_message_bytes
        return msg

    @_unary
    def LoadModel(self, request_iterator: Iterator[pb.LoadModelRequest], context: grpc.ServicerContext) -> pb.ModelInfo:
        chunks: list[bytes] = []
        size = 0
        path = None
        for i, req in enumerate(request_iterator):
            kind = req.WhichOneof("source")
            if kind == "path":
                if i or chunks:
                    raise InputError("a path must be the only message of a LoadModel call", path=f"requests[{i}]")
                path = req.path
            elif kind == "chunk":
                if path is not None:
                    raise InputError("chunks cannot follow a path", path=f"requests[{i}]")
                size += len(req.chunk)
                if size > self._max_model_bytes:
                    raise CapacityError(
                        f"bundle exceeds the server's limit of {self._max_model_bytes} bytes (--max-model-mb)",
                        path="chunk",
                    )
                chunks.append(req.chunk)
            else:
                raise InputError("expected a chunk or a path", path=f"requests[{i}]")
        if path is None and not chunks:
            raise InputError("no bundle received: send the bundle's bytes in chunks, or a path", path="source")
        if path is not None:
            path = self._model_paths.resolve(path, self._max_model_bytes)
            source: Any = path
        else:  # named as the client's file, so that model lists can say which model it is
            source = io.BytesIO(b"".join(chunks))
            source.name = names.from_request(context.invocation_metadata()) or "<bytes>"
        model_id = self._device.load_model(source)
        log.info("model loaded", extra={"model": model_id, "source": path or f"{size} bytes"})
        return self._described([self._device.model_info(model_id)], context)[0]

    @_unary
    def UnloadModel(self, request: pb.UnloadModelRequest, context: grpc.ServicerContext) -> pb.UnloadModelResponse:
        self._device.unload_model(request.model_id)
        log.info("model unloaded", extra={"model": request.model_id})
        return pb.UnloadModelResponse()

    @_unary
    def GetModelInfo(self, request: pb.GetModelInfoRequest, context: grpc.ServicerContext) -> pb.ModelInfo:
        return self._described([self._device.model_info(request.model_id)], context)[0]

    @_unary
    def ListModels(self, request: pb.ListModelsRequest, context: grpc.ServicerContext) -> pb.ModelList:
        return pb.ModelList(models=self._described(self._device.models(), context))

    @staticmethod
    def _described(infos: list[Any], context: grpc.ServicerContext) -> list[pb.ModelInfo]:
        """ModelInfo messages; their names, which the message has no field for, go in trailing metadata."""
        context.set_trailing_metadata(names.response_metadata(infos))
        return [codec.model_info_to_pb(i) for i in infos]

    # -- sessions ------------------------------------------------------------------------
    @_unary
    def OpenSession(self, request: pb.OpenSessionRequest, context: grpc.ServicerContext) -> pb.SessionInfo:
        values = {t.name: codec.decode_tensor(t, f"initial_values/{t.name}") for t in request.initial_values}
        if len(values) != len(request.initial_values):
            raise InputError("names a state twice", path="initial_values")
        base = request.initial_state or None
        sid, session = self._sessions.open(
            request.model_id,
            dt=request.dt_s or None,
            batch=request.batch or 1,
            adapt_method=request.adapt_method or None,
            initial_state=(base, values) if base and values else (values or base),
        )
        return session_info(sid, session)

    @_unary
    def CloseSession(self, request: pb.CloseSessionRequest, context: grpc.ServicerContext) -> pb.CloseSessionResponse:
        self._sessions.close(request.session_id)
        return pb.CloseSessionResponse()

    @_unary
    def Reset(self, request: pb.ResetRequest, context: grpc.ServicerContext) -> pb.ResetResponse:
        self._sessions.get(request.session_id).reset()
        return pb.ResetResponse()

    # -- stepping ------------------------------------------------------------------------
    def _feed(self, req: pb.StepRequest, session: DeviceSession, only_input: str | None = None) -> Any:
        inputs = req.inputs
        if len(inputs) == 1 and not req.events:
            t = inputs[0]
            name = t.name
            arr = codec.decode_tensor(t, f"inputs/{name or 'input'}")
            # the only input given by name goes in as a bare array: the engine's fast path
            return arr if not name or name == only_input else {name: arr}
        specs = {s.name: s for s in session.inputs}
        only = next(iter(specs)) if len(specs) == 1 else None
        feed: dict[str, np.ndarray] = {}
        for t in inputs:
            name = t.name or only
            if name is None:
                raise InputError(f"model has inputs {', '.join(specs)}; name every tensor", path="inputs")
            if name in feed:
                raise InputError("given twice", path=f"inputs/{name}")
            feed[name] = codec.decode_tensor(t, f"inputs/{name}")
        if req.events:
            if req.sequence:
                raise InputError("events carry one step; send them without `sequence`", path="events")
            if session.batch != 1:
                raise InputError(f"events need a session of batch 1, this one has batch {session.batch}",
                                 path="events")  # fmt: skip
            for packet in req.events:
                name = packet.input or only
                if name not in specs:
                    raise InputError(f"no input named {name!r}; inputs are {', '.join(specs)}", path="events")
                if name in feed:
                    raise InputError("given twice (as a tensor or another event packet)", path=f"inputs/{name}")
                events = codec.decode_events(packet.events, f"events/{name}")
                feed[name] = bin_events(events, specs[name].shape, name)
        if not feed:
            raise InputError("no inputs given", path="inputs")
        return feed

    def _step(self, req: pb.StepRequest, stream: StreamCache | None = None) -> pb.StepResponse:
        """Step a session; ``stream`` remembers the last request's input signature and response."""
        if stream is not None:
            resp = stream.step_again(req, self._sessions)
            if resp is not None:
                return resp
        entry = self._sessions.entry(req.session_id)
        session = entry.session
        feed = self._feed(req, session, entry.only_input)
        names = list(req.outputs) if len(req.outputs) else None
        outs = session.run(feed, names) if req.sequence else session.step(feed, names)
        if stream is None:
            return pb.StepResponse(id=req.id, outputs=[codec.encode_output(n, a) for n, a in outs.items()])
        if names is None and isinstance(feed, np.ndarray):
            stream.remember(req, entry, feed)
        return stream.respond(req.id, outs)

    @_unary
    def Step(self, request: pb.StepRequest, context: grpc.ServicerContext) -> pb.StepResponse:
        return self._step(request)

    def Stream(
        self, request_iterator: Iterator[pb.StepRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.StepResponse]:
        stepped: set[str] = set()
        finished = False
        try:
            ticket = self._streams.open(context.peer(), context.cancel)
        except CapacityError as exc:
            abort(context, exc)

        def on_end() -> None:
            self._streams.close(ticket)
            # A stream that did not end by the client's half-close was broken: its client is gone.
            # A dying client's connection can also end the request iterator first, so the call's
            # own end state decides too.
            if stepped and (not finished or _was_cancelled(context)):
                self._sessions.discard(stepped, "stream broken (client disconnected or cancelled)")

        context.add_callback(on_end)
        cache = StreamCache()
        for req in request_iterator:
            ticket.touch()
            try:
                resp = self._step(wire.checked(req), cache)
                stepped.add(req.session_id)
            except Exception as exc:  # a failing request is answered, the stream goes on
                code, message = status_for(exc)
                p = error_payload(exc)
                resp = pb.StepResponse(id=getattr(req, "id", 0), error=pb.Error(
                    code=code.value[0], message=message, type=p["type"], path=p["path"]))  # fmt: skip
            yield resp
        # A cancelled call (client gone) can also end the request iterator quietly: only a call
        # still active after it ended was half-closed by its client.
        finished = True

    @_unary
    def Run(self, request: pb.RunRequest, context: grpc.ServicerContext) -> pb.RunResponse:
        session = self._sessions.get(request.session_id)
        step = pb.StepRequest(session_id=request.session_id, sequence=True)
        step.inputs.extend(request.inputs)
        feed = self._feed(step, session)
        outs = session.run(feed, list(request.outputs) or None)
        return pb.RunResponse(outputs=[codec.encode_output(n, a) for n, a in outs.items()])

    # -- learning ------------------------------------------------------------------------
    @_unary
    def Learn(self, request: pb.LearnRequest, context: grpc.ServicerContext) -> pb.LearnResponse:
        session = self._sessions.get(request.session_id)
        if not request.HasField("example"):
            raise InputError("expected an example tensor", path="example")
        example = codec.decode_tensor(request.example, "example")
        info = session.learn(request.label, example)
        log.info("class learned", extra={"session": request.session_id, "label": request.label})
        return pb.LearnResponse(label=request.label, classes=session.classes(), info=_struct(info))

    @_unary
    def Forget(self, request: pb.ForgetRequest, context: grpc.ServicerContext) -> pb.ForgetResponse:
        session = self._sessions.get(request.session_id)
        info = session.forget(request.label)
        log.info("class forgotten", extra={"session": request.session_id, "label": request.label})
        return pb.ForgetResponse(label=request.label, classes=session.classes(), info=_struct(info))

    @_unary
    def ListClasses(self, request: pb.ListClassesRequest, context: grpc.ServicerContext) -> pb.ClassList:
        return pb.ClassList(classes=self._sessions.get(request.session_id).classes())

    # -- adaptation and state --------------------------------------------------------------
    @_unary
    def Adapt(self, request: pb.AdaptRequest, context: grpc.ServicerContext) -> pb.SessionInfo:
        session = self._sessions.get(request.session_id)
        session.retime(request.dt_s, request.method or None)
        return session_info(request.session_id, session)

    @_unary
    def GetState(self, request: pb.GetStateRequest, context: grpc.ServicerContext) -> pb.State:
        return pb.State(state=self._sessions.get(request.session_id).state())

    @_unary
    def SetState(self, request: pb.SetStateRequest, context: grpc.ServicerContext) -> pb.SetStateResponse:
        self._sessions.get(request.session_id).load_state(request.state)
        return pb.SetStateResponse()
