"""Device specifics beyond the shared contract: loading sources, connecting, retries, error mapping."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import numpy as np
import pytest

from edgesnn.devices import LocalDevice, RemoteDevice, connect
from edgesnn.devices._codec import decode_tensor, encode_tensor
from edgesnn.devices.remote import IDEMPOTENT_METHODS, _service_config
from edgesnn.errors import (
    BundleFormatError,
    CapacityError,
    DeviceError,
    InputError,
    NotFoundError,
    StateError,
)  # fmt: skip
from edgesnn.serve.errors import rebuild_error, status_for
from tests.conformance._models import bundle_bytes, learning_model, served, small_model, spikes


def test_local_device_loads_paths_bytes_and_files(tmp_path: Path) -> None:
    data = bundle_bytes(small_model())
    path = tmp_path / "m.esnn"
    path.write_bytes(data)
    dev = LocalDevice()
    with open(path, "rb") as f:
        ids = {dev.load_model(str(path)), dev.load_model(data), dev.load_model(f)}
    assert len(ids) == 1 and len(dev.models()) == 1
    with pytest.raises(BundleFormatError, match="<bytes>"):
        dev.load_model(b"junk")
    with pytest.raises(FileNotFoundError):
        dev.load_model(str(tmp_path / "missing.esnn"))


def test_remote_device_uploads_a_local_file_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgesnn.devices.remote as remote_mod

    monkeypatch.setattr(remote_mod, "CHUNK_BYTES", 1000)  # many chunks for a small bundle
    data = bundle_bytes(small_model())
    path = tmp_path / "m.esnn"
    path.write_bytes(data)
    with served(model_dirs=[str(tmp_path)]) as (_, address):
        dev = connect(address)
        assert dev.load_model(path) == LocalDevice().load_model(data)
        assert dev.load_model_on_device(str(path)) == dev.load_model(data)  # a file in a served directory
        dev.close()


def test_connect_to_nothing_fails_fast_naming_the_address() -> None:
    with served() as (_, address):
        pass  # the port is free again
    with pytest.raises(DeviceError, match=address.replace(".", r"\.")):
        connect(address, connect_timeout_s=0.3)


def test_calls_have_deadlines() -> None:
    dev = RemoteDevice("127.0.0.1:1", timeout_s=0.2)
    with pytest.raises(DeviceError, match="127.0.0.1:1"):
        dev.capabilities()
    dev.close()


def test_only_idempotent_rpcs_are_retried() -> None:
    config = json.loads(_service_config())["methodConfig"][0]
    retried = {n["method"] for n in config["name"]}
    assert retried == set(IDEMPOTENT_METHODS)
    assert not retried & {"Step", "Stream", "Run", "Learn", "Forget", "LoadModel", "OpenSession", "Adapt", "Reset"}
    assert config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]


def test_errors_map_to_codes_and_back() -> None:
    cases = [
        (InputError("expected shape (1, 4)", path="inputs/in"), grpc.StatusCode.INVALID_ARGUMENT),
        (StateError("wrong model", path="state"), grpc.StatusCode.INVALID_ARGUMENT),
        (NotFoundError("no session", path="session_id"), grpc.StatusCode.NOT_FOUND),
        (CapacityError("full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    ]
    for exc, code in cases:
        got_code, message = status_for(exc)
        assert got_code == code and message == str(exc)
        back = rebuild_error(
            code, message, {"type": type(exc).__name__, "path": exc.path or "", "message": exc.message}
        )
        assert type(back) is type(exc) and str(back) == str(exc)
    # a server that sends no edgesnn metadata still gives the right family
    assert type(rebuild_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "too big", None)) is CapacityError
    assert type(rebuild_error(grpc.StatusCode.UNAVAILABLE, "down", None)) is DeviceError
    code, message = status_for(ZeroDivisionError("bug"))
    assert code == grpc.StatusCode.INTERNAL and "ZeroDivisionError" in message


def test_tensor_codec_round_trips_every_datatype() -> None:
    for dtype in ("<f4", "<f8", "<f2", "i1", "<i2", "<i4", "<i8", "u1", "<u2", "<u4", "<u8", "?"):
        arr = np.arange(6).reshape(2, 3).astype(dtype)
        back = decode_tensor(encode_tensor("x", arr), "x")
        assert back.dtype == arr.dtype and np.array_equal(back, arr)
    big_endian = np.arange(4, dtype=">f4")
    assert encode_tensor("x", big_endian).raw == np.arange(4, dtype="<f4").tobytes()
    with pytest.raises(InputError, match="complex"):
        encode_tensor("x", np.zeros(2, np.complex64))


def test_the_store_keeps_classes_across_devices(tmp_path: Path) -> None:
    data = bundle_bytes(learning_model())
    dev = LocalDevice(store=tmp_path)
    model_id = dev.load_model(data)
    s = dev.open_session(model_id)
    s.learn("wave", spikes(30)[:, 0])
    with pytest.raises(CapacityError, match="store"):
        dev.open_session(model_id)  # one writer per store
    s.close()
    again = LocalDevice(store=tmp_path)  # as after a restart
    assert again.open_session(again.load_model(data)).classes() == ["wave"]


def _self_signed_cert(tmp_path: Path) -> tuple[Path, Path]:
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_serves_clients_that_trust_the_certificate(tmp_path: Path) -> None:
    from edgesnn.serve.server import TLSConfig, create_server

    cert, key = _self_signed_cert(tmp_path)
    server, port = create_server(LocalDevice(), "127.0.0.1:0", tls=TLSConfig.from_files(cert, key))
    try:
        with connect(f"localhost:{port}", tls=str(cert)) as dev:
            model_id = dev.load_model(bundle_bytes(small_model()))
            s = dev.open_session(model_id)
            out = s.step(spikes(1)[0])
            want = small_model().session().step(spikes(1)[0])
            np.testing.assert_array_equal(out["out"], want["out"])
        with pytest.raises(DeviceError):  # a plaintext client cannot talk to a TLS port
            with connect(f"localhost:{port}", connect_timeout_s=2) as dev:
                dev.capabilities()
    finally:
        server.stop(0)
