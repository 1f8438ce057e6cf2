"""Neuron states a user records and starts from: ``outputs=["lif/v", ...]`` and ``initial_state``."""

import msgpack
import numpy as np
import pytest

from edgesnn.engine import SessionOptions
from edgesnn.errors import InputError, OptionError, StateError
from edgesnn.graph import LIF, AdaptiveLIF, Conv2d, CubaLIF, Flatten, Graph, Input, Linear, Output
from edgesnn.model import Model


def net(method: str = "zoh") -> Model:
    """spikes (2, 6, 6) -> conv -> LIF (3, 6, 6) -> flatten -> CubaLIF (4) -> adaptive LIF (2)."""
    rng = np.random.default_rng(0)
    g = Graph(
        {"x": Input((2, 6, 6), unit="spikes"),
         "conv": Conv2d(rng.normal(0.8, 0.4, (3, 2, 3, 3)).astype(np.float32), np.zeros(3, np.float32), padding=(1, 1)),
         "lif": LIF.uniform((3, 6, 6), tau_mem_s=10e-3, v_leak=0.3, v_threshold=1.0),
         "flat": Flatten(), "fc": Linear(rng.normal(0.1, 0.1, (4, 108)).astype(np.float32)),
         "cuba": CubaLIF.uniform(4, tau_syn_s=5e-3, tau_mem_s=20e-3, v_threshold=0.5, w_in=3.0),
         "fc2": Linear(rng.normal(1.0, 0.3, (2, 4)).astype(np.float32)),
         "ad": AdaptiveLIF.uniform(2, tau_mem_s=20e-3, tau_adapt_s=0.1, v_threshold=0.3, a_coupling=0.5, b_spike=0.2),
         "y": Output((2,))},
        [("x", "conv"), ("conv", "lif"), ("lif", "flat"), ("flat", "fc"), ("fc", "cuba"), ("cuba", "fc2"),
         ("fc2", "ad"), ("ad", "y")],
    )  # fmt: skip
    return Model(g, dt_s=1e-3, method=method)


def spikes(steps: int = 50, batch: int = 1) -> np.ndarray:
    return (np.random.default_rng(1).random((steps, batch, 2, 6, 6)) < 0.3).astype(np.float32)


# -- recording ---------------------------------------------------------------------------


def test_every_neuron_state_can_be_recorded_by_name_in_the_node_s_shape():
    s = net().session(batch=2)
    assert s.recordable == ["lif/v", "cuba/v", "cuba/i", "ad/v", "ad/w"]

    out = s.run(spikes(batch=2), outputs=["lif", "lif/v", "cuba/i", "ad/w", "y"])

    assert out["lif/v"].shape == (50, 2, 3, 6, 6) and out["cuba/i"].shape == (50, 2, 4)
    assert out["ad/w"].shape == (50, 2, 2) and out["lif/v"].dtype == np.float32
    assert out["y"].sum() > 0 and np.any(out["ad/w"] != 0)  # the deepest layer fires and adapts
    # What was recorded is the state the session holds after the step.
    s2 = net().session(batch=2)
    s2.run(spikes(batch=2)[:49])
    last = s2.step(spikes(batch=2)[49], outputs=["lif/v", "cuba/i", "ad/w"])
    for name, value in last.items():
        np.testing.assert_array_equal(value, out[name][49])


def test_a_spiking_neuron_s_membrane_is_recorded_after_its_reset():
    s = net().session()
    out = s.run(spikes(), outputs=["lif", "lif/v"])
    fired = out["lif"] == 1
    assert fired.any()
    np.testing.assert_array_equal(out["lif/v"][fired], 0.0)  # reset to v_reset = 0 in the step that fired


def test_an_unknown_state_name_lists_what_the_node_records():
    s = net().session()
    with pytest.raises(InputError, match=r"^outputs: no state named 'cuba/w'; 'cuba' records cuba/v, cuba/i"):
        s.step(spikes()[0], outputs=["cuba/w"])
    with pytest.raises(InputError, match="'conv' has no recordable state"):
        s.step(spikes()[0], outputs=["conv/v"])
    with pytest.raises(InputError, match="no node named 'nowhere'"):
        s.step(spikes()[0], outputs=["nowhere"])


# -- initial state -----------------------------------------------------------------------


def first_membrane(**session) -> np.ndarray:
    s = net().session(**session)
    return s.step(np.zeros((1, 2, 6, 6), np.float32), outputs=["lif/v"])["lif/v"][0, 0, 0, 0]


def test_rest_starts_membranes_at_v_leak_and_zero_at_zero():
    decay = np.exp(-1e-3 / 10e-3)
    # No input: from rest the membrane stays at v_leak; from zero it relaxes towards it.
    assert first_membrane() == pytest.approx(0.3)
    assert first_membrane(initial_state="zero") == pytest.approx(0.3 * (1 - decay), rel=1e-6)
    assert first_membrane(options=SessionOptions(initial_state="rest")) == pytest.approx(0.3)


