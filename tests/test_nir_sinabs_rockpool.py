"""Sinabs and Rockpool NIR files made by the frameworks themselves, both directions.

The fixtures in tests/data/nir/ come from ``bash tools/fixtures/run.sh sinabs`` and ``... rockpool``
(Sinabs 3.1.3, Rockpool 3.1.0, nir 1.0.4, torch 2.13.0); each ``.npz`` holds the framework's own
simulation from its zero state. ``<fw>_<net>`` files were written by the framework's exporter and
must be reproduced by its profile; ``<fw>_esnn_<net>`` files were written by edgesnn, and their
``.npz`` holds what the framework's importer made of them; ``<fw>_roundtrip_<net>`` is that
import exported again. ``<fw>_limits.json`` records what each exporter and importer refused or
dropped when the fixtures were made. Spikes must match exactly, membranes to float32 rounding.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from edgesnn.bundle.nir import describe_assumptions, from_nir, read_nir, to_nir, write_nir  # noqa: E402
from edgesnn.errors import NIRImportError, OptionError, UnsupportedError  # noqa: E402
from edgesnn.graph import Graph  # noqa: E402
from edgesnn.model import Model  # noqa: E402
from tests.helpers import assert_models_equal  # noqa: E402

DATA = pathlib.Path(__file__).parent / "data" / "nir"
F32 = np.float32


def fixture(name: str) -> dict[str, np.ndarray]:
    """The arrays of ``<name>.npz``."""
    return dict(np.load(DATA / f"{name}.npz"))


def limits(framework: str) -> dict[str, Any]:
    """What ``<framework>_limits.json`` recorded when the fixtures were made."""
    return json.loads((DATA / f"{framework}_limits.json").read_text())


def recorded(model: Model, data: dict[str, np.ndarray], prefix: str = "") -> dict[str, np.ndarray]:
    """Run the model on ``data["x"]`` and return the recordings the fixture holds (``prefix`` stripped)."""
    names = [k[len(prefix) :] for k in data if k.startswith(prefix) and k != "x" and "/" not in k[len(prefix) :]]
    names += [f"{n}/v" for n in names if f"{prefix}{n}/v" in data]
    return model.session().run(data["x"], outputs=names)


def assert_reproduces(model: Model, data: dict[str, np.ndarray], prefix: str = "") -> None:
    """Spikes (and non-spiking outputs) as the fixture has them; membranes to float32 rounding."""
    got = recorded(model, data, prefix)
    assert got, "the fixture holds no recordings"
    for name, value in got.items():
        expected = data[f"{prefix}{name}"]
        assert value.dtype == F32 and value.shape == expected.shape, name
        spiking = getattr(model.graph.nodes[name.split("/")[0]], "spiking", False)
        if spiking and not name.endswith("/v"):
            assert expected.sum() > 10, f"{name}: the fixture should fire"
            np.testing.assert_array_equal(value, expected, err_msg=name)
        else:
            # float32 sums in another order than torch's, amplified by gains like 1/(1 - beta): the
            # fixtures differ by up to 2.2e-5 on membranes of order 1.
            np.testing.assert_allclose(value, expected, rtol=1e-5, atol=5e-5, err_msg=name)


def with_nodes(model: Model, **changes: Any) -> Model:
    """The model with some nodes replaced: ``node_name={field: value}``."""
    nodes = dict(model.graph.nodes)
    for name, fields in changes.items():
        nodes[name] = nodes[name].replace(**fields)
    return dataclasses.replace(model, graph=Graph(nodes, model.graph.edges, metadata=model.graph.metadata))


# -- Sinabs -> NIR -> edgesnn --------------------------------------------------------------

SINABS_EXPORTS = {
    # Defaults: MultiSpike (graded spikes) and MembraneSubtract; IAF, LIF, ExpLeak readout.
    "sinabs_dense": {},
    # SingleSpike and MembraneReset on IAF and LIF (0-d tau and threshold in the file).
    "sinabs_single_reset": {"max_spikes_per_step": 1, "reset_mode": "to_value"},
    # MultiSpike with MembraneReset, IAFSqueeze/LIFSqueeze.
    "sinabs_multi_reset": {"reset_mode": "to_value"},
    # Conv2d, IAFSqueeze, SumPool2d, Flatten, LIFSqueeze with SingleSpike (a Speck-style net).
    "sinabs_conv": {"max_spikes_per_step": 1},
}


@pytest.mark.parametrize(("name", "options"), SINABS_EXPORTS.items(), ids=list(SINABS_EXPORTS))
def test_sinabs_export_is_reproduced_layer_by_layer(name, options):
    model = read_nir(DATA / f"{name}.nir", profile="sinabs", **options)

    assert_reproduces(model, fixture(name))
    assert model.initial_state == "zero" and model.producer["profile"] == "sinabs"


def test_sinabs_multispike_emits_graded_spikes_that_the_default_profile_keeps():
    data = fixture("sinabs_dense")
    assert data["1"].max() > 1 and data["3"].max() > 1  # MultiSpike: floor(v / threshold) per step

    single = read_nir(DATA / "sinabs_dense.nir", profile="sinabs", max_spikes_per_step=1)

    assert not np.array_equal(single.session().run(data["x"], outputs=["3"])["3"], data["3"])


@pytest.mark.parametrize("name", ["sinabs_single_reset", "sinabs_multi_reset"])
def test_sinabs_spike_function_and_reset_are_not_in_the_file(name):
    # The same file read with Sinabs's defaults (MultiSpike, MembraneSubtract) is another network.
    data = fixture(name)

    default = read_nir(DATA / f"{name}.nir", profile="sinabs")

    assert not np.array_equal(default.session().run(data["x"], outputs=["3"])["3"], data["3"])


def test_sinabs_fires_when_the_membrane_equals_the_threshold():
    # Quarter-valued weights put IAF membranes exactly on 1.0: a strict threshold fires later.
    data = fixture("sinabs_single_reset")
    model = read_nir(DATA / "sinabs_single_reset.nir", profile="sinabs", max_spikes_per_step=1, reset_mode="to_value")

    strict = with_nodes(model, **{"1": {"threshold_inclusive": False}})

    assert not np.array_equal(strict.session().run(data["x"], outputs=["1"])["1"], data["1"])


def test_sinabs_input_node_keeps_the_samples_time_axis():
    # nirtorch drops only the batch axis of the traced (batch, time, n) sample, so nir's own
    # type check refuses the file; edgesnn takes the shape the nodes fed agree on.
    with pytest.raises(ValueError, match="type mismatch"):
        nir.read(DATA / "sinabs_dense.nir")
    graph = nir.read(DATA / "sinabs_dense.nir", type_check=False)
    assert tuple(graph.nodes["input"].input_type["input"]) == (1, 6)

    model = from_nir(graph, profile="sinabs")

    assert model.inputs[0].shape == (6,)


def test_sinabs_profile_reads_a_cubalif_as_a_sinabs_lif_with_tau_syn(caplog):
    # Sinabs writes no CubaLIF (its LIF(tau_syn=...) is exported as a LIF without it); one read under
    # this profile is taken as that layer: i = a_syn (i + x), v = a v + (1 - a) i, MultiSpike, subtract.
    n = 3
    tau_mem, tau_syn, thr = np.array([4.0, 8.0, 12.0], F32), np.array([2.0, 3.0, 5.0], F32), np.full(n, 0.4, F32)
    lif = nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=np.ones(n, F32), v_leak=np.zeros(n, F32), v_threshold=thr,
                      w_in=np.ones(n, F32))  # fmt: skip
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([n])), "lif": lif, "output": nir.Output(np.array([n]))},
                         edges=[("input", "lif"), ("lif", "output")], type_check=False)  # fmt: skip
    x = (np.random.default_rng(4).random((60, 1, n)) < 0.4).astype(F32) * F32(1.5)

    with caplog.at_level("WARNING", logger="edgesnn.bundle.nir"):
        got = from_nir(graph, profile="sinabs").session().run(x)["output"][:, 0]

    assert "Sinabs writes no CubaLIF" in caplog.text
    a_mem, a_syn = np.exp(-1 / tau_mem).astype(F32), np.exp(-1 / tau_syn).astype(F32)
    i, v, expected = np.zeros(n, F32), np.zeros(n, F32), []
    for xt in x[:, 0]:
        i = a_syn * (i + xt)
        v = a_mem * v + (1 - a_mem) * i
        z = np.maximum(np.floor(v / thr), 0).astype(F32)
        v = v - z * thr
        expected.append(z)
    assert np.sum(expected) > 5
    np.testing.assert_array_equal(got, np.array(expected))


def test_sinabs_exporter_writes_variants_as_the_same_file():
    # tau_syn, min_v_mem, norm_input=False and a subtract_value leave no trace in the file.
    data = fixture("sinabs_lossy")
    assert set(limits("sinabs")["dropped_on_export"].values()) == {"same NIR parameters as base"}
    model = read_nir(DATA / "sinabs_lossy.nir", profile="sinabs")

    got = model.session().run(data["x"], outputs=["1"])["1"]

    np.testing.assert_array_equal(got, data["variant/base"])
    for variant in ("tau_syn", "min_v_mem", "norm_input_false", "subtract_value"):
        assert not np.array_equal(got, data[f"variant/{variant}"]), variant


def test_sinabs_norm_input_false_is_an_option_the_file_cannot_carry():
    data = fixture("sinabs_lossy")
    model = read_nir(DATA / "sinabs_lossy.nir", profile="sinabs", norm_input=False)

    got = model.session().run(data["x"], outputs=["1"])["1"]

    np.testing.assert_array_equal(got, data["variant/norm_input_false"])
    assert "LIF adds x (norm_input=False)" in describe_assumptions(model)
    with pytest.raises(OptionError, match="norm_input is a Sinabs LIF setting") as err:
        read_nir(DATA / "sinabs_lossy.nir", profile="rockpool", dt_s=1e-3, norm_input=False)
    assert err.value.path == "norm_input"
    with pytest.raises(OptionError, match="expected True or False"):
        read_nir(DATA / "sinabs_lossy.nir", profile="sinabs", norm_input="no")


def test_sinabs_exporter_refuses_these_layers():
    errors = limits("sinabs")["export_errors"]
    assert errors["ALIF"].startswith("NotImplementedError")
    assert errors["LIFRecurrent"].startswith("NotImplementedError")
    assert errors["AvgPool2d"].startswith("NotImplementedError")
    assert errors["LIF(train_alphas=True)"].startswith("AttributeError")  # it reads tau_mem, which is not there
    assert errors["LIF(vector tau, scalar threshold)"].startswith("AssertionError")
    # A conv net is exported with Conv2d.input_shape and Flatten.input_type None, which nir.write cannot store.
    assert limits("sinabs")["write_needed_shapes"]["conv"]["filled"] == ["0.input_shape", "3.input_shape",
                                                                         "5.input_type"]  # fmt: skip


# -- edgesnn -> NIR -> Sinabs ------------------------------------------------------------


@pytest.mark.parametrize("name", ["dense", "conv"])
def test_sinabs_importer_reproduces_edgesnn_models_in_its_terms(name):
    # IF with r = 1/dt, LIF at dt = 1 s with r = 1/(1 - alpha), subtract, v >= threshold, graded spikes.
    model = read_nir(DATA / f"sinabs_esnn_{name}.nir")

    assert_reproduces(model, fixture(f"sinabs_esnn_{name}"))


def importer_says(caplog: Any, model: Model, importer: str) -> list[str]:
    """What edgesnn's export warns ``importer`` would read differently, one item a line."""
    caplog.clear()
    with caplog.at_level("WARNING", logger="edgesnn.bundle.nir"):
        to_nir(model)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith(importer)]
    assert len(said) == 1, said
    return said[0].split(": ", 1)[1].split("; ")


