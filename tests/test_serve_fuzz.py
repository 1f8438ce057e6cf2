"""Fuzzing every RPC of a live daemon: no INTERNAL, no crash, no hang, the daemon keeps serving.

A seeded mutation fuzzer, structure-aware: for each method it builds random requests from the
message descriptors (ids that are real, unknown or oversized; tensors of random datatype,
shape and bytes; events; nested messages), serialises them, and sends the bytes as they are or
with bits flipped, bytes cut or garbage appended. Every answer must be OK or a status naming
the caller's fault; after the run the daemon still answers health checks and a correct Step.

10,000 requests run in CI; ``EDGESNN_FUZZ_EXAMPLES=200000 pytest tests/test_serve_fuzz.py``
runs a longer campaign (the count is spread over the methods).
"""

from __future__ import annotations

import os
import random
import tracemalloc

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgesnn import limits
from edgesnn.devices import LocalDevice, connect
from edgesnn.serve.wire import SERVICE
from tests.conformance._models import bundle_bytes, learning_model, served, small_model, spikes

EXAMPLES = int(os.environ.get("EDGESNN_FUZZ_EXAMPLES", "10000"))
#: Statuses that say the request was the caller's fault or the device's limits, never a bug.
ALLOWED = {
    grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.OUT_OF_RANGE,
}  # fmt: skip
DATATYPES = ["FP32", "FP64", "INT32", "UINT8", "BOOL", "FP16", "INT64", "", "fp32", "FP33"]


