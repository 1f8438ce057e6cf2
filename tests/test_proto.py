"""The wire contract: the .proto compiles cleanly and the committed generated code is fresh."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgesnn._proto.edgesnn.v1 import device_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("proto_generate", ROOT / "proto" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    """Regenerating (protoc with --fatal_warnings) gives byte-identical files: nobody edited them by hand."""
    written = _generator().generate(tmp_path)
    assert {p.name for p in written} >= {"device_pb2.py", "device_pb2.pyi", "device_pb2_grpc.py"}
    for path in written:
        committed = ROOT / path.relative_to(tmp_path)
        assert committed.read_bytes() == path.read_bytes(), f"{committed} is stale: run python proto/generate.py"


def test_service_offers_every_rpc_of_the_contract() -> None:
    service = pb.DESCRIPTOR.services_by_name["DeviceService"]
    assert service.full_name == "edgesnn.v1.DeviceService"
    want = {"GetCapabilities", "LoadModel", "UnloadModel", "GetModelInfo", "ListModels", "OpenSession",
            "CloseSession", "Step", "Stream", "Run", "Reset", "Learn", "Forget", "ListClasses", "Adapt",
            "GetState", "SetState"}  # fmt: skip
    assert set(service.methods_by_name) == want
    stream = service.methods_by_name["Stream"]
    assert stream.client_streaming and stream.server_streaming
    assert service.methods_by_name["LoadModel"].client_streaming