def test_a_model_s_own_initial_state_is_the_default():
    import dataclasses

    zero = dataclasses.replace(net(), initial_state="zero")
    assert zero.session().initial_state == "zero"
    assert zero.session(initial_state="rest").initial_state == "rest"


def test_arrays_set_single_states_per_stream_and_reset_returns_to_them():
    start = np.stack([np.full((3, 6, 6), 0.9, np.float32), np.full((3, 6, 6), -0.4, np.float32)])
    s = net().session(batch=2, initial_state={"lif/v": start, "cuba/i": np.array([1.0, 0.0, 0.0, 2.0])})
    before = s.step(np.zeros((2, 2, 6, 6), np.float32), outputs=["lif/v", "cuba/i"])
    decay = np.exp(-1e-3 / 10e-3)
    np.testing.assert_allclose(before["lif/v"][:, 0, 0, 0], [0.3 + 0.6 * decay, 0.3 - 0.7 * decay], rtol=1e-6)
    np.testing.assert_allclose(before["cuba/i"][:, 3], 2.0 * np.exp(-1e-3 / 5e-3), rtol=1e-6)
    s.run(spikes(batch=2))
    s.reset()
    again = s.step(np.zeros((2, 2, 6, 6), np.float32), outputs=["lif/v", "cuba/i"])
    for name in before:
        np.testing.assert_array_equal(again[name], before[name])
    assert s.initial_state == "rest" and set(s.initial_values) == {"lif/v", "cuba/i"}


def test_the_saved_state_carries_the_initial_state():
    s = net().session(initial_state={"ad/w": np.array([0.5, -0.5])})
    s.run(spikes())
    saved = s.state()
    other = net().session()  # opened with the model's default
    other.load_state(saved)
    assert set(other.initial_values) == {"ad/w"}
    np.testing.assert_array_equal(other.step(spikes()[0])["y"], s.step(spikes()[0])["y"])
    other.reset()
    s.reset()
    for a, b in zip(other.run(spikes()).values(), s.run(spikes()).values(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_state_saved_before_initial_states_keeps_the_session_s_own():
    s = net().session(initial_state="zero")
    doc = msgpack.unpackb(s.state(), raw=False)
    doc["version"] = 1
    del doc["initial"]
    s.load_state(msgpack.packb(doc, use_bin_type=True))
    assert s.initial_state == "zero"


def test_a_state_saved_under_the_old_method_name_loads_into_the_cascade():
    s = net("cascade").session()
    s.run(spikes())
    doc = msgpack.unpackb(s.state(), raw=False)
    doc.update(version=1, method="zoh")  # what edgesnn wrote for this model before "cascade" had its name
    del doc["initial"]
    fresh = net("cascade").session()
    fresh.load_state(msgpack.packb(doc, use_bin_type=True))
    np.testing.assert_array_equal(fresh.step(spikes()[0], outputs=["cuba/i"])["cuba/i"],
                                  s.step(spikes()[0], outputs=["cuba/i"])["cuba/i"])  # fmt: skip
    with pytest.raises(StateError, match="state was saved with"):  # the exact zoh is another model
        net("zoh").session().load_state(msgpack.packb(doc, use_bin_type=True))


def test_a_pair_sets_states_over_the_other_start():
    s = net().session(initial_state=("zero", {"cuba/i": np.ones(4)}))
    assert s.initial_state == "zero" and set(s.initial_values) == {"cuba/i"}
    assert first_membrane(initial_state=("zero", {"cuba/i": np.ones(4)})) == first_membrane(initial_state="zero")


def test_retime_keeps_the_initial_state():
    s = net().session(initial_state="zero")
    s.retime(0.5e-3)
    assert s.initial_state == "zero"
    s.reset()
    assert s.step(np.zeros((1, 2, 6, 6), np.float32), outputs=["lif/v"])["lif/v"][0, 0, 0, 0] > 0  # from 0 up


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ("warm", OptionError, "expected one of rest, zero, a mapping of state names"),
        ({"lif/q": 0.0}, InputError, "no state named 'lif/q'; the states a session can start from are lif/v"),
        ({"lif/v": np.zeros(3)}, InputError, r"expected shape \(3, 6, 6\) or \(1, 3, 6, 6\), got \(3,\)"),
        ({"cuba/i": np.full(4, np.nan)}, InputError, "expected finite values"),
        ({"cuba/i": np.array(["a"] * 4)}, InputError, "expected a numeric array"),
        ({1: 0.0}, OptionError, "expected state names"),
    ],
)
def test_bad_initial_states_are_named(spec, error, match):
    with pytest.raises(error, match=match):
        net().session(initial_state=spec)


def test_a_damaged_state_is_refused_not_loaded():
    s = net().session()
    s.run(spikes())
    blob = bytearray(s.state())
    blob[len(blob) // 2] ^= 0x01  # one flipped bit inside an array's bytes
    with pytest.raises(StateError, match="damaged"):
        net().session().load_state(bytes(blob))
