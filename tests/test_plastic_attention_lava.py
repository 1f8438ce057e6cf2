"""Plasticity attention's write rule on Lava's learning engine (lava-nc 0.10.0 in the bridge venv).

floating_pt: Lava's W_K and W_V after every token are the runtime's float layer's (to float32
rounding). fixed_pt: why the runtime's integer numerics cannot be bit-exact with Lava's engine,
measured: the value a graded spike gives the rule depends on Lava's random seed.
"""

from __future__ import annotations

import json
import pathlib
import subprocess

import numpy as np

from edgesnn.graph import Graph, Input, Output, PlasticAttention
from edgesnn.model import Model
from tests.loihi_helpers import ROOT, require_bridge

D, SLOTS, T = 4, 3, 9


def _bridge(*args: str) -> subprocess.CompletedProcess:
    cmd = [str(require_bridge()), "-m", "firmware_bridges.loihi2.plastic", *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise AssertionError(f"Lava failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done


def _probe(spec: dict) -> list[list[int]]:
    """What Lava's fixed_pt engine reads as x1 for each payload, per seed."""
    return json.loads(_bridge("--fixed-probe", json.dumps(spec)).stdout.strip().splitlines()[-1])


def test_lavas_learning_engine_writes_the_runtimes_plastic_weights(tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(7)
    node = PlasticAttention(rng.standard_normal((3 * D, D)), 0.1 * rng.standard_normal(3 * D), np.eye(D),
                            np.zeros(D), rng.standard_normal(D), 0.3, slots=SLOTS)  # fmt: skip
    model = Model(Graph({"x": Input((D,)), "attn": node, "y": Output((D,))}, [("x", "attn"), ("attn", "y")]), 1e-3)
    xs = rng.standard_normal((T, 1, D)).astype(np.float32)
    s = model.session()
    w_k, w_v = [np.zeros((SLOTS, D))], [np.zeros((D, SLOTS))]
    for x in xs:
        s.step(x)
        w_k.append(s._plan.state["attn/keys"][0, 0].copy())
        w_v.append(s._plan.state["attn/values"][0, 0].T.copy())
    qkv = xs[:, 0] @ node.w_qkv.T + node.b_qkv
    gates = np.clip(xs[:, 0] @ node.w_gate + np.float32(node.b_gate), 0, 1)
    assert (gates == 0).any() and ((gates > 0) & (gates < 1)).any() and (gates == 1).any()
    np.savez(tmp_path / "tokens.npz", keys=qkv[:, D : 2 * D], values=qkv[:, 2 * D :], gates=gates, slots=SLOTS)
    _bridge(str(tmp_path / "tokens.npz"), str(tmp_path / "lava.npz"))
    with np.load(tmp_path / "lava.npz") as lava:
        np.testing.assert_allclose(lava["w_k"], np.stack(w_k), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(lava["w_v"], np.stack(w_v), rtol=1e-5, atol=1e-6)


def test_lavas_fixed_point_engine_reads_a_graded_value_through_a_seeded_stochastic_decay() -> None:
    payloads = [100, 50, 31, 7, 127, 64]
    spec = {"payloads": payloads, "x1_tau": 255, "seeds": [0, 1, 2, 5]}
    reads = _probe(spec)
    halved = [round(p / 2) for p in payloads]  # ties to even, as Lava's np.round
    for got in reads:  # one step of decay by exp(-1/255), rounded up or down as the step's random number says
        assert all(h - 1 <= r <= h for r, h in zip(got, halved, strict=True))
    assert len({tuple(r) for r in reads}) > 1  # the same payloads read differently under another seed
    no_decay = _probe({**spec, "x1_tau": 0, "seeds": [0]})
    assert no_decay == [[0] * len(payloads)]  # x1_tau = 0 clears the trace before the rule reads it
