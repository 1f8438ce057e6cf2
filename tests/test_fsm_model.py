"""A compiled machine as an edgesnn model: engine = reference, bundles, serving, and the ThresholdUnit node."""

from __future__ import annotations

import numpy as np
import pytest

import edgesnn
from edgesnn.bundle import write_bundle
from edgesnn.errors import ModelError, NIRImportError, NodeValidationError
from edgesnn.fsm import CompileOptions, FSMSpec, compile_fsm, feed, fsm_info, run_symbols, schedule, simulate, to_model
from edgesnn.graph import ThresholdUnit
from edgesnn.graph.units import kwta, update_mask

DOOR = FSMSpec.from_dict({
    "states": ["idle", "armed", "open"], "symbols": ["arm", "key", "reset"],
    "transitions": [["idle", "arm", "armed"], ["armed", "key", "open"], ["open", "reset", "idle"],
                    ["armed", "reset", "idle"]],
    "outputs": {"open": ["unlock"]},
})  # fmt: skip
WALK = ["arm", "key", "reset", "key", "arm", "reset"]


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """One BLAS thread, as the engine uses: on a loaded 2-core machine more threads make small products slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def engine_states(model: edgesnn.Model, symbols: list[str], hold: int) -> np.ndarray:
    """The units' 0/1 output after every step, stepping a session one step at a time."""
    session = model.session()
    return np.stack([session.step(x, outputs=["state/z"])["state/z"][0] for x in feed(model, symbols, hold)])


@pytest.mark.parametrize("options", [{}, {"weights": "binary", "noise_sigma": 0.0}, {"update_probability": 0.3}])
def test_dense_engine_steps_exactly_as_the_reference(options: dict) -> None:
    net = compile_fsm(DOOR, CompileOptions(neurons=400, seed=4, **options))
    model = to_model(net)

    ref = simulate(net, schedule(DOOR, WALK, 10))
    states = engine_states(model, WALK, 10)

    np.testing.assert_array_equal(2 * states - 1, ref.states)  # the sign units in 0/1 coding, bit for bit
    outs, hops = run_symbols(model, WALK)
    np.testing.assert_allclose(outs["out_overlaps"], ref.overlaps, atol=1e-5)
    np.testing.assert_allclose(outs["out_readout"], ref.readout, atol=1e-5)
    assert [h.target for h in hops] == DOOR.walk(WALK)[1:]


def test_noisy_and_sparse_machines_take_the_reference_walk() -> None:
    for options in ({"weights": "binary", "noise_sigma": 2.0}, {"coding": 0.1}):
        net = compile_fsm(DOOR, CompileOptions(neurons=1000, seed=2, **options))
        ref = simulate(net, schedule(DOOR, WALK, 10))
        outs, hops = run_symbols(to_model(net), WALK)
        # Float32 sums in another order may flip a unit whose input is within rounding of its threshold.
        np.testing.assert_allclose(outs["out_overlaps"], ref.overlaps, atol=0.05)
        assert all(h.ok for h in hops), options


def test_the_bundle_round_trips_and_keeps_the_machine(tmp_path) -> None:
    model = to_model(compile_fsm(DOOR, CompileOptions(neurons=300, seed=1, coding=0.1)))
    path = tmp_path / "door.esnn"
    write_bundle(model, path)

    back = edgesnn.load(str(path))

    assert back.fingerprint == model.fingerprint
    assert back.labels == model.labels and back.labels[3] == "idle --arm--> armed"
    info = fsm_info(back)
    assert info["channels"] == ["arm/a", "arm/b", "key/a", "key/b", "reset/a", "reset/b"]
    assert FSMSpec.from_dict(info["spec"]) == DOOR
    unit = back.graph.nodes["state"]
    assert (unit.activation, unit.k_active) == ("kwta", 30)
    a, _ = run_symbols(model, WALK)
    b, _ = run_symbols(back, WALK)
    np.testing.assert_array_equal(a["out_overlaps"], b["out_overlaps"])


def test_a_session_state_saves_and_restores_mid_walk() -> None:
    model = to_model(compile_fsm(DOOR, CompileOptions(neurons=300, seed=1, update_probability=0.5)))
    xs = feed(model, WALK)
    s = model.session()
    s.run(xs[:40])
    saved = s.state()
    rest = s.run(xs[40:])["out_overlaps"]
    s2 = model.session()
    s2.load_state(saved)  # the units' outputs and the step count of the asynchronous mask
    np.testing.assert_array_equal(s2.run(xs[40:])["out_overlaps"], rest)


def test_a_served_machine_walks_as_the_local_one(tmp_path) -> None:
    from tests.conformance._models import remote, served

    model = to_model(compile_fsm(DOOR, CompileOptions(neurons=300, seed=1)))
    path = tmp_path / "door.esnn"
    write_bundle(model, path)
    local, _ = run_symbols(model, WALK)
    with served() as (_, address), remote(address) as dev:
        session = dev.open_session(dev.load_model(str(path)))
        outs, hops = run_symbols(model, WALK, session=session)
    np.testing.assert_array_equal(outs["out_overlaps"], local["out_overlaps"])
    assert all(h.ok for h in hops)


def test_nir_cannot_hold_the_units_and_says_so() -> None:
    from edgesnn.bundle.nir import to_nir

    model = to_model(compile_fsm(DOOR, CompileOptions(neurons=64, seed=1)))
    with pytest.raises(NIRImportError, match=r"nodes/state: cannot export a ThresholdUnit node to NIR: NIR has no"):
        to_nir(model)


def test_a_model_without_a_machine_is_refused() -> None:
    from tests.helpers import mock_rnn_model

    with pytest.raises(ModelError, match="graph/metadata/fsm: the model is not a finite-state machine"):
        run_symbols(mock_rnn_model(), ["arm"])


def test_k_winners_ties_go_to_the_lower_index_and_the_update_mask_is_reproducible() -> None:
    u = np.array([[0.5, 2.0, 0.5, 0.5, 1.0]], np.float32)
    np.testing.assert_array_equal(kwta(u, 3), [[1, 1, 0, 0, 1]])
    m = update_mask(7, 3, 2, 20_000, 0.1)
    np.testing.assert_array_equal(m, update_mask(7, 3, 2, 20_000, 0.1))
    assert abs(m.mean() - 0.1) < 0.005 and not np.array_equal(m, update_mask(7, 4, 2, 20_000, 0.1))
    assert not np.array_equal(m[0], m[1])  # each stream draws its own


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"activation": "sign"}, "activation: expected one of step, kwta"),
     ({"activation": "kwta", "k_active": 9}, "k_active: expected 1..4 winners"),
     ({"k_active": 2}, "k_active: k_active is for activation 'kwta'"),
     ({"initial": [0, 1, 2, 0]}, "initial: expected 0/1 values"),
     ({"update_probability": 1.5}, r"update_probability: expected a probability in \(0, 1\]"),
     ({"threshold": np.zeros((2, 2))}, r"threshold: expected one threshold per unit")],
)  # fmt: skip
def test_threshold_unit_checks_its_fields(kwargs: dict, match: str) -> None:
    base = {"threshold": np.zeros(4, np.float32)}
    with pytest.raises(NodeValidationError, match=match):
        ThresholdUnit(**{**base, **kwargs})
