"""snnTorch and Norse NIR files made by the frameworks themselves, both directions.

The fixtures in tests/data/nir/ come from ``bash tools/fixtures/run.sh snntorch`` and ``... norse``
(snnTorch 1.0.0, Norse 1.1.0, nir 1.0.8, nirtorch 2.6, torch 2.13.0); each ``.npz`` holds the
framework's own step-by-step simulation from its own initial state: ``x``, and ``spk_<node>``,
``mem_<node>`` under the NIR node names, with ``meta`` (JSON). ``<fw>_<net>`` files were written by
the framework's exporter and are reproduced by its profile with ``meta["options"]``;
``<fw>_esnn_<net>`` files were written by edgesnn, and their ``.npz`` holds what the framework's
importer made of them; ``<fw>_roundtrip_<net>`` is that import written again by the framework.
``<fw>_limits.json`` records what the exporters refused or dropped. Spikes must match exactly,
membranes to float32 rounding. None of this needs snnTorch or Norse installed.
"""

from __future__ import annotations

import json
import logging
import pathlib
from typing import Any

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from edgesnn.bundle.nir import describe_assumptions, from_nir, read_nir, to_nir  # noqa: E402
from edgesnn.errors import NIRImportError  # noqa: E402
from edgesnn.graph import LIF, Linear  # noqa: E402
from edgesnn.model import Model  # noqa: E402

DATA = pathlib.Path(__file__).parent / "data" / "nir"
F32 = np.float32
MEM = {"rtol": 1e-5, "atol": 1e-6}


