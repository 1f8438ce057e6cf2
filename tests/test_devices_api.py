"""One API: ``dev.load(...)`` handles, model names over the wire, ``edgesnn devices``, the README's remote lines."""

from __future__ import annotations

import json
import pathlib
import re
import shutil
from importlib import resources

import numpy as np
import pytest

import edgesnn
from edgesnn.devices import LocalDevice, RemoteDevice, connect
from edgesnn.devices import _names as names
from edgesnn.devices.base import ModelInfo
from edgesnn.serve.cli import main as serve_main
from tests.conformance._models import bundle_bytes, learning_model, served, small_model

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
DEMO = resources.files("edgesnn") / "data" / "demo.esnn"


def remote_snippet() -> str:
    """The Python block of the README's "Python API" section that connects to a device."""
    text = README.read_text(encoding="utf-8").split("## Python API", 1)[1].split("\n## ")[0]
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "edgesnn.connect(" in b]
    assert len(blocks) == 1
    return blocks[0]


def test_the_readmes_remote_snippet_runs_against_a_served_device(tmp_path, monkeypatch) -> None:
    shutil.copy(DEMO, tmp_path / "model.esnn")
    monkeypatch.chdir(tmp_path)
    device = LocalDevice()
    with served(device) as (_, address):
        snippet = remote_snippet()
        assert '"localhost:50051"' in snippet
        scope: dict = {}
        exec(compile(snippet.replace("localhost:50051", address), str(README), "exec"), scope)  # noqa: S102
        assert isinstance(scope["device"], RemoteDevice)
        assert scope["model"].name == "model" and scope["model"].labels == edgesnn.load(DEMO).labels
        local = edgesnn.load(DEMO).session(dt=1e-3)
        want = local.step(scope["x"])
        np.testing.assert_array_equal(scope["y"]["scores"], want["scores"])
        assert set(scope["vs"]) == set(local.recordable)
        local.load_state(scope["saved"])  # the remote state restores a local session
        assert device.models()[0].name == "model"  # named on the device as the client's file
        assert not device._sessions  # s.close() freed it there


def test_local_and_remote_load_give_the_same_handle(tmp_path) -> None:
    path = tmp_path / "reservoir.esnn"
    path.write_bytes(bundle_bytes(small_model()))
    with served() as (_, address), connect(address) as remote:
        handles = [dev.load(str(path)) for dev in (LocalDevice(), remote)]
        assert [h.name for h in handles] == ["reservoir", "reservoir"]
        assert handles[0].info == handles[1].info
        assert remote.model_info(handles[1].model_id).name == "reservoir"  # the device remembers it
        assert "reservoir" in repr(handles[1]) and handles[1].model_id[:12] in repr(handles[1])
        s = remote.open_session(handles[1].model_id)  # the by-id calls keep working beside load
        assert s.model.name == "reservoir"
        s.close()
        handles[1].unload()
        assert remote.models() == []


def test_a_shipped_models_name_loads_on_any_device() -> None:
    with served() as (_, address), connect(address) as remote:
        for dev in (LocalDevice(), remote):
            m = dev.load("keywords")
            assert m.name == "keywords" and m.info.learning and len(m.labels) == 12
        with pytest.raises(FileNotFoundError) as local_err:
            LocalDevice().load("no_such_model")
        with pytest.raises(FileNotFoundError) as remote_err:
            remote.load("no_such_model")
        assert str(remote_err.value) == str(local_err.value)


def test_names_pass_through_a_forwarding_server(tmp_path) -> None:
    path = tmp_path / "learner.esnn"
    path.write_bytes(bundle_bytes(learning_model()))
    chip = LocalDevice()
    with served(chip) as (_, chip_address):
        bridge = RemoteDevice(chip_address)
        with served(bridge) as (_, address), connect(address) as dev:
            assert dev.load(path).name == "learner"
            assert [m.name for m in dev.models()] == ["learner"] == [m.name for m in chip.models()]
        bridge.close()


