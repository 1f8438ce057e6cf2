"""The compiler against the paper's formulas: explicit weights, closed-form overlaps, seeds, non-ideal weights."""

from __future__ import annotations

import numpy as np
import pytest

from edgesnn.errors import OptionError
from edgesnn.fsm import CompileOptions, FSMNetwork, FSMSpec, compile_fsm, decode, hops, schedule, simulate
from edgesnn.fsm.compile import build_factors

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


def explicit_weight(net: FSMNetwork) -> np.ndarray:
    """W straight from the paper's sum of outer products (float64), zero diagonal."""
    f = net.options.coding
    p = net.patterns.astype(np.float64)
    s = net.stimuli.astype(np.float64)
    bar = p - f
    w = sum(np.outer(b, b) for b in bar)
    n_states = len(net.spec.states)
    for j, t in enumerate(net.spec.transitions):
        x, y, e = p[net.spec.states.index(t.source)], p[net.spec.states.index(t.target)], p[n_states + j]
        k = net.spec.symbols.index(t.symbol)
        sa, sb = s[2 * k], s[2 * k + 1]
        w = w + np.outer((sa > 0) * (e - x), (x - f) * sa) + np.outer((sb > 0) * (y - e), (e - f) * sb)
    np.fill_diagonal(w, 0)
    return w


@pytest.mark.parametrize("coding", [0.0, 0.1])
def test_weights_are_the_papers_sum_of_outer_products(coding: float) -> None:
    net = compile_fsm(DOOR, CompileOptions(neurons=60, coding=coding, seed=3))

    np.testing.assert_allclose(net.dense_weight(), explicit_weight(net), rtol=1e-5, atol=1e-4)
    y = (np.random.default_rng(0).random(60) < 0.5).astype(np.float64)
    np.testing.assert_allclose(net.matvec(y), explicit_weight(net) @ y, rtol=1e-9, atol=1e-6)


def walsh(n: int) -> np.ndarray:
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h.astype(np.float32)


def test_masking_moves_the_state_to_the_edge_in_two_steps_as_the_closed_form_says() -> None:
    # With Walsh rows for every vector (x = row 1, y = row 2, e = row 4, s_a = row 8, s_b = row 16) all
    # crosstalk is 0, and the masked drive is exactly W (x o H(s_a)) = N/2 (x + H(s_a) o (e - x)) - d o y.
    spec = FSMSpec(("x", "y"), ("go",), (FSMSpec.from_dict({"states": ["x", "y"], "transitions": [["x", "go", "y"]]})
                                         .transitions[0],))  # fmt: skip
    n = 64
    h = walsh(n)
    opts = CompileOptions(neurons=n, seed=0)
    patterns = h[[1, 2, 4]].copy()
    stimuli = h[[8, 16]].astype(np.int8)
    u, v, d = build_factors(spec, opts, patterns, stimuli)
    net = FSMNetwork(spec, opts, patterns, stimuli, np.zeros((0, n), np.float32), u, v, d)
    x, y, e = patterns.astype(np.float64)
    sa, sb = stimuli.astype(np.float64)
    diag = 3 + (sa > 0) * (e - x) * x * sa + (sb > 0) * (y - e) * e * sb

    masked = x * (sa > 0)
    np.testing.assert_array_equal(net.matvec(masked), n / 2 * (x + (sa > 0) * (e - x)) - diag * masked)
    np.testing.assert_array_equal(d, diag)

    tr = simulate(net, np.array([-1, 0, 0, 1, 1, -1]), initial=patterns[0])
    # Step 1: unmasked neurons take e, masked ones keep x: overlap 1/2 with both; step 2: e.
    np.testing.assert_array_equal(tr.overlaps[:, [0, 2, 1]], [[1, 0, 0], [0.5, 0.5, 0], [0, 1, 0],
                                                              [0, 0.5, 0.5], [0, 0, 1], [0, 0, 1]])  # fmt: skip


@pytest.mark.parametrize("options", [{}, {"coding": 0.05}, {"weights": "binary", "noise_sigma": 1.0},
                                     {"weights": "ternary", "sparsity": 0.9}])  # fmt: skip
def test_the_reference_walks_the_door_machine(options: dict) -> None:
    net = compile_fsm(DOOR, CompileOptions(neurons=800, seed=1, **options))

    tr = simulate(net, schedule(DOOR, WALK, 10))

    walk = hops(DOOR, WALK, decode(tr.overlaps, net.attractors), 10)
    assert [h.target for h in walk] == DOOR.walk(WALK)[1:]
    assert [h.edge for h in walk[:2]] == ["idle --arm--> armed", "armed --key--> open"]
    assert walk[3].edge == "idle"  # 'key' in idle: no edge, the machine stays
    in_open = tr.readout[3 * 10 * 2 - 1, 0]  # end of the second input, in 'open'
    assert in_open > 0.7 and abs(tr.readout[3 * 10 - 1, 0]) < 0.3