CLIP = "membrane clipped at -v_threshold (min_v_mem)"
SINABS_READS = {
    # fixture -> the node-level lines: none but the clip (harmless for inputs >= 0) where Sinabs matched.
    "dense": [f"iaf: {CLIP}"],
    "conv": [f"iaf1: {CLIP}", f"iaf2: {CLIP}"],
    "li": ["li: LI read as ExpLeak: r must be 1 and x is added unscaled, not (1 - alpha) x"],
    "lif_1ms": ["lif: taus read as steps (a step here is 0.001 s, not 1 s)"],
    "negative": [f"iaf: {CLIP}"],
    "to_value": [f"iaf: {CLIP}", "iaf: reset to v_reset read as subtract",
                 "iaf: at most 1 spikes per step read as MultiSpike's graded spikes"],
}  # fmt: skip


@pytest.mark.parametrize(("name", "lines"), SINABS_READS.items(), ids=list(SINABS_READS))
def test_export_names_what_sinabs_would_read_differently(caplog, name, lines):
    said = importer_says(caplog, read_nir(DATA / f"sinabs_esnn_{name}.nir"), "Sinabs 3.1 from_nir")

    assert [line for line in said if not line.startswith("nir <= 1.0.4")] == lines
    assert any("v_reset" in line for line in said) == (name != "li")  # Sinabs pins nir <= 1.0.4


