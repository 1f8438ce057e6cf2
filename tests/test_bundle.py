"""The .esnn bundle: exact round trips, and a specific, located error for every kind of damage."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest

import edgesnn
from edgesnn import limits
from edgesnn.bundle import SCHEMA_VERSION, read_bundle, write_bundle
from edgesnn.errors import (
    BundleFormatError,
    BundleIntegrityError,
    BundleValidationError,
    GraphError,
    LimitError,
    MissingDependencyError,
    UnsupportedVersionError,
)
from edgesnn.graph import NODE_TYPES
from edgesnn.model import Model
from tests.helpers import (
    assert_models_equal,
    bundle_members,
    edit_bundle,
    mock_all_nodes_graph,
    mock_conv_model,
    mock_model,
    mock_node_graph,
    mock_node_types,
    mock_rnn_model,
    npy_bytes,
    patch_zip_entry,
    read_manifest,
)

TAU = "tensors/lif1/tau_mem_s.npy"


def to_bytes(model: Model) -> bytes:
    buf = io.BytesIO()
    write_bundle(model, buf)
    return buf.getvalue()


def from_bytes(data: bytes) -> Model:
    return read_bundle(io.BytesIO(data))


@pytest.fixture(scope="module")
def rnn_bytes() -> bytes:
    return to_bytes(mock_rnn_model())


# -- round trips ----------------------------------------------------------------
def test_factories_cover_every_node_type() -> None:
    assert set(mock_node_types()) == set(NODE_TYPES)


@pytest.mark.parametrize("type_name", sorted(NODE_TYPES))
def test_every_node_type_round_trips_in_memory_and_through_a_file(type_name: str, tmp_path) -> None:
    if type_name == "Onnx":
        pytest.importorskip("onnx")
    model = mock_model(mock_node_graph(type_name))

    assert_models_equal(from_bytes(to_bytes(model)), model, producer=False)

    path = tmp_path / f"{type_name}.esnn"
    write_bundle(model, path)
    assert_models_equal(read_bundle(path), model, producer=False)
    assert_models_equal(read_bundle(str(path)), model, producer=False)


def test_graph_with_every_node_type_round_trips(tmp_path) -> None:
    include_onnx = True
    try:
        import onnx  # noqa: F401
    except ImportError:
        include_onnx = False
    model = mock_model(mock_all_nodes_graph(include_onnx=include_onnx))
    path = tmp_path / "all.esnn"
    write_bundle(model, path)
    assert_models_equal(edgesnn.load(path), model, producer=False)


@pytest.mark.parametrize("factory", [mock_rnn_model, mock_conv_model])
def test_models_keep_labels_learning_metadata_and_recurrence(factory) -> None:
    model = factory()
    back = from_bytes(to_bytes(model))
    assert_models_equal(back, model, producer=False)
    assert back.graph.back_edges == model.graph.back_edges
    assert [s.__dict__ for s in back.inputs] == [s.__dict__ for s in model.inputs]


def test_producer_names_this_edgesnn_and_keeps_the_models_keys() -> None:
    model = mock_rnn_model()
    back = from_bytes(to_bytes(model))
    assert back.producer == {"name": "edgesnn", "version": edgesnn.__version__, **model.producer}
    assert from_bytes(to_bytes(back)).producer == back.producer


def test_another_tools_name_and_version_are_kept_as_origin() -> None:
    model = mock_model(mock_node_graph("LIF"), producer={"name": "snntorch", "version": "0.9.1", "profile": "snntorch"})
    producer = from_bytes(to_bytes(model)).producer
    assert producer == {
        "name": "edgesnn",
        "version": edgesnn.__version__,
        "profile": "snntorch",
        "origin": {"name": "snntorch", "version": "0.9.1"},
    }


def test_manifest_indexes_every_member_with_dtype_shape_and_hash(rnn_bytes: bytes) -> None:
    manifest = read_manifest(rnn_bytes)
    members = bundle_members(rnn_bytes)
    assert manifest["schema_version"] == SCHEMA_VERSION == 2
    assert manifest["graph"]["nodes"]["lif1"]["tau_mem_s"] == {"tensor": TAU}
    assert manifest["tensors"][TAU]["shape"] == [5]
    assert set(manifest["tensors"]) == {m for m in members if m.endswith(".npy")}
    for member, entry in manifest["tensors"].items():
        assert entry["dtype"] == "float32"
        assert entry["sha256"] == hashlib.sha256(members[member]).hexdigest()
        assert np.load(io.BytesIO(members[member]), allow_pickle=False).shape == tuple(entry["shape"])
    assert manifest["inputs"] == [{"name": "in", "shape": [6], "dtype": "float32", "unit": "spikes"}]
    assert manifest["model"]["labels"] == ["word_0", "word_1", "word_2"]


def test_onnx_model_is_a_hashed_part() -> None:
    pytest.importorskip("onnx")
    model = mock_model(mock_node_graph("Onnx"))
    data = to_bytes(model)
    manifest, members = read_manifest(data), bundle_members(data)
    onnx_bytes = model.graph.nodes["node"].model
    assert manifest["graph"]["nodes"]["node"]["model"] == {"part": "parts/node.onnx"}
    assert manifest["parts"]["parts/node.onnx"] == {
        "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "size": len(onnx_bytes),
    }
    assert members["parts/node.onnx"] == onnx_bytes


def test_same_model_gives_the_same_bytes() -> None:
    assert to_bytes(mock_conv_model()) == to_bytes(mock_conv_model())


def test_reads_from_a_stream_that_cannot_seek(rnn_bytes: bytes) -> None:
    class Pipe:
        def __init__(self, data: bytes) -> None:
            self._buf = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self._buf.read(n)

    assert_models_equal(read_bundle(Pipe(rnn_bytes)), from_bytes(rnn_bytes))


def test_write_replaces_atomically_and_leaves_no_temp_file_on_failure(tmp_path) -> None:
    path = tmp_path / "model.esnn"
    write_bundle(mock_rnn_model(seed=1), path)
    before = path.read_bytes()
    bad = mock_model(mock_node_graph("LIF"))
    bad.graph.metadata["when"] = {1, 2}  # a set has no JSON form

    with pytest.raises(BundleValidationError, match="graph/metadata/when: expected a JSON value"):
        write_bundle(bad, path)

    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.esnn"]
    write_bundle(mock_rnn_model(seed=2), path)
    assert path.read_bytes() != before
    assert os.listdir(tmp_path) == ["model.esnn"]


# -- loading entry points ---------------------------------------------------------
def test_load_reads_a_bundle(tmp_path) -> None:
    path = tmp_path / "m.esnn"
    write_bundle(mock_rnn_model(), path)
    assert_models_equal(edgesnn.load(str(path)), read_bundle(path))


def test_load_of_nir_without_nir_support_names_the_problem(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "edgesnn.bundle.nir", None)  # makes the import fail
    with pytest.raises(MissingDependencyError, match=r"model\.nir: NIR import"):
        edgesnn.load(tmp_path / "model.nir")


def test_import_edgesnn_stays_light() -> None:
    code = (
        "import sys, edgesnn, edgesnn.bundle; "
        "print(sorted(m for m in ('onnxruntime', 'onnx', 'nir', 'h5py', 'edgesnn.engine') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- damaged containers -------------------------------------------------------------
def test_a_file_that_is_not_a_zip_is_named(tmp_path) -> None:
    path = tmp_path / "notes.esnn"
    path.write_text("not a bundle")
    with pytest.raises(BundleFormatError, match=rf"{path}: not a readable zip file"):
        read_bundle(path)


@pytest.mark.parametrize("keep", [0.5, 0.99, -1])
def test_truncated_file_is_a_format_error_naming_the_file(keep: float, rnn_bytes: bytes, tmp_path) -> None:
    path = tmp_path / "cut.esnn"
    cut = len(rnn_bytes) - 1 if keep == -1 else int(len(rnn_bytes) * keep)
    path.write_bytes(rnn_bytes[:cut])
    with pytest.raises(BundleFormatError, match=str(path)):
        read_bundle(path)


def _data_offset(data: bytes, member: str) -> int:
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len


def test_byte_flipped_in_the_zip_fails_its_crc(rnn_bytes: bytes) -> None:
    damaged = bytearray(rnn_bytes)
    damaged[_data_offset(rnn_bytes, TAU) + 130] ^= 0x40  # a float of the tensor, past the .npy header
    with pytest.raises(BundleFormatError, match=rf"^{TAU}: cannot read member: Bad CRC-32"):
        from_bytes(bytes(damaged))


def test_missing_manifest(rnn_bytes: bytes) -> None:
    with pytest.raises(BundleFormatError, match=r"^manifest.json: member is missing"):
        from_bytes(edit_bundle(rnn_bytes, members={"manifest.json": None}))


@pytest.mark.parametrize("raw", [b"{not json", b'{"schema_version": NaN}', b"[1, 2]", b'{"a": 1, "a": 2}', b"\xff"])
def test_manifest_that_is_not_a_json_object(raw: bytes, rnn_bytes: bytes) -> None:
    with pytest.raises(BundleFormatError, match=r"^manifest.json: (invalid JSON|expected a JSON object)"):
        from_bytes(edit_bundle(rnn_bytes, raw_manifest=raw))


def test_member_listed_but_missing(rnn_bytes: bytes) -> None:
    with pytest.raises(BundleFormatError, match=rf"^{TAU}: member is listed in the manifest but missing"):
        from_bytes(edit_bundle(rnn_bytes, members={TAU: None}))


# -- manifest fields ------------------------------------------------------------------
def _set(*keys: str, value: object):
    def edit(doc: dict) -> None:
        for k in keys[:-1]:
            doc = doc[k]
        doc[keys[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (_set("model", "dt_s", value="fast"), "model/dt_s"),
        (_set("model", "dt_s", value=True), "model/dt_s"),
        (_set("model", "labels", value=["a", 2, "c"]), "model/labels/1"),
        (_set("model", "learning", value=[1]), "model/learning"),
        (_set("graph", "edges", value=[["in", "fc1", "x"]]), "graph/edges/0"),
        (_set("graph", "nodes", "lif1", value=[1]), "graph/nodes/lif1"),
        (_set("graph", "nodes", "lif1", "tau_mem_s", value=[0.01] * 5), "graph/nodes/lif1/tau_mem_s"),
        (_set("graph", "nodes", "fc1", "weight", value={"tensor": "tensors/nowhere.npy"}), "graph/nodes/fc1/weight"),
        (_set("tensors", TAU, "shape", value="5"), f"{TAU}/shape"),
        (_set("tensors", TAU, "sha256", value="abc"), f"{TAU}/sha256"),
        (_set("inputs", value=[{"name": "in", "shape": [6]}]), "inputs/0/dtype"),
        (_set("graph", "colour", value="red"), "graph/colour"),
        (_set("extra", value=1), "extra"),
    ],
)
def test_wrong_manifest_field_is_named(edit, path: str, rnn_bytes: bytes) -> None:
    with pytest.raises(BundleFormatError) as info:
        from_bytes(edit_bundle(rnn_bytes, manifest=edit))
    assert info.value.path == path


@pytest.mark.parametrize(("version", "shown"), [(99, "version 99"), ("1", 'got "1"'), (0, "version 0")])
def test_unsupported_schema_version_says_which_versions_are_read(version: object, shown: str, rnn_bytes: bytes) -> None:
    with pytest.raises(UnsupportedVersionError, match=rf"^schema_version: .*{shown}.*reads versions 1, 2"):
        from_bytes(edit_bundle(rnn_bytes, manifest=_set("schema_version", value=version)))


def test_declared_inputs_must_match_the_graph(rnn_bytes: bytes) -> None:
    with pytest.raises(BundleValidationError, match=r"^inputs/0/shape: expected \(6,\) \(graph node in\), got \(7,\)"):
        from_bytes(edit_bundle(rnn_bytes, manifest=lambda d: d["inputs"][0].update(shape=[7])))
    with pytest.raises(BundleValidationError, match=r"^outputs: expected \['out'\]"):
        from_bytes(edit_bundle(rnn_bytes, manifest=lambda d: d["outputs"][0].update(name="y")))


# -- members: integrity, dtype, shape, values -------------------------------------------
def test_flipped_byte_in_a_tensor_breaks_its_hash(rnn_bytes: bytes) -> None:
    tau = bytearray(bundle_members(rnn_bytes)[TAU])
    tau[-1] ^= 0x01
    with pytest.raises(BundleIntegrityError, match=rf"^{TAU}: sha256 does not match"):
        from_bytes(edit_bundle(rnn_bytes, members={TAU: bytes(tau)}, rehash=False))


def test_damaged_npy_header_is_reported_as_corruption(rnn_bytes: bytes) -> None:
    tau = bytearray(bundle_members(rnn_bytes)[TAU])
    tau[20] ^= 0x20  # inside the header's text
    with pytest.raises(BundleIntegrityError, match=rf"^{TAU}: sha256 does not match"):
        from_bytes(edit_bundle(rnn_bytes, members={TAU: bytes(tau)}, rehash=False))


def test_flipped_byte_in_an_onnx_part_breaks_its_hash() -> None:
    pytest.importorskip("onnx")
    data = to_bytes(mock_model(mock_node_graph("Onnx")))
    part = bytearray(bundle_members(data)["parts/node.onnx"])
    part[len(part) // 2] ^= 0x01
    with pytest.raises(BundleIntegrityError, match=r"^parts/node.onnx: sha256 does not match"):
        from_bytes(edit_bundle(data, members={"parts/node.onnx": bytes(part)}, rehash=False))


def test_nan_in_a_tensor_names_node_field_and_member(rnn_bytes: bytes) -> None:
    v_th = np.array([1.0, np.nan, 1.0, np.inf, -np.inf], np.float32)
    member = "tensors/lif1/v_threshold.npy"
    with pytest.raises(BundleValidationError) as info:
        from_bytes(edit_bundle(rnn_bytes, members={member: npy_bytes(v_th)}))
    assert str(info.value) == f"graph/nodes/lif1/v_threshold: expected finite values, got 3 NaN/Inf (in {member})"
    assert info.value.__cause__ is not None


def test_npy_dtype_differs_from_the_manifest(rnn_bytes: bytes) -> None:
    tau64 = np.full(5, 0.01, np.float64)
    with pytest.raises(BundleValidationError) as info:
        from_bytes(edit_bundle(rnn_bytes, members={TAU: npy_bytes(tau64)}))
    assert str(info.value) == f"{TAU}: expected float32 (5,), got float64 (5,)"


def test_big_endian_floats_are_refused(rnn_bytes: bytes) -> None:
    with pytest.raises(BundleValidationError, match=rf"^{TAU}: expected float32 \(5,\), got big-endian float32 \(5,\)"):
        from_bytes(edit_bundle(rnn_bytes, members={TAU: npy_bytes(np.full(5, 0.01, ">f4"))}))


def test_manifest_dtype_other_than_float32_is_refused(rnn_bytes: bytes) -> None:
    with pytest.raises(BundleValidationError, match=rf"^{TAU}: expected float32 \(5,\) .*declares float64 \(5,\)"):
        from_bytes(edit_bundle(rnn_bytes, manifest=_set("tensors", TAU, "dtype", value="float64")))


def test_npy_shape_differs_from_the_manifest(rnn_bytes: bytes) -> None:
    with pytest.raises(BundleValidationError) as info:
        from_bytes(edit_bundle(rnn_bytes, members={TAU: npy_bytes(np.full(64, 0.01, np.float32))}))
    assert str(info.value) == f"{TAU}: expected float32 (5,), got float32 (64,)"


def test_consistent_tensor_of_the_wrong_shape_for_its_node(rnn_bytes: bytes) -> None:
    member = "tensors/fc1/bias.npy"
    edit = _set("tensors", member, "shape", value=[4])
    with pytest.raises(
        BundleValidationError, match=rf"^graph/nodes/fc1/bias: expected shape \(5,\), got \(4,\) \(in {member}\)"
    ):
        from_bytes(edit_bundle(rnn_bytes, members={member: npy_bytes(np.zeros(4, np.float32))}, manifest=edit))


def test_absurd_declared_size_is_refused_before_reading(rnn_bytes: bytes) -> None:
    edit = _set("tensors", TAU, "shape", value=[10**12])
    with pytest.raises(LimitError, match=rf"^{TAU}: a tensor of 3725 GiB .* exceeds the limit member_bytes") as info:
        from_bytes(edit_bundle(rnn_bytes, members={TAU: b"\0" * 20}, manifest=edit))
    assert (info.value.limit, info.value.value) == ("member_bytes", 4 * 10**12)


def test_declared_size_the_member_does_not_hold_is_refused_before_reading(rnn_bytes: bytes) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**6,)})
    fake = header.getvalue() + b"\0" * 20
    edit = _set("tensors", TAU, "shape", value=[10**6])
    with pytest.raises(BundleValidationError, match=rf"^{TAU}: holds 20 data bytes, float32 \(1000000,\) needs"):
        from_bytes(edit_bundle(rnn_bytes, members={TAU: fake}, manifest=edit))


UNPICKLED: list[bool] = []


def _record_unpickling() -> None:
    UNPICKLED.append(True)


class _Tripwire:
    """Unpickling it calls ``_record_unpickling``: loading a bundle must never get that far."""

    def __reduce__(self):
        return (_record_unpickling, ())


def test_pickled_object_arrays_are_never_unpickled(rnn_bytes: bytes) -> None:
    evil = np.array([_Tripwire()] * 5, dtype=object)
    with pytest.raises(BundleValidationError, match=rf"^{TAU}: expected float32 \(5,\), got object \(5,\)"):
        from_bytes(edit_bundle(rnn_bytes, members={TAU: npy_bytes(evil)}))
    assert UNPICKLED == []


# -- nodes and graph ------------------------------------------------------------------
def test_unknown_node_type_lists_the_known_ones(rnn_bytes: bytes) -> None:
    with pytest.raises(
        BundleValidationError, match=r"^graph/nodes/lif1/type: unknown node type 'LIFF'; known types: .*\bLIF\b"
    ):
        from_bytes(edit_bundle(rnn_bytes, manifest=_set("graph", "nodes", "lif1", "type", value="LIFF")))


def test_unknown_node_field_is_named(rnn_bytes: bytes) -> None:
    with pytest.raises(BundleValidationError, match=r"^graph/nodes/lif1/tau_foo_s: unknown field for LIF"):
        from_bytes(edit_bundle(rnn_bytes, manifest=_set("graph", "nodes", "lif1", "tau_foo_s", value=1.0)))


def test_bad_option_value_is_named(rnn_bytes: bytes) -> None:
    with pytest.raises(
        BundleValidationError, match=r"^graph/nodes/lif1/reset_mode: expected one of to_value, subtract"
    ):
        from_bytes(edit_bundle(rnn_bytes, manifest=_set("graph", "nodes", "lif1", "reset_mode", value="zero")))


def test_dangling_edge(rnn_bytes: bytes) -> None:
    edit = lambda d: d["graph"]["edges"].append(["lif1", "ghost"])  # noqa: E731
    with pytest.raises(GraphError, match=r"^graph/edges/7: edge lif1 -> ghost refers to unknown node 'ghost'"):
        from_bytes(edit_bundle(rnn_bytes, manifest=edit))


def test_cycle_without_state(rnn_bytes: bytes) -> None:
    edit = lambda d: d["graph"]["edges"].append(["rec", "rec"])  # noqa: E731
    with pytest.raises(GraphError, match=r"^graph/nodes/rec: cycle rec -> rec has no node with state"):
        from_bytes(edit_bundle(rnn_bytes, manifest=edit))


def test_shape_clash_between_edges(rnn_bytes: bytes) -> None:
    edit = lambda d: d["graph"]["edges"].append(["in", "fc2"])  # noqa: E731
    with pytest.raises(GraphError, match=r"^graph/nodes/fc2: edges into fc2 disagree"):
        from_bytes(edit_bundle(rnn_bytes, manifest=edit))


def test_bad_step_is_named(rnn_bytes: bytes) -> None:
    with pytest.raises(BundleValidationError, match=r"^model/dt_s: expected a step > 0 s"):
        from_bytes(edit_bundle(rnn_bytes, manifest=_set("model", "dt_s", value=-1e-3)))


# -- schema 1 files: the cascades under their old names -----------------------------


def _schema_1(doc: dict) -> None:
    """Turn a manifest into what edgesnn wrote before schema 2 (no initial_state, old method names)."""
    doc["schema_version"] = 1
    del doc["model"]["initial_state"]
    doc["model"]["method"] = {"cascade": "zoh", "cascade-euler": "euler"}.get(doc["model"]["method"],
                                                                             doc["model"]["method"])  # fmt: skip


def _legacy_fingerprint(model: Model, method: str) -> str:
    """The fingerprint edgesnn computed before schema 2 (the method under its old name)."""
    h = hashlib.sha256()
    h.update(repr((model.dt_s, method, model.graph.edges)).encode())
    for name, node in model.graph.nodes.items():
        for key, value in node.to_dict().items():
            h.update(f"{name}/{key}".encode())
            if hasattr(value, "tobytes"):
                h.update(str((value.dtype.str, value.shape)).encode())
                h.update(value.tobytes())
            elif isinstance(value, bytes):
                h.update(value)
            else:
                h.update(repr(value).encode())
    return h.hexdigest()


@pytest.mark.parametrize(("old", "new"), [("zoh", "cascade"), ("euler", "cascade-euler")])
def test_schema_1_bundles_with_coupled_neurons_keep_their_cascade(old: str, new: str) -> None:
    from edgesnn.graph import CubaLIF, Graph, Input, Linear, Output

    g = Graph({"in": Input((3,), unit="spikes"), "fc": Linear(np.full((2, 3), 0.5, np.float32)),
               "cuba": CubaLIF.uniform(2, tau_syn_s=5e-3, tau_mem_s=20e-3, v_threshold=0.2), "out": Output((2,))},
              [("in", "fc"), ("fc", "cuba"), ("cuba", "out")])  # fmt: skip
    model = Model(g, dt_s=1e-3, method=new)
    old_file = edit_bundle(to_bytes(model), manifest=_schema_1)

    back = from_bytes(old_file)

    assert back.method == new and back.initial_state == "rest"
    # Class stores and saved states are bound to the fingerprint: it is what it was before schema 2.
    assert back.fingerprint == model.fingerprint == _legacy_fingerprint(model, old)
    xs = (np.random.default_rng(0).random((30, 1, 3)) < 0.3).astype(np.float32)
    np.testing.assert_array_equal(back.session().run(xs)["out"], model.session().run(xs)["out"])


def test_schema_1_bundles_of_single_state_neurons_keep_their_method(rnn_bytes: bytes) -> None:
    back = from_bytes(edit_bundle(rnn_bytes, manifest=_schema_1))
    assert back.method == from_bytes(rnn_bytes).method
    assert back.fingerprint == _legacy_fingerprint(back, back.method)


def test_initial_state_round_trips_and_a_bad_one_is_named(rnn_bytes: bytes) -> None:
    model = from_bytes(rnn_bytes)
    import dataclasses

    assert from_bytes(to_bytes(dataclasses.replace(model, initial_state="zero"))).initial_state == "zero"
    with pytest.raises(BundleValidationError, match=r"^model/initial_state: expected one of rest, zero"):
        from_bytes(edit_bundle(rnn_bytes, manifest=_set("model", "initial_state", value="warm")))


# -- hostile files: each escape the fuzzer found, now refused by name ----------------------------


def _least_peak(run, times: int = 3) -> int:
    """The least tracemalloc peak of ``times`` calls of ``run``: tracemalloc sees every thread, and busy neighbours."""
    peaks = []
    for _ in range(times):
        tracemalloc.start()
        try:
            run()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    return min(peaks)


def _cli_info(path) -> tuple[int, str]:
    """``edgesnn info PATH``: exit code and stderr."""
    import contextlib

    from edgesnn.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["info", str(path)])
    return code, err.getvalue()


def _assert_one_line(stderr: str, *parts: str) -> None:
    assert stderr.count("\n") == 1 and stderr.startswith("edgesnn info: error: "), stderr
    for part in parts:
        assert part in stderr, stderr


def test_deeply_nested_manifest_is_over_the_json_depth_limit(rnn_bytes: bytes, tmp_path) -> None:
    deep = b'{"schema_version": 2, "producer": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    path = tmp_path / "deep.esnn"
    path.write_bytes(edit_bundle(rnn_bytes, raw_manifest=deep))

    with pytest.raises(LimitError, match=r"^manifest.json: nests objects and lists more than 64 deep") as info:
        read_bundle(path)
    assert info.value.limit == "json_depth"

    code, err = _cli_info(path)
    assert code == 8
    _assert_one_line(err, "manifest.json", "json_depth")


def test_nesting_within_the_depth_limit_round_trips() -> None:
    nested: object = "leaf"
    for _ in range(30):  # 60 levels, and the manifest's own two: within json_depth = 64
        nested = {"next": [nested]}
    model = mock_model(mock_node_graph("LIF"), producer={"notes": nested})
    assert from_bytes(to_bytes(model)).producer["notes"] == nested


@pytest.mark.parametrize(
    ("method", "flags", "says"),
    [
        (zipfile.ZIP_BZIP2, 0, r"is compressed with method 12 \(bzip2\); bundles use stored or deflate"),
        (zipfile.ZIP_LZMA, 0, r"is compressed with method 14 \(LZMA\)"),
        (99, 0, r"is compressed with method 99 \(unknown\)"),
        (None, 0x1, r"is encrypted"),
        (None, 0x40, r"is encrypted"),
        (None, 0x20, r"holds patch data"),
    ],
)
def test_members_zipfile_cannot_or_should_not_decode_are_named(
    method: int | None, flags: int, says: str, rnn_bytes: bytes
) -> None:
    damaged = patch_zip_entry(rnn_bytes, TAU, method=method, flags=flags or None)
    with pytest.raises(BundleFormatError, match=rf"^{TAU}: {says}"):
        from_bytes(damaged)


def test_bytes_cut_from_the_front_name_the_file(rnn_bytes: bytes, tmp_path) -> None:
    path = tmp_path / "cut.esnn"
    path.write_bytes(rnn_bytes[10:])

    with pytest.raises(BundleFormatError, match=rf"^{path}: bytes are missing from the front"):
        read_bundle(path)
    with pytest.raises(BundleFormatError, match=r"^<bundle stream>: bytes are missing from the front"):
        from_bytes(rnn_bytes[10:])

    code, err = _cli_info(path)
    assert code == 3
    _assert_one_line(err, str(path), "missing from the front")


def test_label_with_a_lone_surrogate_is_refused_at_load(rnn_bytes: bytes, tmp_path) -> None:
    path = tmp_path / "surrogate.esnn"
    path.write_bytes(edit_bundle(rnn_bytes, manifest=_set("model", "labels", value=["yes", "\ud800", "no"])))

    with pytest.raises(BundleFormatError, match=r"^model/labels/1: expected UTF-8 text, got a lone surrogate"):
        read_bundle(path)

    code, err = _cli_info(path)
    assert code == 3
    _assert_one_line(err, "model/labels/1", "surrogate")


@pytest.mark.parametrize("label", ["two\nlines", "bell\x07", "nul\x00"])
def test_label_with_a_control_character_is_refused(label: str, rnn_bytes: bytes) -> None:
    with pytest.raises(BundleValidationError, match=r"^model/labels/2: expected printable UTF-8 text, got a control"):
        from_bytes(edit_bundle(rnn_bytes, manifest=_set("model", "labels", value=["a", "b", label])))


def test_non_ascii_labels_and_names_round_trip(tmp_path) -> None:
    model = mock_rnn_model()
    model = Model(model.graph, model.dt_s, labels=("über", "日本", "🙂"))
    path = tmp_path / "text.esnn"
    write_bundle(model, path)
    assert read_bundle(path).labels == ("über", "日本", "🙂")
    code, _ = _cli_info(path)
    assert code == 0


def test_label_count_must_match_the_first_output(rnn_bytes: bytes) -> None:
    with pytest.raises(
        BundleValidationError, match=r"^model/labels: expected one class name per unit of output 'out' \(3\), got 2"
    ):
        from_bytes(edit_bundle(rnn_bytes, manifest=_set("model", "labels", value=["a", "b"])))
    assert from_bytes(edit_bundle(rnn_bytes, manifest=_set("model", "labels", value=[]))).labels == ()


@pytest.mark.parametrize(
    ("keys", "value", "limit", "path"),
    [
        (
            ("graph", "nodes", "lif1", "min_spike_interval_s"),
            1e300,
            "max_time_s",
            "graph/nodes/lif1/min_spike_interval_s",
        ),
        (
            ("graph", "nodes", "lif1", "min_spike_interval_s"),
            1e-12,
            "min_time_s",
            "graph/nodes/lif1/min_spike_interval_s",
        ),
        (("model", "dt_s"), 1e-300, "min_time_s", "model/dt_s"),
        (("model", "dt_s"), 1e300, "max_time_s", "model/dt_s"),
    ],
)
def test_physically_absurd_times_are_refused_at_load(
    keys: tuple[str, ...], value: float, limit: str, path: str, rnn_bytes: bytes
) -> None:
    with pytest.raises(LimitError) as info:
        from_bytes(edit_bundle(rnn_bytes, manifest=_set(*keys, value=value)))
    assert (info.value.limit, info.value.path) == (limit, path)


def _delay_model(delay_s: float) -> Model:
    from edgesnn.graph import Delay, Graph, Input, Output

    graph = Graph({"in": Input((4,)), "d": Delay(delay_s), "out": Output((4,))}, [("in", "d"), ("d", "out")])
    return Model(graph, 1e-3)


@pytest.mark.parametrize("delay", [1e300, 1e6, 10**400])
def test_delay_beyond_max_time_is_refused_at_load(delay: float) -> None:
    data = edit_bundle(to_bytes(_delay_model(1e-3)), manifest=_set("graph", "nodes", "d", "delay_s", value=delay))
    with pytest.raises(LimitError, match=r"^graph/nodes/d/delay_s: a delay of .* exceeds the limit max_time_s"):
        from_bytes(data)


def test_delay_of_more_steps_than_the_limit_is_refused_before_its_ring_is_allocated() -> None:
    model = from_bytes(to_bytes(_delay_model(5000.0)))  # 5e6 steps of 1 ms: a 76 MiB ring for 4 inputs

    with pytest.raises(LimitError, match=r"^nodes/d/delay_s: a delay of 5000 s at a step of 0.001 s") as info:
        model.session_bytes()
    assert (info.value.limit, info.value.value) == ("delay_steps", 5_000_000)
    with pytest.raises(LimitError, match=r"delay_steps"):
        model.session()
    with limits.override(delay_steps=10_000_000):
        assert model.session_bytes() > 2 * 5_000_000 * 4 * 4  # the ring and its reset copy


def test_huge_input_shape_in_a_tiny_file_is_refused(rnn_bytes: bytes) -> None:
    edit = _set("graph", "nodes", "in", "shape", value=[10**9])
    with pytest.raises(LimitError, match=r"^graph/nodes/in/shape: shape \(1000000000,\) .* node_elements") as info:
        from_bytes(edit_bundle(rnn_bytes, manifest=edit))
    assert info.value.limit == "node_elements"


@pytest.mark.parametrize("shape", [["6"], [6.0], [True], "66", [[6]]])
def test_node_shapes_must_be_integers(shape: object, rnn_bytes: bytes) -> None:
    with pytest.raises(
        BundleValidationError, match=r"^graph/nodes/in/shape(/0)?: expected (an integer|a list of integers)"
    ):
        from_bytes(edit_bundle(rnn_bytes, manifest=_set("graph", "nodes", "in", "shape", value=shape)))


def test_member_inflating_past_the_limit_is_refused_before_it_is_read(rnn_bytes: bytes) -> None:
    members = bundle_members(rnn_bytes)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
        zf.writestr("attachments/bomb", bytes(64 << 20), zipfile.ZIP_DEFLATED)  # 64 MiB in 64 KiB
    bomb = buf.getvalue()
    assert len(bomb) < 200_000

    def read() -> None:
        with limits.override(member_bytes=1 << 20), pytest.raises(LimitError) as info:
            from_bytes(bomb)
        assert (info.value.limit, info.value.path) == ("member_bytes", "attachments/bomb")

    peak = _least_peak(read)
    assert peak < 1 << 20  # nothing of the 64 MiB was inflated


def test_tensors_are_hashed_as_they_stream_in_without_whole_copies() -> None:
    from edgesnn.graph import Graph, Input, Linear, Output

    weight = np.ones((1024, 1024), np.float32)
    model = Model(Graph({"in": Input((1024,)), "fc": Linear(weight), "out": Output((1024,))},
                        [("in", "fc"), ("fc", "out")]), 1e-3)  # fmt: skip
    data = to_bytes(model)
    from_bytes(data)  # first-use imports and caches are not the reader's memory
    peak = _least_peak(lambda: from_bytes(data))
    assert peak < 2 * weight.nbytes  # the weight once, plus a chunk in flight


def test_bundle_totals_and_zip_entry_count_are_limited(rnn_bytes: bytes) -> None:
    with limits.override(bundle_bytes=1000), pytest.raises(LimitError, match=r"bundle_bytes"):
        from_bytes(rnn_bytes)
    with limits.override(bundle_members=5), pytest.raises(LimitError, match=r"^<bundle stream>: .* bundle_members"):
        from_bytes(rnn_bytes)


def test_a_stream_that_cannot_seek_is_read_no_further_than_the_limit() -> None:
    class Endless:
        def read(self, n: int = -1) -> bytes:
            assert n >= 0, "must not read to the end"
            return b"\0" * n

    with limits.override(bundle_bytes=1 << 20, bundle_members=16), pytest.raises(LimitError, match=r"bundle_bytes"):
        read_bundle(Endless())


def test_duplicate_member_names_are_refused_naming_the_member(rnn_bytes: bytes) -> None:
    members = bundle_members(rnn_bytes)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
        with pytest.warns(UserWarning, match="Duplicate name"):  # zipfile itself only warns
            zf.writestr(TAU, members[TAU])
    with pytest.raises(BundleFormatError, match=rf"^{TAU}: the zip holds two members of this name"):
        from_bytes(buf.getvalue())


def test_negative_part_size_is_refused() -> None:
    pytest.importorskip("onnx")
    data = to_bytes(mock_model(mock_node_graph("Onnx")))
    with pytest.raises(BundleFormatError, match=r"^parts/node.onnx/size: expected a size in bytes >= 0, got -5"):
        from_bytes(edit_bundle(data, manifest=_set("parts", "parts/node.onnx", "size", value=-5)))


@pytest.mark.parametrize(
    ("raw", "says"),
    [(b'{"a": 1e400}', "number 1e400 is out of range"), (b'{"a": -Infinity}', "-Infinity is not valid JSON")],
)
def test_numbers_that_json_would_turn_into_infinity_are_refused(raw: bytes, says: str, rnn_bytes: bytes) -> None:
    with pytest.raises(BundleFormatError, match=rf"^manifest.json: invalid JSON: {says}"):
        from_bytes(edit_bundle(rnn_bytes, raw_manifest=raw))


def test_euler_step_longer_than_a_time_constant_is_refused_at_load(rnn_bytes: bytes) -> None:
    # mock models use forward Euler; the smallest tau is a few ms, so a 1 s step cannot be taken.
    with pytest.raises(BundleValidationError, match=r"^model/dt_s: forward Euler \(euler\) needs dt <= tau"):
        from_bytes(edit_bundle(rnn_bytes, manifest=_set("model", "dt_s", value=1.0)))


@pytest.mark.parametrize(
    ("retimed", "path"),
    [("often", "producer/retimed"), ([1], "producer/retimed/0"),
     ([{"from_dt_s": "1ms", "to_dt_s": 1e-3, "method": "zoh-rate"}], "producer/retimed/0/from_dt_s")],
)  # fmt: skip
def test_producer_history_edgesnn_reads_back_is_checked(retimed: object, path: str, rnn_bytes: bytes) -> None:
    with pytest.raises(BundleValidationError) as info:
        from_bytes(edit_bundle(rnn_bytes, manifest=_set("producer", "retimed", value=retimed)))
    assert info.value.path == path


def test_learning_configuration_a_session_would_refuse_is_refused_at_load(rnn_bytes: bytes) -> None:
    edit = _set("model", "learning", "feature_node", value="fc1")
    with pytest.raises(BundleValidationError, match=r"^model/learning/feature_node: 'fc1' is a Affine, not a spiking"):
        from_bytes(edit_bundle(rnn_bytes, manifest=edit))


def test_graph_size_is_limited_before_its_checks_run(rnn_bytes: bytes) -> None:
    with limits.override(graph_nodes=4), pytest.raises(LimitError, match=r"^graph/nodes: a count of nodes of 7"):
        from_bytes(rnn_bytes)
    with limits.override(graph_edges=5), pytest.raises(LimitError, match=r"^graph/edges: a count of edges of 7"):
        from_bytes(rnn_bytes)


# -- what a session will allocate, known before it allocates -----------------------------------------------


@pytest.mark.parametrize("type_name", sorted(set(NODE_TYPES) - {"Onnx"}))
@pytest.mark.parametrize("backend", ["numpy", "native"])
def test_session_estimate_bounds_what_a_session_allocates(type_name: str, backend: str) -> None:
    from edgesnn.engine import SessionOptions
    from edgesnn.engine.backends import available_backends

    if backend not in available_backends():
        pytest.skip(f"{backend} backend not built")
    model = mock_model(mock_node_graph(type_name))
    options = SessionOptions(backends=(backend,))
    for batch in (1, 16):
        feed = {s.name: np.ones((batch, *s.shape), np.float32) for s in model.inputs}
        model.session(batch=batch, options=options).step(feed)  # imports and first-use caches
        peak = _least_peak(lambda: model.session(batch=batch, options=options).step(feed))  # noqa: B023 (called at once)
        assert peak <= model.session_bytes(batch), (batch, peak)


def test_session_estimate_grows_with_the_batch_and_names_the_largest_node() -> None:
    from edgesnn.graph.memory import check_session, session_bytes_by_node

    model = mock_conv_model(size=32)
    one, many = model.session_bytes(1), model.session_bytes(64)
    assert one < model.session_bytes(2) < many < 64 * one  # weights and coefficients do not grow with the batch
    need = session_bytes_by_node(model.graph, model.dt_s, 64)
    worst = max(need, key=need.__getitem__)
    with limits.override(session_bytes=one * 2), pytest.raises(LimitError) as info:
        check_session(model.graph, model.dt_s, 64)
    assert (info.value.limit, info.value.path) == ("session_bytes", f"nodes/{worst}")
    assert f"for node {worst}" in info.value.message
    with (
        limits.override(batch=8),
        pytest.raises(LimitError, match=r"^batch: a batch of 64 exceeds the limit batch = 8"),
    ):
        check_session(model.graph, model.dt_s, 64)


# -- NIR files through edgesnn.load -------------------------------------------------------------------


def _nir_with_record(tmp_path, edit) -> str:
    """A .nir file written by edgesnn whose edgesnn record (a JSON string in its metadata) ``edit`` replaces."""
    import json

    h5py = pytest.importorskip("h5py")
    pytest.importorskip("nir")
    from edgesnn.bundle.nir import write_nir

    model = mock_rnn_model()
    path = str(tmp_path / "model.nir")
    write_nir(Model(model.graph, model.dt_s, model.method), path)
    with h5py.File(path, "r+") as f:
        record = json.loads(f["node/metadata/edgesnn"][()])
        del f["node/metadata/edgesnn"]
        f["node/metadata/edgesnn"] = edit(record)
    return path


def test_nir_record_edgesnn_cannot_convert_names_the_file(tmp_path) -> None:
    import json

    from edgesnn.errors import NIRImportError

    path = _nir_with_record(tmp_path, lambda r: json.dumps({k: v for k, v in r.items() if k != "dt_s"}))
    with pytest.raises(NIRImportError, match=rf"^{path}: cannot convert the NIR graph \(KeyError: 'dt_s'\)"):
        edgesnn.load(path)


def test_nir_record_nested_too_deeply_is_over_the_json_depth_limit(tmp_path) -> None:
    path = _nir_with_record(tmp_path, lambda r: "[" * 5000 + "]" * 5000)
    with pytest.raises(LimitError, match=rf"^{path}/metadata/edgesnn: nests objects and lists more than 64 deep"):
        edgesnn.load(path)


def test_damaged_nir_file_names_the_file(tmp_path) -> None:
    from edgesnn.errors import NIRImportError

    pytest.importorskip("nir")
    path = tmp_path / "broken.nir"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    with pytest.raises(NIRImportError, match=rf"^{path}: not a readable NIR file"):
        edgesnn.load(path)