class Fuzzer:
    """Random requests from the message descriptors, with real ids mixed in."""

    def __init__(self, seed: int, ids: dict[str, list[str]]) -> None:
        self.rng = random.Random(seed)
        self.ids = ids

    def string(self, name: str) -> str:
        r = self.rng.random()
        known = self.ids.get(name) or []
        if known and r < 0.5:
            return self.rng.choice(known)
        if r < 0.6:
            return "x" * self.rng.choice([0, 1, 300, 5000])
        if r < 0.7:
            return "".join(self.rng.choice("ab/\x00\u00e9\U0001f600.") for _ in range(self.rng.randint(1, 12)))
        return self.rng.choice(["", "in", "out", "lif", "lif/v", "lif/q", "zoh-rate", "rest", "zero", "tau", "magic"])

    def number(self, field: pb_descriptor.FieldDescriptor) -> float:
        if field.type in (field.TYPE_DOUBLE, field.TYPE_FLOAT):
            return self.rng.choice([0.0, 1e-3, -1.0, 1e-300, 1e300, float("nan"), float("inf"), 0.25e-3, 5e-4])
        big = self.rng.choice([0, 1, 2, 3, 7, 64, 4096, 2**31 - 1, 2**32 - 1])
        return big if field.type in (field.TYPE_UINT32, field.TYPE_UINT64, field.TYPE_BOOL) or big >= 0 else 0

    def tensor(self, msg) -> None:  # noqa: ANN001 - a Tensor message
        msg.name = self.rng.choice(["", "in", "lif/v", "nope"])
        msg.datatype = self.rng.choice(DATATYPES)
        rank = self.rng.choice([0, 1, 2, 3, 65])
        shape = [self.rng.choice([0, 1, 2, 12, 3, -1, 2**62]) for _ in range(rank)]
        if self.rng.random() < 0.5:
            shape = self.rng.choice([[1, 12], [12], [5, 1, 12], [30, 12]])
        msg.shape.extend(shape)
        n = self.rng.choice([0, 4, 48, 240, 1440, 7])
        msg.raw = self.rng.randbytes(n) if self.rng.random() < 0.5 else np.ones(n // 4, np.float32).tobytes()

    def fill(self, msg, depth: int = 0) -> None:  # noqa: ANN001 - any request message
        if msg.DESCRIPTOR.name == "Tensor":
            self.tensor(msg)
            return
        for field in msg.DESCRIPTOR.fields:
            if self.rng.random() < 0.3:
                continue
            count = self.rng.choice([0, 1, 1, 2, 3]) if field.is_repeated else 1
            for _ in range(count):
                if field.type == field.TYPE_MESSAGE:
                    if depth > 3:
                        continue
                    sub = getattr(msg, field.name).add() if field.is_repeated else getattr(msg, field.name)
                    self.fill(sub, depth + 1)
                    continue
                if field.type == field.TYPE_STRING:
                    value = self.string(field.name)
                elif field.type == field.TYPE_BYTES:
                    value = self.rng.randbytes(self.rng.choice([0, 13, 26, 7, 200]))
                elif field.type == field.TYPE_BOOL:
                    value = self.rng.random() < 0.5
                elif field.type == field.TYPE_ENUM:
                    value = self.rng.choice([v.number for v in field.enum_type.values])
                else:
                    value = self.number(field)
                if field.is_repeated:
                    getattr(msg, field.name).append(value)
                else:
                    try:
                        setattr(msg, field.name, value)
                    except (ValueError, TypeError):
                        pass  # out of the field's range: protobuf itself refuses it client-side

    def wire(self, msg) -> bytes:  # noqa: ANN001
        data = msg.SerializeToString()
        r = self.rng.random()
        if r < 0.15 and data:
            b = bytearray(data)
            for _ in range(self.rng.randint(1, 4)):
                b[self.rng.randrange(len(b))] ^= 1 << self.rng.randrange(8)
            return bytes(b)
        if r < 0.25:
            return data[: self.rng.randrange(len(data) + 1)]
        if r < 0.3:
            return data + self.rng.randbytes(self.rng.randint(1, 30))
        if r < 0.33:
            return self.rng.randbytes(self.rng.randint(0, 64))
        return data


@pytest.fixture(scope="module")
def daemon():
    with limits.override(id_chars=256), served(LocalDevice(), max_sessions=64, max_message_mb=4) as (_, address):
        yield address


def _ids(dev) -> dict[str, list[str]]:  # noqa: ANN001 - a RemoteDevice
    """Real model and session ids for the fuzzer to mix in."""
    model_id = dev.load_model(bundle_bytes(small_model()))
    learner = dev.load_model(bundle_bytes(learning_model()))
    sessions = [dev.open_session(model_id).session_id, dev.open_session(learner).session_id]
    return {"model_id": [model_id, learner], "session_id": sessions}


def send(channel: grpc.Channel, method, payload) -> tuple[grpc.StatusCode, str]:  # noqa: ANN001
    """Send raw request bytes (a list of them for client streams); the call's status and details."""
    path = f"/{SERVICE.full_name}/{method.name}"
    raw = {"request_serializer": lambda b: b, "response_deserializer": lambda b: b}
    try:
        if method.client_streaming and method.server_streaming:
            for _ in channel.stream_stream(path, **raw)(iter(payload), timeout=10):
                pass
        elif method.client_streaming:
            channel.stream_unary(path, **raw)(iter(payload), timeout=10)
        else:
            channel.unary_unary(path, **raw)(payload, timeout=10)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def test_every_rpc_survives_random_requests(daemon: str) -> None:
    dev = connect(daemon)
    ids = _ids(dev)
    fuzz = Fuzzer(seed=20261202, ids=ids)
    methods = list(SERVICE.methods)
    bad: list[str] = []
    counts = {m.name: 0 for m in methods}
    tracemalloc.start()
    try:
        with grpc.insecure_channel(daemon, options=[("grpc.max_send_message_length", 8 << 20)]) as channel:
            for i in range(EXAMPLES):
                method = methods[i % len(methods)]
                cls = message_factory.GetMessageClass(method.input_type)
                msgs = [cls() for _ in range(fuzz.rng.randint(0, 4) if method.client_streaming else 1)]
                for m in msgs:
                    fuzz.fill(m)
                payload = [fuzz.wire(m) for m in msgs]
                code, details = send(channel, method, payload if method.client_streaming else payload[0])
                if code not in ALLOWED:
                    bad.append(f"{method.name}: {code.name}: {details[:200]}")
                counts[method.name] += 1
                if i % 500 == 499:  # a fuzzed CloseSession or UnloadModel may have removed what the ids name
                    new = _ids(dev)
                    fuzz.ids = {k: ids[k] + new[k] for k in ids}
            peak = tracemalloc.get_traced_memory()[1]
            # Still serving: health, and a correct step on a fresh session.
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            s = dev.open_session(dev.load_model(bundle_bytes(small_model())))
            want = small_model().session().step(spikes(1)[0])["out"]
            np.testing.assert_array_equal(s.step(spikes(1)[0])["out"], want)
    finally:
        tracemalloc.stop()
        dev.close()
    assert not bad, bad[:20]
    assert sum(counts.values()) == EXAMPLES and min(counts.values()) >= EXAMPLES // len(methods)
    assert peak < 256 << 20, f"peak traced memory {peak / 2**20:.0f} MiB"