def test_export_names_what_rockpool_would_read_differently(caplog):
    faithful = importer_says(caplog, read_nir(DATA / "rockpool_esnn_cubalif.nir"), "Rockpool 3.1 from_nir")
    natural = importer_says(caplog, read_nir(DATA / "rockpool_esnn_natural.nir"), "Rockpool 3.1 from_nir")

    assert len(faithful) == 1 and "v_reset" in faithful[0]  # Rockpool pins nir <= 1.0.4 too
    assert natural[1:] == [
        "lif: dt read as min(tau_mem/(1 + r)) = 0.005 s (needs r = tau_mem/dt - 1)",
        "lif: reset to v_reset read as subtract", "lif: v > threshold read as v >= threshold",
        "lif: at most 1 spikes per step read as max_spikes_per_dt's graded spikes",
    ]  # fmt: skip


def test_sinabs_importer_adds_leaky_integrator_inputs_unscaled():
    # Sinabs takes LI (r must be 1) as ExpLeak(norm_input=False): v = a v + x, not a v + (1 - a) x.
    model = read_nir(DATA / "sinabs_esnn_li.nir")
    data = fixture("sinabs_esnn_li")

    ours = model.session().run(data["x"], outputs=["li"])["li"]

    gain = 1 - np.exp(-model.dt_s / model.graph.nodes["li"].tau_mem_s.astype(np.float64))
    np.testing.assert_allclose(data["li"] * gain, ours, rtol=1e-5, atol=1e-6)


