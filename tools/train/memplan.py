"""The checkpointing planner: memory and time of each scheme, and the cheapest one that fits a budget.

The model (derived here; the paper's own formulas could not be read, see ../shared/research):
per sample, a loop keeps ``s`` bytes for each chunk state it checkpoints, ``s_i`` for each state
an inner level checkpoints, and ``r`` bytes of residuals for each step of the block it is
differentiating; a nested scheme also holds the input of the outer chunk it is in (``x`` bytes per
step), and every scheme a stream of ``e`` bytes per step (the read-out trace). Over T steps:

============  ==================================================  =============  ===============
scheme        local memory per sample (plus T e)                  extra forwards remote (per sample)
============  ==================================================  =============  ===============
none          T r_plain                                           0              0
standard k    ceil(T/k) s + k r                                   1              0
hierarchical  ceil(T/k1) s + ceil(k1/k2) s_i + k2 r + k1 x        2              0
remote k      2 s + k r                                           1              ceil(T/k) s
double k1 k2  2 s + ceil(k1/k2) s_i + k2 r + k1 x                 2              ceil(T/k1) s
============  ==================================================  =============  ===============

plus what does not grow with T or the batch (weights, gradients). ``s`` is counted from the
network (tools.train.models.state_bytes); ``s_i``, ``r``, ``x``, ``e`` and the fixed part are
calibrated together (:func:`fit`) by least squares on XLA's buffer assignment of the compiled
gradient for a few short plans of every kind, so the same model predicts every scheme at any T.
Standard is smallest at k = sqrt(T s / r), 2 sqrt(T s r); a remote store sends ceil(T/k) states
out in the forward pass and brings each back once. Where this differs from the abstract's
"s (T/k + k)": a chunk's residuals cost r per step, not s, and r is several times s (every
intermediate of the step that its backward pass reads), which moves the optimum to smaller
chunks; an inner checkpoint costs more than an outer one (XLA keeps the loop's carry with it,
about 2.5 s here); and a nested scheme copies its outer chunk's input (``x``) for the inner
loop. Time, relative to plain BPTT: (1 + backward + extra forwards) / (1 + backward) with
backward ~ 2 forwards.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable

from edgesnn.errors import OptionError
from tools.train.schemes import RECOMPUTE, Checkpointing

MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class MemoryModel:
    """Bytes a training loop holds: per sample (state, residuals per step, streams per step) and fixed."""

    state_bytes: float
    residual_bytes_per_step: float
    stream_bytes_per_step: float = 0.0
    fixed_bytes: float = 0.0
    backward_cost: float = 2.0  # one step's backward pass in forward passes
    inner_state_bytes: float | None = None  # s_i, per inner checkpoint (None: state_bytes)
    input_bytes_per_step: float = 0.0  # x, the outer chunk's input a nested scheme holds
    # Plain BPTT runs the layers one after the other over the whole sequence (tools.train.models
    # .forward), which keeps other things per step than a checkpointed block: its own slope and
    # intercept where calibrated (None: the block's).
    plain_bytes_per_step: float | None = None
    plain_fixed_bytes: float | None = None

    @property
    def inner(self) -> float:
        """Bytes per sample of an inner checkpoint."""
        return self.state_bytes if self.inner_state_bytes is None else self.inner_state_bytes


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


def features(plan: Checkpointing, steps: int) -> tuple[int, int, int, int]:
    """(outer checkpoints, inner checkpoints, block steps, outer-chunk input steps) per sample of ``plan``."""
    t = steps
    k = [min(c, t) for c in plan.chunks]
    if plan.scheme == "standard":
        return math.ceil(t / k[0]), 0, k[0], 0
    if plan.scheme == "hierarchical":
        return math.ceil(t / k[0]), math.ceil(k[0] / k[1]), k[1], k[0]
    if plan.scheme == "remote":
        return 2, 0, k[0], 0
    if plan.scheme == "double":
        return 2, math.ceil(k[0] / k[1]), k[1], k[0]
    raise ValueError(f"plain BPTT has no checkpoints: {plan.scheme!r}")


def _per_sample(plan: Checkpointing, steps: int, m: MemoryModel) -> tuple[float, float]:
    """(local, remote) bytes per sample, without the streams."""
    t = steps
    if plan.scheme == "none":
        return t * (m.residual_bytes_per_step if m.plain_bytes_per_step is None else m.plain_bytes_per_step), 0.0
    outer, inner, block, held = features(plan, t)
    local = outer * m.state_bytes + inner * m.inner + block * m.residual_bytes_per_step + held * m.input_bytes_per_step
    remote = math.ceil(t / min(plan.chunks[0], t)) * m.state_bytes if plan.is_remote else 0.0
    return local, remote


def predict(plan: Checkpointing, steps: int, batch: int, model: MemoryModel) -> Prediction:
    """What ``plan`` needs for ``steps`` steps of ``batch`` samples under ``model``."""
    local, remote = _per_sample(plan, steps, model)
    fixed = model.fixed_bytes
    if plan.scheme == "none" and model.plain_fixed_bytes is not None:
        fixed = model.plain_fixed_bytes
    local = max(0.0, batch * (local + steps * model.stream_bytes_per_step) + fixed)
    extra = RECOMPUTE[plan.scheme]
    base = 1.0 + model.backward_cost
    return Prediction(plan, steps, batch, local, batch * remote, extra, (base + extra) / base)


def divisor_near(t: int, k: float) -> int:
    """``k`` moved to the nearest divisor of ``t`` within a factor 1.5, else 3 (chunks that tile the
    sequence need no partial chunk, whose slicing would copy the input); else ``k`` rounded."""
    k = max(1, min(t, round(k)))
    floor = min(MIN_BLOCK, k)
    for spread in (1.5, 3.0):  # a partial chunk costs a copy of the input: go further before accepting one
        near = [d for d in range(max(floor, int(k / spread)), min(t, int(k * spread)) + 1) if t % d == 0]
        if near:
            return min(near, key=lambda d: abs(math.log(d / k)))
    return k


#: The shortest innermost chunk the planner picks: a block of one step makes XLA keep a copy of the
#: input for the backward pass (measured with tools/bench/train_memory.py), two steps do not.
MIN_BLOCK = 2


def _sqrt_chunk(t: int, s: float, r: float) -> int:
    return divisor_near(t, max(min(MIN_BLOCK, t), math.sqrt(t * s / max(r, 1e-9))))


def _hierarchical(t: int, m: MemoryModel) -> tuple[int, int]:
    """The least-memory (k1, k2); among pairs that tile T (k2 | k1 | T) when one costs at most 1.5x."""
    s, si, r, x = m.state_bytes, m.inner, max(m.residual_bytes_per_step, 1e-9), m.input_bytes_per_step

    def cost(k1: int, k2: int) -> float:
        return math.ceil(t / k1) * s + math.ceil(k1 / k2) * si + k2 * r + k1 * x

    best = None
    for k2 in _grid(t)[min(MIN_BLOCK, t) - 1 :]:
        # d/dk1 of T s / k1 + k1 (si / k2 + x) is zero at k1 = sqrt(T s / (si / k2 + x))
        k1 = max(k2, min(t, round(math.sqrt(t * s / max(si / k2 + x, 1e-9)))))
        k1 = max(k2, (k1 // k2) * k2)  # outer chunks of whole inner chunks
        if best is None or cost(k1, k2) < cost(*best):
            best = (k1, k2)
    assert best is not None
    divisors = [d for d in range(1, t + 1) if t % d == 0]
    tiled = [(k1, k2) for k1 in divisors for k2 in divisors if min(MIN_BLOCK, t) <= k2 <= k1 and k1 % k2 == 0]
    tile = min(tiled, key=lambda p: cost(*p))
    return tile if cost(*tile) <= 1.5 * cost(*best) else best


def default_chunks(scheme: str, steps: int, model: MemoryModel) -> tuple[int, ...]:
    """Chunks of ``scheme`` without a budget: standard and hierarchical at their least memory; remote
    at the standard optimum sqrt(T s / r) (as many states, kept remotely); double with that outer chunk
    and its inner chunks at their optimum."""
    s, r, t = model.state_bytes, model.residual_bytes_per_step, steps
    if scheme == "none":
        return ()
    if scheme == "hierarchical":
        return _hierarchical(t, model)
    k = _sqrt_chunk(t, s, r)
    if scheme == "double":
        return (k, min(k, _sqrt_chunk(k, model.inner, r)))
    return (k,)


def _double(t: int, m: MemoryModel, per_sample_budget: float) -> tuple[int, int]:
    """Double's chunks: the longest outer chunk whose inner optimum fits (a divisor of T if one is
    not much shorter), the inner chunk at its optimum for it."""
    s, si, r, x = m.state_bytes, m.inner, max(m.residual_bytes_per_step, 1e-9), m.input_bytes_per_step

    def local(k1: int) -> float:
        k2 = _sqrt_chunk(k1, si, r)
        return 2 * s + math.ceil(k1 / k2) * si + k2 * r + k1 * x

    longest = next((k for k in sorted(set(_grid(t)) | {t}, reverse=True) if local(k) <= per_sample_budget), 1)
    divisors = [
        d for d in range(max(1, int(longest / 1.5)), longest + 1) if t % d == 0 and local(d) <= per_sample_budget
    ]
    k1 = max(divisors) if divisors else longest
    return k1, _sqrt_chunk(k1, si, r)


def _candidate(scheme: str, steps: int, batch: int, model: MemoryModel, budget: float, remote: str) -> Checkpointing:
    """``scheme``'s chunks for ``budget`` bytes: the memory optimum, or for the remote schemes the
    longest outer chunk that fits (fewest transfers)."""
    s, r, t = model.state_bytes, max(model.residual_bytes_per_step, 1e-9), steps
    per_sample = (budget - model.fixed_bytes) / batch - t * model.stream_bytes_per_step
    if scheme in ("none", "standard", "hierarchical"):
        return Checkpointing(scheme, default_chunks(scheme, t, model))
    if scheme == "remote":
        k = max(1, min(t, int((per_sample - 2 * s) // r) if per_sample > 2 * s else 1))
        fits = [d for d in range(max(1, int(k / 1.5)), k + 1) if t % d == 0]
        return Checkpointing("remote", (max(fits) if fits else k,), remote=remote)
    return Checkpointing("double", _double(t, model, per_sample), remote=remote)


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
    allowed = [x for x in ("none", "standard", "remote", "hierarchical", "double") if schemes is None or x in schemes]
    options = [predict(_candidate(x, steps, batch, model, budget_bytes, remote), steps, batch, model) for x in allowed]
    fitting = [p for p in options if p.local_bytes <= budget_bytes]
    if not fitting:
        least = min(options, key=lambda p: p.local_bytes)
        raise OptionError(
            f"{budget_bytes / MIB:.1f} MiB is below what any scheme needs for T = {steps}, batch {batch}:"
            f" the least is {least.describe()}",
            path="train/checkpointing/budget_mib",
        )
    return min(fitting, key=lambda p: (p.extra_forwards, p.remote_bytes > 0, p.local_bytes))


#: The short plans :func:`fit` compiles: (scheme, chunks, T), chosen so that the five per-sample terms
#: (s_i, r, x, e and the outer state, held at the counted s) and the fixed part are all determined.
DESIGN: tuple[tuple[str, tuple[int, ...], int], ...] = (
    ("standard", (4,), 48), ("standard", (12,), 48), ("standard", (8,), 96), ("standard", (4,), 96),
    ("hierarchical", (16, 4), 96), ("hierarchical", (24, 2), 48), ("hierarchical", (48, 8), 96),
    ("remote", (6,), 96), ("double", (24, 4), 96), ("double", (12, 2), 48), ("double", (48, 16), 96),
    ("double", (32, 2), 64),
)  # fmt: skip


def fit(measure: Callable[[Checkpointing, int], float], batch: int, state_bytes: float) -> dict[str, float]:
    """The checkpointed schemes' terms from XLA's buffers of the :data:`DESIGN` plans, by least squares.

    ``measure(plan, T)`` is the compiled gradient's buffer assignment in bytes. The outer state is
    the counted ``state_bytes`` (what a checkpoint holds by construction); the rest, non-negative,
    is fitted: returns ``inner_state_bytes``, ``residual_bytes_per_step``, ``input_bytes_per_step``,
    ``stream_bytes_per_step`` and ``fixed_bytes``.
    """
    import numpy as np
    from scipy.optimize import nnls

    rows, values = [], []
    for scheme, chunks, steps in DESIGN:
        outer, inner, block, held = features(Checkpointing(scheme, chunks), steps)
        rows.append([batch * inner, batch * block, batch * held, batch * steps, 1.0])
        values.append(measure(Checkpointing(scheme, chunks), steps) - batch * outer * state_bytes)
    a, y = np.asarray(rows), np.asarray(values)
    scale = np.maximum(np.abs(a).max(axis=0), 1.0)  # columns of comparable size for the solver
    coef = nnls(a / scale, y)[0] / scale
    names = ("inner_state_bytes", "residual_bytes_per_step", "input_bytes_per_step", "stream_bytes_per_step",
             "fixed_bytes")  # fmt: skip
    return dict(zip(names, map(float, coef), strict=True))


def calibrate(temp_bytes: Callable[[int], float], batch: int, steps: tuple[int, int] = (32, 64)) -> tuple[float, float]:
    """(bytes per sample and step, bytes at T = 0) of a loop: a line through ``temp_bytes(T)`` at two T.

    ``temp_bytes`` is XLA's buffer assignment of the compiled gradient (``memory_analysis``), which is
    what the computation allocates at its peak; the line's intercept holds weights, gradients and state.
    """
    t1, t2 = steps
    m1, m2 = temp_bytes(t1), temp_bytes(t2)
    slope = max(0.0, (m2 - m1) / ((t2 - t1) * batch))
    return slope, max(0.0, m1 - slope * batch * t1)
