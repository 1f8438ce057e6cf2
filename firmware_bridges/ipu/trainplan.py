"""Training plans on IPU tiles: sparse BPTT under every checkpointing scheme, tile and Streaming Memory, time.

Each tile trains the neurons it holds (Finkbeiner et al., AAAI-24): beside the weights it keeps
their gradients and the optimizer's moments, and for the backward pass, per sample and step,
the *residuals* of its neurons: the spike-id buffers it received (what the weight gradient
multiplies) and its own buffer of spikes and surrogate candidates with their surrogate values
(the two-threshold sparse BPTT of ``tools.train.native``; only listed neurons get a
gradient). A checkpoint is the state of its neurons. Dense BPTT keeps every input value and
every state per step instead.

How many residuals and checkpoints stay on the tile is the checkpointing scheme's business;
the formulas and the chunk choice are the trainer's planner (:mod:`tools.train.memplan`, the
schemes of Bencheikh, Finkbeiner and Neftci, arXiv 2412.11810), fed with these per-tile terms
instead of XLA's buffers; the remote schemes' chunk states go to Streaming Memory. The bytes
enter the compiler as categories of their own (``gradients``, ``checkpoints``), so placement
fits them like weights. Time per training step: the cycle model's forward step at an assumed
activity, times (1 + backward + recomputed forwards) over T steps, plus the Streaming Memory
transfers and the weight update.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from edgesnn.errors import CapacityError, OptionError
from firmware_bridges.ipu.compiler import CompileOptions, Program, compile_program, spanned_channels
from firmware_bridges.ipu.config import IPUConfig
from firmware_bridges.ipu.cycles import assumed_work, step_cycles
from firmware_bridges.ipu.netspec import NetSpec, Population
from tools.train import memplan
from tools.train.schemes import RECOMPUTE, SCHEMES, Checkpointing


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """A training run to plan: T steps per sequence, a checkpointing scheme (chunks chosen when None).

    ``chunks_for``: ``"fit"`` chooses the chunks the trainer's planner picks for the binding tile's
    free bytes (the remote schemes take the longest outer chunk that fits: fewest transfers);
    ``"least"`` the scheme's least-memory chunks (``memplan.default_chunks``).
    """

    steps: int
    scheme: str = "none"
    chunks: tuple[int, ...] | None = None
    sparse: bool = True
    activity: float = 0.05
    chunks_for: str = "fit"

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise OptionError(f"expected an int >= 1, got {self.steps!r}", path="seq_len")
        if self.scheme not in SCHEMES:
            raise OptionError(f"expected one of {', '.join(SCHEMES)}, got {self.scheme!r}", path="scheme")
        if not 0 < self.activity <= 1:
            raise OptionError(f"expected a fraction in (0, 1], got {self.activity!r}", path="activity")
        if self.chunks_for not in ("fit", "least"):
            raise OptionError(f"expected fit or least, got {self.chunks_for!r}", path="chunks_for")


@dataclasses.dataclass(frozen=True, eq=False)
class TrainPlan:
    """A training plan: the program with its training bytes, the checkpointing, Streaming Memory, time."""

    program: Program
    checkpointing: Checkpointing
    steps: int
    streaming_bytes: float
    step_s: float
    forward_step_s: float
    plain_step_s: float

    @property
    def time_factor(self) -> float:
        """Predicted time of a training step relative to plain BPTT of the same network."""
        return self.step_s / self.plain_step_s

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        p = self.program
        return {"scheme": self.checkpointing.scheme, "chunks": list(self.checkpointing.chunks), "steps": self.steps,
                "batch": p.options.batch, "ipus": p.ipus, "tiles_used": p.tiles_used,
                "tile_bytes_max": p.max_tile_bytes, "tile_bytes_mean": round(p.mean_tile_bytes, 1),
                "checkpoint_bytes_max": int(p.memory["checkpoints"].max()),
                "streaming_bytes": self.streaming_bytes, "step_s": self.step_s,
                "forward_step_s": self.forward_step_s, "time_factor": round(self.time_factor, 4)}  # fmt: skip


class _Terms:
    """Per-tile memory terms of one population at a number of neurons per tile (the planner's MemoryModel)."""

    def __init__(self, program: Program, train: TrainOptions) -> None:
        self.program, self.train = program, train
        self.cfg = program.config
        self._caps = {pl.population: pl.capacity for pl in program.placements}
        self._caps.update(program.input_capacity)
        self._read = {e.source for e in program.exchanges}

    def _received(self, pop: Population) -> float:
        cfg, total = self.cfg, 0.0
        for syn in pop.synapses:
            cap = self._caps.get(syn.source, 0)
            total += cap * cfg.spike_id_bytes + cfg.count_bytes if cap else syn.n_in * cfg.value_bytes
        return total

    def model(self, pop: Population, npt: int, tiles: int) -> memplan.MemoryModel:
        """Bytes per sample of a checkpoint and of one step's residuals on the fullest tile of ``pop``.

        A tile keeps its own neurons' list (ids and surrogate values, the two-threshold buffer);
        neither the merged buffers nor those a tile received are kept: the backward pass merges
        the stored lists and broadcasts them again, as the forward pass did (its combine and
        exchange time is in the backward's cost). Dense BPTT keeps every state of every step.
        """
        cfg, vb = self.cfg, self.cfg.value_bytes
        state = npt * pop.state_words * vb
        cap = self._caps.get(pop.name, 0)
        if not self.train.sparse:
            residual = npt * pop.state_words * vb
        elif cap:
            residual = min(npt, cap) * (cfg.spike_id_bytes + vb) + cfg.count_bytes
        else:
            residual = npt * vb  # a read-out's membranes (the loss's per-step terms are taken as it runs)
        return memplan.MemoryModel(state_bytes=state, residual_bytes_per_step=residual,
                                   backward_cost=self.cfg.backward_forward_ratio)  # fmt: skip

    def gradient_bytes(self, pop: Population, npt: int) -> int:
        """Gradients and optimizer moments of the weights on one tile."""
        words = sum(npt * s.n_in if s.conv is None else s.conv.taps * spanned_channels(npt, s.conv.ho * s.conv.wo)
                    for s in pop.synapses)  # fmt: skip
        return int(words * self.cfg.value_bytes * (1 + self.cfg.optimizer_words_per_weight))


def _chunks(terms: _Terms, program: Program, train: TrainOptions) -> Checkpointing:
    """The scheme's chunks for the binding tile (the one its residuals fill most), fitted to its free bytes."""
    if train.chunks is not None:
        return Checkpointing(train.scheme, train.chunks)
    if train.scheme == "none":
        return Checkpointing("none")
    batch, cfg = program.options.batch, program.config
    best = None
    for pop, place in zip(program.spec.populations, program.placements, strict=True):
        npt = place.neurons_per_tile
        model = terms.model(pop, npt, place.tiles)
        free = cfg.tile_memory_bytes - int(program.tile_bytes[place.first_tile]) - terms.gradient_bytes(pop, npt)
        plain = memplan.predict(Checkpointing("none"), train.steps, batch, model).local_bytes
        pressure = plain / max(free, 1)
        if best is None or pressure > best[0]:
            best = (pressure, model, free)
    assert best is not None
    _, model, free = best
    if train.chunks_for == "least":
        return Checkpointing(train.scheme, memplan.default_chunks(train.scheme, train.steps, model))
    try:
        return memplan.choose(train.steps, batch, model, max(free, 1), schemes=[train.scheme]).plan
    except OptionError:  # nothing fits: the least-memory chunks, which the compiler then refuses
        chunks = memplan.default_chunks(train.scheme, train.steps, model)
        return Checkpointing(train.scheme, chunks)


def _seconds(program: Program, plan: Checkpointing, steps: int, streaming: float, activity: float) -> tuple[float, ...]:
    """(training step, forward step) in seconds."""
    cfg = program.config
    cyc = step_cycles(program, assumed_work(program, activity))
    forward = float(cyc.per_step[0]) / cfg.clock_hz
    passes = 1 + cfg.backward_forward_ratio + RECOMPUTE[plan.scheme]
    transfers = 2 * streaming / (cfg.streaming_memory_bytes_per_s * program.ipus)  # out in forward, back once
    update = 0.0
    for pop, place in zip(program.spec.populations, program.placements, strict=True):
        weights = sum(s.n_in if s.conv is None else s.conv.taps for s in pop.synapses)
        nw = math.ceil(place.neurons_per_tile / cfg.workers_per_tile)
        update = max(update, cfg.workers_per_tile * nw * weights * cfg.optimizer_instructions_per_weight)
    update = (update + cfg.sync_cycles) / cfg.clock_hz
    host = steps * cyc.host_s_per_step  # the batch's inputs in, its read-out out
    return passes * steps * forward + transfers + update + host, forward


def train_plan(
    spec: NetSpec, train: TrainOptions, options: CompileOptions | None = None, config: IPUConfig | None = None
) -> TrainPlan:
    """Plan training of ``spec`` for ``train.steps`` steps: CapacityError (from the compiler) when it does not fit."""
    opt, cfg = options or CompileOptions(), config or IPUConfig()
    first = compile_program(spec, opt, cfg)
    terms = _Terms(first, train)
    plan = _chunks(terms, first, train)
    batch = opt.batch

    def extra(pop: Population, npt: int, tiles: int) -> dict[str, int]:
        local = memplan.predict(plan, train.steps, batch, terms.model(pop, npt, tiles)).local_bytes
        return {"gradients": terms.gradient_bytes(pop, npt), "checkpoints": int(math.ceil(local))}

    program = compile_program(spec, opt, cfg, extra)
    streaming = 0.0
    for pop, place in zip(program.spec.populations, program.placements, strict=True):
        for k in range(place.tiles):
            model = terms.model(pop, place.neurons_on(k), place.tiles)
            streaming += memplan.predict(plan, train.steps, batch, model).remote_bytes
    if streaming > cfg.streaming_memory_bytes_per_ipu * program.ipus:
        raise CapacityError(f"the chunk states need {streaming:,.0f} bytes of Streaming Memory;"
                            f" {program.ipus} IPU(s) have {cfg.streaming_memory_bytes_per_ipu * program.ipus:,.0f}",
                            path="streaming_memory")  # fmt: skip
    step_s, forward_s = _seconds(program, plan, train.steps, streaming, train.activity)
    plain_s, _ = _seconds(program, Checkpointing("none"), train.steps, 0.0, train.activity)
    return TrainPlan(program, plan, train.steps, streaming, step_s, forward_s, plain_s)


def refusal(spec: NetSpec, train: TrainOptions, options: CompileOptions, config: IPUConfig | None = None) -> str:
    """Why the plan does not fit ("" when it does): the path of the compiler's CapacityError."""
    try:
        train_plan(spec, train, options, config)
    except CapacityError as exc:
        return exc.path or "capacity"
    return ""


def _bisect(ok: Callable[[int], bool], limit: int) -> int:
    """The largest n in [1, limit] with ok(n), ok monotone (0 if not even 1)."""
    if not ok(1):
        return 0
    lo, hi = 1, 2
    while hi <= limit and ok(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def longest_sequence(spec: NetSpec, scheme: str, options: CompileOptions, *, sparse: bool = True,
                     limit: int = 10_000_000, config: IPUConfig | None = None) -> tuple[int, str]:  # fmt: skip
    """The most steps per sequence ``scheme`` fits, and what stops it one step later ("tile memory",
    "Streaming Memory", or "search limit" when ``limit`` steps fit)."""

    def why(t: int) -> str:
        return refusal(spec, TrainOptions(t, scheme, sparse=sparse), options, config)

    t = _bisect(lambda n: not why(n), limit)
    if t >= limit:
        return t, "search limit"
    return t, "Streaming Memory" if why(t + 1) == "streaming_memory" else "tile memory"


def largest_network(make: Callable[[int], NetSpec], train: TrainOptions, options: CompileOptions, *,
                    limit: int = 1_000_000, config: IPUConfig | None = None) -> int:  # fmt: skip
    """The largest width ``n`` whose network ``make(n)`` trains under ``train`` on the chips (0 if none)."""
    return _bisect(lambda n: not refusal(make(n), train, options, config), limit)