def test_uploads_from_bytes_have_no_name_and_the_producer_still_travels() -> None:
    with served() as (_, address), connect(address) as dev:
        m = dev.load(bundle_bytes(small_model()))
        assert m.name == "" and m.info.producer_name == "edgesnn"


def _info(model_id: str, name: str) -> ModelInfo:
    return ModelInfo(model_id, (), (), 1e-3, "zoh", (), False, "zoh-rate", name=name, producer_name="p")


def test_name_metadata_is_bounded_and_cleaned() -> None:
    infos = [_info(f"{i:064x}", "x" * 500) for i in range(200)]
    ((key, value),) = names.response_metadata(infos)
    assert key == names.RESPONSE_KEY and len(value) <= names.MAX_BYTES
    got = names.from_response([(key, value)])
    assert 0 < len(got) < 200 and all(v["name"] == "x" * names.NAME_CHARS for v in got.values())
    assert names.named(infos[-1], got).name == "x" * 500  # an id left out keeps what it had
    assert names.from_response([(names.RESPONSE_KEY, b"not json")]) == {} and names.from_response(None) == {}
    assert names.request_metadata("/a/b/caf\u00e9\n.esnn") == ((names.REQUEST_KEY, "caf?.esnn"),)
    assert names.request_metadata("<bytes>") == () and names.stem("<bytes>") == "" and names.stem(3) == ""  # type: ignore[arg-type]
    assert names.stem("C:\\models\\demo.esnn") == "demo"


def test_edgesnn_devices_lists_models_by_name_shape_and_labels(capsys) -> None:
    device = LocalDevice()
    device.load(str(DEMO))
    device.load("keywords")
    device.load_model(bundle_bytes(small_model()))
    with served(device) as (_, address):
        assert serve_main(["devices", address]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith(f"{address}: cpu") and "3 model(s) loaded" in lines[0]
        models = [line for line in lines if line.startswith("  model ")]
        demo_id = edgesnn.devices.LocalDevice().load_model(str(DEMO))
        assert models[0] == (
            f"  model demo [{demo_id[:12]}] by edgesnn: spikes (32,) spikes -> scores (4,), dt 1 ms,"
            " 4 labels: sweep_up, sweep_down, low_burst, high_burst"
        )
        assert (
            models[1].startswith("  model keywords [") and "input (64,) spikes -> output (12,) V, dt 10 ms" in models[1]
        )
        assert models[1].endswith("12 labels: yes, no, up, down, left, right, on, off +4 more, learns")
        assert models[2].startswith("  model (unnamed) [") and "in (12,) spikes -> out (4,), dt 1 ms" in models[2]

        assert serve_main(["devices", address, "--json"]) == 0
        (found,) = json.loads(capsys.readouterr().out)
        demo = found["models"][0]
        assert demo["model_id"] == demo_id and demo["name"] == "demo" and demo["producer"] == "edgesnn"
        assert demo["inputs"] == [{"name": "spikes", "shape": [32], "dtype": "float32", "unit": "spikes"}]
        assert demo["outputs"][0]["shape"] == [4] and demo["labels"][0] == "sweep_up" and demo["dt_s"] == 1e-3


@pytest.mark.parametrize("kind", ["local", "remote"])
def test_a_nir_file_or_a_model_loads_on_any_device_as_edgesnn_load_reads_it(tmp_path, kind) -> None:
    pytest.importorskip("nir")
    nir_file = tmp_path / "exported.nir"
    shutil.copy(pathlib.Path(__file__).parent / "data" / "nir" / "snntorch_esnn_if.nir", nir_file)
    want = edgesnn.load(nir_file)
    with served() as (_, address), connect(address) as remote:
        dev = LocalDevice() if kind == "local" else remote
        m = dev.load(str(nir_file))
        assert m.name == "exported" and m.info.dt_s == want.dt_s
        x = np.ones((1, *want.inputs[0].shape), np.float32)
        s, ref = m.session(), want.session()
        np.testing.assert_array_equal(s.step(x)[want.outputs[0].name], ref.step(x)[want.outputs[0].name])
        s.close()
        assert dev.load(want).model_id == m.model_id  # a Model in memory travels as the same bundle