def test_sinabs_importer_reads_time_constants_in_steps():
    # A model at dt = 1 ms: Sinabs reads tau = 0.004 s as 0.004 steps, a membrane without memory.
    data = fixture("sinabs_esnn_lif_1ms")
    model = read_nir(DATA / "sinabs_esnn_lif_1ms.nir")
    assert model.dt_s == 1e-3

    assert not np.array_equal(model.session().run(data["x"], outputs=["lif"])["lif"], data["lif"])


def test_sinabs_importer_clips_if_membranes_at_minus_threshold():
    # Sinabs's IAFSqueeze gets min_v_mem = -v_threshold, which edgesnn's IF does not have.
    data = fixture("sinabs_esnn_negative")
    model = read_nir(DATA / "sinabs_esnn_negative.nir")

    ours = model.session().run(data["x"], outputs=["iaf", "iaf/v"])

    assert ours["iaf/v"].min() < -1.0
    assert data["iaf/v"].min() >= -1.0 - 1e-6
    assert not np.array_equal(ours["iaf"], data["iaf"])


def test_sinabs_importer_always_subtracts_with_multispike():
    # A reset to v_reset, one spike per step: Sinabs's IF import is MembraneSubtract with MultiSpike.
    data = fixture("sinabs_esnn_to_value")
    model = read_nir(DATA / "sinabs_esnn_to_value.nir")

    ours = model.session().run(data["x"], outputs=["iaf"])["iaf"]

    assert ours.max() == 1 and data["iaf"].max() > 1