def fixture(name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays of ``<name>.npz`` and its ``meta`` record."""
    with np.load(DATA / f"{name}.npz") as z:
        data = {k: z[k] for k in z.files}
    return data, json.loads(str(data.pop("meta")))


def limits(framework: str) -> dict[str, Any]:
    """What ``<framework>_limits.json`` recorded when the fixtures were made."""
    return json.loads((DATA / f"{framework}_limits.json").read_text())["export"]


def layers(data: dict[str, np.ndarray]) -> list[str]:
    """The NIR node names whose outputs a fixture holds."""
    return [k[4:] for k in data if k.startswith("spk_")]


def outputs(model: Model, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Each named node's output and membrane over the whole input."""
    return model.session().run(x, outputs=names + [f"{n}/v" for n in names])


def first_difference(a: np.ndarray, b: np.ndarray) -> int | None:
    """The first step (leading axis) where ``a`` and ``b`` differ, or None."""
    steps = np.flatnonzero((a.reshape(len(a), -1) != b.reshape(len(b), -1)).any(axis=1))
    return int(steps[0]) if steps.size else None


def assert_same_layers(model: Model, data: dict[str, np.ndarray], masked: frozenset[str] = frozenset()) -> None:
    """Every recorded layer: spikes equal, LI outputs and membranes to float32 rounding.

    For layers in ``masked`` the framework recorded the membrane before a reset that the model
    applies within the step (spike for spike the same update): membranes compare off spike steps.
    """
    names = layers(data)
    got = outputs(model, data["x"], names)
    for name in names:
        want, have = data[f"spk_{name}"], got[name].reshape(data[f"spk_{name}"].shape)
        assert have.dtype == F32
        if model.graph.nodes[name].spiking:
            assert want.sum() > 10, f"{name}: the fixture should fire"
            np.testing.assert_array_equal(have, want, err_msg=name)
        else:
            np.testing.assert_allclose(have, want, **MEM, err_msg=name)
        if f"mem_{name}" in data:
            v, mem = got[f"{name}/v"].reshape(want.shape), data[f"mem_{name}"]
            keep = want == 0 if name in masked else np.ones(want.shape, bool)
            np.testing.assert_allclose(v[keep], mem[keep], **MEM, err_msg=f"{name}/v")


# -- snnTorch -> NIR -> edgesnn ------------------------------------------------------------

SNNTORCH_EXACT = (
    "leaky_synaptic", "leaky_synaptic_zero", "leaky_synaptic_zero_nodelay", "rleaky", "rleaky_one_to_one",
    "rleaky_zero", "rsynaptic", "rsynaptic_one_to_one", "rsynaptic_zero", "conv",
)  # fmt: skip


def delayed_zero_reset_layers(model: Model, options: dict[str, Any]) -> frozenset[str]:
    """Leaky layers whose delayed reset-to-zero the snntorch profile applies at once.

    snnTorch zeroes the previous membrane at the start of the next step and reports the membrane
    before that; the profile zeroes it at the spike, which gives the same spikes.
    """
    if options.get("reset_mode") != "to_value" or "reset_timing" in options:
        return frozenset()
    return frozenset(
        n for n, node in model.graph.nodes.items() if isinstance(node, LIF) and node.reset_timing == "immediate"
    )


@pytest.mark.parametrize("name", SNNTORCH_EXACT)
def test_snntorch_exports_are_reproduced_spike_for_spike(name):
    data, meta = fixture(f"snntorch_{name}")

    model = read_nir(DATA / f"snntorch_{name}.nir", profile="snntorch", **meta["options"])

    assert_same_layers(model, data, delayed_zero_reset_layers(model, meta["options"]))
    assert model.dt_s == 1e-4 and model.initial_state == "zero"


def test_snntorch_rleaky_recurrent_bias_counts_from_the_first_step():
    # Regression (issue "Interoperability with every trainer users have"): an RLeaky layer with
    # all_to_all=True between two Linear layers diverged from snnTorch's simulation. snnTorch
    # runs the recurrent Linear on the zero spike vector at the first step, so its bias is added
    # from step 1, while a recurrent edge delivers 0 before the first step.
    data, _ = fixture("snntorch_rleaky")
    graph = nir.read(DATA / "snntorch_rleaky.nir")
    bias = np.asarray(graph.nodes["1.w_rec"].bias, np.float64)
    assert np.all(bias > 0)

    model = read_nir(DATA / "snntorch_rleaky.nir", profile="snntorch")

    hidden = model.graph.nodes["1.lif"]
    assert isinstance(model.graph.nodes["1.w_rec"], Linear) and ("1.w_rec", "1.lif") in model.graph.back_edges
    np.testing.assert_allclose(hidden.v_leak, np.asarray(hidden.r, np.float64) * bias, rtol=1e-6)
    got = outputs(model, data["x"], ["1.lif"])["1.lif"]
    np.testing.assert_array_equal(got, data["spk_1.lif"])
    # The same file read literally (the bias stays on the recurrent edge) drifts from snnTorch.
    literal = from_nir(graph, dt_s=1e-4, reset_mode="subtract", reset_timing="next_step")
    assert first_difference(outputs(literal, data["x"], ["1.lif"])["1.lif"], data["spk_1.lif"]) is not None


@pytest.mark.parametrize("name", ["leaky_synaptic_nodelay", "rleaky_nodelay"])
def test_snntorch_reset_delay_false_is_exact_until_a_membrane_stays_above_threshold(name):
    # With reset_delay=False snnTorch subtracts at the spike and also keeps its delayed reset,
    # undoing it when no spike follows: net effect the immediate subtraction, except that the
    # step after a membrane stayed above threshold fires only above twice the threshold. edgesnn
    # has no such rule, so spikes agree until that happens.
    data, meta = fixture(f"snntorch_{name}")
    model = read_nir(DATA / f"snntorch_{name}.nir", profile="snntorch", **meta["options"])
    got = outputs(model, data["x"], layers(data))

    quirk = len(data["x"])
    diverged = False
    for name_ in layers(data):  # in network order: a layer follows the quirks of those before it
        thr = np.asarray(model.graph.nodes[name_].v_threshold)
        above = np.flatnonzero((data[f"mem_{name_}"] > thr).reshape(len(data["x"]), -1).any(axis=1))
        quirk = min(quirk, int(above[0]) if above.size else quirk)
        first = first_difference(got[name_], data[f"spk_{name_}"])
        assert first is None or first > quirk, name_
        diverged |= first is not None
        np.testing.assert_allclose(got[f"{name_}/v"][: quirk + 1], data[f"mem_{name_}"][: quirk + 1], **MEM)
    assert diverged and quirk < len(data["x"]) - 1


def test_snntorch_limits_are_recorded():
    found = limits("snntorch")
    # Scalar parameters become 0-d arrays that nir's type inference rejects; per-neuron ones work.
    assert found["leaky_scalar_beta"]["outcome"] == "raises" and "Type inference" in found["leaky_scalar_beta"]["error"]
    assert found["rleaky_scalar_V"]["outcome"] == "raises"
    # Convolutional recurrence, Alpha and Lapicque neurons have no export.
    for kind in ("rleaky_conv2d", "alpha", "lapicque"):
        assert found[kind]["outcome"] == "raises", kind
    # The exporter traces without a batch axis, where the default Flatten(start_dim=1) is wrong,
    # and nir cannot type a batched sample: a conv net needs Flatten(0) (snntorch_conv does).
    assert found["conv_default_flatten"]["outcome"] == "raises"
    assert found["conv_default_flatten_batched_sample"]["outcome"] == "raises"
    # Written, but the file has no field for them: any import is a different network.
    assert found["leaky_graded_spikes"]["dropped"] == "graded_spikes_factor"
    assert found["leaky_reset_none"]["dropped"] == "reset_mechanism='none'"
    # RSynaptic(reset_delay=False) with init_hidden fails in snnTorch's own forward.
    assert found["rsynaptic_nodelay_forward"]["outcome"] == "raises"


# -- Norse -> NIR -> edgesnn ----------------------------------------------------------------

NORSE_EXACT = ("lifcell", "lifcell_libox", "lifbox_iaf", "lifbox_subtract", "lifcell_dt_500us", "conv")


@pytest.mark.parametrize("name", NORSE_EXACT)
def test_norse_exports_are_reproduced_spike_for_spike(name):
    data, meta = fixture(f"norse_{name}")

    model = read_nir(DATA / f"norse_{name}.nir", profile="norse", **meta["options"])

    assert_same_layers(model, data)
    assert model.initial_state == "rest"  # Norse starts membranes at v_leak


def test_norse_step_other_than_1ms_must_be_given():
    data, meta = fixture("norse_lifcell_dt_500us")
    assert meta["options"] == {"dt_s": 5e-4}
    # Norse 1.1 writes dt/tau_inv: without the step the time constants come out wrong, silently
    # (the line describe_assumptions gives says which dt was assumed).
    model = read_nir(DATA / "norse_lifcell_dt_500us.nir", profile="norse")
    assert "dt 1 ms" in describe_assumptions(model)
    assert first_difference(outputs(model, data["x"], ["1"])["1"], data["spk_1"]) is not None


def test_norse_exporter_drops_v_reset():
    data, _ = fixture("norse_lifcell_v_reset")
    graph = nir.read(DATA / "norse_lifcell_v_reset.nir", type_check=False)  # Norse's 0-d parameters
    assert np.all(np.asarray(graph.nodes["1"].v_reset) == 0)  # the cell's v_reset was -0.3

    model = read_nir(DATA / "norse_lifcell_v_reset.nir", profile="norse")

    assert first_difference(outputs(model, data["x"], ["1"])["1"], data["spk_1"]) is not None


def test_norse_limits_are_recorded():
    found = limits("norse")
    # Cells without an export become None nodes: the file loses the layer.
    for kind in ("lifrecurrentcell", "licell", "lif_sequence_module"):
        assert found[kind]["nodes"]["1"] == "NoneType", kind
    assert found["flatten_pool"]["nodes"]["0"] == "NoneType"
    # A Conv2d is written without input_shape, which nir.write refuses (norse_conv fills it in).
    assert found["conv_write"]["outcome"] == "nir.write raises"
    _, meta = fixture("norse_conv")
    assert meta["patched"] == "Conv2d.input_shape"


# -- what edgesnn refuses rather than guesses -----------------------------------------------


def test_a_layer_the_exporter_left_as_none_is_named():
    graph = nir.NIRGraph(  # norse.to_nir of Linear -> LIFRecurrentCell
        nodes={"input": nir.Input(input_type=np.array([4])), "0": nir.Affine(weight=np.ones((3, 4)), bias=np.zeros(3)),
               "1": None, "output": nir.Output(output_type=np.array([3]))},
        edges=[("input", "0"), ("0", "1"), ("1", "output")], type_check=False,
    )  # fmt: skip
    with pytest.raises(NIRImportError, match="could not export this layer") as err:
        from_nir(graph, profile="norse")
    assert err.value.path == "nodes/1"


def snntorch_neuron(beta: float, n: int = 2) -> nir.LIF:
    """A Leaky layer as snnTorch writes it (dt = 1e-4)."""
    tau = np.full(n, 1e-4 / (1 - beta)) if beta != 1 else np.full(n, np.inf)
    return nir.LIF(tau=tau, r=tau / 1e-4, v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))


