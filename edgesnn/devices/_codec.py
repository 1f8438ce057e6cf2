"""Conversions between numpy / device dataclasses and the wire messages (edgesnn.v1).

Shared by the client (:mod:`edgesnn.devices.remote`) and the servicer
(:mod:`edgesnn.serve.servicer`) so that both read and write the contract one way.
Tensors are raw little-endian row-major bytes plus an OIP datatype and a shape.
"""

from __future__ import annotations

import math

import numpy as np

from edgesnn import limits
from edgesnn._proto.edgesnn.v1 import device_pb2 as pb
from edgesnn.devices.base import Capabilities, ModelInfo
from edgesnn.errors import InputError
from edgesnn.events._dtype import EVENT_DTYPE
from edgesnn.model import TensorSpec

#: OIP datatype name -> little-endian numpy dtype.
DATATYPES: dict[str, np.dtype] = {
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "FP16": np.dtype("<f2"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "BOOL": np.dtype("?"),
}
_NAMES = {dt.newbyteorder("=") if dt.byteorder == "<" else dt: name for name, dt in DATATYPES.items()}
_SPEC_DTYPES = {"float32": "FP32", "float64": "FP64", "int32": "INT32", "uint8": "UINT8", "bool": "BOOL"}
_F32 = np.dtype("<f4")


def datatype_of(arr: np.ndarray, where: str) -> str:
    """OIP datatype of a numpy array; InputError naming ``where`` for dtypes the wire cannot carry."""
    name = _NAMES.get(arr.dtype.newbyteorder("="))
    if name is None:
        raise InputError(f"expected a numeric array, got dtype {arr.dtype}", path=where)
    return name


def encode_tensor(name: str, value: object, where: str | None = None) -> pb.Tensor:
    """A Tensor message holding ``value``'s bytes (little-endian, row-major)."""
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    datatype = datatype_of(arr, where or f"inputs/{name or 'input'}")
    wire = DATATYPES[datatype]
    if arr.dtype != wire:
        arr = arr.astype(wire)  # only on big-endian hosts or non-native byte orders
    return pb.Tensor(name=name, datatype=datatype, shape=arr.shape, raw=arr.tobytes())


_I32 = np.dtype("<i4")


def encode_output(name: str, arr: np.ndarray) -> pb.Tensor:
    """An output tensor as FP32 bytes (INT32 for the integer states of Loihi numerics); the hot path of every step."""
    if arr.dtype == _I32:
        return pb.Tensor(name=name, datatype="INT32", shape=arr.shape, raw=arr.tobytes())
    if arr.dtype != _F32:
        arr = arr.astype(_F32)
    return pb.Tensor(name=name, datatype="FP32", shape=arr.shape, raw=arr.tobytes())


#: The last signature decode_tensor accepted: (datatype, shape list, shape, byte length, dtype).
#: A stream sends the same signature again and again; matching it skips the general checks.
_last_signature: tuple = ("", [], (), -1, None)


def decode_tensor(t: pb.Tensor, where: str) -> np.ndarray:
    """A read-only array viewing the message's bytes; InputError naming what is malformed."""
    global _last_signature
    raw = t.raw
    datatype, shape_list, shape, nbytes, dtype = _last_signature  # one tuple: consistent across threads
    if len(raw) == nbytes and t.datatype == datatype and t.shape == shape_list:
        return np.frombuffer(raw, dtype).reshape(shape)
    dtype = DATATYPES.get(t.datatype)
    if dtype is None:
        raise InputError(f"unknown datatype {t.datatype[:40]!r}; expected one of {', '.join(DATATYPES)}", path=where)
    shape = tuple(t.shape)
    bounds = limits.current()
    bounds.check("max_rank", len(shape), "a shape's rank", path=where)
    if any(d < 0 for d in shape):
        raise InputError(f"shape {list(shape)} has a negative dimension", path=where)
    # Each dimension alone must fit too: [2**62, 0] holds no data but no array can have that shape.
    for d in shape:
        bounds.check("message_bytes", d * dtype.itemsize, "a dimension's size", path=where)
    want = math.prod(shape) * dtype.itemsize
    if len(raw) != want:
        raise InputError(f"has {len(raw)} bytes of data; shape {list(shape)} of {t.datatype} needs {want}", path=where)
    _last_signature = (t.datatype, list(shape), shape, want, dtype)
    return np.frombuffer(raw, dtype).reshape(shape)


def decode_output(t: pb.Tensor) -> np.ndarray:
    """A fresh, writable array from an output tensor, float32 or int32 as a local session returns it."""
    arr = decode_tensor(t, f"outputs/{t.name}")
    return arr.astype(np.int32 if t.datatype == "INT32" else np.float32)


def decode_events(raw: bytes, where: str) -> np.ndarray:
    """Packed 13-byte event records as an EVENT_DTYPE array (read-only view)."""
    size = EVENT_DTYPE.itemsize
    if len(raw) % size:
        raise InputError(f"has {len(raw)} bytes, not a whole number of {size}-byte event records", path=where)
    return np.frombuffer(raw, EVENT_DTYPE)


def encode_events(events: np.ndarray) -> bytes:
    """Events as packed little-endian 13-byte records."""
    return np.ascontiguousarray(events, dtype=EVENT_DTYPE).tobytes()


# -- specs and descriptions -----------------------------------------------------------------
def spec_to_pb(spec: TensorSpec) -> pb.TensorSpec:
    """A TensorSpec message from a model's spec."""
    return pb.TensorSpec(name=spec.name, datatype=_SPEC_DTYPES.get(spec.dtype, spec.dtype.upper()),
                         shape=spec.shape, unit=spec.unit)  # fmt: skip


def spec_from_pb(msg: pb.TensorSpec) -> TensorSpec:
    """A model TensorSpec from its message."""
    dtype = DATATYPES.get(msg.datatype)
    return TensorSpec(msg.name, tuple(int(d) for d in msg.shape), dtype.name if dtype else msg.datatype, msg.unit)


def capabilities_to_pb(c: Capabilities) -> pb.Capabilities:
    """The Capabilities message."""
    return pb.Capabilities(
        device_kind=c.device_kind, device_name=c.device_name, simulated=c.simulated,
        neuron_models=c.neuron_models, max_neurons=c.max_neurons, max_synapses=c.max_synapses,
        learning=c.learning, adaptation_methods=c.adaptation_methods, numerics=c.numerics,
        max_sessions=c.max_sessions, max_message_bytes=c.max_message_bytes, version=c.version,
        backends=c.backends,
        model_figures={k: pb.ModelFigures(values={n: float(v) for n, v in f.items()})
                       for k, f in c.model_figures.items()},
    )  # fmt: skip


def capabilities_from_pb(m: pb.Capabilities) -> Capabilities:
    """Capabilities from their message."""
    return Capabilities(
        device_kind=m.device_kind, device_name=m.device_name, simulated=m.simulated,
        neuron_models=tuple(m.neuron_models), max_neurons=m.max_neurons, max_synapses=m.max_synapses,
        learning=m.learning, adaptation_methods=tuple(m.adaptation_methods), numerics=m.numerics,
        version=m.version, backends=tuple(m.backends), max_sessions=m.max_sessions,
        max_message_bytes=m.max_message_bytes,
        model_figures={k: dict(f.values) for k, f in m.model_figures.items()},
    )  # fmt: skip


def model_info_to_pb(i: ModelInfo) -> pb.ModelInfo:
    """The ModelInfo message."""
    return pb.ModelInfo(
        model_id=i.model_id, inputs=[spec_to_pb(s) for s in i.inputs], outputs=[spec_to_pb(s) for s in i.outputs],
        dt_s=i.dt_s, method=i.method, labels=i.labels, learning=i.learning, adapt_method=i.adapt_method,
    )  # fmt: skip


def model_info_from_pb(m: pb.ModelInfo) -> ModelInfo:
    """ModelInfo from its message."""
    return ModelInfo(
        model_id=m.model_id, inputs=tuple(spec_from_pb(s) for s in m.inputs),
        outputs=tuple(spec_from_pb(s) for s in m.outputs), dt_s=m.dt_s, method=m.method,
        labels=tuple(m.labels), learning=m.learning, adapt_method=m.adapt_method,
    )  # fmt: skip