def test_sinabs_importer_drops_or_refuses_these_node_kinds():
    probes = limits("sinabs")["import_probes"]
    # nirtorch skips a node the map returns nothing for: the signal passes through unchanged.
    for kind in ("linear", "cubalif", "integrator", "scale", "delay", "avgpool"):
        assert probes[kind].startswith("imported as nothing;") and "equals" not in probes[kind], kind
    assert "CubaLI" in probes["cubali"] and probes["cubali"].startswith("refused")  # nir 1.0.4 has no CubaLI
    assert "detach" in probes["conv1d"]  # it calls torch methods on the numpy weight
    assert "v_leak" in probes["lif_leak"]
    # nir 1.0.4 (Sinabs's pin) cannot read a file from nir 1.0.8: IF/LIF/CubaLIF have no v_reset there.
    assert "v_reset" in limits("sinabs")["nir_1_0_4_reads_nir_1_0_8"]


def test_sinabs_round_trip_of_an_if_conv_net_is_exact():
    # edgesnn -> NIR -> sinabs.from_nir -> sinabs.to_nir -> NIR -> edgesnn (profile sinabs).
    original = read_nir(DATA / "sinabs_esnn_conv.nir")
    names = limits("sinabs")["roundtrip_names"]["conv"]

    back = read_nir(DATA / "sinabs_roundtrip_conv.nir", profile="sinabs", max_spikes_per_step=1 << 15)

    x = fixture("sinabs_esnn_conv")["x"]
    ours = original.session().run(x, outputs=list(names.values()))
    theirs = back.session().run(x, outputs=list(names))
    for new, old in names.items():
        np.testing.assert_array_equal(theirs[new], ours[old], err_msg=old)
    np.testing.assert_array_equal(back.graph.nodes["0"].weight, original.graph.nodes["conv"].weight)


def test_sinabs_round_trip_of_a_lif_net_needs_the_input_scaling_the_file_lacks():
    # Sinabs imports LIF with norm_input=False and exports it as r = 1, which its profile reads as
    # the LIF default norm_input=True; told norm_input=False, the round trip is exact.
    original = read_nir(DATA / "sinabs_esnn_dense.nir")
    x = fixture("sinabs_esnn_dense")["x"]
    want = original.session().run(x)["output"]
    back = read_nir(DATA / "sinabs_roundtrip_dense.nir", profile="sinabs", dt_s=1.0)
    assert not np.array_equal(back.session().run(x)["output"], want)

    fixed = read_nir(DATA / "sinabs_roundtrip_dense.nir", profile="sinabs", dt_s=1.0, norm_input=False)

    np.testing.assert_array_equal(fixed.session().run(x)["output"], want)
    np.testing.assert_array_equal(fixed.graph.nodes["3"].tau_mem_s, original.graph.nodes["lif"].tau_mem_s)


# -- Rockpool -> NIR -> edgesnn ------------------------------------------------------------


@pytest.mark.parametrize("name", ["rockpool_lif", "rockpool_readout"])
def test_rockpool_export_is_reproduced_layer_by_layer(name):
    # rockpool_lif: LinearTorch -> LIFTorch x 2 (graded spikes); rockpool_readout: LIFNeuronTorch
    # and an ExpSynTorch current readout.
    model = read_nir(DATA / f"{name}.nir", profile="rockpool")

    assert_reproduces(model, fixture(name))
    assert model.dt_s == 1e-3  # recovered from r = tau exp(-dt/tau)/dt


def test_rockpool_lifjax_runs_as_the_lif_torch_export():
    # LIFJax has no NIR export; with LIFTorch's parameters it computes what the profile reads.
    data = fixture("rockpool_lif")
    assert data["3_LIFTorch"].max() > 1  # graded spikes (max_spikes_per_dt)

    assert_reproduces(read_nir(DATA / "rockpool_lif.nir", profile="rockpool"), data, prefix="jax/")