@pytest.mark.parametrize(("beta", "field", "message"), [(1.0, "tau", "infinite"), (1.2, "tau_mem_s", "> 0")])
def test_snntorch_beta_outside_0_1_is_refused_with_the_field(beta, field, message):
    # snnTorch clamps beta to [0, 1] when it runs; the file's tau = dt/(1 - beta) says no such thing.
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([2])), "fc": nir.Linear(weight=np.eye(2)),
               "lif": snntorch_neuron(beta), "output": nir.Output(output_type=np.array([2]))},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False,
    )  # fmt: skip
    with pytest.raises(NIRImportError, match=message) as err:
        from_nir(graph, profile="snntorch")
    assert err.value.path == f"nodes/lif/{field}"


def test_snntorch_recurrent_bias_into_a_synapse_needs_a_dense_layer_before_it():
    dt, n = 1e-4, 3
    tau_syn, tau_mem = np.full(n, dt / 0.3), np.full(n, dt / 0.1)
    cell = nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, w_in=tau_syn / dt, v_leak=np.zeros(n),
                       v_threshold=np.ones(n), v_reset=np.zeros(n))  # fmt: skip
    graph = nir.NIRGraph(  # RSynaptic straight after the input: no layer can take the bias over
        nodes={"input": nir.Input(input_type=np.array([n])), "lif": cell,
               "w_rec": nir.Affine(weight=np.eye(n), bias=np.full(n, 0.1)),
               "output": nir.Output(output_type=np.array([n]))},
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")], type_check=False,
    )  # fmt: skip
    with pytest.raises(NIRImportError, match="from the first step") as err:
        from_nir(graph, profile="snntorch")
    assert err.value.path == "nodes/w_rec/bias"


