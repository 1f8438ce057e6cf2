"""Loihi fixed-point numerics in the runtime: the integer update, the session option, quantisation."""

from __future__ import annotations

import numpy as np
import pytest

from edgesnn.engine import SessionOptions
from edgesnn.errors import InputError, OptionError, UnsupportedError
from edgesnn.graph import LIF, AdaptiveLIF, Graph, Input, Linear, Output
from edgesnn.loihi import fixed, quantization_report, quantize
from edgesnn.model import Model
from tests.conformance._models import small_model, spikes
from tests.loihi_helpers import bernoulli, conv_model


def test_cuba_step_follows_lavas_integer_update() -> None:
    u = np.array([1000, -1000, 0, (1 << 23) - 10], np.int32)
    v = np.array([5000, -5000, 70000, 0], np.int32)
    a = np.array([3, -3, 0, 1], np.int32)
    u2, v2, z = fixed.cuba_step(u, v, a, du=1023, dv=512, vth=1000, bias=np.zeros(4, np.int64))
    # current: toward-zero decay by 3072/4096, plus a << 6; the last one wraps past 2**23
    np.testing.assert_array_equal(u2, [750 + 192, -750 - 192, 0, ((1 << 23) - 10) * 3072 // 4096 + 64])
    volt = np.array([5000 * 3584 // 4096 + 942, -(5000 * 3584 // 4096) - 942, 70000 * 3584 // 4096, u2[3]])
    np.testing.assert_array_equal(z, volt > 1000 << 6)
    np.testing.assert_array_equal(v2, np.where(z, 0, volt))


def test_current_wraps_and_voltage_saturates() -> None:
    low = np.array([-(1 << 23) + 1], np.int32)
    u2, v2, _ = fixed.cuba_step(low, low, np.array([-(1 << 10)], np.int32), du=4095, dv=0, vth=fixed.MAX_VTH,
                                bias=np.zeros(1, np.int64))  # fmt: skip
    assert u2[0] == -(1 << 16) and v2[0] == -(1 << 23) + 1  # u = a << 6 (du 4095 clears it); v saturates
    wrapped = fixed.wrap24_once(np.array([(1 << 23) + 5, -(1 << 23)]))
    np.testing.assert_array_equal(wrapped, [-(1 << 23) + 5, 1 << 23])


def test_dense_shift_rounds_toward_minus_infinity() -> None:
    np.testing.assert_array_equal(fixed.shift(np.array([5, -5]), -1), [2, -3])
    np.testing.assert_array_equal(fixed.shift(np.array([5, -5]), 2), [20, -20])


def test_quantize_reports_the_integer_program() -> None:
    net = quantize(small_model())
    lif, li = net.neurons["lif"], net.neurons["li"]
    assert lif.du == 4095 and lif.dv == round(4096 * (1 - np.exp(-1 / 20)))  # LIF: no synaptic current
    assert 1024 <= lif.vth <= 2048 and lif.vth << 6 == 1 << lif.scale_exp  # threshold 1.0 exactly
    assert li.vth == fixed.MAX_VTH and not li.spiking
    for c in net.connections.values():
        assert c.weight.dtype == np.int32 and -256 <= c.weight.min() and c.weight.max() <= 255
        if c.weight.min() < 0 < c.weight.max():
            assert np.all(c.weight % 2 == 0)  # mixed-sign mantissas survive Lava's truncation
    assert net.connections["fc_rec"].carried and not net.connections["fc_in"].carried
    assert net.latency() == {"lif": 1, "li": 2}


def test_loihi_session_steps_integers_and_matches_float_closely() -> None:
    model = small_model()
    xs = spikes(60)
    s = model.session(options=SessionOptions(numerics="loihi"))
    out = s.run(xs, outputs=["lif", "li", "out"])
    assert set(np.unique(out["lif"])) <= {0.0, 1.0}
    scale = 2.0 ** quantize(model).neurons["li"].scale_exp
    np.testing.assert_array_equal(out["out"] * scale, np.rint(out["out"] * scale))  # integer voltages
    report = quantization_report(model, xs)
    lif = next(layer for layer in report.layers if layer.node == "lif")
    assert lif.spike_agreement > 0.9 and max(lif.weight_rms_rel.values()) < 0.05
    assert report.to_dict()["layers"][0]["node"] == "lif"


def test_native_backend_runs_loihi_ops_through_numpy() -> None:
    model = conv_model()
    xs = bernoulli((2, 12, 12), 20, 0.1)[:, None]
    native = model.session(numerics="loihi").run(xs, outputs=["lif1", "cuba", "li"])
    ref = model.session(options=SessionOptions(backends=("numpy",), numerics="loihi")).run(
        xs, outputs=["lif1", "cuba", "li"]
    )
    for k in native:
        np.testing.assert_array_equal(native[k], ref[k])


def test_state_round_trips_and_batches_are_independent() -> None:
    model = small_model()
    xs = spikes(30, batch=2)
    s = model.session(batch=2, numerics="loihi")
    s.run(xs[:10])
    saved = s.state()
    a = s.run(xs[10:])["out"]
    s.load_state(saved)
    np.testing.assert_array_equal(s.run(xs[10:])["out"], a)
    one = model.session(numerics="loihi").run(xs[:, 1:2])["out"]
    s.reset()
    np.testing.assert_array_equal(s.run(xs)["out"][:, 1:2], one)
    with pytest.raises(Exception, match="state"):
        model.session(batch=2).load_state(saved)  # float session: other state arrays


def _one_layer(neuron) -> Model:  # noqa: ANN001
    nodes = {"in": Input((3,)), "fc": Linear(np.ones((2, 3), np.float32)), "n": neuron, "out": Output((2,))}
    return Model(Graph(nodes, (("in", "fc"), ("fc", "n"), ("n", "out"))), 1e-3)


def test_unsupported_models_and_inputs_fail_clearly() -> None:
    with pytest.raises(OptionError, match="numerics"):
        SessionOptions(numerics="posit")
    adaptive = _one_layer(AdaptiveLIF.uniform(2, tau_mem_s=0.02, tau_adapt_s=0.1, v_threshold=1.0))
    with pytest.raises(UnsupportedError, match="n: adaptive"):
        adaptive.session(numerics="loihi")
    subtract = _one_layer(LIF.uniform(2, tau_mem_s=0.02, v_threshold=1.0, reset_mode="subtract"))
    with pytest.raises(UnsupportedError, match="resets to 0"):
        quantize(subtract)
    held = _one_layer(LIF.uniform(2, tau_mem_s=0.02, v_threshold=1.0, min_spike_interval_s=4e-3))
    with pytest.raises(UnsupportedError, match="n: Loihi's CUBA LIF has no minimum spike interval"):
        quantize(held)
    s = small_model().session(numerics="loihi")
    with pytest.raises(InputError, match="binary spikes"):
        s.step(np.full((1, 12), 0.5, np.float32))
