"""A dense machine as a Loihi 2 program: the runtime's Loihi numerics walk it, and Lava's fixed_pt models agree."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from edgesnn.errors import UnsupportedError
from edgesnn.fsm import CompileOptions, FSMSpec, compile_fsm, decode, feed, hops, run_symbols
from edgesnn.fsm.loihi import loihi_network, to_loihi_model
from tests.loihi_helpers import lava_simulate

DOOR = FSMSpec.from_dict({
    "states": ["idle", "armed", "open"], "symbols": ["arm", "key", "reset"],
    "transitions": [["idle", "arm", "armed"], ["armed", "key", "open"], ["open", "reset", "idle"],
                    ["armed", "reset", "idle"]],
    "outputs": {"open": ["unlock"]},
})  # fmt: skip
WALK = ["arm", "key", "reset", "key", "arm", "reset"]


@pytest.mark.parametrize("options", [{"weights": "binary"}, {"weights": "ternary", "sparsity": 0.9}])
def test_loihi_numerics_walk_the_machine(options: dict) -> None:
    net = compile_fsm(DOOR, CompileOptions(neurons=600, seed=1, **options))
    outs, hops = run_symbols(to_loihi_model(net), WALK)  # numerics="loihi", the model's own
    assert [h.target for h in hops] == DOOR.walk(WALK)[1:]
    assert [h.edge for h in hops[:2]] == ["idle --arm--> armed", "armed --key--> open"]
    assert outs["out_readout"][59, 0] == 1.0  # in 'open': the output's code read exactly
    assert abs(outs["out_overlaps"][29, 1] - 1.0) < 0.05


def test_lava_runs_the_same_integers(tmp_path: pathlib.Path) -> None:
    net = compile_fsm(DOOR, CompileOptions(neurons=200, seed=2, weights="binary"))
    model = to_loihi_model(net)
    xs = feed(model, ["arm", "key", "reset"], 6)  # (T, 1, channels)
    layers = list(model.loihi.neurons)
    lava = lava_simulate(tmp_path, model, {"stimulus": xs[:, 0]}, "fixed_pt")
    ours = model.session(numerics="loihi").run(xs, outputs=layers)
    for layer in layers:
        np.testing.assert_array_equal(ours[layer][:, 0], lava[layer], err_msg=layer)
    assert lava["state"].any() and not lava["state"].all()
    # Two interleaved copies, both started in the initial state: steps 0 and 1 are 'idle'.
    idle = (net.patterns[0] > 0).astype(np.float32)
    np.testing.assert_array_equal(lava["state"][0], idle)
    assert net.overlaps(2 * lava["state"][1] - 1)[0] > 0.9
    overlaps = lava["overlaps"] * model.graph.metadata["fsm"]["overlap_scale"]  # Lava's voltages, as overlaps
    walk = hops(DOOR, ["arm", "key", "reset"], decode(overlaps, net.attractors), 6)
    assert [h.target for h in walk] == ["armed", "open", "idle"]


@pytest.mark.parametrize(
    ("options", "match"),
    [({"coding": 0.05}, "coding: sparse states need k-winners-take-all"),
     ({"update_probability": 0.5}, "update_probability: asynchronous updates have no Loihi form"),
     ({"weights": "binary", "noise_sigma": 1.0}, "weights: Loihi stores 8-bit integer weights"),
     ({"weights": "binary", "neurons": 1100}, "neurons: a unit's input can reach 1099; above 1023")],
)  # fmt: skip
def test_what_loihi_cannot_run_exactly_is_refused(options: dict, match: str) -> None:
    net = compile_fsm(DOOR, CompileOptions(**{"neurons": 200, "seed": 0, **options}))
    with pytest.raises(UnsupportedError, match=match):
        loihi_network(net)


def test_sparse_ternary_weights_fit_far_more_neurons() -> None:
    net = compile_fsm(DOOR, CompileOptions(neurons=1500, seed=0, weights="ternary", sparsity=0.98))
    program = loihi_network(net)
    assert program.neurons["state"].shape == (1500,)  # past the 1,024 binary weights allow
    assert np.abs(net.weight).sum(axis=1).max() <= 1023