# -- edgesnn -> NIR -> framework --------------------------------------------------------------

ESNN_EXACT = [("snntorch", "dense"), ("snntorch", "conv"), ("norse", "dense"), ("norse", "lif"), ("norse", "if"),
              ("norse", "conv"), ("norse", "recurrent"), ("norse", "dt_500us")]  # fmt: skip


@pytest.mark.parametrize(("framework", "name"), ESNN_EXACT)
def test_framework_imports_of_edgesnn_files_reproduce_edgesnn(framework, name):
    data, meta = fixture(f"{framework}_esnn_{name}")
    assert "error" not in meta

    model = read_nir(DATA / f"{framework}_esnn_{name}.nir")  # edgesnn's own record: the exact model

    assert_same_layers(model, data)


LOSSY = [
    ("snntorch", "subtract", "lif1: reset read as reset to 0 at once"),
    ("snntorch", "dt_500us", "dt 0.1 ms assumed"),
    ("snntorch", "if", "IF read as a Leaky neuron"),
    ("norse", "v_leak", "v_leak also pulls the synaptic current"),
    ("norse", "v_reset", "v_reset read as 0"),
    ("norse", "r", "r ignored"),
]


@pytest.mark.parametrize(("framework", "name", "warning"), LOSSY)
def test_what_a_framework_importer_drops_is_warned_about_on_export(framework, name, warning, caplog):
    data, _ = fixture(f"{framework}_esnn_{name}")
    model = read_nir(DATA / f"{framework}_esnn_{name}.nir")

    with caplog.at_level(logging.WARNING, logger="edgesnn.bundle.nir"):
        to_nir(model)

    assert warning in caplog.text
    got = outputs(model, data["x"], layers(data))
    assert any(first_difference(got[n], data[f"spk_{n}"].reshape(got[n].shape)) is not None for n in layers(data))


