"""The IPU simulator gives the CPU engine's outputs bit for bit, counts what overflows, and times supersteps."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import edgesnn
from edgesnn.engine.session import SessionOptions
from edgesnn.errors import InputError
from edgesnn.graph import LI, LIF, Affine, Graph, Input, Linear, Output
from edgesnn.model import Model
from firmware_bridges.ipu.compiler import CompileOptions
from firmware_bridges.ipu.session import IPUSession
from tests.conformance._models import small_model, spikes
from tools.bench.workloads import WORKLOADS

NATIVE = SessionOptions(backends=("native",))  # the engine's default backend, the reference


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_workloads_give_the_engines_outputs_and_spikes(name: str) -> None:
    wl = WORKLOADS[name](np.random.default_rng(1))
    xs = wl.inputs(np.random.default_rng(2), batch=2, steps=25)
    names = ["out", *wl.lif_layers]
    want = wl.model.session(batch=2, options=NATIVE).run(xs, outputs=names)
    session = IPUSession(wl.model, batch=2)
    got = session.run(xs, outputs=names)
    for n in names:
        np.testing.assert_array_equal(got[n], want[n], err_msg=f"{name} {n}")
        assert got[n].dtype == np.float32
    assert any(want[n].any() for n in wl.lif_layers)  # the layers fired: spikes crossed the exchange
    assert session.stats()["dropped_spikes"] == dict.fromkeys(wl.lif_layers, 0)


def test_the_dense_exchange_computes_the_same_values() -> None:
    wl = WORKLOADS["W1"](np.random.default_rng(1))
    xs = wl.inputs(np.random.default_rng(2), batch=2, steps=25)
    want = wl.model.session(batch=2, options=NATIVE).run(xs)["out"]
    session = IPUSession(wl.model, batch=2, options=CompileOptions(exchange="dense"))
    np.testing.assert_array_equal(session.run(xs)["out"], want)
    assert session.program.placement("lif").capacity == 0  # values on the exchange, no buffer to overflow


def test_the_shipped_keyword_network_on_its_test_samples() -> None:
    from tools.datasets.keywords import load_split

    model = edgesnn.load("keywords")
    x, _ = load_split("tests/data/keywords", "test", dt_s=model.dt_s)
    xs = np.ascontiguousarray(x[:6].transpose(1, 0, 2))  # (T, 6, 64) spike counts per bin
    want = model.session(batch=6, options=NATIVE).run(xs, outputs=["output", "hidden0", "hidden1"])
    got = IPUSession(model, batch=6).run(xs, outputs=["output", "hidden0", "hidden1"])
    for n in want:
        np.testing.assert_array_equal(got[n], want[n], err_msg=n)
    assert want["hidden1"].any()


def _wide(hidden: int, seed: int = 0) -> Model:
    rng = np.random.default_rng(seed)
    nodes = {
        "in": Input((700,)),
        "fc": Linear(0.05 + 0.5 * rng.standard_normal((hidden, 700), dtype=np.float32)),
        "lif": LIF.uniform(hidden, tau_mem_s=20e-3, r=1.0, v_leak=0.0, v_threshold=1.0, v_reset=0.0),
        "fc_out": Affine(0.05 * rng.standard_normal((20, hidden), dtype=np.float32), np.zeros(20, np.float32)),
        "li": LI.uniform(20, tau_mem_s=10e-3, r=1.0, v_leak=0.0),
        "out": Output((20,)),
    }
    edges = (("in", "fc"), ("fc", "lif"), ("lif", "fc_out"), ("fc_out", "li"), ("li", "out"))
    return Model(Graph(nodes, edges), 1e-3)


def test_a_47000_neuron_network_fills_one_chip_and_gives_the_engines_outputs() -> None:
    model = _wide(1464 * 32)  # 46,848 LIF at 32 per tile and a read-out of 20: the paper's largest per chip
    xs = (np.random.default_rng(3).random((6, 1, 700)) < 0.03).astype(np.float32)
    want = model.session(options=NATIVE).run(xs, outputs=["out", "lif"])
    session = IPUSession(model, options=CompileOptions(max_activity=0.1))
    got = session.run(xs, outputs=["out", "lif"])
    np.testing.assert_array_equal(got["out"], want["out"])
    np.testing.assert_array_equal(got["lif"], want["lif"])
    lif = session.program.placement("lif")
    assert (lif.tiles, lif.neurons_per_tile, session.program.tiles_used) == (1464, 32, 1472)
    assert session.program.max_tile_bytes <= 624 * 1024
    assert session.stats()["dropped_spikes"] == {"lif": 0} and want["lif"].any()


def test_overflow_is_dropped_counted_and_logged_never_silent(caplog: pytest.LogCaptureFixture) -> None:
    model = small_model()
    xs = spikes(30, batch=2, density=0.6)
    session = IPUSession(model, batch=2, options=CompileOptions(max_activity=0.05))  # 2 ids of 24 neurons
    with caplog.at_level(logging.WARNING, logger="edgesnn.ipu"):
        got = session.run(xs, outputs=["lif", "out"])
    want = model.session(batch=2).run(xs, outputs=["lif", "out"])
    fired = (want["lif"] != 0).sum(axis=2)  # (T, batch) spikes per step and sample
    stats = session.stats()
    assert session.program.placement("lif").capacity == 2
    # the first step where a sample fired more than two: the counts up to it are exact
    assert stats["dropped_spikes"]["lif"] > 0 and stats["overflow_steps"]["lif"] > 0
    assert "lif had" in caplog.text and "dropped" in caplog.text
    first = int(np.argmax((fired > 2).any(axis=1)))
    np.testing.assert_array_equal(got["lif"][: first + 1], want["lif"][: first + 1])  # neurons still fire; readers miss
    assert not np.array_equal(got["out"], want["out"])
    session.clear_stats()
    assert session.stats()["dropped_spikes"] == {"lif": 0}


def test_input_ids_need_binary_spikes() -> None:
    session = IPUSession(small_model(), options=CompileOptions(input_capacity=4))
    session.step(spikes(1)[0])
    with pytest.raises(InputError, match="0/1 spikes") as err:
        session.step(np.full((1, 12), 0.5, np.float32))
    assert err.value.path == "inputs/in"


def test_cycles_grow_with_activity_and_every_superstep_pays_its_sync() -> None:
    wl = WORKLOADS["W2"](np.random.default_rng(1))
    quiet = IPUSession(wl.model, options=CompileOptions(max_activity=0.25))
    busy = IPUSession(wl.model, options=CompileOptions(max_activity=0.25))
    rng = np.random.default_rng(4)
    quiet.run((rng.random((20, 1, 700)) < 0.005).astype(np.float32))
    busy.run((rng.random((20, 1, 700)) < 0.05).astype(np.float32))
    q, b = quiet.simulator.cycles(), busy.simulator.cycles()
    assert q.names == b.names == ("in:input", "lif1:update", "lif1:combine", "lif2:update", "lif2:combine", "li:update")
    assert b.compute.sum() > q.compute.sum()
    np.testing.assert_array_equal(q.exchange, b.exchange)  # exchange sizes are fixed when compiled
    cfg = quiet.program.config
    np.testing.assert_allclose(q.per_step, q.compute.sum(1) + q.exchange.sum(1) + len(q.names) * cfg.sync_cycles)
    assert quiet.stats()["seconds_per_step_mean"] == pytest.approx(q.per_step.mean() / cfg.clock_hz + q.host_s_per_step)
