"""Compile a network onto IPU tiles: placement, spike-id buffers, the exchange plan and every tile's memory.

Placement follows the paper's code (Finkbeiner et al., AAAI-24; ``jrfinkbeiner/graphcore_snn``
``determine_neuron_tileMappings``): each population takes a contiguous range of tiles, holding
the same number of neurons on each (the last takes the rest), with the neurons' incoming
weights, their states and their receive buffers; populations follow each other in step order,
and one that would straddle two chips starts on the next (one too large for a chip spans
several, over IPU-Links). The number of neurons per tile is the smallest that lets every
population fit (most tiles, most parallel work), capped per population by what its tile
memory holds.

A spiking population sends spike ids: its tiles each list their spiking neurons, one combine
vertex per sample (the paper's ``LIFOutSpikes2ThreshsCombine``) merges the lists in tile order
into a buffer of ``capacity`` ids and a count, and that buffer is broadcast to every tile that
reads the population. ``capacity`` is ``ceil(max_activity * size)`` (as the trainer's
``tools.train.native.capacity_of``); spikes past it are dropped and counted by the simulator.
``exchange="dense"`` is the dense baseline: float32 vectors instead of ids.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from edgesnn.errors import CapacityError, OptionError
from firmware_bridges.ipu.config import IPUConfig
from firmware_bridges.ipu.netspec import NetSpec, Population, Synapse

EXCHANGES = ("sparse", "dense")
CATEGORIES = ("weights", "states", "buffers", "code")
#: More bytes per tile by category for a population at (neurons per tile, tiles): what training adds.
Extra = Callable[["Population", int, int], dict[str, int]]


@dataclasses.dataclass(frozen=True)
class CompileOptions:
    """How to compile: buffer capacities, exchange format, chips available and the batch the program steps.

    ``max_activity``: each binary spiking population's buffer holds ``ceil(max_activity * size)``
    ids (1.0: every neuron, so nothing can be dropped). ``input_capacity``: ids per step and sample
    of each input, which must then be 0/1 spikes (None: inputs travel as float32 values).
    """

    max_activity: float = 1.0
    input_capacity: int | None = None
    exchange: str = "sparse"
    ipus: int = 1
    batch: int = 1

    def __post_init__(self) -> None:
        value = self.max_activity
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise OptionError(f"expected a fraction of the layer in (0, 1], got {value!r}", path="max_activity")
        cap = self.input_capacity
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise OptionError(f"expected None or an int >= 1, got {cap!r}", path="input_capacity")
        if self.exchange not in EXCHANGES:
            raise OptionError(f"expected one of {', '.join(EXCHANGES)}, got {self.exchange!r}", path="exchange")
        for name in ("ipus", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(f"expected an int >= 1, got {value!r}", path=name)


def capacity_of(size: int, max_activity: float) -> int:
    """Ids per (step, sample) buffer of ``size`` neurons at ``max_activity`` (tools.train.native.capacity_of)."""
    return max(1, min(size, math.ceil(max_activity * size)))


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a population lives: tiles ``first_tile`` .. ``first_tile + tiles - 1`` (global indices)."""

    population: str
    first_tile: int
    tiles: int
    neurons_per_tile: int
    size: int
    capacity: int  # ids per (step, sample) buffer it sends; 0 when it sends values

    def neurons_on(self, k: int) -> int:
        """Neurons on the population's k-th tile."""
        return min(self.neurons_per_tile, self.size - k * self.neurons_per_tile)

    @property
    def tile_range(self) -> range:
        """Global indices of its tiles."""
        return range(self.first_tile, self.first_tile + self.tiles)


