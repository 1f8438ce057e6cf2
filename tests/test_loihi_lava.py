"""The runtime's Loihi numerics against Lava itself (lava-nc 0.10.0 in the bridge venv).

fixed_pt: Lava's bit-accurate process models must give identical spike trains and
readout voltages, and, for networks given in Lava's own integers, identical ``u`` and
``v`` after every step. floating_pt: Lava's float64 models must give the float runtime's
spikes (of the cascade form, which Lava's CUBA update is), shifted by each layer's latency
(Lava delivers every connection one step late); readout voltages agree to float32
rounding (the runtime computes in float32).
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import pytest

from edgesnn.graph import Affine, CubaLIF, Graph, Input, Linear, Output
from edgesnn.loihi import Connection, LoihiNetwork, NeuronLayer, cascade_method, quantize, to_model
from edgesnn.model import Model
from tests.loihi_helpers import bernoulli, conv_model, lava_simulate
from tools.bench.workloads import w1, w2

STEPS = 60


def _biased_cuba_model() -> Model:
    """12 spikes -> Affine with a bias -> 10 CubaLIF: the bias reaches v through the synapse."""
    rng = np.random.default_rng(3)
    nodes = {
        "in": Input((12,)),
        "fc": Affine((0.8 * rng.standard_normal((10, 12))).astype(np.float32),
                     rng.uniform(0, 0.4, 10).astype(np.float32)),
        "cuba": CubaLIF.uniform(10, tau_syn_s=4e-3, tau_mem_s=15e-3, r=1.0, v_leak=0.0, v_threshold=0.6, v_reset=0.0,
                                w_in=1.0),
        "fc_out": Linear((0.5 * rng.standard_normal((3, 10))).astype(np.float32)),
        "cuba_out": CubaLIF.uniform(3, tau_syn_s=4e-3, tau_mem_s=15e-3, r=1.0, v_leak=0.0, v_threshold=0.3,
                                    v_reset=0.0, w_in=1.0),
        "out": Output((3,)),
    }  # fmt: skip
    edges = (("in", "fc"), ("fc", "cuba"), ("cuba", "fc_out"), ("fc_out", "cuba_out"), ("cuba_out", "out"))
    return Model(Graph(nodes, edges), 1e-3)


def _case(name: str):
    if name == "conv":
        return conv_model(), bernoulli((2, 12, 12), STEPS, 0.1)
    if name == "options":  # finest thresholds, 6-bit weights, a bias through a synapse
        model = _biased_cuba_model()
        net = quantize(model, vth_bits=16, num_weight_bits=6)
        return dataclasses.replace(model, loihi=net), bernoulli((12,), STEPS, 0.3)
    wl = {"W1": w1, "W2": w2}[name](np.random.default_rng(0))
    return wl.model, wl.inputs(np.random.default_rng(1), steps=STEPS)[:, 0]


@pytest.mark.parametrize("name", ["W1", "W2", "conv", "options"])
def test_fixed_point_is_bit_exact_with_lava(name: str, tmp_path: pathlib.Path) -> None:
    model, xs = _case(name)
    net = model.loihi or quantize(model)
    layers = list(net.neurons)
    lava = lava_simulate(tmp_path, model, {"in": xs}, "fixed_pt")
    ours = model.session(numerics="loihi").run(xs[:, None], outputs=layers)
    for layer in layers:
        np.testing.assert_array_equal(ours[layer][:, 0], lava[layer], err_msg=layer)
    assert any(np.any(lava[n]) for n in layers if net.neurons[n].spiking)  # the test sees spikes


def test_quantiser_options_reach_lava() -> None:
    net = _case("options")[0].loihi
    assert all(1 << 16 <= layer.vth <= (1 << 17) - 1 for layer in net.neurons.values())
    assert all(c.num_weight_bits == 6 for c in net.connections.values())
    assert np.any(net.neurons["cuba"].u_init)  # the synapse's bias start, which Lava must run too


@pytest.mark.parametrize("name", ["W1", "conv"])
def test_floating_point_matches_float_runtime_after_lavas_delay(name: str, tmp_path: pathlib.Path) -> None:
    model, xs = _case(name)
    net = quantize(model)
    lava = lava_simulate(tmp_path, model, {"in": xs}, "floating_pt")
    cascade = dataclasses.replace(model, method=cascade_method(model.method))  # Lava's CUBA update
    ref = cascade.session().run(xs[:, None], outputs=list(net.neurons))
    for layer, lag in net.latency().items():
        want, got = ref[layer][: STEPS - lag, 0], lava[layer][lag:]
        if net.neurons[layer].spiking:
            np.testing.assert_array_equal(got, want, err_msg=layer)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=layer)


def lava_users_network(rng: np.random.Generator) -> LoihiNetwork:
    """A network as a Lava user writes it: Lava's own integers, the corners of their ranges."""
    mixed_odd = rng.integers(-300, 300, (10, 20))  # clipped to [-256, 255], then truncated to 6 bits
    sparse = np.zeros((5, 20), np.int64)
    sparse[0, 3], sparse[2, 7], sparse[4, 1] = 255, 200, 17  # 3 % dense: Lava's Sparse
    layers = [
        # threshold 100 (6400 in v), a synapse, a bias and exponent per neuron, a start for u and v
        NeuronLayer(node="a", shape=(10,), du=300, dv=100, vth=100, bias_mant=rng.integers(-4096, 4096, 10),
                    bias_exp=rng.integers(0, 8, 10), u_init=rng.integers(-1000, 1000, 10),
                    v_init=rng.integers(-5000, 5000, 10)),
        # threshold 100000 (6.4e6 in v, near the 24-bit limit), no synapse, no leak: v saturates
        NeuronLayer(node="b", shape=(6,), du=4095, dv=0, vth=100_000),
        # weight exponents 12 and 14: u wraps far past 24 bits and v saturates at -(2**23 - 1)
        NeuronLayer(node="c", shape=(5,), du=10, dv=4095, vth=50_000, bias_mant=100, bias_exp=7),
        NeuronLayer(node="d", shape=(4,), du=2000, dv=50, vth=(1 << 17) - 1, spiking=False),
        NeuronLayer(node="cv", shape=(3, 4, 4), du=1000, dv=500, vth=300, bias_mant=np.arange(48) - 24, bias_exp=2),
    ]  # fmt: skip
    conns = [
        Connection(node="in_a", source="in", target="a", weight=mixed_odd, weight_exp=-3, num_weight_bits=6,
                   sign_mode="mixed"),
        Connection(node="a_a", source="a", target="a", weight=rng.integers(-50, 50, (10, 10))),
        Connection(node="in_b", source="in", target="b", weight=rng.integers(0, 400, (6, 20)), weight_exp=5,
                   sign_mode="excitatory"),
        Connection(node="a_c", source="a", target="c", weight=-rng.integers(0, 256, (5, 10)), weight_exp=12,
                   num_weight_bits=6, sign_mode="inhibitory"),
        Connection(node="in_c", source="in", target="c", weight=sparse, weight_exp=14),
        Connection(node="b_d", source="b", target="d", weight=rng.integers(-256, 256, (4, 6)), weight_exp=-7),
        Connection(node="c_d", source="c", target="d", weight=rng.integers(-256, 256, (4, 5)), weight_exp=31),
        Connection(node="img_cv", source="img", target="cv", kind="conv", weight=rng.integers(-256, 256, (3, 2, 3, 3)),
                   stride=(2, 2), padding=(1, 1)),
        Connection(node="cv_d", source="cv", target="d", weight=rng.integers(-256, 256, (4, 48)), weight_exp=-31),
    ]  # fmt: skip
    return LoihiNetwork(dt_s=1e-3, inputs={"in": (20,), "img": (2, 8, 8)}, neurons=layers, connections=conns,
                        outputs={"out_d": "d", "out_cv": "cv"})  # fmt: skip


def test_a_lava_network_runs_bit_exact_spikes_u_and_v(tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(0)
    model = to_model(lava_users_network(rng))
    xs = {"in": bernoulli((20,), 40, 0.5, seed=2), "img": bernoulli((2, 8, 8), 40, 0.3, seed=3)}
    lava = lava_simulate(tmp_path, model, xs, "fixed_pt", record_state=True)
    names = [f"{n}{k}" for n in model.loihi.neurons for k in ("", "/u", "/v")]
    ours = model.session(numerics="loihi").run({k: v[:, None] for k, v in xs.items()}, outputs=names)
    for name in names:
        np.testing.assert_array_equal(ours[name][:, 0], lava[name], err_msg=name)
    assert ours["a/u"].dtype == np.int32
    # The corners were reached: u beyond 24 bits (Lava folds it only once), v at its limit, spikes at both thresholds.
    assert np.abs(lava["c/u"]).max() > 1 << 30 and lava["c/v"].min() == -(1 << 23) + 1
    assert lava["a"].any() and lava["b"].any() and lava["cv"].any()
