"""RemoteDevice: a Device reached over the edgesnn.v1 gRPC service (``edgesnn serve`` or a bridge).

Its sessions have the Python API of local sessions. Every call has a deadline;
calls that are safe to repeat (capabilities, model descriptions, state reads and
writes, class lists) are retried by gRPC on UNAVAILABLE; stepping, learning and
loading are never retried, since a lost answer may hide a step that happened.
Failures come back as the edgesnn exception the server raised.

``dev.load(path)`` returns a :class:`~edgesnn.devices.handle.DeviceModel`, so that
``m = dev.load("demo.esnn"); s = m.session(batch=2)`` reads as it does with
``edgesnn.load``; ``load_model`` and ``open_session`` remain for code that works by id.
Model names travel as metadata beside the messages (see :mod:`edgesnn.devices._names`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, Any

import grpc
import numpy as np
from google.protobuf import json_format, struct_pb2

from edgesnn._proto.edgesnn.v1 import device_pb2 as pb
from edgesnn._proto.edgesnn.v1 import device_pb2_grpc as pb_grpc
from edgesnn.devices import _codec as codec
from edgesnn.devices import _names as names
from edgesnn.devices.base import Capabilities, Device, DeviceSession, ModelInfo, ModelSource
from edgesnn.devices.handle import DeviceModel
from edgesnn.engine._initial import check_initial_state
from edgesnn.errors import (
    DeviceError,
    EdgeSNNError,
    InputError,
    NotFoundError,
    OptionError,
    StateError,
    UnsupportedError,
)
from edgesnn.model import TensorSpec
from edgesnn.serve.errors import error_from_rpc
from edgesnn.units import check_step_s

__all__ = ["RemoteDevice", "RemoteSession", "connect", "IDEMPOTENT_METHODS"]

SERVICE = "edgesnn.v1.DeviceService"
#: RPCs that gRPC may repeat after UNAVAILABLE: repeating them changes nothing.
IDEMPOTENT_METHODS = ("GetCapabilities", "GetModelInfo", "ListModels", "GetState", "SetState", "ListClasses")
CHUNK_BYTES = 1 << 20
MIB = 1 << 20


def _service_config() -> str:
    retry = {
        "maxAttempts": 4,
        "initialBackoff": "0.05s",
        "maxBackoff": "1s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    names = [{"service": SERVICE, "method": m} for m in IDEMPOTENT_METHODS]
    return json.dumps({"methodConfig": [{"name": names, "retryPolicy": retry}]})


def _chunks(source: ModelSource) -> Iterator[pb.LoadModelRequest]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        for i in range(0, max(len(data), 1), CHUNK_BYTES):
            yield pb.LoadModelRequest(chunk=data[i : i + CHUNK_BYTES])
        return
    f: IO[bytes]
    if isinstance(source, (str, os.PathLike)):
        f = open(source, "rb")  # noqa: SIM115 - closed below, after the stream is consumed
    elif hasattr(source, "read"):
        f = source
    else:
        raise OptionError(f"expected a path, bytes or a binary file, got {type(source).__name__}", path="source")
    try:
        while block := f.read(CHUNK_BYTES):
            if not isinstance(block, bytes):
                raise OptionError("expected a file opened in binary mode", path="source")
            yield pb.LoadModelRequest(chunk=block)
    finally:
        if f is not source:
            f.close()


def _source_name(source: ModelSource) -> str:
    """The file name of a bundle source, for naming it on the device ("" for bytes)."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", "")
    return name if isinstance(name, str) else ""


def _label(label: object) -> str:
    """``label`` if it can travel as a class name; the engine's own InputError otherwise."""
    if not isinstance(label, str):  # the message the engine's learner gives (edgesnn.learn.readout)
        raise InputError(f"expected a non-empty string, got {label!r}", path="label")
    return label


