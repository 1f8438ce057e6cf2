"""Loihi integer networks built in Lava's own terms: validation, Lava's weight storage, running, recording, saving."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest

from edgesnn.bundle import read_bundle, write_bundle
from edgesnn.errors import BundleValidationError, GraphError, NodeValidationError, OptionError, UnsupportedError
from edgesnn.graph import IF, LIF, Affine, CubaLIF, Graph, Input, Output
from edgesnn.loihi import (
    Connection,
    LoihiNetwork,
    NeuronLayer,
    fixed,
    quantization_report,
    quantize,
    to_model,
)
from edgesnn.model import Model
from tests.loihi_helpers import bernoulli


def lif(**kw) -> NeuronLayer:
    return NeuronLayer(**{"node": "lif", "shape": (4,), "du": 4095, "dv": 200, "vth": 100, **kw})


def dense(weight, **kw) -> Connection:  # noqa: ANN001
    return Connection(**{"node": "fc", "source": "in", "target": "lif", "weight": weight, **kw})


def network(layer: NeuronLayer | None = None, conn: Connection | None = None) -> LoihiNetwork:
    conn = conn or dense(np.full((4, 6), 40))
    return LoihiNetwork(dt_s=1e-3, inputs={"in": (6,)}, neurons=[layer or lif()], connections=[conn])


# -- Lava's weight storage ----------------------------------------------------------
def test_lava_stores_weights_clipped_and_truncated_per_sign_mode() -> None:
    w = np.array([[127, -127, 300, -300, 5, -5]])
    # mixed, 8 bits: [-256, 255], the lowest bit dropped (toward minus infinity)
    assert fixed.lava_weights(w, "mixed", 8).tolist() == [[126, -128, 254, -256, 4, -6]]
    # mixed, 6 bits: multiples of 8
    assert fixed.lava_weights(w, "mixed", 6).tolist() == [[120, -128, 248, -256, 0, -8]]
    # excitatory (and null), 6 bits: [0, 255] in multiples of 4
    assert fixed.lava_weights(w, "excitatory", 6).tolist() == [[124, 0, 252, 0, 4, 0]]
    assert fixed.lava_weights(w, "null", 6).tolist() == fixed.lava_weights(w, "excitatory", 6).tolist()
    # inhibitory, 8 bits: [-255, 0], the magnitude truncated
    assert fixed.lava_weights(w, "inhibitory", 8).tolist() == [[0, -127, 0, -255, 0, -5]]
    assert fixed.lava_weights(w, "inhibitory", 6).tolist() == [[0, -124, 0, -252, 0, -4]]
    # no sign mode: Lava picks it from the weights
    assert fixed.sign_mode_of(np.array([0, 3])) == "excitatory"
    assert fixed.sign_mode_of(np.array([0, -3])) == "inhibitory"
    assert dense(w).lava_weight.tolist() == fixed.lava_weights(w, "mixed", 8).tolist()


def test_the_engine_sums_the_stored_weights_and_shifts_the_sum() -> None:
    # One input always on: the message is floor(sum of stored weights * 2**weight_exp); u = message << 6 (du 4095).
    w = np.array([[127], [-127], [7], [-7]])
    net = LoihiNetwork(dt_s=1e-3, inputs={"in": (1,)}, neurons=[lif(vth=fixed.MAX_VTH)],
                       connections=[dense(w, weight_exp=-2)])  # fmt: skip
    u = to_model(net).session(numerics="loihi").run(np.ones((3, 1, 1), np.float32), outputs=["lif/u"])["lif/u"]
    stored = np.array([126, -128, 6, -8])  # mixed: even
    np.testing.assert_array_equal(u[1, 0], (stored >> 2) << 6)  # one step late, as Lava delivers it
    assert not np.any(u[0])


# -- validation ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: lif(vth=1 << 17), r"lif/vth: expected an integer in \[0, 131071\]"),
        (lambda: lif(du=4096), r"lif/du: expected an integer in \[0, 4095\]"),
        (lambda: lif(bias_mant=[0, 0, 5000, 0]), r"lif/bias_mant: expected integers in \[-4096, 4095\]"),
        (lambda: lif(bias_exp=8), r"lif/bias_exp: expected integers in \[0, 7\]"),
        (lambda: lif(v_init=[0.5, 0, 0, 0]), "lif/v_init: expected integers"),
        (lambda: lif(u_init=np.zeros(5)), r"lif/u_init: expected a scalar, shape \(4,\) or \(4,\)"),
        (lambda: lif(v_init=1 << 23), r"lif/v_init: expected integers in \[-8388607, 8388607\]"),
        (lambda: dense(np.ones((4, 6)), weight_exp=32), r"fc/weight_exp: expected an integer in \[-31, 31\]"),
        (lambda: dense(np.ones((4, 6)), num_weight_bits=9), r"fc/num_weight_bits: expected an integer in \[1, 8\]"),
        (lambda: dense(np.ones((4, 6)), sign_mode="both"), "fc/sign_mode: expected one of null, mixed"),
        (lambda: dense(np.ones((4, 6, 1))), r"fc/weight: expected a \(n_out, n_in\) array"),
        (lambda: Connection(node="cv", source="in", target="lif", kind="conv", weight=np.ones((1, 1, 3, 3)),
                            weight_exp=2), "cv/weight_exp: Lava's fixed-point Conv applies no weight_exp"),
        (lambda: network(conn=dense(np.ones((4, 5)))), r"fc/weight: weight \(4, 5\) reads 5 inputs; 'in' has 6"),
        (lambda: network(conn=dense(np.ones((4, 6)), target="nope")), "fc/target: drives 'nope'"),
    ],
)  # fmt: skip
def test_out_of_range_values_are_refused_by_field(make, match: str) -> None:  # noqa: ANN001
    with pytest.raises((NodeValidationError, GraphError), match=match):
        make()


def test_mixed_signs_may_keep_nine_bits_as_lava_and_netx_do() -> None:
    c = dense(np.array([[201, -3]]), num_weight_bits=9)  # mixed: no bit dropped
    assert c.lava_weight.tolist() == [[201, -3]]


# -- the float model and running it ---------------------------------------------------
def test_to_model_gives_the_float_graph_and_runs_the_integers_as_they_are() -> None:
    rng = np.random.default_rng(0)
    net = LoihiNetwork(
        dt_s=1e-3, inputs={"in": (6,)},
        neurons=[lif(du=300, bias_mant=rng.integers(-200, 200, 4), bias_exp=2, u_init=[5, -5, 0, 0]),
                 NeuronLayer(node="ro", shape=(2,), du=4095, dv=10, vth=fixed.MAX_VTH, spiking=False)],
        connections=[dense(rng.integers(-256, 256, (4, 6)), weight_exp=-1, num_weight_bits=7),
                     Connection(node="rec", source="lif", target="lif", weight=rng.integers(-60, 60, (4, 4))),
                     Connection(node="out_fc", source="lif", target="ro", weight=rng.integers(0, 200, (2, 4)))],
    )  # fmt: skip
    assert net.connections["rec"].carried and not net.connections["fc"].carried
    assert net.outputs == {"out": "ro"} and net.latency() == {"lif": 1, "ro": 2}
    model = to_model(net)
    assert isinstance(model.graph.nodes["lif"], CubaLIF) and model.loihi is net
    assert [s.name for s in model.outputs] == ["out"] and model.outputs[0].shape == (2,)
    xs = bernoulli((6,), 30, 0.4)[:, None]
    s = model.session(numerics="loihi")
    assert {"lif/u", "lif/v", "lif/u_float", "lif/v_float", "ro/v"} <= set(s.recordable)
    out = s.run(xs, outputs=["lif", "lif/u", "lif/v", "lif/u_float", "lif/v_float", "out"])
    assert out["lif/u"].dtype == np.int32 and out["lif/u_float"].dtype == np.float32
    np.testing.assert_array_equal(out["lif/u_float"], out["lif/u"] * 2.0**-6)  # scale_exp 6
    np.testing.assert_array_equal(out["lif/v_float"], out["lif/v"] * 2.0**-6)
    # The first step: u decays from u_init, v gets u and the bias (no input has arrived yet).
    u0 = fixed.decay(np.array([5, -5, 0, 0]), 4096 - 301)
    np.testing.assert_array_equal(out["lif/u"][0, 0], u0)
    np.testing.assert_array_equal(out["lif/v"][0, 0], u0 + net.neurons["lif"].bias)
    assert out["lif"].any() and out["out"].any()
    step = model.session(numerics="loihi")
    for t in range(5):
        got = step.step(xs[t], outputs=["lif/v"])
    np.testing.assert_array_equal(got["lif/v"], out["lif/v"][4])


def test_the_float_equivalent_of_an_integrate_and_fire_layer_is_exact_after_lavas_delay() -> None:
    # du 4095, dv 0, no bias: IF; with weights at exponent 0 nothing rounds, so only Lava's one-step delay differs.
    rng = np.random.default_rng(1)
    net = network(lif(dv=0, vth=300), dense(rng.integers(0, 256, (4, 6)), sign_mode="excitatory"))
    model = to_model(net)
    assert isinstance(model.graph.nodes["lif"], IF)
    xs = bernoulli((6,), 40, 0.5)[:, None]
    ref = model.session().run(xs, outputs=["lif"])["lif"]
    got = model.session(numerics="loihi").run(xs, outputs=["lif"])["lif"]
    assert got.any()
    np.testing.assert_array_equal(got[1:], ref[:-1])


def test_an_integer_network_is_not_run_at_another_step() -> None:
    model = to_model(network())
    model.session(dt=2e-3)  # float numerics retime the float graph
    with pytest.raises(UnsupportedError, match="dt: the model's Loihi network was made for a step of 0.001 s"):
        model.session(dt=2e-3, numerics="loihi")


def test_a_network_that_is_not_the_graphs_is_refused() -> None:
    model = to_model(network())
    other = LoihiNetwork(dt_s=1e-3, inputs={"in": (6,)}, neurons=[lif(node="x")],
                         connections=[dense(np.ones((4, 6)), target="x")])  # fmt: skip
    with pytest.raises(GraphError, match="x: the Loihi network has a layer 'x'"):
        dataclasses.replace(model, loihi=other).session(numerics="loihi")


# -- saving ---------------------------------------------------------------------------
def test_a_bundle_keeps_the_integer_network() -> None:
    rng = np.random.default_rng(2)
    net = network(
        lif(du=50, bias_mant=rng.integers(-4096, 4096, 4), bias_exp=[0, 3, 5, 7], u_init=-9, v_init=11),
        dense(rng.integers(-1000, 1000, (4, 6)), weight_exp=-9, num_weight_bits=5, sign_mode="mixed"),
    )
    buf = io.BytesIO()
    write_bundle(to_model(net), buf)
    back = read_bundle(io.BytesIO(buf.getvalue())).loihi
    la, lb = net.neurons["lif"], back.neurons["lif"]
    for field in ("du", "dv", "vth", "scale_exp", "spiking"):
        assert getattr(la, field) == getattr(lb, field), field
    for field in ("bias_mant", "bias_exp", "u_init", "v_init"):
        np.testing.assert_array_equal(getattr(la, field), getattr(lb, field), err_msg=field)
    ca, cb = net.connections["fc"], back.connections["fc"]
    np.testing.assert_array_equal(ca.weight, cb.weight)  # as given: Lava clips and truncates when it runs
    assert (ca.weight_exp, ca.num_weight_bits, ca.sign_mode) == (cb.weight_exp, cb.num_weight_bits, cb.sign_mode)


def test_a_bundle_with_a_bad_network_names_the_field() -> None:
    import json
    import zipfile

    buf = io.BytesIO()
    write_bundle(to_model(network()), buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    doc = json.loads(src.read("manifest.json"))
    doc["loihi"]["neurons"]["lif"]["vth"] = 1 << 20
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, json.dumps(doc) if info.filename == "manifest.json" else src.read(info))
    with pytest.raises(BundleValidationError, match=r"loihi/neurons/lif/vth: expected an integer in \[0, 131071\]"):
        read_bundle(io.BytesIO(out.getvalue()))


# -- quantising float models ----------------------------------------------------------
def _biased_cuba() -> Model:
    nodes = {
        "in": Input((3,)),
        "fc": Affine(np.full((2, 3), 0.5, np.float32), np.array([0.3, 0.1], np.float32)),
        "cuba": CubaLIF.uniform(2, tau_syn_s=5e-3, tau_mem_s=20e-3, r=1.0, v_leak=0.0, v_threshold=1.0, v_reset=0.0,
                                w_in=1.0),
        "out": Output((2,)),
    }  # fmt: skip
    return Model(Graph(nodes, (("in", "fc"), ("fc", "cuba"), ("cuba", "out"))), 1e-3, method="cascade")


def test_a_bias_through_a_synapse_starts_the_current_so_lava_follows_its_rise() -> None:
    model = _biased_cuba()
    net = quantize(model)
    assert np.all(net.neurons["cuba"].u_init < 0)
    xs = np.zeros((80, 1, 3), np.float32)  # the bias alone: no delay involved
    ref = model.session().run(xs, outputs=["cuba/v"])["cuba/v"]
    got = model.session(numerics="loihi").run(xs, outputs=["cuba/v_float"])["cuba/v_float"]
    np.testing.assert_allclose(got, ref, atol=2e-3)
    assert np.all(ref[0] < 0.2 * ref[-1])  # the rise is there to follow
    # Without the start of the current, Lava's v would jump to the bias's steady state.
    layer = dataclasses.replace(net.neurons["cuba"], u_init=0)
    plain = dataclasses.replace(model, loihi=dataclasses.replace(net, neurons={"cuba": layer}))
    naive = plain.session(numerics="loihi").run(xs, outputs=["cuba/v_float"])["cuba/v_float"]
    assert np.abs(naive - ref).max() > 10 * 2e-3


def test_quantiser_options_and_what_the_report_says_it_chose() -> None:
    model = _biased_cuba()
    fine = quantize(model, vth_bits=16, num_weight_bits=6)
    assert 1 << 16 <= fine.neurons["cuba"].vth <= fixed.MAX_VTH
    c = fine.connections["fc"]
    assert c.num_weight_bits == 6 and c.sign_mode == "excitatory" and np.all(c.weight % 4 == 0)
    assert quantize(model, weight_exp=0).connections["fc"].weight_exp == 0
    report = quantization_report(model, vth_bits=16, num_weight_bits=6)
    layer = report.layers[0]
    assert (layer.vth, layer.scale_exp) == (fine.neurons["cuba"].vth, fine.neurons["cuba"].scale_exp)
    assert layer.num_weight_bits == {"fc": 6} and layer.sign_mode == {"fc": "excitatory"}
    assert report.discretisation == "cascade" and report.to_dict()["model_method"] == "cascade"
    with pytest.raises(OptionError, match=r"num_weight_bits: expected an integer in \[1, 8\]"):
        quantize(model, num_weight_bits=9)
    with pytest.raises(OptionError, match=r"vth_bits: expected an integer in \[0, 16\]"):
        quantize(model, vth_bits=17)


def test_a_zoh_model_is_quantised_through_its_cascade() -> None:
    model = dataclasses.replace(_biased_cuba(), method="zoh")
    report = quantization_report(model)
    assert (report.model_method, report.discretisation) == ("zoh", "cascade")
    cascade = quantize(dataclasses.replace(model, method="cascade"))
    assert quantize(model).neurons["cuba"].du == cascade.neurons["cuba"].du


def test_mixed_sign_mantissas_round_to_what_lava_keeps() -> None:
    nodes = {"in": Input((2,)), "fc": Affine(np.array([[1.0, -0.5]], np.float32), np.zeros(1, np.float32)),
             "lif": LIF.uniform(1, tau_mem_s=0.02, v_threshold=1.0), "out": Output((1,))}  # fmt: skip
    model = Model(Graph(nodes, (("in", "fc"), ("fc", "lif"), ("lif", "out"))), 1e-3)
    for bits in (8, 6):
        c = quantize(model, num_weight_bits=bits).connections["fc"]
        np.testing.assert_array_equal(c.lava_weight, c.weight)  # Lava's truncation leaves them as they are
        assert np.all(c.weight % (1 << (9 - bits)) == 0)


def test_the_digest_of_a_network_tells_its_integers_apart() -> None:
    from edgesnn.loihi.serialize import network_digest

    base = network()
    assert network_digest(base) == network_digest(network())
    assert network_digest(base) != network_digest(network(lif(vth=101)))
    assert network_digest(base) != network_digest(network(conn=dense(np.full((4, 6), 40), num_weight_bits=7)))
