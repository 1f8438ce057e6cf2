"""The daemon against hostile and careless clients: the right status before any work, and it keeps serving."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgesnn import limits
from edgesnn._proto.edgesnn.v1 import device_pb2 as pb
from edgesnn._proto.edgesnn.v1 import device_pb2_grpc as pb_grpc
from edgesnn.devices import LocalDevice, connect
from edgesnn.devices._codec import encode_tensor
from edgesnn.errors import OptionError
from edgesnn.serve.cli import read_token
from tests.conformance._models import N_IN, bundle_bytes, served, small_model, spikes
from tests.test_serve import _drain_log, _start_daemon, _stop

BAD = grpc.StatusCode.INVALID_ARGUMENT
FULL = grpc.StatusCode.RESOURCE_EXHAUSTED
METHOD = "/edgesnn.v1.DeviceService/"


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return bundle_bytes(small_model())


@pytest.fixture
def daemon() -> Iterator[tuple[object, str]]:
    with served(LocalDevice(), max_sessions=8) as s:
        yield s


def status_of(call, *args, **kw) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kw)
    return info.value.code(), info.value.details()


def raw_call(channel: grpc.Channel, method: str, data: bytes) -> tuple[grpc.StatusCode, str]:
    """Send ``data`` as the request bytes of ``method``, as a client without the generated code could."""
    call = channel.unary_unary(METHOD + method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    return status_of(call, data, timeout=10)


def healthy(channel: grpc.Channel, timeout: float = 0.1) -> bool:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout).status == health_pb2.HealthCheckResponse.SERVING


def test_undecodable_requests_are_invalid_argument_with_one_log_line(daemon, caplog) -> None:
    with grpc.insecure_channel(daemon[1]) as channel:
        caplog.set_level(logging.WARNING, logger="edgesnn.serve")
        for method in ("OpenSession", "Step", "GetModelInfo", "SetState"):
            code, details = raw_call(channel, method, b"\xff\xff\xff\xff\x0f garbage")
            assert code == BAD and f"not a valid {method} message" in details
        assert [r.getMessage() for r in caplog.records].count("undecodable request") == 4
        assert not any(r.exc_info for r in caplog.records)  # no traceback
        assert healthy(channel)


def test_undecodable_requests_from_a_stranger_are_refused_by_the_auth_check() -> None:
    with served(LocalDevice(), token="t") as (_, address), grpc.insecure_channel(address) as channel:
        code, _ = raw_call(channel, "OpenSession", b"\xff\xff\xff\xff\x0f garbage")
        assert code == grpc.StatusCode.UNAUTHENTICATED


def test_a_long_id_is_refused_naming_the_limit_without_echoing_it(daemon) -> None:
    with grpc.insecure_channel(daemon[1]) as channel:
        stub = pb_grpc.DeviceServiceStub(channel)
        code, details = status_of(stub.GetModelInfo, pb.GetModelInfoRequest(model_id="x" * 100_000))
        assert code == FULL and "id_chars" in details and len(details) < 200


@pytest.mark.parametrize(
    ("shape", "expect"),
    [([2**62, 0], "a dimension's size"), ([1] * 65, "max_rank"), ([-1, N_IN], "negative dimension")],
)
def test_absurd_shapes_are_refused_before_any_work(daemon, model_bytes, shape, expect) -> None:
    with connect(daemon[1]) as dev, grpc.insecure_channel(daemon[1]) as channel:
        sid = dev.open_session(dev.load_model(model_bytes)).session_id
        stub = pb_grpc.DeviceServiceStub(channel)
        tensor = pb.Tensor(name="in", datatype="FP32", shape=shape, raw=b"")
        code, details = status_of(stub.Step, pb.StepRequest(session_id=sid, inputs=[tensor]))
        assert code in (BAD, FULL) and expect in details
        assert healthy(channel)


def test_a_batch_over_the_limit_is_refused_before_allocating(daemon, model_bytes) -> None:
    with grpc.insecure_channel(daemon[1]) as channel:
        stub = pb_grpc.DeviceServiceStub(channel)
        model_id = connect(daemon[1]).load_model(model_bytes)
        code, details = status_of(stub.OpenSession, pb.OpenSessionRequest(model_id=model_id, batch=4_000_000_000))
        assert code == FULL and "limit batch" in details


def test_load_by_path_stays_inside_the_served_directories(tmp_path: Path, model_bytes: bytes) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "ok.esnn").write_bytes(model_bytes)
    outside = tmp_path / "secret.esnn"
    outside.write_bytes(model_bytes)
    (models / "link.esnn").symlink_to(outside)  # a link out of the directory
    (models / "zero").symlink_to("/dev/zero")
    with served(LocalDevice(), model_dirs=[str(models)]) as (_, address), grpc.insecure_channel(address) as channel:
        stub = pb_grpc.DeviceServiceStub(channel)

        def load(path: str) -> tuple[grpc.StatusCode, str]:
            return status_of(stub.LoadModel, iter([pb.LoadModelRequest(path=path)]))

        assert stub.LoadModel(iter([pb.LoadModelRequest(path=str(models / "ok.esnn"))])).model_id
        refused = [load(p) for p in (str(outside), "/etc/shadow", "/etc/no-such-file", str(models / "link.esnn"),
                                     str(models / "zero"), str(models / ".." / "secret.esnn"))]  # fmt: skip
        assert {code for code, _ in refused} == {grpc.StatusCode.PERMISSION_DENIED}
        assert len({details for _, details in refused}) == 1  # the same answer, whether the file exists or not
        assert load("a\x00b")[0] == BAD


def test_a_damaged_state_is_refused(daemon, model_bytes) -> None:
    with connect(daemon[1]) as dev:
        s = dev.open_session(dev.load_model(model_bytes))
        s.run(spikes(10))
        blob = bytearray(s.state())
        blob[len(blob) // 2] ^= 0x10
        with grpc.insecure_channel(daemon[1]) as channel:
            stub = pb_grpc.DeviceServiceStub(channel)
            code, details = status_of(stub.SetState, pb.SetStateRequest(session_id=s.session_id, state=bytes(blob)))
        assert code == BAD and "damaged" in details


def test_abandoned_streams_do_not_starve_health_or_new_clients(model_bytes) -> None:
    with limits.override(stream_idle_s=2.0), served(LocalDevice(), max_sessions=4) as (_, address):
        hang = threading.Event()

        def silent() -> Iterator[pb.StepRequest]:
            hang.wait()  # a client that opened a stream and went quiet
            yield from ()

        channels = [grpc.insecure_channel(address) for _ in range(200)]
        calls = [pb_grpc.DeviceServiceStub(c).Stream(silent()) for c in channels]
        try:
            time.sleep(0.5)  # let them all arrive
            # Latency figures come from tools/bench/serve_abuse.py; here: answered at all, not starved.
            with grpc.insecure_channel(address) as channel, connect(address, timeout_s=5) as dev:
                assert healthy(channel, timeout=5.0)
                s = dev.open_session(dev.load_model(model_bytes))
                want = small_model().session().step(spikes(1)[0])["out"]
                np.testing.assert_array_equal(s.step(spikes(1)[0])["out"], want)
            # Beyond the per-client limit a stream is refused at once; the admitted ones end when idle.
            refused = [c for c in calls if c.done() and c.code() == FULL]
            assert len(refused) >= 200 - limits.current().streams_per_client
            deadline = time.monotonic() + 10
            while not all(c.done() for c in calls) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert all(c.done() for c in calls)
        finally:
            hang.set()
            for c in channels:
                c.close()


def test_closed_sessions_give_their_memory_back(daemon, model_bytes) -> None:
    with connect(daemon[1]) as dev:
        model_id = dev.load_model(model_bytes)
        dev.open_session(model_id).close()  # warm up what stays: the model, caches
        tracemalloc.start()
        try:
            idle = tracemalloc.get_traced_memory()[0]
            sessions = [dev.open_session(model_id, batch=256) for _ in range(6)]
            busy = tracemalloc.get_traced_memory()[0]
            for s in sessions:
                s.close()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
    assert busy - idle > 1 << 20  # the sessions held real memory
    assert after - idle < 0.1 * (busy - idle)


def test_the_token_comes_from_a_file_or_the_environment(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "token").write_text("s3cret\n")
    assert read_token(None, str(tmp_path / "token")) == "s3cret"
    monkeypatch.setenv("EDGESNN_TOKEN", "from-env")
    assert read_token(None, None) == "from-env"
    assert read_token("given", None) == "given"
    with pytest.raises(OptionError, match="not both"):
        read_token("given", str(tmp_path / "token"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(OptionError, match="no token"):
        read_token(None, str(tmp_path / "empty"))


def test_sigterm_ends_within_the_grace_period_whatever_the_streams_do(tmp_path: Path, model_bytes: bytes) -> None:
    env = {**os.environ, "EDGESNN_TOKEN": "t"}
    proc, address, lines = _start_daemon("--grace", "2s", env=env)
    hang = threading.Event()
    channels = []
    try:

        def garbage() -> Iterator[bytes]:
            yield b"\xff\xff\xff\xff\x0f"
            hang.wait()

        def silent() -> Iterator[pb.StepRequest]:
            hang.wait()
            yield from ()

        for i in range(24):
            channel = grpc.insecure_channel(address)
            channels.append(channel)
            meta = (("authorization", "Bearer t"),)
            if i % 2:
                call = channel.stream_stream(METHOD + "Stream", request_serializer=lambda b: b,
                                             response_deserializer=lambda b: b)  # fmt: skip
                call(garbage(), metadata=meta)
            else:
                pb_grpc.DeviceServiceStub(channel).Stream(silent(), metadata=meta)
        time.sleep(0.5)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - start < 2 + 1
        proc.reader.join(timeout=10)  # type: ignore[attr-defined]
        assert "exited" in [e["msg"] for e in _drain_log(lines)]
    finally:
        hang.set()
        for c in channels:
            c.close()
        _stop(proc)  # kills it if it still runs; closes its pipe either way


def test_limits_are_set_from_the_command_line() -> None:
    from edgesnn.serve.cli import apply_limits

    with limits.override():
        apply_limits(["batch=8", "stream_idle_s=2.5"])
        assert limits.current().batch == 8 and limits.current().stream_idle_s == 2.5
        with pytest.raises(OptionError, match="unknown limit 'nope'"):
            apply_limits(["nope=1"])
        with pytest.raises(OptionError, match="NAME=NUMBER"):
            apply_limits(["batch=lots"])


def test_a_step_still_matches_the_engine_after_the_checks(daemon, model_bytes) -> None:
    with connect(daemon[1]) as dev:
        s = dev.open_session(dev.load_model(model_bytes))
        want = small_model().session().step(spikes(1)[0])
        np.testing.assert_array_equal(s.step(spikes(1)[0])["out"], want["out"])
        assert encode_tensor("in", spikes(1)[0]).datatype == "FP32"


def test_the_daemon_takes_its_model_directories_token_file_and_limits_from_the_command_line(
    tmp_path: Path, model_bytes: bytes
) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.esnn").write_bytes(model_bytes)
    (tmp_path / "token").write_text("s3cret\n")
    proc, address, _ = _start_daemon("--models-dir", str(tmp_path / "models"), "--token-file", str(tmp_path / "token"),
                                     "--limit", "batch=8")  # fmt: skip
    try:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.DeviceServiceStub(channel)
            request = pb.LoadModelRequest(path=str(tmp_path / "models" / "m.esnn"))
            assert status_of(stub.LoadModel, iter([request]))[0] == grpc.StatusCode.UNAUTHENTICATED
            meta = (("authorization", "Bearer s3cret"),)
            model_id = stub.LoadModel(iter([request]), metadata=meta).model_id
            outside = pb.LoadModelRequest(path=str(tmp_path / "token"))
            assert status_of(stub.LoadModel, iter([outside]), metadata=meta)[0] == grpc.StatusCode.PERMISSION_DENIED
            code, details = status_of(stub.OpenSession, pb.OpenSessionRequest(model_id=model_id, batch=9),
                                      metadata=meta)  # fmt: skip
            assert code == FULL and "limit batch = 8" in details
    finally:
        _stop(proc)
