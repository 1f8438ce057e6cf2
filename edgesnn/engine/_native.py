"""Native backend: compile a plan's ops into programs for the C step kernels.

``make_step(ops)`` encodes every op the C extension supports as an int64
record (see ``_ckernels.c``) and groups consecutive records into one
``Program``, so a run of native ops costs one C call per step. Ops without a
native kernel (ONNX parts) run through the numpy reference kernel between
native segments. The extension is optional: without it ``AVAILABLE`` is
False and the engine uses numpy alone.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable

import numpy as np

from edgesnn.engine import _numpy_kernels, _transformer
from edgesnn.engine import ops as O
from edgesnn.errors import MissingDependencyError

try:
    from edgesnn.engine import _ckernels as _C
except ImportError:  # built optionally (setup.py); numpy takes over
    _C = None

log = logging.getLogger("edgesnn.engine")

AVAILABLE: bool = _C is not None

#: Programs whose estimated work per step exceeds this many element updates let other
#: Python threads run meanwhile; below it, releasing the GIL costs more than it gives.
GIL_RELEASE_WORK = 200_000

#: A sparse convolution scatters straight into its (C_out, H, W) output, one channel plane at a
#: time, while the scatter work (pairs x output channels) stays below this multiple of the output
#: size; above it, a contiguous (H, W, C_out) accumulator plus one transpose is faster. Measured
#: on W3 before the AVX2 scatter: conv1 at work/size 0.18 takes 5.6 µs direct vs 13.4 µs via the
#: accumulator; conv2 at 1.4 takes 12.7 µs direct vs 9.5 µs. With the AVX2 scatter the accumulator
#: wins from about 0.25: the detector's first conv (0.43, 8 channels) took 0.17 ms less per
#: window through it, while W3's conv1 (0.18) stays direct.
CONV_HWC_WORK_RATIO = 0.25

_COEFFS = (
    "a_syn", "g_syn", "a_w", "c_w", "b_w", "a_v", "k_v", "g_v", "g_w", "g_x", "h_w", "v_leak", "v_threshold", "v_reset"
)  # fmt: skip


class _Unsupported(Exception):
    """An op (or an array layout) the native kernels do not handle; it runs on numpy."""


class _Encoder:
    """Collects int64 records and the arrays whose memory they point into."""

    def __init__(self) -> None:
        self.code: list[int] = []
        # The records hold raw addresses into these arrays' memory: the Program keeps
        # this list (as a tuple) alive so no array is freed or reallocated under it.
        self.keep: list[np.ndarray] = []
        self.work = 0

    def ptr(self, arr: np.ndarray | None, size: int, dtype: type = np.float32) -> int:
        """Address of ``arr`` after checking dtype, C order and element count (0 for None)."""
        if arr is None:
            return 0
        if not isinstance(arr, np.ndarray) or arr.dtype != dtype or not arr.flags.c_contiguous or arr.size != size:
            got = f"{getattr(arr, 'dtype', type(arr).__name__)} {getattr(arr, 'shape', '')}"
            raise _Unsupported(f"expected C-contiguous {np.dtype(dtype)} of {size} elements, got {got}")
        self.keep.append(arr)
        return int(arr.__array_interface__["data"][0])

    def scratch(self, size: int, dtype: type) -> int:
        """Address of a new zeroed scratch array owned by this program."""
        return self.ptr(np.zeros(max(size, 1), dtype), max(size, 1), dtype)

    def emit(self, opcode: int, fields: list[int], work: int) -> None:
        self.code += [opcode, len(fields) + 2, *fields]
        self.work += work


def _f32_bits(value: float) -> int:
    return int(np.array(value, np.float32).view(np.int32))


def _encode_sum(e: _Encoder, op: O.SumOp) -> None:
    n = op.out.size
    e.emit(_C.OP_SUM, [n, e.ptr(op.out, n), len(op.srcs), *(e.ptr(s, n) for s in op.srcs)], n * len(op.srcs))


def _encode_copy(e: _Encoder, op: O.CopyOp) -> None:
    n = op.out.size
    e.emit(_C.OP_COPY, [n, e.ptr(op.x, n), e.ptr(op.out, n)], n)


def _encode_dense(e: _Encoder, op: O.DenseOp) -> None:
    batch, n_in = op.x.shape
    n_out = op.wt.shape[1]
    # The numpy kernel's rule: gather when nnz <= SPARSE_DENSITY * size, i.e. nnz <= floor(...).
    limit = math.floor(_numpy_kernels.SPARSE_DENSITY * op.x.size)
    fields = [
        batch, n_in, n_out, e.ptr(op.x, batch * n_in), e.ptr(op.wt, n_in * n_out), e.ptr(op.bias, n_out),
        e.ptr(op.out, batch * n_out), int(op.binary), e.scratch(batch * n_in, np.int32), e.scratch(batch, np.int64),
        limit, 0,  # spike map of x: set by _link_spike_maps
    ]  # fmt: skip
    e.emit(_C.OP_DENSE, fields, batch * n_out * max(1, n_in // 8))


def _tap_table(size: int, kernel: int, stride: int, padding: int, dilation: int, out_size: int) -> list[np.ndarray]:
    """For each input index: how many kernel taps reach an output, which taps, which outputs."""
    count = np.zeros(size, np.int32)
    taps = np.zeros((size, kernel), np.int32)
    outs = np.zeros((size, kernel), np.int32)
    for i in range(size):
        for k in range(kernel):
            shifted = i + padding - k * dilation
            if shifted >= 0 and shifted % stride == 0 and shifted // stride < out_size:
                taps[i, count[i]], outs[i, count[i]] = k, shifted // stride
                count[i] += 1
    return [count, taps.reshape(-1), outs.reshape(-1)]


def _encode_conv(e: _Encoder, op: O.ConvOp) -> None:
    batch, c_in, h, w = op.x.shape
    c_out, c_in_g, kh, kw = op.weight.shape
    _, _, ho, wo = op.out.shape
    g = op.groups
    g_out = c_out // g
    # (C_out, C_in/g, KH, KW) -> (C_in, KH, KW, C_out/g): the taps one input channel sends to its
    # group's output channels are contiguous, for the channel-vectorised scatter and direct paths.
    wk = np.ascontiguousarray(
        op.weight.reshape(g, g_out, c_in_g, kh, kw).transpose(0, 2, 3, 4, 1).reshape(c_in, kh, kw, g_out)
    )
    bias = np.zeros(c_out, np.float32) if op.bias is None else op.bias
    n_in, n_out = c_in * h * w, c_out * ho * wo
    limit = math.floor(_numpy_kernels.SPARSE_DENSITY * op.x.size)
    tables = _tap_table(h, kh, op.stride[0], op.padding[0], op.dilation[0], ho)
    tables += _tap_table(w, kw, op.stride[1], op.padding[1], op.dilation[1], wo)
    pairs = min(limit, n_in) * kh * kw  # a sparse sample has at most `limit` active pixels
    fields = [
        batch, c_in, h, w, c_out, ho, wo, kh, kw, g,
        e.ptr(op.x, batch * n_in), e.ptr(op.weight, op.weight.size), e.ptr(wk, wk.size), e.ptr(bias, c_out),
        e.ptr(op.out, batch * n_out), int(op.binary), int(bool(np.any(bias != 0))), e.scratch(n_out, np.float32),
        *(e.ptr(t, t.size, np.int32) for t in tables),
        e.scratch(pairs, np.int32), e.scratch(pairs, np.int32), e.scratch(pairs, np.float32), e.scratch(g, np.int64),
        limit, int(CONV_HWC_WORK_RATIO * n_out), e.scratch(4 * (limit + 1), np.int32), e.scratch(batch + 1, np.int64),
        0,  # spike map of x: set by _link_spike_maps
    ]  # fmt: skip
    e.emit(_C.OP_CONV, fields, batch * n_out * c_in_g * kh * kw // 8)


def _encode_pool(e: _Encoder, op: O.PoolOp) -> None:
    batch, ch, h, w = op.x.shape
    ho, wo = op.out.shape[2:]
    recip = _f32_bits(1.0 / op.divisor)
    fields = [
        batch, ch, h, w, ho, wo, *op.kernel, *op.stride, *op.padding, e.ptr(op.x, op.x.size),
        e.ptr(op.out, op.out.size), recip, int(op.divisor != 1.0),
    ]  # fmt: skip
    e.emit(_C.OP_POOL, fields, op.out.size * op.kernel[0] * op.kernel[1])


def _encode_scale(e: _Encoder, op: O.ScaleOp) -> None:
    batch, n = op.x.shape
    e.emit(_C.OP_SCALE, [batch, n, e.ptr(op.x, batch * n), e.ptr(op.scale, n), e.ptr(op.out, batch * n)], batch * n)


def _encode_threshold(e: _Encoder, op: O.ThresholdOp) -> None:
    batch, n = op.x.shape
    fields = [batch, n, e.ptr(op.x, batch * n), e.ptr(op.threshold, n), e.ptr(op.out, batch * n)]
    e.emit(_C.OP_THRESHOLD, fields, batch * n)


def _encode_delay(e: _Encoder, op: O.DelayOp) -> None:
    n = op.x.size
    steps = op.ring.shape[0]
    fields = [n, e.ptr(op.x, n), e.ptr(op.out, n), e.ptr(op.ring, steps * n), e.ptr(op.cursor, 1, np.int64), steps]
    e.emit(_C.OP_DELAY, fields, 2 * n)


def _encode_neuron(e: _Encoder, op: O.NeuronOp) -> None:
    c = op.coeffs
    batch, n = op.x.shape
    coeffs = [np.ascontiguousarray(getattr(c, name), np.float32).reshape(-1) for name in _COEFFS]
    # Populations sharing one value per coefficient (the common case) read scalars, which
    # lets the C loop vectorise over the state arrays alone.
    scalar = n > 0 and all(a.size == n and bool(np.all(a == a[0])) for a in coeffs)
    if scalar:
        coeffs = [a[:1].copy() for a in coeffs]
    flags = (
        (_C.NF_SPIKING if c.spiking else 0)
        | (_C.NF_SYNAPSE if op.i is not None else 0)
        | (_C.NF_ADAPT if op.w is not None else 0)
        | (_C.NF_SUBTRACT if c.reset_mode == "subtract" else 0)
        | (_C.NF_NEXT_STEP if c.reset_timing == "next_step" else 0)
        | (_C.NF_SCALAR if scalar else 0)
        | (_C.NF_INCLUSIVE if c.threshold_inclusive else 0)
        | ((_C.NF_MULTI | (c.max_spikes << _C.NF_MAX_SHIFT)) if c.max_spikes > 1 else 0)
        | (_C.NF_HOLD if op.hold is not None else 0)
        | (_C.NF_COUPLED if c.coupled else 0)
        | (_C.NF_ADAPT_INPUT if op.w is not None and np.any(c.h_w) else 0)
    )
    size = batch * n
    fields = [
        batch, n, flags, e.ptr(op.x, size), e.ptr(op.out, size), e.ptr(op.v, size), e.ptr(op.i, size),
        e.ptr(op.w, size), e.ptr(op.z, size), *(e.ptr(a, 1 if scalar else n) for a in coeffs),
        e.ptr(op.hold, size), c.hold_steps, 0,  # spike map of out: set by _link_spike_maps
    ]  # fmt: skip
    e.emit(_C.OP_NEURON, fields, 4 * size)


_ENCODERS: dict[type, Callable[[_Encoder, O.Op], None]] = {
    O.SumOp: _encode_sum,
    O.CopyOp: _encode_copy,
    O.DenseOp: _encode_dense,
    O.ConvOp: _encode_conv,
    O.PoolOp: _encode_pool,
    O.ScaleOp: _encode_scale,
    O.ThresholdOp: _encode_threshold,
    O.DelayOp: _encode_delay,
    O.NeuronOp: _encode_neuron,
}


def _try_encode(op: O.Op) -> _Encoder | None:
    """Encode one op on its own, or None when it must run on numpy."""
    encode = _ENCODERS.get(type(op))
    if encode is None:
        return None
    one = _Encoder()
    try:
        encode(one, op)
    except _Unsupported as exc:
        log.debug("%s: %s runs on numpy: %s", op.node, type(op).__name__, exc)
        return None
    return one


def numpy_fallbacks(ops: tuple[O.Op, ...]) -> list[str]:
    """Names of the nodes whose ops would run on the numpy kernels instead of natively."""
    return [op.node for op in ops if _try_encode(op) is None]


def _span(arr: np.ndarray) -> tuple[int, int]:
    return int(arr.__array_interface__["data"][0]), int(arr.nbytes)


#: Where each record holds its spike-map address (index in the record, header included).
_MAP_FIELD = {O.DenseOp: 13, O.ConvOp: 34, O.NeuronOp: 27}


def _link_spike_maps(ops: list[O.Op], parts: list[_Encoder]) -> None:
    """Give each conv or dense op that reads a neuron op's output, later in the same program, that
    neuron's spike map (see _ckernels.c), so it takes its active inputs from the map instead of
    scanning the output again. Each encoder holds one record, with the map address at _MAP_FIELD.

    A neuron's map stands for its output only until another op writes that memory; a reader
    placed before the neuron (a recurrent edge) reads last step's output and is not linked.
    """
    maps: dict[tuple[int, int], tuple[_Encoder, np.ndarray | None, int]] = {}
    for op, enc in zip(ops, parts, strict=True):
        if isinstance(op, O.ConvOp | O.DenseOp) and _span(op.x) in maps:
            producer, bitmap, n = maps[_span(op.x)]
            if bitmap is None:
                batch = op.x.shape[0]
                bitmap = np.zeros(batch * (-(-n // 64)) + 1, np.uint64)
                producer.code[_MAP_FIELD[O.NeuronOp]] = producer.ptr(bitmap, bitmap.size, np.uint64)
                maps[_span(op.x)] = (producer, bitmap, n)
            enc.code[_MAP_FIELD[type(op)]] = enc.ptr(bitmap, bitmap.size, np.uint64)
        written = getattr(op, "out", None)
        if isinstance(written, np.ndarray):
            for key in [k for k in maps if _overlaps(k, _span(written))]:
                del maps[key]
        if isinstance(op, O.NeuronOp):
            maps[_span(op.out)] = (enc, None, op.out.shape[1])


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[0] + b[1] and b[0] < a[0] + a[1]


def _program(ops: list[O.Op], parts: list[_Encoder]) -> Callable[[], None]:
    """One C Program for a run of encoded ops; returns its zero-argument run method."""
    _link_spike_maps(ops, parts)
    code = np.array([v for p in parts for v in p.code], np.int64)
    keep = tuple(a for p in parts for a in p.keep)
    work = sum(p.work for p in parts)
    return _C.Program(code.tobytes(), keep, work > GIL_RELEASE_WORK).run


Pairs = list[tuple[np.ndarray, np.ndarray]]
RunSteps = Callable[[int, Pairs, Pairs], None]

# The arrays of each op that hold one row per sample (batch first); ops of other types, and
# delays (whose ring is (steps, batch, n)), keep the whole batch on one thread.
_PER_SAMPLE = {
    O.SumOp: ("srcs", "out"), O.CopyOp: ("x", "out"), O.DenseOp: ("x", "out"), O.ConvOp: ("x", "out"),
    O.PoolOp: ("x", "out"), O.ScaleOp: ("x", "out"), O.ThresholdOp: ("x", "out"),
    O.NeuronOp: ("x", "out", "v", "i", "w", "z", "hold"),
}  # fmt: skip


def _slice_op(op: O.Op, start: int, stop: int) -> O.Op:
    """The same op on samples start:stop of its batch (views, so state is shared with the plan)."""
    fields = {}
    for name in _PER_SAMPLE[type(op)]:
        value = getattr(op, name)
        if isinstance(value, tuple):
            fields[name] = tuple(a[start:stop] for a in value)
        elif value is not None:
            fields[name] = value[start:stop]
    return dataclasses.replace(op, **fields)


#: Where each op's record holds its input ``x`` (index in the record, header included), for ops
#: that only read it. Sums are left out: one may add into its first source in place.
_X_FIELD = {O.CopyOp: 3, O.DenseOp: 5, O.ConvOp: 12, O.PoolOp: 14, O.ScaleOp: 4, O.ThresholdOp: 4, O.DelayOp: 3,
            O.NeuronOp: 5}  # fmt: skip


def _aliases(program: object, ops: list[O.Op] | tuple[O.Op, ...], ins: Pairs, outs: Pairs, start: int = 0,
             stop: int | None = None) -> bytes:  # fmt: skip
    """(input index, record field) pairs of the fields that read an input buffer in place of a copy.

    An input qualifies when no op writes into its buffer and no recorded output is that buffer:
    then each step can read the sequence directly (run_steps points the fields at step t). Only
    the ``x`` fields of ops that merely read them are listed, and only where the field holds the
    buffer's address (checked again in C).
    """
    code = np.frombuffer(program.code, np.int64)  # type: ignore[attr-defined]
    starts, pc = [], 0
    while pc < len(code):
        starts.append(pc)
        pc += int(code[pc + 1])
    if len(starts) != len(ops):
        return b""
    pairs: list[int] = []
    written = [_span(op.out) for op in ops if isinstance(getattr(op, "out", None), np.ndarray)]
    recorded = [_span(buf) for buf, _ in outs]
    for q, (buf, _) in enumerate(ins):
        row = buf.nbytes // buf.shape[0] if buf.ndim and buf.shape[0] else 0
        end = buf.shape[0] if stop is None else stop
        span = (int(buf.__array_interface__["data"][0]) + start * row, (end - start) * row)
        if any(_overlaps(span, w) for w in written + recorded):
            continue
        for op, at in zip(ops, starts, strict=True):
            field = _X_FIELD.get(type(op))
            if field is not None and _span(op.x) == span:
                pairs += [q, at + field]
    return np.array(pairs, np.int64).tobytes()


def _batch_slices(ops: tuple[O.Op, ...], batch: int, threads: int) -> list[tuple[int, int, object, list]] | None:
    """One (start, stop, Program, sliced ops) per thread over contiguous batch slices, or None if an op cannot split."""
    if threads < 2 or batch < 2 or any(type(op) not in _PER_SAMPLE for op in ops):
        return None
    bounds = np.linspace(0, batch, min(threads, batch) + 1).round().astype(int)
    slices = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        sliced = [_slice_op(op, int(start), int(stop)) for op in ops]
        parts = [_try_encode(op) for op in sliced]
        if any(p is None for p in parts):
            return None
        _link_spike_maps(sliced, parts)  # type: ignore[arg-type]
        code = np.array([v for p in parts for v in p.code], np.int64)  # type: ignore[union-attr]
        keep = tuple(a for p in parts for a in p.keep)  # type: ignore[union-attr]
        slices.append((int(start), int(stop), _C.Program(code.tobytes(), keep, False), sliced))
    return slices


def _table(pairs: Pairs, steps: int, what: str, start: int = 0, stop: int | None = None) -> bytes:
    """Copy rows (buffer, sequence, nbytes, stride) for samples start:stop of each (buffer, sequence) pair."""
    rows = []
    for buf, seq in pairs:
        if not (buf.flags.c_contiguous and seq.flags.c_contiguous and seq.dtype == buf.dtype):
            raise ValueError(f"{what}: expected C-contiguous arrays of one dtype")
        if seq.nbytes != steps * buf.nbytes:
            raise ValueError(f"{what}: sequence of {seq.nbytes} bytes for {steps} steps of {buf.nbytes}")
        row_bytes = buf.nbytes // buf.shape[0] if buf.ndim and buf.shape[0] else 0
        end = buf.shape[0] if stop is None else stop
        buf_addr = buf.__array_interface__["data"][0] + start * row_bytes
        seq_addr = seq.__array_interface__["data"][0] + start * row_bytes
        rows += [buf_addr, seq_addr, (end - start) * row_bytes, buf.nbytes]
    return np.array(rows, np.int64).tobytes()


def sequence_runner(
    step: Callable[[], None], ops: tuple[O.Op, ...] = (), batch: int = 1, threads: int = 1
) -> RunSteps | None:
    """For a step that is one native Program, a function running a whole sequence in C; else None.

    The returned ``run_steps(steps, ins, outs)`` takes ``(buffer, sequence)`` pairs: before step
    ``t`` every input buffer gets ``sequence[t]``, after it every output buffer is copied to
    ``sequence[t]``. Buffers are (batch, ...) and sequences (steps, batch, ...), C-contiguous
    (checked here); the loop runs with the GIL released. With ``threads`` > 1 and the plan's
    ``ops``, the batch is cut into that many slices, each stepped through the whole sequence on
    its own thread (samples never interact within a step); a plan with a delay stays on one.
    """
    program = getattr(step, "__self__", None)
    if _C is None or not isinstance(program, _C.Program):
        return None
    slices = _batch_slices(ops, batch, threads)

    def run_steps(steps: int, ins: Pairs, outs: Pairs) -> None:
        if steps <= 0:
            return
        if slices is None:
            tables = _table(ins, steps, "inputs"), _table(outs, steps, "outputs")
            program.run_steps(steps, *tables, _aliases(program, ops, ins, outs))
            return
        for buf, _ in (*ins, *outs):
            if buf.ndim == 0 or buf.shape[0] != batch:
                raise ValueError(f"expected buffers with {batch} samples first, got shape {buf.shape}")
        jobs = [(prog, _table(ins, steps, "inputs", a, b), _table(outs, steps, "outputs", a, b),
                 _aliases(prog, sliced, ins, outs, a, b)) for a, b, prog, sliced in slices]  # fmt: skip
        _C.run_parallel(steps, jobs)

    return run_steps


def make_step(ops: tuple[O.Op, ...]) -> Callable[[], None]:
    """Return a zero-argument function running one step of ``ops`` (one C call per native run)."""
    if not AVAILABLE:
        raise MissingDependencyError("the native kernels are not built (edgesnn.engine._ckernels is missing)")
    calls: list[Callable[[], None]] = []
    pending: list[_Encoder] = []
    pending_ops: list[O.Op] = []
    for op in ops:
        enc = _try_encode(op)
        if enc is not None:
            pending.append(enc)
            pending_ops.append(op)
            continue
        if pending:
            calls.append(_program(pending_ops, pending))
            pending, pending_ops = [], []
        kernel = _transformer.NATIVE_KERNELS.get(type(op)) or _numpy_kernels.KERNELS[type(op)]
        calls.append(lambda kernel=kernel, op=op: kernel(op))
    if pending:
        calls.append(_program(pending_ops, pending))
    if not calls:
        return lambda: None
    if len(calls) == 1:
        return calls[0]
    segments = tuple(calls)

    def step() -> None:
        for call in segments:
            call()

    return step
