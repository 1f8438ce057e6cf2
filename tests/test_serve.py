"""The daemon over the wire: every RPC and every bad input through the generated client."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from edgesnn._proto.edgesnn.v1 import device_pb2 as pb
from edgesnn._proto.edgesnn.v1 import device_pb2_grpc as pb_grpc
from edgesnn.devices import LocalDevice, connect
from edgesnn.devices._codec import encode_events, encode_tensor
from edgesnn.errors import AuthenticationError, CapacityError, OptionError
from edgesnn.events._dtype import make_events
from edgesnn.serve import create_server
from edgesnn.serve.errors import ERROR_METADATA_KEY
from tests.conformance._models import N_IN, bundle_bytes, learning_model, served, small_model, spikes

ROOT = Path(__file__).resolve().parent.parent
BAD = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return bundle_bytes(small_model())


@pytest.fixture
def server() -> Iterator[tuple[object, str]]:
    with served(LocalDevice(), max_sessions=4, max_message_mb=1) as s:
        yield s


@pytest.fixture
def stub(server: tuple[object, str]) -> Iterator[pb_grpc.DeviceServiceStub]:
    with grpc.insecure_channel(server[1]) as channel:
        yield pb_grpc.DeviceServiceStub(channel)


def load(stub: pb_grpc.DeviceServiceStub, data: bytes) -> pb.ModelInfo:
    return stub.LoadModel(iter([pb.LoadModelRequest(chunk=data[i : i + 1000]) for i in range(0, len(data), 1000)]))


def open_session(stub: pb_grpc.DeviceServiceStub, data: bytes, **kw) -> pb.SessionInfo:
    return stub.OpenSession(pb.OpenSessionRequest(model_id=load(stub, data).model_id, **kw))


def step_request(sid: str, x: np.ndarray, **kw) -> pb.StepRequest:
    return pb.StepRequest(session_id=sid, inputs=[encode_tensor("in", x)], **kw)


def status_of(call, *args) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args)
    return info.value.code(), info.value.details()


# -- every RPC through the generated client ------------------------------------------------
def test_every_rpc_through_the_generated_client(stub: pb_grpc.DeviceServiceStub, model_bytes: bytes) -> None:
    caps = stub.GetCapabilities(pb.GetCapabilitiesRequest())
    assert caps.device_kind == "cpu" and caps.max_sessions == 4 and caps.max_message_bytes == 1 << 20
    info = load(stub, model_bytes)
    assert load(stub, model_bytes).model_id == info.model_id
    assert [s.name for s in info.inputs] == ["in"] and list(info.inputs[0].shape) == [N_IN]
    assert stub.GetModelInfo(pb.GetModelInfoRequest(model_id=info.model_id)) == info
    assert [m.model_id for m in stub.ListModels(pb.ListModelsRequest()).models] == [info.model_id]
    s = stub.OpenSession(pb.OpenSessionRequest(model_id=info.model_id, batch=1))
    xs = spikes(10)
    ref = small_model().session()
    out = stub.Step(step_request(s.session_id, xs[0], id=7))
    assert out.id == 7 and out.outputs[0].datatype == "FP32" and list(out.outputs[0].shape) == [1, 4]
    np.testing.assert_array_equal(np.frombuffer(out.outputs[0].raw, "<f4").reshape(1, 4), ref.step(xs[0])["out"])
    run = stub.Run(pb.RunRequest(session_id=s.session_id, inputs=[encode_tensor("in", xs[1:])]))
    np.testing.assert_array_equal(np.frombuffer(run.outputs[0].raw, "<f4").reshape(9, 1, 4), ref.run(xs[1:])["out"])
    state = stub.GetState(pb.GetStateRequest(session_id=s.session_id)).state
    stub.Reset(pb.ResetRequest(session_id=s.session_id))
    stub.SetState(pb.SetStateRequest(session_id=s.session_id, state=state))
    assert stub.GetState(pb.GetStateRequest(session_id=s.session_id)).state == state
    adapted = stub.Adapt(pb.AdaptRequest(session_id=s.session_id, dt_s=2e-3, method="integral"))
    assert adapted.dt_s == pytest.approx(2e-3)
    code, _ = status_of(stub.Learn, pb.LearnRequest(session_id=s.session_id, label="a",
                                                    example=encode_tensor("", xs[:, 0])))  # fmt: skip
    assert code == grpc.StatusCode.UNIMPLEMENTED
    stub.CloseSession(pb.CloseSessionRequest(session_id=s.session_id))
    stub.UnloadModel(pb.UnloadModelRequest(model_id=info.model_id))
    assert not stub.ListModels(pb.ListModelsRequest()).models


def test_learn_forget_and_list_classes(stub: pb_grpc.DeviceServiceStub) -> None:
    s = open_session(stub, bundle_bytes(learning_model()))
    example = encode_tensor("", spikes(30)[:, 0])
    got = stub.Learn(pb.LearnRequest(session_id=s.session_id, label="wave", example=example))
    assert got.label == "wave" and list(got.classes) == ["wave"] and got.info["action"] == "added"
    want = learning_model().session().learn("wave", spikes(30)[:, 0])  # the learner's report crosses the wire
    for key in ("new", "overshot", "epochs", "updates", "score_before", "score_after", "target"):
        assert got.info[key] == pytest.approx(want[key]), key
    stub.Learn(pb.LearnRequest(session_id=s.session_id, label="stop", example=example))
    assert list(stub.ListClasses(pb.ListClassesRequest(session_id=s.session_id)).classes) == ["wave", "stop"]
    gone = stub.Forget(pb.ForgetRequest(session_id=s.session_id, label="wave"))
    assert list(gone.classes) == ["stop"]
    code, details = status_of(stub.Learn, pb.LearnRequest(session_id=s.session_id, label="x"))
    assert code == BAD and "example" in details


def test_load_by_path_on_the_device(model_bytes: bytes, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    path = models / "m.esnn"
    path.write_bytes(model_bytes)
    with served(LocalDevice(), model_dirs=[str(models)]) as (_, address), grpc.insecure_channel(address) as channel:
        stub = pb_grpc.DeviceServiceStub(channel)
        info = stub.LoadModel(iter([pb.LoadModelRequest(path=str(path))]))
        assert info.model_id == load(stub, model_bytes).model_id
        code, details = status_of(stub.LoadModel, iter([pb.LoadModelRequest(path=str(models / "missing.esnn"))]))
        assert code == grpc.StatusCode.NOT_FOUND and "missing.esnn" in details


# -- bad input: right code, a message naming the problem, the server keeps serving ---------
@pytest.mark.parametrize(
    ("tensor", "expect"),
    [
        (pb.Tensor(name="in", datatype="FP33", shape=[1, N_IN], raw=b"\0" * 4 * N_IN), "unknown datatype 'FP33'"),
        (pb.Tensor(name="in", datatype="FP32", shape=[1, N_IN], raw=b"\0" * 5), "has 5 bytes of data"),
        (pb.Tensor(name="in", datatype="FP32", shape=[1, N_IN + 1], raw=b"\0" * 4 * (N_IN + 1)), "expected shape"),
        (pb.Tensor(name="in", datatype="FP32", shape=[-1, N_IN], raw=b""), "negative dimension"),
        (pb.Tensor(name="nope", datatype="FP32", shape=[1, N_IN], raw=b"\0" * 4 * N_IN), "unknown ['nope']"),
    ],
    ids=["dtype", "byte-length", "shape", "negative-dim", "name"],
)
def test_malformed_tensors_are_invalid_argument(stub, model_bytes: bytes, tensor: pb.Tensor, expect: str) -> None:
    s = open_session(stub, model_bytes)
    with pytest.raises(grpc.RpcError) as info:
        stub.Step(pb.StepRequest(session_id=s.session_id, inputs=[tensor]))
    assert info.value.code() == BAD and expect in info.value.details()
    payload = json.loads(dict(info.value.trailing_metadata())[ERROR_METADATA_KEY])
    assert payload["type"] == "InputError"
    stub.Step(step_request(s.session_id, spikes(1)[0]))  # still serving


def test_unknown_ids_are_not_found(stub: pb_grpc.DeviceServiceStub) -> None:
    for call, req in (
        (stub.Step, pb.StepRequest(session_id="nope")),
        (stub.OpenSession, pb.OpenSessionRequest(model_id="nope")),
        (stub.UnloadModel, pb.UnloadModelRequest(model_id="nope")),
        (stub.GetState, pb.GetStateRequest(session_id="nope")),
        (stub.CloseSession, pb.CloseSessionRequest(session_id="nope")),
    ):
        code, details = status_of(call, req)
        assert code == grpc.StatusCode.NOT_FOUND and "'nope'" in details


def test_bad_bundles_options_and_states_are_invalid_argument(stub, model_bytes: bytes) -> None:
    code, details = status_of(stub.LoadModel, iter([pb.LoadModelRequest(chunk=b"not a zip")]))
    assert code == BAD and "zip" in details
    code, details = status_of(stub.LoadModel, iter([]))
    assert code == BAD and "no bundle" in details
    model_id = load(stub, model_bytes).model_id
    code, details = status_of(stub.OpenSession, pb.OpenSessionRequest(model_id=model_id, adapt_method="magic"))
    assert code == BAD and "magic" in details
    s = stub.OpenSession(pb.OpenSessionRequest(model_id=model_id))
    code, _ = status_of(stub.SetState, pb.SetStateRequest(session_id=s.session_id, state=b"junk"))
    assert code == BAD


def test_oversized_messages_are_resource_exhausted(stub, model_bytes: bytes) -> None:
    s = open_session(stub, model_bytes)
    big = np.zeros((70_000, 1, N_IN), np.float32)  # 3.4 MB, over the 1 MiB limit
    code, details = status_of(stub.Run, pb.RunRequest(session_id=s.session_id, inputs=[encode_tensor("in", big)]))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details
    stub.Step(step_request(s.session_id, spikes(1)[0]))


def test_too_many_sessions_is_resource_exhausted(stub, model_bytes: bytes) -> None:
    model_id = load(stub, model_bytes).model_id
    ids = [stub.OpenSession(pb.OpenSessionRequest(model_id=model_id)).session_id for _ in range(4)]
    code, details = status_of(stub.OpenSession, pb.OpenSessionRequest(model_id=model_id))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "--max-sessions 4" in details
    stub.CloseSession(pb.CloseSessionRequest(session_id=ids[0]))
    stub.OpenSession(pb.OpenSessionRequest(model_id=model_id))


# -- streams --------------------------------------------------------------------------------
def test_stream_answers_in_order_and_survives_bad_requests(stub, model_bytes: bytes) -> None:
    s = open_session(stub, model_bytes)
    xs = spikes(6)
    ref = small_model().session()
    reqs = [step_request(s.session_id, xs[t], id=100 + t) for t in range(6)]
    reqs.insert(3, pb.StepRequest(session_id=s.session_id, id=999, inputs=[pb.Tensor(name="in", datatype="FP32")]))
    chunk = pb.StepRequest(session_id=s.session_id, id=5000, sequence=True, inputs=[encode_tensor("in", xs)])
    responses = list(stub.Stream(iter([*reqs, chunk])))
    assert [r.id for r in responses] == [100, 101, 102, 999, 103, 104, 105, 5000]
    bad = responses[3]
    assert bad.error.code == BAD.value[0] and bad.error.type == "InputError" and "has 0 bytes" in bad.error.message
    for t, r in enumerate(r for r in responses[:-1] if not r.HasField("error")):
        np.testing.assert_array_equal(np.frombuffer(r.outputs[0].raw, "<f4"), ref.step(xs[t])["out"].ravel())
    assert list(responses[-1].outputs[0].shape) == [6, 1, 4]
    stub.Step(step_request(s.session_id, xs[0]))  # a cleanly ended stream keeps its session


def test_stream_checks_every_request_that_differs_from_the_last(stub, model_bytes: bytes) -> None:
    # After a first request, a stream takes requests of the same signature without decoding
    # them again: every change of session, shape, datatype or name must still be checked.
    a, b = open_session(stub, model_bytes), open_session(stub, model_bytes)
    xs = spikes(4)
    wrong_shape = pb.Tensor(name="in", datatype="FP32", shape=[N_IN, 1], raw=xs[0].tobytes())
    wrong_type = pb.Tensor(name="in", datatype="INT32", shape=[1, N_IN], raw=xs[0].astype(np.int32).tobytes())
    reqs = [
        step_request(a.session_id, xs[0], id=1),
        step_request(a.session_id, xs[1], id=2),  # same signature
        pb.StepRequest(session_id=a.session_id, id=3, inputs=[wrong_shape]),
        step_request(b.session_id, xs[0], id=4),  # another session
        step_request(a.session_id, xs[2][0], id=5),  # (N_IN,): batch 1 left out
        pb.StepRequest(session_id=a.session_id, id=6, inputs=[wrong_type]),  # valid, cast by the engine
        pb.StepRequest(session_id=a.session_id, id=7, inputs=[encode_tensor("nope", xs[3])]),
        step_request(a.session_id, xs[3], id=8, outputs=["out"]),
    ]
    responses = list(stub.Stream(iter(reqs)))
    assert [r.id for r in responses] == [1, 2, 3, 4, 5, 6, 7, 8]
    errors = {r.id: r.error for r in responses if r.HasField("error")}
    assert set(errors) == {3, 7}
    assert errors[3].code == BAD.value[0] and f"got ({N_IN}, 1)" in errors[3].message and errors[3].path == "inputs/in"
    assert errors[7].code == BAD.value[0] and "nope" in errors[7].message
    ref_a, ref_b = small_model().session(), small_model().session()
    want = {1: ref_a.step(xs[0]), 2: ref_a.step(xs[1]), 4: ref_b.step(xs[0]), 5: ref_a.step(xs[2]),
            6: ref_a.step(xs[0].astype(np.int32)), 8: ref_a.step(xs[3])}  # fmt: skip
    for r in responses:
        if r.id in want:
            got = np.frombuffer(r.outputs[0].raw, "<f4").reshape(tuple(r.outputs[0].shape))
            np.testing.assert_array_equal(got, want[r.id]["out"])


def test_stream_reports_a_session_closed_under_it(stub, model_bytes: bytes) -> None:
    s = open_session(stub, model_bytes)
    outbox: queue.Queue = queue.Queue()
    call = stub.Stream(iter(outbox.get, None))
    for i in range(2):
        outbox.put(step_request(s.session_id, spikes(1)[0], id=i))
        assert not next(call).HasField("error")
    stub.CloseSession(pb.CloseSessionRequest(session_id=s.session_id))
    outbox.put(step_request(s.session_id, spikes(1)[0], id=2))
    r = next(call)
    assert r.id == 2 and r.error.code == grpc.StatusCode.NOT_FOUND.value[0] and s.session_id in r.error.message
    outbox.put(None)
    assert list(call) == []


def test_events_bin_into_the_input(stub, model_bytes: bytes) -> None:
    s = open_session(stub, model_bytes)
    events = make_events([0, 3, 3, 11], [0, 0, 0, 0], [1, 0, 1, 1], [10, 20, 30, 40])
    dense = np.zeros((1, N_IN), np.float32)
    dense[0, [0, 3, 11]] = [1, 2, 1]
    packet = pb.EventPacket(input="in", events=encode_events(events))
    out = stub.Step(pb.StepRequest(session_id=s.session_id, events=[packet]))
    want = small_model().session().step(dense)["out"]
    np.testing.assert_array_equal(np.frombuffer(out.outputs[0].raw, "<f4").reshape(1, 4), want)
    for bad, expect in ((b"\0" * 14, "13-byte"), (encode_events(make_events([N_IN], [0], [1], [0])), "outside")):
        req = pb.StepRequest(session_id=s.session_id, events=[pb.EventPacket(input="in", events=bad)])
        code, details = status_of(stub.Step, req)
        assert code == BAD and expect in details


_DYING_CLIENT = """
import queue, sys, numpy as np
import grpc
from edgesnn._proto.edgesnn.v1 import device_pb2 as pb, device_pb2_grpc as pb_grpc
from edgesnn.devices._codec import encode_tensor
stub = pb_grpc.DeviceServiceStub(grpc.insecure_channel(sys.argv[1]))
outbox = queue.Queue()
call = stub.Stream(iter(outbox.get, None))
x = np.zeros((1, int(sys.argv[3])), np.float32)
outbox.put(pb.StepRequest(session_id=sys.argv[2], id=1, inputs=[encode_tensor("in", x)]))
print(next(call).id, flush=True)
sys.stdin.read()  # keep the stream open until killed
"""


def test_a_client_that_disconnects_mid_stream_frees_its_session(server, model_bytes: bytes) -> None:
    # The client process dies (kill -9) with its stream open: its connection drops, and the
    # server must close the session the stream was stepping.
    srv, address = server
    stub = pb_grpc.DeviceServiceStub(grpc.insecure_channel(address))
    s = open_session(stub, model_bytes)
    client = subprocess.Popen(
        [sys.executable, "-c", _DYING_CLIENT, address, s.session_id, str(N_IN)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert client.stdout.readline().strip() == "1"  # one step answered on the stream
        assert len(srv.sessions) == 1
        client.kill()
        client.wait(timeout=10)
        deadline = time.monotonic() + 30  # generous: a loaded machine may notice the dropped connection late
        while len(srv.sessions) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(srv.sessions) == 0
    finally:
        client.kill()
        client.wait(timeout=10)
        client.stdin.close()
        client.stdout.close()


# -- auth, health, reflection, transports ------------------------------------------------
def test_token_is_required_and_checked(model_bytes: bytes) -> None:
    with served(LocalDevice(), token="s3cret") as (_, address), grpc.insecure_channel(address) as channel:
        stub = pb_grpc.DeviceServiceStub(channel)
        for metadata in ((), (("authorization", "Bearer wrong"),)):
            with pytest.raises(grpc.RpcError) as info:
                stub.GetCapabilities(pb.GetCapabilitiesRequest(), metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and "authorization" in info.value.details()
            with pytest.raises(grpc.RpcError) as info:
                list(stub.Stream(iter([pb.StepRequest()]), metadata=metadata))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = (("authorization", "Bearer s3cret"),)
        assert stub.GetCapabilities(pb.GetCapabilitiesRequest(), metadata=ok).device_kind == "cpu"
        health = health_pb2_grpc.HealthStub(channel)  # probes need no token
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(AuthenticationError):
            connect(address, token="wrong").capabilities()
        assert connect(address, token="s3cret").capabilities().device_kind == "cpu"


def test_non_loopback_needs_a_token() -> None:
    with pytest.raises(OptionError, match="needs a token"):
        create_server(LocalDevice(), "0.0.0.0:0")
    server, port = create_server(LocalDevice(), "0.0.0.0:0", token="t")
    server.stop(0)
    assert port > 0


def test_health_and_reflection(server) -> None:
    with grpc.insecure_channel(server[1]) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "edgesnn.v1.DeviceService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        reply = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        names = {s.name for s in reply.list_services_response.service}
        assert {"edgesnn.v1.DeviceService", "grpc.health.v1.Health"} <= names
        reply = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="edgesnn.v1.DeviceService")])))  # fmt: skip
        assert reply.file_descriptor_response.file_descriptor_proto


def test_unix_socket(tmp_path: Path, model_bytes: bytes) -> None:
    address = f"unix:{tmp_path / 'edgesnn.sock'}"
    with served(LocalDevice(), address) as (_, target):
        dev = connect(target)
        s = dev.open_session(dev.load_model(model_bytes))
        np.testing.assert_array_equal(s.step(spikes(1)[0])["out"], small_model().session().step(spikes(1)[0])["out"])
        dev.close()


def test_one_server_on_tcp_and_a_unix_socket_shares_its_sessions(tmp_path: Path, model_bytes: bytes) -> None:
    unix = f"unix:{tmp_path / 'edgesnn.sock'}"
    server, port = create_server(LocalDevice(), ["127.0.0.1:0", unix], max_sessions=1)
    try:
        assert server.ports["127.0.0.1:0"] == port and set(server.ports) == {"127.0.0.1:0", unix}
        with grpc.insecure_channel(f"127.0.0.1:{port}") as tcp, grpc.insecure_channel(unix) as local:
            s = open_session(pb_grpc.DeviceServiceStub(tcp), model_bytes)
            over_unix = pb_grpc.DeviceServiceStub(local)
            assert not over_unix.Step(step_request(s.session_id, spikes(1)[0])).HasField("error")
            code, details = status_of(over_unix.OpenSession, pb.OpenSessionRequest(model_id=s.model_id))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "--max-sessions 1" in details
    finally:
        server.stop(0)


def test_capacity_error_comes_back_through_remote_device(model_bytes: bytes) -> None:
    with served(LocalDevice(), max_sessions=1) as (_, address):
        dev = connect(address)
        model_id = dev.load_model(model_bytes)
        dev.open_session(model_id)
        with pytest.raises(CapacityError, match="max-sessions 1"):
            dev.open_session(model_id)
        dev.close()


# -- the daemon process -------------------------------------------------------------------
def _start_daemon(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, str, queue.Queue]:
    proc = subprocess.Popen([sys.executable, "-m", "edgesnn.serve", "serve", "--port", "0", *args], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True)
    reader.start()
    proc.reader = reader  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            entry = json.loads(lines.get(timeout=deadline - time.monotonic()))
        except queue.Empty:
            break
        if entry["msg"] == "listening":
            return proc, f"127.0.0.1:{entry['port']}", lines
    _stop(proc)
    raise AssertionError("the daemon did not start listening")


def _stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=10)
    proc.reader.join(timeout=10)  # type: ignore[attr-defined]
    proc.stderr.close()


def _drain_log(lines: queue.Queue) -> list[dict]:
    out = []
    while not lines.empty():
        out.append(json.loads(lines.get()))
    return out


def test_sigterm_drains_and_exits_cleanly(tmp_path: Path, model_bytes: bytes) -> None:
    path = tmp_path / "m.esnn"
    path.write_bytes(model_bytes)
    proc, address, lines = _start_daemon("--model", str(path), "--grace", "5s")
    try:
        dev = connect(address)
        s = dev.open_session(dev.model_info(dev.models()[0].model_id).model_id)
        s.step(spikes(1)[0])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        proc.reader.join(timeout=10)  # type: ignore[attr-defined]
        msgs = [e["msg"] for e in _drain_log(lines)]
        assert msgs.index("shutdown requested") < msgs.index("draining") < msgs.index("stopped") < msgs.index("exited")
        dev.close()
    finally:
        _stop(proc)


def test_kill_9_during_learn_loses_no_acknowledged_class(tmp_path: Path) -> None:
    data = bundle_bytes(learning_model())
    store = tmp_path / "store"
    proc, address, _ = _start_daemon("--store", str(store))
    acknowledged: list[str] = []
    try:
        dev = connect(address, timeout_s=10)
        s = dev.open_session(dev.load_model(data))
        example = spikes(30)[:, 0]

        def learn_forever() -> None:
            for i in range(10_000):
                try:
                    s.learn(f"class{i}", example)
                except Exception:
                    return
                acknowledged.append(f"class{i}")

        worker = threading.Thread(target=learn_forever)
        worker.start()
        while len(acknowledged) < 5:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # mid-learn: the next call is in flight
        proc.wait(timeout=10)
        worker.join(timeout=30)
    finally:
        _stop(proc)
    proc, address, _ = _start_daemon("--store", str(store))
    try:
        dev = connect(address)
        kept = dev.open_session(dev.load_model(data)).classes()
        assert acknowledged and set(acknowledged) <= set(kept)
        dev.close()
    finally:
        _stop(proc)


def test_stream_responses_are_refilled_only_up_to_a_bound() -> None:
    # Bytes assigned to a message stay in its arena until it is freed: a response refilled
    # forever would grow without bound on a long-lived stream.
    from edgesnn.serve import streaming

    cache = streaming.StreamCache()
    big = np.zeros((1, 1 << 12), np.float32)  # 16 KiB per response
    last, built = cache.respond(0, {"out": big}), 1
    for i in range(1, 2 * streaming._REFILL_BYTES // big.nbytes + 2):
        resp = cache.respond(i, {"out": big + i})
        assert resp.id == i and np.frombuffer(resp.outputs[0].raw, "<f4")[0] == i
        built += resp is not last
        last = resp
    assert 2 <= built <= 4
    assert cache.respond(99, {"out": big, "v": big}).outputs[1].name == "v"  # other outputs: a new message