def _report(info: struct_pb2.Struct) -> dict[str, Any]:
    """A learner's report from its Struct; whole numbers come back as ints (Struct holds doubles)."""

    def fix(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
            return int(v)
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        return v

    return fix(json_format.MessageToDict(info))


class RemoteDevice(Device):
    """A device behind the edgesnn.v1 gRPC service.

    Parameters
    ----------
    address : str
        "host:port", or "unix:/path/to/socket" for a daemon on this machine.
    token : str, optional
        Sent as ``authorization: Bearer <token>`` on every call.
    tls : bool or str or bytes, optional
        True for TLS with the system's roots; a path or PEM bytes of the root certificate to trust.
    timeout_s : float
        Deadline of each call (a whole sequence for ``run``).
    max_message_mb : float
        Largest message this client sends or accepts.
    """

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        tls: bool | str | bytes | None = None,
        timeout_s: float = 30.0,
        max_message_mb: float = 64.0,
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        options = [
            ("grpc.max_receive_message_length", int(max_message_mb * MIB)),
            ("grpc.max_send_message_length", int(max_message_mb * MIB)),
            ("grpc.enable_retries", 1),
            ("grpc.service_config", _service_config()),
        ]
        if tls:
            roots = None
            if isinstance(tls, str):
                with open(tls, "rb") as f:
                    roots = f.read()
            elif isinstance(tls, bytes):
                roots = tls
            self._channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(roots), options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._stub = pb_grpc.DeviceServiceStub(self._channel)
        self._sessions: set[RemoteSession] = set()
        # ids are content hashes, so a model's description never changes: sessions read it from here
        self._infos: dict[str, ModelInfo] = {}

    # -- plumbing --------------------------------------------------------------------------
    def call(self, name: str, request: Any, *, timeout_s: float | None = None) -> Any:
        """Invoke RPC ``name``; a failure raises the matching edgesnn exception."""
        method: Callable[..., Any] = getattr(self._stub, name)
        try:
            return method(request, timeout=timeout_s or self.timeout_s, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._error(exc) from exc

    def call_named(self, name: str, request: Any, *, metadata: tuple = ()) -> tuple[Any, dict[str, dict[str, str]]]:
        """Invoke RPC ``name``; returns its answer and the model names of its trailing metadata."""
        method: Any = getattr(self._stub, name)
        try:
            resp, call = method.with_call(request, timeout=self.timeout_s, metadata=self._metadata + metadata)
        except grpc.RpcError as exc:
            raise self._error(exc) from exc
        return resp, names.from_response(call.trailing_metadata())

    def _described(self, msg: pb.ModelInfo, found: dict[str, dict[str, str]]) -> ModelInfo:
        info = names.named(codec.model_info_from_pb(msg), found)
        self._infos[info.model_id] = info
        return info

    def _error(self, exc: grpc.RpcError) -> EdgeSNNError:
        err = error_from_rpc(exc)
        if type(err) is DeviceError and err.path is None:
            return DeviceError(err.message, path=self.address)
        return err

    def wait_ready(self, timeout_s: float = 5.0) -> None:
        """Block until the channel connects; DeviceError naming the address if it does not in time."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise DeviceError(f"not reachable within {timeout_s:g} s", path=self.address) from None

    # -- Device ----------------------------------------------------------------------------
    def capabilities(self) -> Capabilities:
        """What the remote device is and what it can run."""
        return codec.capabilities_from_pb(self.call("GetCapabilities", pb.GetCapabilitiesRequest()))

    def _upload(self, source: ModelSource) -> ModelInfo:
        """Upload a bundle in chunks, named by its file name; the device's description of it."""
        sent = names.request_metadata(_source_name(source))
        msg, found = self.call_named("LoadModel", _chunks(source), metadata=sent)
        return self._described(msg, found)

    def load_model(self, source: ModelSource) -> str:
        """Upload a bundle (local path, bytes or binary file) in chunks; returns its id (sha256)."""
        return self._upload(source).model_id

    def load(self, source: ModelSource) -> DeviceModel:
        """Upload a model (bundle path, bytes or file, .nir file, shipped name or Model); its handle."""
        from edgesnn.devices._source import bundle_source

        return DeviceModel(self, self._upload(bundle_source(source)))

    def load_model_on_device(self, path: str) -> str:
        """Load a bundle file that lies on the device itself; returns its id."""
        msg, found = self.call_named("LoadModel", iter([pb.LoadModelRequest(path=path)]))
        return self._described(msg, found).model_id

    def unload_model(self, model_id: str) -> None:
        """Forget a loaded model on the device."""
        self.call("UnloadModel", pb.UnloadModelRequest(model_id=model_id))

    def model_info(self, model_id: str) -> ModelInfo:
        """Specs of a loaded model."""
        return self._described(*self.call_named("GetModelInfo", pb.GetModelInfoRequest(model_id=model_id)))

    def models(self) -> list[ModelInfo]:
        """Every model loaded on the device."""
        resp, found = self.call_named("ListModels", pb.ListModelsRequest())
        return [self._described(m, found) for m in resp.models]

    def _info(self, model_id: str) -> ModelInfo:
        """A model's description, from this client's memory or else the device."""
        info = self._infos.get(model_id)
        return info if info is not None else self.model_info(model_id)

    def open_session(
        self,
        model_id: str,
        *,
        dt: float | None = None,
        batch: int = 1,
        adapt_method: str | None = None,
        initial_state: str | Mapping[str, np.ndarray] | tuple | None = None,
    ) -> RemoteSession:
        """Open a session on the device (``initial_state`` as in ``Session``)."""
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise OptionError(f"expected an int >= 1, got {batch!r}", path="batch")
        if dt is not None:
            # 0 on the wire means "the model's own step": a non-positive step must fail here, as the engine fails
            dt = check_step_s(dt)
        base, values = check_initial_state(initial_state)
        tensors = [codec.encode_tensor(k, v, f"initial_state/{k}") for k, v in values.items()]
        info = self.call("OpenSession", pb.OpenSessionRequest(model_id=model_id, dt_s=dt or 0.0, batch=int(batch),
                                                              adapt_method=adapt_method or "", initial_state=base or "",
                                                              initial_values=tensors))  # fmt: skip
        session = RemoteSession(self, info)
        self._sessions.add(session)
        return session

    def close(self) -> None:
        """Close this client's sessions on the device, then the connection."""
        for s in list(self._sessions):
            try:
                s.close()
            except (DeviceError, NotFoundError):
                pass  # the device is gone, or closed the session itself (idle, evicted): nothing left to close
        self._channel.close()

    def __enter__(self) -> RemoteDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RemoteSession(DeviceSession):
    """A session on a remote device, with the API of a local session."""

    def __init__(self, device: RemoteDevice, info: pb.SessionInfo) -> None:
        self._device = device
        self.session_id = info.session_id
        self._closed = False
        self._update(info)

    def _update(self, info: pb.SessionInfo) -> None:
        self._model_id = info.model_id
        self._dt_s = info.dt_s
        self._batch = int(info.batch)
        self._backend = info.backend
        self._adapt_method = info.adapt_method
        self._inputs = [codec.spec_from_pb(s) for s in info.inputs]
        self._outputs = [codec.spec_from_pb(s) for s in info.outputs]
        self._recordable = list(info.recordable)
        self._initial_state = info.initial_state
        self._only = self._inputs[0].name if len(self._inputs) == 1 else "input"

    @property
    def model_id(self) -> str:
        """Id of the model this session runs."""
        return self._model_id

    @property
    def dt_s(self) -> float:
        """Step of this session in seconds."""
        return self._dt_s

    @property
    def batch(self) -> int:
        """Number of independent streams stepped together."""
        return self._batch

    @property
    def adapt_method(self) -> str:
        """Adaptation method :meth:`retime` uses by default."""
        return self._adapt_method

    @property
    def backend(self) -> str:
        """Backend running this session on the device."""
        return self._backend

    @property
    def inputs(self) -> list[TensorSpec]:
        """Input specs (name, shape without batch, dtype, unit)."""
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorSpec]:
        """Output specs (name, shape without batch, dtype, unit)."""
        return list(self._outputs)

    @property
    def recordable(self) -> list[str]:
        """Neuron states step/run return by name."""
        return list(self._recordable)

    @property
    def initial_state(self) -> str:
        """Where the session starts and resets to."""
        return self._initial_state

    @property
    def initial_values(self) -> dict[str, np.ndarray]:
        """Not available: SessionInfo names the start (:attr:`initial_state`), not the arrays set over it."""
        raise UnsupportedError(
            "SessionInfo carries initial_state only, not the arrays set over it; keep the ones you opened with",
            path="initial_values",
        )

    @property
    def model(self) -> DeviceModel:
        """The loaded model this session runs (its handle, as opened; not re-timed by :meth:`retime`)."""
        return DeviceModel(self._device, self._device._info(self._model_id))

    def decide(self) -> list[str | None]:
        """Not available: no RPC reads the scores without stepping."""
        raise UnsupportedError(
            "no RPC reads the scores without stepping; use s.classes()[argmax] of the 'classes' output of step",
            path="decide",
        )

    # -- stepping --------------------------------------------------------------------------
    def _tensors(self, x: np.ndarray | Mapping[str, np.ndarray]) -> list[pb.Tensor]:
        if isinstance(x, Mapping):
            return [codec.encode_tensor(str(name), value) for name, value in x.items()]
        return [codec.encode_tensor("", x, f"inputs/{self._only}")]

    def _call(self, name: str, request: Any) -> Any:
        return self._device.call(name, request)

    def step(
        self, x: np.ndarray | Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Advance one step on the device; returns fresh float32 arrays (batch, *shape)."""
        req = pb.StepRequest(session_id=self.session_id, inputs=self._tensors(x), outputs=outputs or ())
        resp = self._call("Step", req)
        return {t.name: codec.decode_output(t) for t in resp.outputs}

    def run(
        self, xs: np.ndarray | Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Step through a sequence (T, batch, *shape) on the device in one call."""
        req = pb.RunRequest(session_id=self.session_id, inputs=self._tensors(xs), outputs=outputs or ())
        resp = self._call("Run", req)
        return {t.name: codec.decode_output(t) for t in resp.outputs}

    def reset(self) -> None:
        """Forget the past."""
        self._call("Reset", pb.ResetRequest(session_id=self.session_id))

    def state(self) -> bytes:
        """All state, serialised by the device."""
        return self._call("GetState", pb.GetStateRequest(session_id=self.session_id)).state

    def load_state(self, data: bytes) -> None:
        """Restore state saved by :meth:`state`."""
        if not isinstance(data, (bytes, bytearray, memoryview)):  # the engine's class and path for the same mistake
            raise StateError(f"not a session state (expected bytes, got {type(data).__name__})", path="state")
        self._call("SetState", pb.SetStateRequest(session_id=self.session_id, state=bytes(data)))

    def retime(self, dt: float, method: str | None = None) -> None:
        """Switch to step ``dt`` seconds on the device, keeping the state."""
        req = pb.AdaptRequest(session_id=self.session_id, dt_s=check_step_s(dt), method=method or "")
        info = self._call("Adapt", req)
        self._update(info)

    # -- learning --------------------------------------------------------------------------
    def learn(self, label: str, example: np.ndarray) -> dict[str, Any]:
        """Learn one labelled example on the device."""
        req = pb.LearnRequest(
            session_id=self.session_id, label=_label(label), example=codec.encode_tensor("", example, "example")
        )
        return _report(self._call("Learn", req).info)

    def forget(self, label: str) -> dict[str, Any]:
        """Forget a learned class on the device."""
        resp = self._call("Forget", pb.ForgetRequest(session_id=self.session_id, label=_label(label)))
        return _report(resp.info)

    def classes(self) -> list[str]:
        """Classes the device's learner knows."""
        return list(self._call("ListClasses", pb.ListClassesRequest(session_id=self.session_id)).classes)

    def close(self) -> None:
        """Free the session on the device; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self._device._sessions.discard(self)
        self._call("CloseSession", pb.CloseSessionRequest(session_id=self.session_id))

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    address: str,
    *,
    token: str | None = None,
    tls: bool | str | bytes | None = None,
    timeout_s: float = 30.0,
    connect_timeout_s: float = 5.0,
    max_message_mb: float = 64.0,
) -> RemoteDevice:
    """Connect to a device served at ``address`` ("host:port" or "unix:/path"); fails if unreachable."""
    device = RemoteDevice(address, token=token, tls=tls, timeout_s=timeout_s, max_message_mb=max_message_mb)
    try:
        device.wait_ready(connect_timeout_s)
    except DeviceError:
        device._channel.close()
        raise
    return device
