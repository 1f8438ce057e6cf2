"""The bulk-synchronous simulator: one compiled program stepped on the arrays of an engine plan.

Every tile of a population does the same thing to its own neurons, so a superstep is computed
for all of them at once (numpy over the population) and the tile structure enters through the
accounting: ids received per tile, in-field taps per tile, buffer fill, which the cycle model
(:mod:`firmware_bridges.ipu.cycles`) turns into cycles.

Numerics are float32 and the CPU engine's: a tile sums the weight rows of the ids it received
in the order they arrived, which is ascending id (the combine vertex merges tile lists in tile
order, and tiles hold ascending neurons), each row added once (times the value for values),
bias last; that is the order of the engine's kernels (``edgesnn/engine/_ckernels.c``), so
outputs are equal, tested. A convolution gathers its taps in (input channel, row, column)
order, again the engine's. The neuron update is the engine's own
(``edgesnn.engine._numpy_kernels.neuron_op``, which its native kernel matches bit for bit).
Where a buffer overflows, the ids past its capacity (the highest) never reach the readers;
they are counted per source and logged, and the outputs then differ from the engine's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from edgesnn.engine import _numpy_kernels as K
from edgesnn.engine import ops as O
from edgesnn.engine.plan import Plan
from edgesnn.errors import InputError
from firmware_bridges.ipu.compiler import Program
from firmware_bridges.ipu.cycles import StepCycles, Work, step_cycles

log = logging.getLogger("edgesnn.ipu")


def _ranks(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns and rank within the row of the non-zeros of a 2-d mask, in row-major order."""
    rows, cols = np.nonzero(mask)
    counts = np.bincount(rows, minlength=mask.shape[0])
    starts = np.cumsum(counts) - counts
    return rows, cols, np.arange(rows.size) - starts[rows]


