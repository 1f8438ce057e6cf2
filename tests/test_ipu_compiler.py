"""The IPU compiler: placement on tiles, the exchange plan, per-tile memory, chips over IPU-Links, clear refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import edgesnn
from edgesnn.errors import CapacityError, OptionError, UnsupportedError
from firmware_bridges.ipu.compiler import CompileOptions, capacity_of, compile_program
from firmware_bridges.ipu.config import SOURCES, IPUConfig
from firmware_bridges.ipu.netspec import dense_stack
from firmware_bridges.ipu.plan import inference_program

TAGS = {"READ", "CODE", "2nd", "INF", "ASSUMED"}


def test_every_cycle_model_constant_is_a_named_field_with_its_source() -> None:
    fields = {f.name for f in dataclasses.fields(IPUConfig)}
    assert set(SOURCES) == fields
    assert all(tag in TAGS and len(text) > 20 for tag, text in SOURCES.values())
    assert SOURCES["streaming_memory_bytes_per_s"][0] == "ASSUMED"  # no public figure: said so
    with pytest.raises(OptionError) as err:
        IPUConfig(sync_cycles=-1)
    assert err.value.path == "ipu/sync_cycles"


def test_the_keyword_network_is_placed_with_its_weights_states_and_buffers() -> None:
    program = inference_program(edgesnn.load("keywords"), CompileOptions(max_activity=0.1))
    cfg = program.config
    placed = {p.population: p for p in program.placements}
    assert list(placed) == ["hidden0", "hidden1", "readout"]
    assert placed["hidden0"].first_tile == cfg.reserved_tiles_first_ipu  # tile 0 keeps the host's streams
    cursor = 1
    for p in program.placements:  # contiguous ranges in step order, 2 neurons per tile (the paper's minimum)
        assert p.first_tile == cursor and p.neurons_per_tile == 2 and p.tiles == -(-p.size // 2)
        cursor += p.tiles
    assert placed["hidden0"].capacity == capacity_of(256, 0.1) == 26 and placed["readout"].capacity == 0
    mem = program.memory
    k = placed["hidden1"].first_tile  # 2 neurons x 256 inputs of float32 weights, 14 coefficients each (trained)
    assert program.spec.population("hidden1").coefficients_per_neuron
    assert mem["weights"][k] == 2 * 256 * 4 + 2 * 14 * 4
    assert mem["buffers"][k] >= 26 * 4 + 4  # hidden0's buffer of 26 ids and a count
    assert (mem["code"][program.used] >= cfg.code_bytes_per_tile).all()  # the code allowance on every tile used
    assert program.max_tile_bytes <= cfg.tile_memory_bytes and program.tiles_used == cursor


def test_the_exchange_plan_says_who_receives_which_ids() -> None:
    program = inference_program(edgesnn.load("keywords"), CompileOptions(max_activity=0.1, input_capacity=8))
    plan = {(e.source, e.destination): e for e in program.exchanges}
    assert set(plan) == {("input", "hidden0"), ("hidden0", "hidden1"), ("hidden1", "readout")}
    assert all(e.sparse for e in plan.values())
    assert plan["input", "hidden0"].bytes_per_sample == 8 * 4 + 4
    assert plan["hidden0", "hidden1"].bytes_per_sample == 26 * 4 + 4
    assert plan["hidden0", "hidden1"].source_tiles == 128 and plan["hidden0", "hidden1"].link_crossings == 0
    dense = inference_program(edgesnn.load("keywords"), CompileOptions(exchange="dense"))
    assert {e.bytes_per_sample for e in dense.exchanges if e.source == "hidden0"} == {256 * 4}


def test_a_model_larger_than_a_chip_spans_two_over_ipu_links_or_names_what_is_missing() -> None:
    spec = dense_stack(700, (40_000, 1_500), 20)  # at 32 per tile 1,250 tiles, then 500 at 3 (6 KB of weights each)
    with pytest.raises(CapacityError) as err:
        compile_program(spec, CompileOptions(max_activity=0.05))
    assert err.value.path == "graph/lif2" and "bytes missing" in str(err.value) and "--ipus" in str(err.value)
    program = compile_program(spec, CompileOptions(max_activity=0.05, ipus=2))
    lif1, lif2, readout = program.placements
    assert program.ipus == 2 and lif1.first_tile + lif1.tiles > 1472  # lif1 spreads over both chips
    assert program.used[:1472].any() and program.used[1472:].any()
    assert next(e for e in program.exchanges if e.source == "lif1").link_crossings == 1
    assert program.max_tile_bytes <= program.config.tile_memory_bytes


def test_a_neuron_whose_weights_fill_more_than_a_tile_is_refused_with_the_bytes_missing() -> None:
    spec = dense_stack(200_000, (), 4)  # one read-out neuron holds 800,000 bytes of weights
    with pytest.raises(CapacityError) as err:
        compile_program(spec)
    message = str(err.value)
    assert err.value.path == "graph/readout" and "readout" in message
    need = int(message.split("needs ")[1].split(" bytes")[0].replace(",", ""))
    missing = int(message.split(": ")[-1].split(" bytes")[0].replace(",", ""))
    assert need > 800_000 and missing == need - 624 * 1024


def test_nodes_the_compiler_cannot_place_are_named() -> None:
    from edgesnn.graph import AvgPool2d, Graph, Input, Output
    from edgesnn.model import Model

    graph = Graph({"in": Input((1, 4, 4)), "pool": AvgPool2d((2, 2)), "out": Output((1, 2, 2))},
                  (("in", "pool"), ("pool", "out")))  # fmt: skip
    with pytest.raises(UnsupportedError, match="'pool' is a AvgPool2d") as err:
        inference_program(Model(graph, 1e-3))
    assert err.value.path == "graph/pool"


def test_options_are_checked() -> None:
    for bad, path in (({"max_activity": 0}, "max_activity"), ({"exchange": "x"}, "exchange"),
                      ({"ipus": 0}, "ipus"), ({"input_capacity": 0}, "input_capacity")):  # fmt: skip
        with pytest.raises(OptionError) as err:
            CompileOptions(**bad)
        assert err.value.path == path
    with pytest.raises(OptionError, match="at most 16"):
        compile_program(dense_stack(4, (4,), 2), CompileOptions(ipus=17))
    assert np.all(compile_program(dense_stack(4, (4,), 2)).tile_bytes >= 0)
