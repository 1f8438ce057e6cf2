"""Training plans on IPU tiles: sparse BPTT under every checkpointing scheme, through the trainer's planner."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from edgesnn.errors import CapacityError
from firmware_bridges.ipu.compiler import CompileOptions
from firmware_bridges.ipu.netspec import dense_stack
from firmware_bridges.ipu.trainplan import TrainOptions, largest_network, longest_sequence, train_plan
from tools.bench.ipu import shd_hidden
from tools.train import memplan
from tools.train.schemes import SCHEMES

#: The paper's SHD configuration at 2 neurons per tile: 1,471 x 2 neurons (read-out's tiles kept) over 3 layers.
SHD = dense_stack(700, tuple(shd_hidden(3)), 20)
OPTIONS = CompileOptions(max_activity=0.05, input_capacity=96, batch=48)


def test_the_planner_loads_without_jax() -> None:
    code = "import sys, firmware_bridges.ipu.trainplan; assert 'jax' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_scheme_plans_tiles_streaming_memory_and_time_at_100_to_10000_steps() -> None:
    for scheme in SCHEMES:
        last = None
        for steps in (100, 1000, 10_000):
            try:
                plan = train_plan(SHD, TrainOptions(steps, scheme, chunks_for="least"), OPTIONS)
            except CapacityError as exc:  # plain BPTT stops between 100 and 1,000 steps
                assert scheme in ("none", "standard") and "bytes missing" in str(exc)
                break
            p = plan.program
            assert p.max_tile_bytes <= p.config.tile_memory_bytes
            assert (plan.streaming_bytes > 0) == (scheme in ("remote", "double"))
            assert plan.time_factor == pytest.approx(1.0) if scheme == "none" else plan.time_factor > 1.0
            assert last is None or p.memory["checkpoints"].max() >= last  # at least memory, more steps need more
            last = p.memory["checkpoints"].max()
        assert scheme != "double" or last is not None


def test_checkpoint_bytes_are_the_trainers_formulas_for_the_tiles_terms() -> None:
    plan = train_plan(SHD, TrainOptions(1000, "double"), OPTIONS)
    lif2 = plan.program.placement("lif2")
    k1, k2 = plan.checkpointing.chunks
    assert plan.checkpointing.scheme == "double" and k2 <= k1 <= 1000
    local = plan.program.memory["checkpoints"][lif2.first_tile]
    # the memplan terms of a tile of lif2: its state (v, x, z of each neuron) and its per-step residuals: its
    # neurons' ids and surrogate values with a count
    npt, batch = lif2.neurons_per_tile, 48
    model = memplan.MemoryModel(state_bytes=npt * 3 * 4, residual_bytes_per_step=npt * 8 + 4)
    want = memplan.predict(plan.checkpointing, 1000, batch, model).local_bytes
    assert local == math.ceil(want)


def test_double_checkpointing_trains_ten_times_longer_sequences_in_the_same_tiles() -> None:
    plain, why = longest_sequence(SHD, "none", OPTIONS)
    assert why == "tile memory" and 100 < plain < 1000
    train_plan(SHD, TrainOptions(plain, "none"), OPTIONS)
    with pytest.raises(CapacityError):
        train_plan(SHD, TrainOptions(plain + 1, "none"), OPTIONS)
    double = train_plan(SHD, TrainOptions(10 * plain, "double"), OPTIONS)
    assert double.program.max_tile_bytes <= double.program.config.tile_memory_bytes
    assert 1.5 < double.time_factor < 2.0  # two recomputed forwards over (1 + backward of 2); transfers small


def test_the_largest_network_per_scheme_is_bounded_by_the_weights_not_the_sequence() -> None:
    def stack(n: int):
        return dense_stack(700, (n, n, n), 20)

    widths = {s: largest_network(stack, TrainOptions(1000, s), OPTIONS, limit=20_000) for s in ("none", "double")}
    assert 0 < widths["none"] < 974 < widths["double"]  # plain BPTT holds the paper's network for 572 steps only
    with pytest.raises(CapacityError):
        train_plan(stack(widths["double"] + 1), TrainOptions(1000, "double"), OPTIONS)
    assert np.isfinite(train_plan(stack(widths["double"]), TrainOptions(1000, "double"), OPTIONS).step_s)