@dataclasses.dataclass(frozen=True)
class Exchange:
    """One projection's traffic per step: ``source`` to every tile of ``destination``."""

    synapse: str
    source: str
    destination: str
    sparse: bool
    bytes_per_sample: int  # what each destination tile receives per sample and step
    source_tiles: int
    link_crossings: int  # chips other than the source's that receive it


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
    """A compiled IPU program: placements, exchanges, per-tile memory (bytes by category, global tile index)."""

    spec: NetSpec
    config: IPUConfig
    options: CompileOptions
    placements: tuple[Placement, ...]
    exchanges: tuple[Exchange, ...]
    memory: dict[str, np.ndarray]
    ipus: int
    input_capacity: dict[str, int]

    def placement(self, name: str) -> Placement:
        """The placement of population ``name``."""
        return next(p for p in self.placements if p.population == name)

    @property
    def tile_bytes(self) -> np.ndarray:
        """Bytes in use on every tile of the chips used (ipus x tiles_per_ipu)."""
        return sum(self.memory.values())

    @property
    def used(self) -> np.ndarray:
        """Mask of the tiles the program uses (neurons, or the host's input buffers)."""
        return self.tile_bytes > 0

    @property
    def tiles_used(self) -> int:
        """Tiles holding something."""
        return int(self.used.sum())

    @property
    def max_tile_bytes(self) -> int:
        """Fullest tile."""
        return int(self.tile_bytes.max())

    @property
    def mean_tile_bytes(self) -> float:
        """Mean over the tiles used."""
        return float(self.tile_bytes[self.used].mean())


def spanned_channels(npt: int, plane: int) -> int:
    """Output channels a run of ``npt`` consecutive neurons (C, H, W order) can touch, at most."""
    return min(math.ceil(npt / plane) + (1 if npt > 1 and plane > 1 else 0), npt)


def _source_size(spec: NetSpec, name: str) -> int:
    return spec.inputs[name] if name in spec.inputs else spec.population(name).size


class _Layout:
    """Capacities and send formats, fixed before placement (they set every receiver's buffers)."""

    def __init__(self, spec: NetSpec, cfg: IPUConfig, opt: CompileOptions, extra: Extra | None = None) -> None:
        self.spec, self.cfg, self.opt, self.extra = spec, cfg, opt, extra
        self.capacity: dict[str, int] = {}
        for name, n in spec.inputs.items():
            if opt.input_capacity is not None and opt.exchange == "sparse":
                self.capacity[name] = min(n, opt.input_capacity)
        for pop in spec.populations:
            if pop.binary and opt.exchange == "sparse":
                self.capacity[pop.name] = capacity_of(pop.size, opt.max_activity)

    def sparse(self, syn: Synapse) -> bool:
        """Whether ``syn`` receives ids (its source sends spikes as a buffer)."""
        return syn.source in self.capacity

    def received_bytes(self, syn: Synapse) -> int:
        """Bytes a destination tile receives from ``syn``'s source per sample and step."""
        cfg = self.cfg
        if self.sparse(syn):
            return self.capacity[syn.source] * cfg.spike_id_bytes + cfg.count_bytes
        return _source_size(self.spec, syn.source) * cfg.value_bytes

    def tile_bytes(self, pop: Population, npt: int, tiles: int, src_tiles: dict[str, int]) -> dict[str, int]:
        """Bytes on the fullest tile of ``pop`` at ``npt`` neurons per tile over ``tiles`` tiles."""
        cfg, batch, vb = self.cfg, self.opt.batch, self.cfg.value_bytes
        weights = pop.coefficient_words * (npt if pop.coefficients_per_neuron else 1) * vb
        buffers = 0
        vertices = 1 + len(pop.synapses)  # the update, one accumulate per projection
        sources = 0
        for syn in pop.synapses:
            if syn.conv is None:
                weights += npt * syn.n_in * vb
            else:
                weights += spanned_channels(npt, syn.conv.ho * syn.conv.wo) * (syn.conv.taps + 1) * vb
            weights += npt * vb if syn.has_bias and syn.conv is None else 0
            buffers += batch * self.received_bytes(syn)
            sources += max(1, src_tiles.get(syn.source, 1))
        states = npt * batch * pop.state_words * vb
        states += sum(syn.delay_steps for syn in pop.synapses) * npt * batch * vb
        cap = self.capacity.get(pop.name)
        if cap is not None:  # its own list, and its share of the per-sample combine vertices
            local = min(npt, cap) * cfg.spike_id_bytes + cfg.count_bytes
            buffers += batch * local
            combines = math.ceil(batch / tiles)
            buffers += combines * (tiles * local + cap * cfg.spike_id_bytes + cfg.count_bytes)
            vertices += 1 + combines
            sources += tiles if combines else 0
        code = (
            cfg.code_bytes_per_tile + vertices * cfg.vertex_state_bytes + sources * cfg.exchange_code_bytes_per_source
        )
        parts = {"weights": weights, "states": states, "buffers": buffers, "code": code}
        if self.extra is not None:
            parts.update(self.extra(pop, npt, tiles))
        return parts