def test_rockpool_exporter_writes_variants_as_the_same_file():
    # The bias, recurrent weights w_rec and max_spikes_per_dt leave no trace in the file.
    data = fixture("rockpool_lossy")
    assert set(limits("rockpool")["dropped_on_export"].values()) == {"same NIR parameters as base"}
    model = read_nir(DATA / "rockpool_lossy.nir", profile="rockpool")

    got = model.session().run(data["x"], outputs=["1_LIFTorch"])["1_LIFTorch"]

    np.testing.assert_array_equal(got, data["variant/base"])
    for variant in ("bias", "w_rec", "max_spikes_per_dt"):
        assert not np.array_equal(got, data[f"variant/{variant}"]), variant
    single = read_nir(DATA / "rockpool_lossy.nir", profile="rockpool", max_spikes_per_step=1)
    np.testing.assert_array_equal(single.session().run(data["x"], outputs=["1_LIFTorch"])["1_LIFTorch"],
                                  data["variant/max_spikes_per_dt"])  # fmt: skip


def test_rockpool_exporter_refuses_these_modules():
    found = limits("rockpool")
    errors = found["export_errors"]
    assert errors["LIFTorch((8, 4)) (two synapses per neuron)"].startswith("NotImplementedError")
    assert errors["LIFJax"].startswith("AttributeError")  # to_nir walks torch modules only
    assert "None for node 1_RateTorch" in errors["RateTorch"] and "nir.write" in errors["RateTorch"]
    # ExpSynTorch's tau is written as a trainable tensor, which nir.write cannot store.
    assert found["write_needed_detach"]["readout"]["detached"] == ["3_ExpSynTorch.tau"]


def test_rockpool_layers_at_different_steps_are_refused_with_the_node_named():
    # One Sequential may hold LIFTorch layers with different dt; an edgesnn model has one step.
    graph = nir.read(DATA / "rockpool_lif.nir", type_check=False)  # Input (1, 6): the batch axis
    lif = graph.nodes["3_LIFTorch"]
    lif.r = (lif.tau_mem * np.exp(-2e-3 / lif.tau_mem) / 2e-3).astype(F32)

    with pytest.raises(NIRImportError, match="pass dt_s") as err:
        from_nir(graph, profile="rockpool")
    assert "3_LIFTorch" in err.value.path


def test_rockpool_profile_reads_v_leak_as_the_bias_rockpool_adds_every_step():
    # Rockpool writes v_leak = 0 (the bias is dropped) and its importer turns v_leak into LIFTorch's
    # bias, vmem = alpha vmem + isyn + bias: the profile gives a file's v_leak that meaning.
    dt, n = 1e-3, 3
    tau_mem, tau_syn = np.array([0.02, 0.01, 0.03], F32), np.array([0.005, 0.01, 0.004], F32)
    bias, thr = np.array([0.05, -0.02, 0.1], F32), np.ones(n, F32)
    lif = nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=(tau_mem * np.exp(-dt / tau_mem) / dt).astype(F32),
                      v_leak=bias, v_threshold=thr, w_in=np.ones(n, F32))  # fmt: skip
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([n])), "lif": lif, "output": nir.Output(np.array([n]))},
                         edges=[("input", "lif"), ("lif", "output")], type_check=False)  # fmt: skip
    x = (np.random.default_rng(3).random((60, 1, n)) < 0.3).astype(F32) * F32(0.4)

    got = from_nir(graph, profile="rockpool").session().run(x)["output"][:, 0]

    alpha, beta = np.exp(-dt / tau_mem).astype(F32), np.exp(-dt / tau_syn).astype(F32)
    isyn, vmem, expected = np.zeros(n, F32), np.zeros(n, F32), []
    for xt in x[:, 0]:
        isyn = beta * (isyn + xt)
        vmem = alpha * vmem + isyn + bias
        s = np.where(vmem >= thr, np.floor(vmem / thr), 0).astype(F32)
        vmem = vmem - s * thr
        expected.append(s)
    assert np.sum(expected) > 5
    np.testing.assert_array_equal(got, np.array(expected))


# -- edgesnn -> NIR -> Rockpool ------------------------------------------------------------


def test_rockpool_importer_reproduces_edgesnn_models_in_its_terms():
    # CubaLIF with r = tau_mem/dt - 1 (Rockpool reads dt = tau_mem/(1 + r)) and w_in absorbing
    # Rockpool's unit gains, v_leak = 0, subtract, v >= threshold, graded spikes; Linear, Affine.
    model = read_nir(DATA / "rockpool_esnn_cubalif.nir")

    assert_reproduces(model, fixture("rockpool_esnn_cubalif"))


