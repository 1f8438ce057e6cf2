"""The Loihi 2 bridge process serves real Lava runs to RemoteDevice over the DeviceService."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import numpy as np
import pytest

import edgesnn
from edgesnn.errors import InputError, UnsupportedError
from edgesnn.loihi import Connection, LoihiNetwork, NeuronLayer, to_model
from tests.conformance._models import small_model, spikes
from tests.loihi_helpers import ROOT, bernoulli, bundle_bytes, conv_model, require_bridge


@pytest.fixture(scope="module")
def bridge() -> Iterator[str]:
    python = require_bridge()
    proc = subprocess.Popen([str(python), "-m", "firmware_bridges.loihi2", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening "), f"bridge did not start: {line!r}"
        yield f"127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stdout.close()


def test_capabilities_say_simulated_loihi(bridge: str) -> None:
    with edgesnn.connect(bridge) as dev:
        caps = dev.capabilities()
    assert caps.device_kind == "loihi2" and caps.simulated and caps.numerics == "loihi-fixed"
    assert "CubaLIF" in caps.neuron_models and caps.learning  # on Lava's learning engine (test_loihi_learn_rpc.py)


@pytest.mark.parametrize("make", [small_model, conv_model], ids=["recurrent", "conv"])
def test_served_lava_steps_equal_runtime_loihi_numerics(bridge: str, make) -> None:
    model = make()
    xs = spikes(25) if make is small_model else bernoulli((2, 12, 12), 25, 0.1)[:, None]
    ref = model.session(numerics="loihi")
    with edgesnn.connect(bridge) as dev:
        with dev.open_session(dev.load_model(bundle_bytes(model))) as s:
            assert s.backend == "lava-sim-fixed_pt"
            for t in range(15):
                got, want = s.step(xs[t]), ref.step(xs[t])
                np.testing.assert_array_equal(got["out"], want["out"])
            np.testing.assert_array_equal(s.run(xs[15:])["out"], ref.run(xs[15:])["out"])


def test_state_moves_between_lava_and_the_runtime(bridge: str) -> None:
    model, xs = small_model(), spikes(30)
    with edgesnn.connect(bridge) as dev:
        with dev.open_session(dev.load_model(bundle_bytes(model))) as s:
            s.run(xs[:10])
            saved = s.state()
            first = s.run(xs[10:])["out"]
            s.load_state(saved)
            np.testing.assert_array_equal(s.run(xs[10:])["out"], first)
            ref = model.session(numerics="loihi")
            ref.load_state(saved)
            np.testing.assert_array_equal(ref.run(xs[10:])["out"], first)
            s.reset()
            np.testing.assert_array_equal(s.run(xs[:10])["out"], model.session(numerics="loihi").run(xs[:10])["out"])


def test_bridge_errors_are_typed(bridge: str) -> None:
    with edgesnn.connect(bridge) as dev:
        model_id = dev.load_model(bundle_bytes(small_model()))
        with pytest.raises(UnsupportedError, match="one stream"):
            dev.open_session(model_id, batch=2)
        with dev.open_session(model_id) as s:
            with pytest.raises(InputError, match="binary spikes"):
                s.step(np.full((1, 12), 0.5, np.float32))
            with pytest.raises(UnsupportedError):
                s.learn("wave", spikes(5)[:, 0])
            s.step(spikes(1)[0])


def _integer_model():  # noqa: ANN202
    """A network given in Lava's integers (a recurrent CUBA layer with biases, a readout)."""
    rng = np.random.default_rng(4)
    layers = [NeuronLayer(node="lif", shape=(10,), du=400, dv=150, vth=60, bias_mant=rng.integers(-300, 300, 10),
                          bias_exp=3, v_init=rng.integers(-2000, 2000, 10)),
              NeuronLayer(node="ro", shape=(4,), du=4095, dv=30, vth=(1 << 17) - 1, spiking=False)]  # fmt: skip
    conns = [Connection(node="fc", source="in", target="lif", weight=rng.integers(-256, 256, (10, 12)), weight_exp=-1,
                        num_weight_bits=7),
             Connection(node="rec", source="lif", target="lif", weight=rng.integers(-80, 80, (10, 10))),
             Connection(node="fc_ro", source="lif", target="ro", weight=rng.integers(0, 255, (4, 10)))]  # fmt: skip
    return to_model(LoihiNetwork(dt_s=1e-3, inputs={"in": (12,)}, neurons=layers, connections=conns))


def test_a_served_integer_network_steps_and_records_as_the_runtime(bridge: str) -> None:
    model, xs = _integer_model(), spikes(20)
    names = ["lif", "lif/u", "lif/v", "ro/v_float", "out"]
    ref = model.session(numerics="loihi")
    with edgesnn.connect(bridge) as dev:
        with dev.open_session(dev.load_model(bundle_bytes(model))) as s:
            assert {"lif/u", "lif/v", "ro/u_float"} <= set(s.recordable)
            for t in range(len(xs)):
                got, want = s.step(xs[t], outputs=names), ref.step(xs[t], outputs=names)
                for name in names:
                    np.testing.assert_array_equal(got[name], want[name], err_msg=f"{name} at step {t}")
    assert np.any(want["lif/u"])
