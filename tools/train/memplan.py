"""The checkpointing planner: memory and time of each scheme, and the cheapest one that fits a budget.

The model (derived here; the paper's own formulas could not be read, see ../shared/research):
per sample, a loop carries a state of ``s`` bytes and plain BPTT keeps ``r`` bytes of residuals
per step, so over T steps:

============  =======================================  =============  ===============
scheme        local memory per sample                  extra forwards remote (per sample)
============  =======================================  =============  ===============
none          T r                                      0              0
standard k    ceil(T/k) s + k r                        1              0
hierarchical  ceil(T/k1) s + ceil(k1/k2) s + k2 r      2              0
remote k      2 s + k r                                1              ceil(T/k) s
double k1 k2  2 s + ceil(k1/k2) s + k2 r               2              ceil(T/k1) s
============  =======================================  =============  ===============

plus what every scheme holds whole (the input and output streams, ``stream`` bytes per sample
and step) and what does not grow with T or the batch (weights, gradients). Standard is smallest
at k = sqrt(T s / r), 2 sqrt(T s r); a remote store sends ceil(T/k) states out in the forward pass
and brings each back once. Where this differs from the abstract's "s (T/k + k)": a chunk's
residuals cost r per step, not s, and r is several times s (every intermediate of the step that
its backward pass reads), which moves the optimum to smaller chunks. Time, relative to plain
BPTT: (1 + backward + extra forwards) / (1 + backward) with backward ~ 2 forwards.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable

from edgesnn.errors import OptionError
from tools.train.timeloop import RECOMPUTE, Checkpointing

MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class MemoryModel:
    """Bytes a training loop holds: per sample (state, residuals per step, streams per step) and fixed."""

    state_bytes: float
    residual_bytes_per_step: float
    stream_bytes_per_step: float = 0.0
    fixed_bytes: float = 0.0
    backward_cost: float = 2.0  # one step's backward pass in forward passes


@dataclasses.dataclass(frozen=True)
class Prediction:
    """A plan and what the model predicts for it at ``steps`` x ``batch``."""

    plan: Checkpointing
    steps: int
    batch: int
    local_bytes: float
    remote_bytes: float
    extra_forwards: int
    time_factor: float

    def describe(self) -> str:
        """One line for the training log."""
        chunks = f" chunks {list(self.plan.chunks)}" if self.plan.chunks else ""
        remote = f", {self.remote_bytes / MIB:.1f} MiB in {self.plan.remote} memory" if self.remote_bytes else ""
        return (f"checkpointing {self.plan.scheme}{chunks}: {self.local_bytes / MIB:.1f} MiB local{remote},"
                f" {self.extra_forwards} extra forward pass(es), time x{self.time_factor:.2f} of plain BPTT"
                f" (T = {self.steps}, batch {self.batch})")  # fmt: skip

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"scheme": self.plan.scheme, "chunks": list(self.plan.chunks), "steps": self.steps,
                "batch": self.batch, "local_mib": round(self.local_bytes / MIB, 3),
                "remote_mib": round(self.remote_bytes / MIB, 3), "extra_forwards": self.extra_forwards,
                "time_factor": round(self.time_factor, 3)}  # fmt: skip


def _per_sample(plan: Checkpointing, steps: int, m: MemoryModel) -> tuple[float, float]:
    """(local, remote) bytes per sample, without the streams."""
    s, r, t = m.state_bytes, m.residual_bytes_per_step, steps
    k = [min(c, t) for c in plan.chunks]
    if plan.scheme == "none":
        return t * r, 0.0
    if plan.scheme == "standard":
        return math.ceil(t / k[0]) * s + k[0] * r, 0.0
    if plan.scheme == "hierarchical":
        return math.ceil(t / k[0]) * s + math.ceil(k[0] / k[1]) * s + k[1] * r, 0.0
    if plan.scheme == "remote":
        return 2 * s + k[0] * r, math.ceil(t / k[0]) * s
    return 2 * s + math.ceil(k[0] / k[1]) * s + k[1] * r, math.ceil(t / k[0]) * s  # double


def predict(plan: Checkpointing, steps: int, batch: int, model: MemoryModel) -> Prediction:
    """What ``plan`` needs for ``steps`` steps of ``batch`` samples under ``model``."""
    local, remote = _per_sample(plan, steps, model)
    local = batch * (local + steps * model.stream_bytes_per_step) + model.fixed_bytes
    extra = RECOMPUTE[plan.scheme]
    base = 1.0 + model.backward_cost
    return Prediction(plan, steps, batch, local, batch * remote, extra, (base + extra) / base)


def _sqrt_chunk(t: int, s: float, r: float) -> int:
    return max(1, min(t, round(math.sqrt(t * s / max(r, 1e-9)))))


def _hierarchical(t: int, s: float, r: float) -> tuple[int, int]:
    best = None
    for k2 in _grid(t):
        k1 = max(k2, min(t, round(math.sqrt(t * k2))))
        cost = math.ceil(t / k1) * s + math.ceil(k1 / k2) * s + k2 * r
        if best is None or cost < best[0]:
            best = (cost, k1, k2)
    assert best is not None
    return best[1], best[2]


def default_chunks(scheme: str, steps: int, model: MemoryModel) -> tuple[int, ...]:
    """Chunks of ``scheme`` without a budget: standard and hierarchical at their least memory; remote
    at the standard optimum sqrt(T s / r) (as many states, kept remotely); double with that outer chunk
    and its inner chunks at their optimum."""
    s, r, t = model.state_bytes, model.residual_bytes_per_step, steps
    if scheme == "none":
        return ()
    if scheme == "hierarchical":
        return _hierarchical(t, s, r)
    k = _sqrt_chunk(t, s, r)
    if scheme == "double":
        return (k, min(k, _sqrt_chunk(k, s, r)))
    return (k,)


def _candidates(steps: int, m: MemoryModel, per_sample_budget: float, remote: str) -> Iterable[Checkpointing]:
    s, r, t = m.state_bytes, max(m.residual_bytes_per_step, 1e-9), steps
    yield Checkpointing()
    yield Checkpointing("standard", (_sqrt_chunk(t, s, r),))
    # remote: the longest chunk that fits (fewest transfers)
    k = int((per_sample_budget - 2 * s) // r) if per_sample_budget > 2 * s else 1
    yield Checkpointing("remote", (max(1, min(t, k)),), remote=remote)
    yield Checkpointing("hierarchical", _hierarchical(t, s, r))
    # double: inner chunks at their optimum for an outer chunk, the longest outer chunk that fits
    fit = None
    for k1 in sorted(set(_grid(t)) | {t}, reverse=True):
        k2 = _sqrt_chunk(k1, s, r)
        if 2 * s + math.ceil(k1 / k2) * s + k2 * r <= per_sample_budget:
            fit = (k1, k2)
            break
    k1, k2 = fit or (1, 1)
    yield Checkpointing("double", (k1, k2), remote=remote)


def _grid(t: int) -> list[int]:
    """Chunk sizes to try: every size up to 64, then about 2 % apart."""
    sizes, k = [], 1
    while k <= t:
        sizes.append(k)
        k = k + 1 if k < 64 else max(k + 1, int(k * 1.02))
    return sizes


def choose(
    steps: int, batch: int, model: MemoryModel, budget_bytes: float, *, remote: str = "host",
    schemes: Iterable[str] | None = None,
) -> Prediction:  # fmt: skip
    """The plan with the fewest extra forwards (then fewest transfers, then least memory) that fits."""
    allowed = set(schemes) if schemes is not None else None
    per_sample = (budget_bytes - model.fixed_bytes) / batch - steps * model.stream_bytes_per_step
    options = [predict(p, steps, batch, model) for p in _candidates(steps, model, per_sample, remote)
               if allowed is None or p.scheme in allowed]  # fmt: skip
    fitting = [p for p in options if p.local_bytes <= budget_bytes]
    if not fitting:
        least = min(options, key=lambda p: p.local_bytes)
        raise OptionError(
            f"{budget_bytes / MIB:.1f} MiB is below what any scheme needs for T = {steps}, batch {batch}:"
            f" the least is {least.describe()}",
            path="train/checkpointing/budget_mib",
        )
    return min(fitting, key=lambda p: (p.extra_forwards, p.remote_bytes > 0, p.local_bytes))


def calibrate(temp_bytes: Callable[[int], float], batch: int, steps: tuple[int, int] = (32, 64)) -> float:
    """Residual bytes per sample and step of plain BPTT: the slope of ``temp_bytes(T)`` (XLA's buffers)."""
    t1, t2 = steps
    return max(0.0, (temp_bytes(t2) - temp_bytes(t1)) / ((t2 - t1) * batch))