def test_rockpool_importer_takes_r_for_dt_and_gains_as_one():
    # A plain CubaLIF (r = w_in = 1) reaches Rockpool at dt = min(tau_mem/(1 + r)) = 5 ms with unit
    # gains: what the rockpool profile makes of the file at that step, not the model.
    data = fixture("rockpool_esnn_natural")
    model = read_nir(DATA / "rockpool_esnn_natural.nir")
    assert not np.array_equal(model.session().run(data["x"], outputs=["lif"])["lif"], data["lif"])
    lif = model.graph.nodes["lif"]
    rockpool_dt = float(np.min(lif.tau_mem_s / (1 + lif.r)))

    as_rockpool = read_nir(DATA / "rockpool_esnn_natural.nir", profile="rockpool", dt_s=rockpool_dt)

    assert_reproduces(as_rockpool, data)


def test_rockpool_importer_drops_or_refuses_these_node_kinds():
    probes = limits("rockpool")["import_probes"]
    assert "tau_mem" in probes["lif"] and probes["lif"].startswith("refused")  # it asks a NIR LIF for tau_mem
    assert probes["if"].startswith("refused") and probes["conv"].startswith("refused")
    assert "differs" in probes["li"]  # ExpSynTorch(tau = int(tau)): 0 for taus in seconds
    assert "differs" in probes["cubalif_leak"]  # v_leak becomes a bias added every step
    assert "differs" in probes["recurrent"]  # a flat recurrent graph runs without its loop
    assert "v_reset" in limits("rockpool")["nir_1_0_4_reads_nir_1_0_8"]


def test_rockpool_round_trip_is_exact():
    # edgesnn -> NIR -> Rockpool from_nir -> Rockpool to_nir -> NIR -> edgesnn (profile rockpool).
    original = read_nir(DATA / "rockpool_esnn_cubalif.nir")
    x = fixture("rockpool_esnn_cubalif")["x"]

    back = read_nir(DATA / "rockpool_roundtrip_cubalif.nir", profile="rockpool")

    ours = original.session().run(x, outputs=["lif1", "lif2"])
    theirs = back.session().run(x, outputs=["lif1", "lif2"])
    for name in ("lif1", "lif2"):
        np.testing.assert_array_equal(theirs[name], ours[name], err_msg=name)
    assert back.dt_s == original.dt_s
    for field in ("tau_mem_s", "tau_syn_s", "v_threshold"):
        np.testing.assert_allclose(getattr(back.graph.nodes["lif1"], field),
                                   getattr(original.graph.nodes["lif1"], field), rtol=1e-6)  # fmt: skip


# -- what the profiles cannot represent ------------------------------------------------------


def test_sinabs_graded_spikes_need_a_positive_threshold():
    graph = nir.read(DATA / "sinabs_dense.nir", type_check=False)
    graph.nodes["1"].v_threshold = np.zeros_like(graph.nodes["1"].v_threshold)

    with pytest.raises(NIRImportError, match="v_threshold > 0") as err:
        from_nir(graph, profile="sinabs")
    assert err.value.path.startswith("nodes/1")


def test_a_node_type_edgesnn_lacks_is_named_in_a_sinabs_file():
    graph = nir.read(DATA / "sinabs_dense.nir", type_check=False)
    graph.nodes["5"] = nir.ir.graph.Identity(input_type={"input": np.array([3])})

    with pytest.raises(NIRImportError, match="Identity is not supported") as err:
        from_nir(graph, profile="sinabs")
    assert err.value.path == "nodes/5"