def _describe(parts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in parts.items())


def _fits(layout: _Layout, pop: Population, src_tiles: dict[str, int]) -> tuple[list[int], dict[str, int]]:
    """Every number of neurons per tile whose fullest tile fits (not monotone: fewer tiles, smaller combine
    buffers), and the bytes of one neuron on a tile."""
    cfg = layout.cfg
    ok = []
    for npt in range(1, min(cfg.max_neurons_per_tile, pop.size) + 1):
        parts = layout.tile_bytes(pop, npt, math.ceil(pop.size / npt), src_tiles)
        if sum(parts.values()) <= cfg.tile_memory_bytes:
            ok.append(npt)
    return ok, layout.tile_bytes(pop, 1, pop.size, src_tiles)


def _choose(fits: list[int], g: int) -> int:
    """The most neurons per tile up to ``g`` that fit, else the fewest above it."""
    below = [f for f in fits if f <= g]
    return max(below) if below else min(fits)


def _pack(spec: NetSpec, cfg: IPUConfig, ipus: int, npts: dict[str, int]) -> tuple[list[tuple[str, int, int]], str]:
    """Tile ranges (name, first tile, tiles) in step order, or the population that found no room and why."""
    per_ipu = cfg.tiles_per_ipu
    cursor = cfg.reserved_tiles_first_ipu  # global index of the next free tile
    out = []
    for pop in spec.populations:
        tiles = math.ceil(pop.size / npts[pop.name])
        ipu, local = divmod(cursor, per_ipu)
        if tiles <= per_ipu - cfg.reserved_tiles_first_ipu * (ipu == 0) and local + tiles > per_ipu:
            cursor = (ipu + 1) * per_ipu  # it fits on one chip: do not straddle two
        if cursor + tiles > ipus * per_ipu:
            return out, pop.name
        out.append((pop.name, cursor, tiles))
        cursor += tiles
    return out, ""


