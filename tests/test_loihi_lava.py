"""The runtime's Loihi numerics against Lava itself (lava-nc 0.10.0 in the bridge venv).

fixed_pt: Lava's bit-accurate process models must give identical spike trains and
readout voltages. floating_pt: Lava's float64 models must give the float runtime's
spikes, shifted by each layer's latency (Lava delivers every connection one step late);
readout voltages agree to float32 rounding (the runtime computes in float32).
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from edgesnn.loihi import quantize
from tests.loihi_helpers import bernoulli, conv_model, lava_simulate
from tools.bench.workloads import w1, w2

STEPS = 60


def _case(name: str):
    if name == "conv":
        return conv_model(), bernoulli((2, 12, 12), STEPS, 0.1)
    wl = {"W1": w1, "W2": w2}[name](np.random.default_rng(0))
    return wl.model, wl.inputs(np.random.default_rng(1), steps=STEPS)[:, 0]


@pytest.mark.parametrize("name", ["W1", "W2", "conv"])
def test_fixed_point_is_bit_exact_with_lava(name: str, tmp_path: pathlib.Path) -> None:
    model, xs = _case(name)
    layers = list(quantize(model).neurons)
    lava = lava_simulate(tmp_path, model, {"in": xs}, "fixed_pt")
    ours = model.session(numerics="loihi").run(xs[:, None], outputs=layers)
    for layer in layers:
        np.testing.assert_array_equal(ours[layer][:, 0], lava[layer], err_msg=layer)
    assert any(np.any(lava[n]) for n in layers if quantize(model).neurons[n].spiking)  # the test sees spikes


@pytest.mark.parametrize("name", ["W1", "conv"])
def test_floating_point_matches_float_runtime_after_lavas_delay(name: str, tmp_path: pathlib.Path) -> None:
    model, xs = _case(name)
    net = quantize(model)
    lava = lava_simulate(tmp_path, model, {"in": xs}, "floating_pt")
    ref = model.session().run(xs[:, None], outputs=list(net.neurons))
    for layer, lag in net.latency().items():
        want, got = ref[layer][: STEPS - lag, 0], lava[layer][lag:]
        if net.neurons[layer].spiking:
            np.testing.assert_array_equal(got, want, err_msg=layer)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=layer)