@pytest.mark.parametrize("profile", ["sinabs", "rockpool"])
def test_every_neuron_kind_has_a_meaning_in_the_profile(profile):
    # Sinabs writes IF, LIF, LI and Rockpool CubaLIF, LIF, LI; the others still import (the CubaLIF
    # key 'tau_mem' included) and run.
    n = 2
    one = np.ones(n, F32)
    tau = (one * 5) if profile == "sinabs" else (one * 0.02)
    r = one if profile == "sinabs" else (tau * np.exp(-1e-3 / tau) / 1e-3).astype(F32)
    kinds = {
        "I": nir.I(r=one), "IF": nir.IF(r=one, v_threshold=one), "LI": nir.LI(tau=tau, r=r, v_leak=0 * one),
        "LIF": nir.LIF(tau=tau, r=r, v_leak=0 * one, v_threshold=one),
        "CubaLI": nir.CubaLI(tau_syn=tau / 2, tau_mem=tau, r=r, v_leak=0 * one, w_in=one),
        "CubaLIF": nir.CubaLIF(tau_syn=tau / 2, tau_mem=tau, r=r, v_leak=0 * one, v_threshold=one, w_in=one),
    }  # fmt: skip
    for kind, node in kinds.items():
        graph = nir.NIRGraph(
            nodes={"input": nir.Input(np.array([n])), "n": node, "output": nir.Output(np.array([n]))},
            edges=[("input", "n"), ("n", "output")], type_check=False,
        )  # fmt: skip
        model = from_nir(graph, profile=profile, dt_s=1e-3)
        v = model.session().run(np.full((5, 1, n), 0.3, F32), outputs=["n/v"])["n/v"]
        assert np.all(np.isfinite(v)) and np.all(v[-1] > 0), kind


# -- files for the nir release Sinabs and Rockpool pin ------------------------------------------


def hdf5_fields(path: pathlib.Path) -> dict[str, set[str]]:
    """The datasets of each node group of a .nir file, by node name."""
    import h5py

    with h5py.File(path, "r") as f:
        nodes = f["node"]["nodes"]
        return {name: set(nodes[name].keys()) for name in nodes}


@pytest.mark.parametrize("name", ["sinabs_esnn_dense", "sinabs_esnn_conv", "rockpool_esnn_cubalif"])
def test_a_file_for_nir_1_0_4_drops_only_v_reset_and_reads_back_the_same(tmp_path, name, caplog):
    # nir 1.0.4 (Sinabs's and Rockpool's pin) refuses IF/LIF/CubaLIF with a v_reset field; the
    # fixtures' importer runs read edgesnn's files with exactly that field left out.
    model = read_nir(DATA / f"{name}.nir")
    with caplog.at_level("WARNING", logger="edgesnn.bundle.nir"):
        write_nir(model, tmp_path / "now.nir")
    assert 'refuses v_reset fields: write with nir_version="1.0.4" (CLI: --nir-version 1.0.4)' in caplog.text
    write_nir(model, tmp_path / "old.nir", nir_version="1.0.4")

    now, old = hdf5_fields(tmp_path / "now.nir"), hdf5_fields(tmp_path / "old.nir")
    spiking = {n for n, node in model.graph.nodes.items() if node.spiking}
    assert spiking and all("v_reset" in now[n] and now[n] - old[n] == {"v_reset"} for n in spiking)
    assert all(now[n] == old[n] for n in now if n not in spiking)
    assert_models_equal(read_nir(tmp_path / "old.nir"), model)


def test_a_reset_nir_1_0_4_cannot_store_is_refused_with_the_node(tmp_path):
    model = read_nir(DATA / "sinabs_esnn_dense.nir")
    lif = next(n for n, node in model.graph.nodes.items() if type(node).__name__ == "LIF")
    changed = with_nodes(model, **{lif: {"reset_mode": "to_value", "v_reset": np.full_like(
        model.graph.nodes[lif].v_threshold, 0.25)}})  # fmt: skip
    with pytest.raises(UnsupportedError, match="cannot store") as err:
        write_nir(changed, tmp_path / "old.nir", nir_version="1.0.4")
    assert err.value.path == f"nodes/{lif}/v_reset" and not (tmp_path / "old.nir").exists()
    write_nir(with_nodes(changed, **{lif: {"v_reset": 0 * changed.graph.nodes[lif].v_reset}}), tmp_path / "old.nir",
              nir_version="1.0.4")  # fmt: skip
    with pytest.raises(OptionError, match="expected one of current, 1.0.4"):
        write_nir(model, tmp_path / "x.nir", nir_version="1.0.3")