def compile_program(
    spec: NetSpec, options: CompileOptions | None = None, config: IPUConfig | None = None, extra: Extra | None = None
) -> Program:
    """Place ``spec`` on ``options.ipus`` chips; CapacityError names the population and the bytes missing.

    ``extra(population, neurons_per_tile, tiles)`` adds bytes per tile by category (the training plans'
    gradients and checkpoints), so placement fits them too.
    """
    opt, cfg = options or CompileOptions(), config or IPUConfig()
    if opt.ipus > cfg.max_ipus:
        raise OptionError(f"expected at most {cfg.max_ipus} IPUs (ipu/max_ipus), got {opt.ipus}", path="ipus")
    layout = _Layout(spec, cfg, opt, extra)
    src_tiles: dict[str, int] = {name: 1 for name in spec.inputs}
    fits: dict[str, list[int]] = {}
    for pop in spec.populations:  # sources' tile counts at their own fit, for the exchange code allowance
        fit, one = _fits(layout, pop, src_tiles)
        if not fit:
            need, have = sum(one.values()), cfg.tile_memory_bytes
            raise CapacityError(
                f"population {pop.name!r} fits no tile at any number of neurons per tile; at one it needs {need:,}"
                f" bytes"
                f" ({_describe(one)}), a tile has {have:,}: {need - have:,} bytes missing",
                path=f"graph/{pop.name}",
            )
        fits[pop.name] = fit
        src_tiles[pop.name] = math.ceil(pop.size / max(fit))
    ranges: list[tuple[str, int, int]] = []
    for g in range(
        max(1, cfg.min_neurons_per_tile), cfg.max_neurons_per_tile + 1
    ):  # fewest neurons per tile that fits: the most tiles at work
        npts = {p.name: _choose(fits[p.name], g) for p in spec.populations}
        ranges, failed = _pack(spec, cfg, opt.ipus, npts)
        if not failed:
            break
    if failed:
        pop = spec.population(failed)
        npt = npts[failed]
        tiles = math.ceil(pop.size / npt)
        free = opt.ipus * cfg.tiles_per_ipu - (ranges[-1][1] + ranges[-1][2] if ranges else 1)
        per_tile = sum(layout.tile_bytes(pop, npt, tiles, src_tiles).values())
        later = spec.populations[[p.name for p in spec.populations].index(failed) + 1 :]
        more = sum(math.ceil(p.size / npts[p.name]) for p in later)
        raise CapacityError(
            f"population {failed!r} ({pop.size:,} neurons) needs {tiles:,} tiles at {npt} neurons per tile"
            f" ({per_tile:,} bytes each); {max(free, 0):,} tiles are left on {opt.ipus} IPU(s)"
            f"{f' and {more:,} more are needed after it' if more else ''}:"
            f" {(tiles + more - max(free, 0)) * per_tile:,} bytes missing (more IPUs: --ipus)",
            path=f"graph/{failed}",
        )
    used_ipus = max(1, max((first + tiles - 1) // cfg.tiles_per_ipu + 1 for _, first, tiles in ranges))
    n_tiles = used_ipus * cfg.tiles_per_ipu
    memory: dict[str, np.ndarray] = {}
    placements = []
    tiles_of = {name: tiles for name, _, tiles in ranges}
    tiles_of.update({name: 1 for name in spec.inputs})
    for (name, first, tiles), pop in zip(ranges, spec.populations, strict=True):
        npt = npts[name]
        placement = Placement(name, first, tiles, npt, pop.size, layout.capacity.get(name, 0))
        placements.append(placement)
        last = placement.neurons_on(tiles - 1)
        full = layout.tile_bytes(pop, npt, tiles, tiles_of)
        tail = layout.tile_bytes(pop, last, tiles, tiles_of)
        for c in full:
            column = memory.setdefault(c, np.zeros(n_tiles, np.int64))
            column[first : first + tiles - 1] = full[c]
            column[first + tiles - 1] = tail[c]
    host = 0  # the host's streams land on the reserved tile: the input buffers of one step
    for name, n in spec.inputs.items():
        host += opt.batch * (layout.capacity[name] * cfg.spike_id_bytes + cfg.count_bytes
                             if name in layout.capacity else n * cfg.value_bytes)  # fmt: skip
    memory["buffers"][0] += host
    memory["code"][0] += cfg.code_bytes_per_tile
    exchanges = _exchanges(spec, layout, placements, cfg)
    return Program(spec, cfg, opt, tuple(placements), exchanges, memory, used_ipus,
                   {k: v for k, v in layout.capacity.items() if k in spec.inputs})  # fmt: skip


def _ipus_of(first: int, tiles: int, per_ipu: int) -> set[int]:
    return set(range(first // per_ipu, (first + tiles - 1) // per_ipu + 1))


def _exchanges(spec: NetSpec, layout: _Layout, placements: list[Placement], cfg: IPUConfig) -> tuple[Exchange, ...]:
    where = {p.population: p for p in placements}
    out = []
    for pop in spec.populations:
        dst = where[pop.name]
        dst_ipus = _ipus_of(dst.first_tile, dst.tiles, cfg.tiles_per_ipu)
        for syn in pop.synapses:
            src = where.get(syn.source)
            src_ipus = {0} if src is None else _ipus_of(src.first_tile, src.tiles, cfg.tiles_per_ipu)
            # every chip but the one a buffer is merged on gets it once over an IPU-Link
            out.append(Exchange(syn.node, syn.source, pop.name, layout.sparse(syn), layout.received_bytes(syn),
                                1 if src is None else src.tiles, len(dst_ipus | src_ipus) - 1))  # fmt: skip
    return tuple(out)