def test_same_seed_same_network_other_seed_other_network() -> None:
    a = compile_fsm(DOOR, CompileOptions(neurons=200, seed=5, weights="binary", noise_sigma=1.0))
    b = compile_fsm(DOOR, CompileOptions(neurons=200, seed=5, weights="binary", noise_sigma=1.0))
    c = compile_fsm(DOOR, CompileOptions(neurons=200, seed=6, weights="binary", noise_sigma=1.0))

    for field in ("patterns", "stimuli", "readouts", "u", "v", "d", "weight"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.patterns, c.patterns) and not np.array_equal(a.weight, c.weight)


def test_sparse_states_have_k_ones_and_outputs_their_own_code() -> None:
    net = compile_fsm(DOOR, CompileOptions(neurons=400, coding=0.05, seed=0))
    assert set(np.unique(net.patterns)) == {0.0, 1.0} and np.all(net.patterns.sum(axis=1) == 20)
    np.testing.assert_allclose(net.overlaps(net.patterns)[np.arange(3), np.arange(3)], 1.0)

    dense = compile_fsm(DOOR, CompileOptions(neurons=400, seed=0, output_coding=0.05))
    code = dense.readouts[0]
    assert np.count_nonzero(code) == 20
    np.testing.assert_allclose(dense.readout(dense.patterns[:3])[:, 0], [code @ dense.patterns[0], code @
                                                                        dense.patterns[1], 1.0], atol=1e-6)  # fmt: skip


def test_non_ideal_weights_follow_the_options() -> None:
    ideal = compile_fsm(DOOR, CompileOptions(neurons=300, seed=2)).dense_weight()
    binary = compile_fsm(DOOR, CompileOptions(neurons=300, seed=2, weights="binary")).weight
    ternary = compile_fsm(DOOR, CompileOptions(neurons=300, seed=2, weights="ternary", sparsity=0.98)).weight
    noisy = compile_fsm(DOOR, CompileOptions(neurons=300, seed=2, weights="binary", noise_sigma=2.0)).weight

    np.testing.assert_array_equal(binary, np.sign(ideal))
    assert np.count_nonzero(ternary) == round(0.02 * 300 * 299)
    assert set(np.unique(ternary)) <= {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(ternary[ternary != 0], np.sign(ideal[ternary != 0]))
    assert np.min(np.abs(ideal[ternary != 0])) >= np.max(np.abs(ideal[ternary == 0]))  # the largest |W| are kept
    off = ~np.eye(300, dtype=bool)
    assert abs(np.std((noisy - binary)[off]) - 2.0) < 0.05 and np.all(np.diag(noisy) == 0)

    # Per neuron: every row keeps its own 2 % (6 of 299 inputs), the largest of that row, signs kept.
    per = compile_fsm(DOOR, CompileOptions(neurons=300, seed=2, weights="ternary", sparsity=0.98,
                                           sparsity_scope="neuron")).weight  # fmt: skip
    assert (np.count_nonzero(per, axis=1) == 6).all() and np.all(np.diag(per) == 0)
    np.testing.assert_array_equal(per[per != 0], np.sign(ideal[per != 0]))
    for i in range(300):
        assert np.min(np.abs(ideal[i][per[i] != 0])) >= np.max(np.abs(ideal[i][(per[i] == 0) & off[i]]))


@pytest.mark.parametrize(
    ("options", "match"),
    [({"neurons": 8}, "neurons: expected at least 16"), ({"coding": 0.7}, "coding: expected 0 .dense."),
     ({"weights": "ternary"}, "sparsity: ternary weights need a sparsity > 0"),
     ({"weights": "binary", "sparsity": 0.5}, "sparsity: binary weights are all"),
     ({"noise_sigma": 1.0}, "noise_sigma: weight noise is relative to"), ({"weights": "float8"}, "weights: expected"),
     ({"update_probability": 0.0}, "update_probability: expected a probability"),
     ({"weights": "ternary", "sparsity": 0.9, "sparsity_scope": "row"}, "sparsity_scope: expected one of matrix")],
)  # fmt: skip
def test_bad_options_name_the_option(options: dict, match: str) -> None:
    with pytest.raises(OptionError, match=match):
        CompileOptions(**options)


def test_a_held_input_neither_skips_nor_oscillates() -> None:
    net = compile_fsm(DOOR, CompileOptions(neurons=1000, seed=3))
    hold = 60
    tr = simulate(net, schedule(DOOR, ["arm"], hold))
    edge, armed = net.attractors.index("idle --arm--> armed"), net.attractors.index("armed")
    # From the third step of s_a on the network sits in the edge attractor, and from the third of s_b in 'armed'.
    assert np.all(tr.overlaps[hold + 2 : 2 * hold, edge] > 0.9)
    assert np.all(tr.overlaps[2 * hold + 2 :, armed] > 0.9)
