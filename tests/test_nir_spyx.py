"""Spyx 1.0.0's NIR files under profile "spyx", and edgesnn's NIR files in Spyx's importer, against Spyx's own runs.

The fixtures in tests/data/nir/spyx_* come from ``bash tools/fixtures/run.sh spyx`` (see
tools/fixtures/spyx.py): Spyx's ``to_nir`` files with Spyx's step-by-step simulation from its zero
state, and what ``spyx.nir.from_nir`` made of files edgesnn wrote. These tests need no Spyx.
"""

from __future__ import annotations

import json
import logging
import pathlib

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from edgesnn.bundle.nir import from_nir, read_nir, to_nir  # noqa: E402
from tests.helpers import assert_models_equal  # noqa: E402
from tools.fixtures.spyx import ESNN_DT, esnn_models  # noqa: E402

DATA = pathlib.Path(__file__).parent / "data" / "nir"
NETS = ("dense", "recurrent", "conv", "psu")
LIMITS = json.loads((DATA / "spyx_limits.json").read_text())


def load(name: str) -> dict[str, np.ndarray]:
    with np.load(DATA / f"{name}.npz") as f:
        return {k: f[k] for k in f.files}


def spyx_layers(data: dict[str, np.ndarray]) -> list[str]:
    """The Sequential's stateful layers of a Spyx fixture (``layer_<i>``), in order."""
    return sorted((k for k in data if k.startswith("layer_") and "/" not in k), key=lambda k: int(k[6:]))


def neuron_of(model, layer: str) -> str:
    """The edgesnn neuron a Spyx layer became (a recurrent layer is a flattened subgraph)."""
    return next(n for n in (layer, f"{layer}.{layer}.lif") if n in model.graph.nodes)


def spikes_of(model, layer: str) -> str:
    """The edgesnn node whose output is the spikes that Spyx layer emits."""
    if f"{layer}_threshold" in model.graph.nodes:  # PSU_LIF: LI, then Threshold
        return f"{layer}_threshold"
    return f"{neuron_of(model, layer)}.delay"


@pytest.mark.parametrize("net", NETS)
def test_spyx_files_reproduce_spyx_spike_for_spike(net):
    data = load(f"spyx_{net}")
    model = read_nir(DATA / f"spyx_{net}.nir", profile="spyx")
    layers = spyx_layers(data)
    neurons = [neuron_of(model, layer) for layer in layers]
    names = [spikes_of(model, layer) for layer in layers] + neurons + [f"{n}/v" for n in neurons]
    names += [f"{n}/i" for n in neurons if type(model.graph.nodes[n]).__name__ == "CubaLIF"]

    out = model.session().run(data["x"], outputs=names)

    for layer, neuron in zip(layers, neurons, strict=True):
        spikes = out[spikes_of(model, layer)]
        assert 0 < data[layer].sum() < 0.9 * data[layer].size, layer  # fires, not always
        np.testing.assert_array_equal(spikes, data[layer], err_msg=layer)
        v = out[f"{neuron}/v"]
        node = model.graph.nodes[neuron]
        if type(node).__name__ == "CubaLIF":
            # Spyx holds CuBaLIF's V before the reset, which it subtracts at the next step.
            v = v + out[neuron] * node.v_threshold
            np.testing.assert_allclose(out[f"{neuron}/i"], data[f"{layer}/i"], rtol=1e-5, atol=1e-5, err_msg=layer)
        np.testing.assert_allclose(v, data[f"{layer}/v"], rtol=1e-5, atol=1e-5, err_msg=layer)


def test_what_the_spyx_profile_restores():
    model = read_nir(DATA / "spyx_recurrent.nir", profile="spyx")
    g = model.graph
    assert (model.dt_s, model.method, model.initial_state) == (1e-3, "cascade-euler", "zero")
    timing = {n: node.reset_timing for n, node in g.nodes.items() if hasattr(node, "reset_timing")}
    # LIF and IF subtract after the decay (the engine's next_step), CuBaLIF before it (immediate).
    assert timing == {"layer_1.layer_1.lif": "next_step", "layer_3.layer_3.lif": "immediate",
                      "layer_5.layer_5.lif": "next_step"}  # fmt: skip
    assert {node.reset_mode for n, node in g.nodes.items() if n in timing} == {"subtract"}
    # Spyx writes the layer input into the recurrent weight; it adds it to the membrane.
    assert ("layer_0", "layer_1.layer_1.lif") in g.edges and ("layer_0", "layer_1.layer_1.w_rec") not in g.edges
    # Its spikes leave one step late; the recurrent loop already closes a step late.
    assert g.nodes["layer_1.layer_1.lif.delay"].delay_s == model.dt_s
    assert ("layer_1.layer_1.lif", "layer_1.layer_1.w_rec") in g.edges


def test_the_step_is_a_label_spyx_has_no_time():
    data = load("spyx_dense")
    model = read_nir(DATA / "spyx_dense.nir", profile="spyx", dt_s=2e-4)
    np.testing.assert_array_equal(model.session().run(data["x"])["output"], data["layer_5"])