def test_norse_import_leaves_out_li_readouts(caplog):
    _, meta = fixture("norse_esnn_li")
    model = read_nir(DATA / "norse_esnn_li.nir")
    assert type(model.graph.nodes["lif2"]).__name__ == "LI"

    with caplog.at_level(logging.WARNING, logger="edgesnn.bundle.nir"):
        to_nir(model)

    assert "lif2" not in meta["modules"]  # nirtorch skipped the LI node without a word
    assert "Norse 1.1 from_nir would read this differently: no import for LI" in caplog.text


def test_snntorch_import_of_recurrent_edgesnn_files_fails(caplog):
    _, meta = fixture("snntorch_esnn_recurrent")
    with caplog.at_level(logging.WARNING, logger="edgesnn.bundle.nir"):
        to_nir(read_nir(DATA / "snntorch_esnn_recurrent.nir"))

    assert "GraphModule" in meta["error"]
    assert "recurrent graphs fail to import" in caplog.text


# -- edgesnn -> NIR -> framework -> NIR -> edgesnn ------------------------------------------------


@pytest.mark.parametrize("name", ["lif", "if"])
def test_norse_round_trip_is_exact(name):
    data, meta = fixture(f"norse_esnn_{name}")
    model = read_nir(DATA / f"norse_esnn_{name}.nir")
    # Norse cannot write back the module from_nir returns (its input/output ports export as None);
    # the imported layers, in order, in a SequentialState it can.
    assert "NoneType" in meta["re_export_error"]

    back = read_nir(DATA / f"norse_roundtrip_{name}.nir", profile="norse", dt_s=model.dt_s)

    want = model.session().run(data["x"])["output"]
    assert want.sum() > 10
    np.testing.assert_array_equal(back.session().run(data["x"])["output"], want)


@pytest.mark.parametrize("name", ["dense", "conv"])
def test_snntorch_cannot_write_back_what_it_imported(name):
    # Its importer makes scalar thresholds, which its exporter writes beside vector taus.
    _, meta = fixture(f"snntorch_esnn_{name}")
    assert "same shape" in meta["re_export_error"]
    assert not (DATA / f"snntorch_roundtrip_{name}.nir").exists()


# -- what convert --from says it assumed ------------------------------------------------------


def test_describe_assumptions_names_dt_reset_and_inputs():
    snn = describe_assumptions(read_nir(DATA / "snntorch_rleaky.nir", profile="snntorch"))
    norse = describe_assumptions(read_nir(DATA / "norse_lifcell.nir", profile="norse"))
    zero = describe_assumptions(read_nir(DATA / "snntorch_rleaky.nir", profile="snntorch", reset_mode="to_value"))

    assert snn.startswith("read as snntorch: dt 0.1 ms") and "reset subtract (next_step)" in snn
    assert "inputs added unscaled" in snn and "--reset-timing" in snn and "\n" not in snn
    assert "dt 1 ms" in norse and "scaled by 1000" in norse and "unit current jumps" in norse
    assert "reset to_value (immediate+next_step)" in zero  # Leaky at once, RLeaky the step after
    assert describe_assumptions(read_nir(DATA / "norse_esnn_lif.nir")) == ""  # edgesnn's own file


def test_convert_from_snntorch_reproduces_the_rleaky_network(tmp_path):
    # The command: edgesnn convert --from snntorch, then run the bundle.
    import edgesnn
    from edgesnn.cli import main

    out = tmp_path / "rleaky.esnn"
    assert main(["--quiet", "convert", "--from", "snntorch", str(DATA / "snntorch_rleaky.nir"), str(out)]) == 0

    data, _ = fixture("snntorch_rleaky")
    got = outputs(edgesnn.load(out), data["x"], ["1.lif", "3"])
    np.testing.assert_array_equal(got["1.lif"], data["spk_1.lif"])
    np.testing.assert_array_equal(got["3"], data["spk_3"])
