"""The cycle model: one time step as bulk-synchronous supersteps (compute, sync, exchange), in tile cycles.

Per step: the host's input buffers are exchanged to the tiles that read them; then, for every
population in step order, an *update* superstep (each tile gathers the weight rows of the ids
it received, or multiplies the values, then updates its neurons and lists those that spiked;
the lists go to the combine vertices) and, for a population that sends ids, a *combine*
superstep (one vertex per sample merges the lists into the capacity-bounded buffer, which is
broadcast to the readers). Compute is the busiest tile's: its neurons are shared among the
worker threads and each thread issues one instruction every ``workers_per_tile`` cycles, so a
tile with fewer neurons than threads leaves threads idle. Exchange is ``max(bytes received,
bytes sent) / exchange_bytes_per_cycle`` on the busiest tile plus a set-up cost; exchange sizes
are fixed when the program is compiled (Poplar schedules exchanges statically), so a buffer
costs its capacity whatever its count. Data for another chip crosses an IPU-Link. Every
constant is a field of :class:`~firmware_bridges.ipu.config.IPUConfig`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from firmware_bridges.ipu.compiler import Placement, Program
from firmware_bridges.ipu.netspec import Population, Synapse


@dataclasses.dataclass(frozen=True)
class Work:
    """What one step's compute depends on, per step (leading axis T).

    ``received[synapse]``: ids (sparse) the destination tiles gathered, summed over the batch,
    (T,); ``in_field[synapse]``: for a convolution, per tile of the destination the weights it
    gathered over its neurons and the batch, (T, tiles); ``listed[population]``: ids its
    combine vertices copied, summed over the batch, (T,).
    """

    steps: int
    received: dict[str, np.ndarray]
    in_field: dict[str, np.ndarray]
    listed: dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class StepCycles:
    """Cycles of each superstep of every step: ``compute``, ``exchange`` (T, supersteps); sync per superstep."""

    names: tuple[str, ...]
    compute: np.ndarray
    exchange: np.ndarray
    sync: int
    host_s_per_step: float
    clock_hz: float

    @property
    def per_step(self) -> np.ndarray:
        """Cycles of each step (T,)."""
        return self.compute.sum(axis=1) + self.exchange.sum(axis=1) + self.sync * len(self.names)

    @property
    def seconds_per_step(self) -> np.ndarray:
        """Seconds of each step on the chip, host transfers of its inputs and outputs included (T,)."""
        return self.per_step / self.clock_hz + self.host_s_per_step

    def breakdown(self) -> dict[str, float]:
        """Mean cycles per step: compute, sync, exchange; and the host's share in seconds."""
        return {"compute_cycles": float(self.compute.sum(axis=1).mean()) if len(self.compute) else 0.0,
                "sync_cycles": float(self.sync * len(self.names)),
                "exchange_cycles": float(self.exchange.sum(axis=1).mean()) if len(self.exchange) else 0.0,
                "host_s": self.host_s_per_step}  # fmt: skip


def _exchange_cycles(program: Program, received: float, sent: float, link_bytes: float) -> float:
    cfg = program.config
    cycles = cfg.exchange_setup_cycles + max(received, sent) / cfg.exchange_bytes_per_cycle
    if link_bytes:
        cycles += (link_bytes / cfg.ipu_link_bytes_per_s + cfg.ipu_link_latency_s) * cfg.clock_hz
    return cycles


def _busiest_worker(neurons: int, workers: int) -> int:
    return math.ceil(neurons / workers) if neurons else 0


def _update_compute(program: Program, pop: Population, place: Placement, work: Work) -> np.ndarray:
    """Cycles of the busiest tile of ``pop``'s update superstep, (T,)."""
    cfg, batch, t = program.config, program.options.batch, work.steps
    workers = cfg.workers_per_tile
    full = place.neurons_per_tile
    best = np.zeros(t)
    for n_tile in sorted({full, place.neurons_on(place.tiles - 1)}):
        nw = _busiest_worker(n_tile, workers)
        instr = np.full(t, nw * batch * (pop.update_ops * cfg.neuron_instructions_per_op
                                         + cfg.select_instructions_per_neuron * pop.spiking))  # fmt: skip
        for syn in pop.synapses:
            instr = instr + _synapse_instructions(program, syn, place, n_tile, nw, work)
        best = np.maximum(best, cfg.vertex_launch_cycles * (2 + len(pop.synapses)) + workers * instr)
    return best


def _synapse_instructions(program: Program, syn: Synapse, place: Placement, n_tile: int, nw: int,
                          work: Work) -> np.ndarray:  # fmt: skip
    cfg, batch = program.config, program.options.batch
    ex = next(e for e in program.exchanges if e.synapse == syn.node)
    if not ex.sparse:
        return np.full(work.steps, batch * syn.n_in * nw * cfg.dense_instructions_per_mac)
    ids = work.received[syn.node]
    if syn.conv is None:
        return ids * (cfg.instructions_per_received_spike + nw * cfg.accumulate_instructions_per_synapse)
    # each tile filters every id it received, and gathers the taps that reach its neurons
    field = work.in_field[syn.node].max(axis=1) * (nw / max(n_tile, 1))
    return ids * cfg.instructions_per_received_spike + field * cfg.accumulate_instructions_per_synapse