def spyx_lif_graph(beta: np.ndarray, alpha: np.ndarray, dt: float) -> nir.NIRGraph:
    """LIF and CubaLIF as spyx.nir.to_nir(dt) writes them: tau = dt/(1 - beta), r = beta."""
    n = beta.size
    lif = nir.LIF(tau=dt / (1 - beta), r=beta, v_leak=np.zeros(n), v_threshold=np.ones(n))
    cuba = nir.CubaLIF(tau_syn=dt / (1 - alpha), tau_mem=dt / (1 - beta), r=beta, v_leak=np.zeros(n),
                       v_threshold=np.ones(n))  # fmt: skip
    nodes = {
        "input": nir.Input(input_type=np.array([n])),
        "fc": nir.Linear(weight=np.eye(n)),
        "lif": lif,
        "fc2": nir.Linear(weight=np.eye(n)),
        "cuba": cuba,
        "output": nir.Output(output_type=np.array([n])),
    }
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "fc2"), ("fc2", "cuba"), ("cuba", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_spyx_export_dt_is_read_from_r():
    beta, alpha = np.array([0.5, 0.75, 0.9], np.float32), np.array([0.6, 0.8, 0.95], np.float32)
    one = from_nir(spyx_lif_graph(beta, alpha, 1.0), profile="spyx")
    quarter = from_nir(spyx_lif_graph(beta, alpha, 0.25), profile="spyx")
    for name in ("lif", "cuba"):
        a, b = one.graph.nodes[name], quarter.graph.nodes[name]
        np.testing.assert_allclose(a.tau_mem_s, b.tau_mem_s, rtol=1e-6)
        np.testing.assert_allclose(a.r, b.r, rtol=1e-6)
    np.testing.assert_allclose(quarter.graph.nodes["cuba"].tau_syn_s, 1e-3 / (1 - alpha), rtol=1e-6)


def test_an_li_only_file_names_the_dt_it_assumes(caplog):
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2])),
                                "li": nir.LI(tau=np.full(2, 4.0), r=np.ones(2), v_leak=np.zeros(2)),
                                "output": nir.Output(output_type=np.array([2]))},
                         edges=[("input", "li"), ("li", "output")], type_check=False)  # fmt: skip
    with caplog.at_level(logging.WARNING, "edgesnn.bundle.nir"):
        model = from_nir(graph, profile="spyx")
    assert "assuming Spyx's default dt = 1" in caplog.text
    np.testing.assert_allclose(model.graph.nodes["li"].tau_mem_s, 1e-3 / (1 - 0.75))  # beta = 1 - 1/4


def test_edgesnn_files_in_spyx_give_edgesnn_spikes_in_spyx_form():
    # Spyx's importer keeps thresholds, taus (beta = 1 - dt/tau) and weights and ignores the rest
    # (r, w_in, v_leak, reset mode, Delay nodes: its own neurons emit a step late): models written
    # in Spyx's form come back spike for spike; others do not.
    for name, model in esnn_models().items():
        data = load(f"spyx_esnn_{name}")
        assert_models_equal(read_nir(DATA / f"spyx_esnn_{name}.nir"), model, producer=False)
        ours = model.session().run(data["x"])[model.graph.outputs[0]]
        if name == "plain":  # reset to v_reset at once, no late spikes, a leak to v_leak
            assert np.sum(ours != data["y"]) > 10
        else:
            assert 0 < data["y"].sum() < 0.9 * data["y"].size
            np.testing.assert_array_equal(ours, data["y"], err_msg=name)


def spyx_warning(model, caplog) -> str:
    """What the export says Spyx's importer would read differently ("" when nothing)."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, "edgesnn.bundle.nir"):
        to_nir(model)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Spyx 1.0 from_nir")]
    return lines[0] if lines else ""


def test_export_warns_of_what_spyx_would_read_differently(caplog):
    # The models Spyx runs as edgesnn does (previous test) need only the dt passed to from_nir;
    # the one it runs differently is warned about, each difference named.
    models = esnn_models()
    for name in ("dense", "recurrent"):
        assert spyx_warning(models[name], caplog).endswith(
            "would read this differently: needs from_nir(..., dt=0.001) (default 1)"
        ), name
    said = spyx_warning(models["plain"], caplog)
    for part in (
        "lif: v_leak ignored (read as 0)",
        "lif: reset to v_reset read as subtract",
        "lif: spikes leave one step later in Spyx (no Delay of dt after it here)",
    ):
        assert part in said
    # A recurrent IF loop (Spyx's own RIF, as edgesnn writes it) is the one Spyx's walk never leaves.
    said = spyx_warning(read_nir(DATA / "spyx_recurrent.nir", profile="spyx", dt_s=ESNN_DT), caplog)
    assert "loop layer_5.layer_5.lif <-> layer_5.layer_5.w_rec not folded" in said
    assert LIMITS["spyx_imported"]["spyx_roundtrip_recurrent"].startswith("spyx.nir.from_nir did not return")


@pytest.mark.parametrize("net", NETS)
def test_round_trip_through_edgesnn(net, caplog):
    # edgesnn keeps what it read (its own file, profile "nir", gives the same model back) ...
    model = read_nir(DATA / f"spyx_{net}.nir", profile="spyx", dt_s=ESNN_DT)
    assert_models_equal(read_nir(DATA / f"spyx_roundtrip_{net}.nir"), model, producer=False)
    verdict = LIMITS["spyx_imported"][f"spyx_roundtrip_{net}"]
    # ... and Spyx's importer runs it as Spyx ran the original, except where Spyx's importer
    # departs from its own exporter.
    if net == "recurrent":
        # edgesnn writes RIF's loop flat (IF <-> Linear); Spyx folds only LIF and CubaLIF loops
        # back into recurrent layers, and its edge walk goes round the IF loop for ever.
        assert verdict.startswith("spyx.nir.from_nir did not return")
        return
    y = load(f"spyx_roundtrip_{net}")["y"]
    original = load(f"spyx_{net}")
    if net == "conv":
        # Spyx reads a Linear after a Flatten in its own channels-last order; edgesnn writes NIR's.
        assert np.sum(y != original[spyx_layers(original)[-1]]) > 0
        assert "Flatten of feature maps read channels-last" in spyx_warning(model, caplog)
    else:
        np.testing.assert_array_equal(y, original[spyx_layers(original)[-1]])