class Simulator:
    """Steps ``program`` on ``plan``'s buffers and states; counts work, buffer fill and overflow per step."""

    def __init__(self, program: Program, plan: Plan) -> None:
        self.program = program
        self.plan = plan
        self._capacity = {p.population: p.capacity for p in program.placements if p.capacity}
        self._capacity.update(program.input_capacity)
        self._source_of = {s.node: s.source for p in program.spec.populations for s in p.synapses}
        self._tile_starts: dict[str, np.ndarray] = {}
        for pop, place in zip(program.spec.populations, program.placements, strict=True):
            for syn in pop.synapses:
                if syn.conv is not None:
                    self._tile_starts[syn.node] = np.arange(0, place.size, place.neurons_per_tile)
        self._calls: list[Callable[[], None]] = [self._bind(op) for op in plan.ops]
        self._inputs = [(n, plan.buffers[n].reshape(plan.batch, -1), c) for n, c in program.input_capacity.items()]
        self.clear()

    # -- records --------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget the work and overflow recorded so far."""
        self.steps = 0
        self._received: dict[str, list[float]] = {s: [] for s in self._source_of}
        self._in_field: dict[str, list[np.ndarray]] = {s: [] for s in self._tile_starts}
        self._listed: dict[str, list[float]] = {p: [] for p in self._capacity if p not in self.program.input_capacity}
        self.dropped: dict[str, int] = dict.fromkeys(self._capacity, 0)
        self.overflow_steps: dict[str, int] = dict.fromkeys(self._capacity, 0)
        self._warned: set[str] = set()

    def work(self) -> Work:
        """The work of every step recorded since :meth:`clear`."""
        return Work(self.steps, {k: np.asarray(v, np.float64) for k, v in self._received.items()},
                    {k: np.asarray(v, np.float64).reshape(self.steps, -1) for k, v in self._in_field.items()},
                    {k: np.asarray(v, np.float64) for k, v in self._listed.items()})  # fmt: skip

    def cycles(self) -> StepCycles:
        """Cycles of every superstep of every recorded step."""
        return step_cycles(self.program, self.work())

    def _overflow(self, name: str, counts: np.ndarray) -> float:
        cap = self._capacity[name]
        extra = int(np.maximum(counts - cap, 0).sum())
        if extra:
            self.dropped[name] += extra
            self.overflow_steps[name] += 1
            if name not in self._warned:
                self._warned.add(name)
                log.warning("IPU buffer overflow: %s had %d spikes more than its %d ids at step %d; they were dropped"
                            " (a larger max_activity keeps them)", name, extra, cap, self.steps)  # fmt: skip
        return float(np.minimum(counts, cap).sum())

    # -- one step -------------------------------------------------------------------------------
    def step(self) -> None:
        """One time step: input buffers, then each population's update and combine supersteps."""
        for name, x, _cap in self._inputs:
            nz = x != 0
            if np.any(nz & (x != 1)):
                raise InputError(f"the IPU program sends {name!r} as spike ids (input_capacity is set); expected"
                                 " 0/1 spikes, got other values", path=f"inputs/{name}")  # fmt: skip
            self._overflow(name, nz.sum(axis=1))
        for call in self._calls:
            call()
        self.steps += 1

    def _bind(self, op: O.Op) -> Callable[[], None]:
        if isinstance(op, O.DenseOp):
            return lambda: self._dense(op)
        if isinstance(op, O.ConvOp):
            return lambda: self._conv(op)
        if isinstance(op, O.NeuronOp):
            return lambda: self._neuron(op)
        kernel = K.KERNELS[type(op)]  # SumOp, CopyOp: the engine's element-wise kernels
        return lambda: kernel(op)

    def _dense(self, op: O.DenseOp) -> None:
        """Row gather-accumulate of the ids (values: their non-zeros) in ascending order, bias last."""
        x, out = op.x, op.out
        cap = self._capacity.get(self._source_of[op.node])
        rows, cols, rank = _ranks(x != 0)
        counts = np.bincount(rows, minlength=x.shape[0])
        if cap is not None:
            keep = rank < cap
            rows, cols, rank = rows[keep], cols[keep], rank[keep]
        width = int(rank.max()) + 1 if rank.size else 0
        ids = np.zeros((x.shape[0], width), np.intp)
        valid = np.zeros((x.shape[0], width), bool)
        ids[rows, rank] = cols
        valid[rows, rank] = True
        out.fill(0)
        batch = np.arange(x.shape[0])
        for j in range(width):
            gathered = op.wt[ids[:, j]]
            if not op.binary:
                gathered = gathered * x[batch, ids[:, j]][:, None]
            np.add(out, gathered, out=out, where=valid[:, j : j + 1])
        if op.bias is not None:
            out += op.bias
        received = float(np.minimum(counts, cap).sum()) if cap is not None else float(counts.sum())
        self._received[op.node].append(received)

    def _conv(self, op: O.ConvOp) -> None:
        """Taps gathered in (input channel, row, column) order per output, bias last; in-field taps per tile."""
        x = op.x
        b, c_in, h, w = x.shape
        cap = self._capacity.get(self._source_of[op.node])
        flat = x.reshape(b, -1)
        nz = flat != 0
        counts = nz.sum(axis=1)
        if cap is not None and int(counts.max(initial=0)) > cap:
            keep = nz & (np.cumsum(nz, axis=1) <= cap)
            x = np.where(keep, flat, np.float32(0)).reshape(x.shape)
            counts = np.minimum(counts, cap)
        self._received[op.node].append(float(counts.sum()))
        (ph, pw), (sh, sw), (dh, dw) = op.padding, op.stride, op.dilation
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        c_out, c_in_g, kh, kw = op.weight.shape
        _, _, ho, wo = op.out.shape
        g_out = c_out // op.groups
        out = op.out
        out.fill(0)
        field = np.zeros((b, op.groups, ho, wo), np.int64)
        for g in range(op.groups):
            dst = out[:, g * g_out : (g + 1) * g_out]
            for cl in range(c_in_g):
                ci = g * c_in_g + cl
                for ky in range(kh):
                    for kx in range(kw):
                        y0, x0 = ky * dh, kx * dw
                        win = xp[:, ci, y0 : y0 + sh * (ho - 1) + 1 : sh, x0 : x0 + sw * (wo - 1) + 1 : sw]
                        dst += win[:, None] * op.weight[g * g_out : (g + 1) * g_out, cl, ky, kx][None, :, None, None]
                        field[:, g] += win != 0
        if op.bias is not None:
            out += op.bias[None, :, None, None]
        per_neuron = np.repeat(field.sum(axis=0), g_out, axis=0).reshape(-1)
        self._in_field[op.node].append(np.add.reduceat(per_neuron, self._tile_starts[op.node]).astype(np.float64))

    def _neuron(self, op: O.NeuronOp) -> None:
        K.neuron_op(op)
        if op.node in self._listed:
            self._listed[op.node].append(self._overflow(op.node, np.count_nonzero(op.out, axis=1)))