def readers(program: Program, name: str) -> list[Placement]:
    """Placements of the populations that read ``name``."""
    return [program.placement(e.destination) for e in program.exchanges if e.source == name]


def _link_bytes(program: Program, name: str, per_sample: int) -> float:
    return sum(e.link_crossings for e in program.exchanges if e.source == name) * per_sample * program.options.batch


def step_cycles(program: Program, work: Work) -> StepCycles:
    """The cycles of every superstep of every step for the measured (or assumed) ``work``."""
    cfg, batch, t = program.config, program.options.batch, work.steps
    names, compute, exchange = [], [], []
    # inputs: the reserved tile broadcasts the host's buffers
    for name in program.spec.inputs:
        per_sample = max((e.bytes_per_sample for e in program.exchanges if e.source == name), default=0)
        if not per_sample:
            continue
        recv = sum(e.bytes_per_sample for e in program.exchanges if e.source == name) * batch
        names.append(f"{name}:input")
        compute.append(np.zeros(t))
        exchange.append(np.full(t, _exchange_cycles(program, recv, per_sample * batch,
                                                    _link_bytes(program, name, per_sample))))  # fmt: skip
    host_bytes = 0.0
    for name, n in program.spec.inputs.items():
        cap = program.input_capacity.get(name)
        host_bytes += batch * (cap * cfg.spike_id_bytes + cfg.count_bytes if cap else n * cfg.value_bytes)
    for pop, place in zip(program.spec.populations, program.placements, strict=True):
        names.append(f"{pop.name}:update")
        compute.append(_update_compute(program, pop, place, work))
        outs = [e for e in program.exchanges if e.source == pop.name]
        if not outs:  # read by the host: its values (or spikes) leave through the host link
            host_bytes += batch * pop.size * cfg.value_bytes
        if place.capacity:  # lists to the combine vertices, then the merged buffer to the readers
            local = min(place.neurons_per_tile, place.capacity) * cfg.spike_id_bytes + cfg.count_bytes
            combines = math.ceil(batch / place.tiles)
            exchange.append(np.full(t, _exchange_cycles(program, combines * place.tiles * local, batch * local, 0)))
            names.append(f"{pop.name}:combine")
            listed = work.listed.get(pop.name, np.zeros(t))
            per_tile = listed * (combines / batch)
            instr = combines * place.tiles * cfg.instructions_per_received_spike + per_tile
            compute.append(cfg.vertex_launch_cycles + cfg.workers_per_tile * instr)
            buf = place.capacity * cfg.spike_id_bytes + cfg.count_bytes
            recv = batch * buf * _max_readers(program, pop.name)
            link = _link_bytes(program, pop.name, buf)
            exchange.append(np.full(t, _exchange_cycles(program, recv, combines * buf, link)))
        else:  # values straight to the readers
            sent = batch * place.neurons_per_tile * cfg.value_bytes
            recv = batch * pop.size * cfg.value_bytes * _max_readers(program, pop.name) if outs else 0
            link = _link_bytes(program, pop.name, pop.size * cfg.value_bytes)
            exchange.append(np.full(t, _exchange_cycles(program, recv, sent if outs else 0, link)))
    sync = cfg.sync_cycles + (cfg.ipu_link_latency_s * cfg.clock_hz if program.ipus > 1 else 0)
    return StepCycles(tuple(names), np.stack(compute, axis=1) if compute else np.zeros((t, 0)),
                      np.stack(exchange, axis=1) if exchange else np.zeros((t, 0)), int(round(sync)),
                      host_bytes / cfg.host_link_bytes_per_s, cfg.clock_hz)  # fmt: skip


def _max_readers(program: Program, name: str) -> int:
    """Most projections from ``name`` that one tile reads (a tile of a population reading it twice gets two)."""
    counts: dict[str, int] = {}
    for e in program.exchanges:
        if e.source == name:
            counts[e.destination] = counts.get(e.destination, 0) + 1
    return max(counts.values(), default=0)


def assumed_work(program: Program, activity: float, steps: int = 1) -> Work:
    """Work at a fixed ``activity`` (fraction of each spiking source, and of binary inputs, active per step)."""
    batch = program.options.batch
    received, in_field, listed = {}, {}, {}

    def active(name: str) -> float:
        n = program.spec.inputs[name] if name in program.spec.inputs else program.spec.population(name).size
        cap = program.input_capacity.get(name) or (0 if name in program.spec.inputs
                                                   else program.placement(name).capacity)  # fmt: skip
        k = activity * n
        return min(k, cap) if cap else k

    for pop, place in zip(program.spec.populations, program.placements, strict=True):
        for syn in pop.synapses:
            k = active(syn.source)
            received[syn.node] = np.full(steps, batch * k)
            if syn.conv is not None:
                in_field[syn.node] = np.full((steps, 1), batch * activity * syn.conv.taps * place.neurons_per_tile)
        if place.capacity:
            listed[pop.name] = np.full(steps, batch * min(activity * pop.size, place.capacity))
    return Work(steps, received, in_field, listed)
