"""Reference kernels in numpy: the semantics every faster backend must match.

Each function executes one op of :mod:`edgesnn.engine.ops` in place.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edgesnn.engine import ops as O
from edgesnn.graph.units import kwta, update_mask

#: Inputs with at most this fraction of non-zeros take the gather path.
SPARSE_DENSITY = 0.25


def sum_op(op: O.SumOp) -> None:
    """out = sum of sources."""
    out = op.out
    np.copyto(out, op.srcs[0])
    for s in op.srcs[1:]:
        out += s


def copy_op(op: O.CopyOp) -> None:
    """out = x."""
    np.copyto(op.out, op.x)


def dense_op(op: O.DenseOp) -> None:
    """out = x @ wt + bias, gathering active rows of wt when x is sparse."""
    x, out = op.x, op.out
    nnz = np.count_nonzero(x)
    if nnz <= SPARSE_DENSITY * x.size:
        for b in range(x.shape[0]):
            idx = np.flatnonzero(x[b])
            if op.binary:
                np.sum(op.wt[idx], axis=0, out=out[b])
            else:
                np.matmul(x[b, idx], op.wt[idx], out=out[b])
    else:
        np.matmul(x, op.wt, out=out)
    if op.bias is not None:
        out += op.bias


def _windows(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """View of x as (batch, C, H_out, W_out, KH, KW) windows, zero padded."""  # fmt: skip
    (ph, pw), (dh, dw), (sh, sw), (kh, kw) = padding, dilation, stride, kernel
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    win = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))[..., ::dh, ::dw]
    return win[:, :, ::sh, ::sw][:, :, : out_hw[0], : out_hw[1]]


def conv_op(op: O.ConvOp) -> None:
    """Direct convolution through an im2col view, one matmul per group."""
    b = op.x.shape[0]
    c_out, c_in_g, kh, kw = op.weight.shape
    ho, wo = op.out.shape[2:]
    win = _windows(op.x, (kh, kw), op.stride, op.padding, op.dilation, (ho, wo))
    g_out = c_out // op.groups
    for g in range(op.groups):
        cols = win[:, g * c_in_g : (g + 1) * c_in_g].transpose(0, 2, 3, 1, 4, 5).reshape(b * ho * wo, -1)
        w = op.weight[g * g_out : (g + 1) * g_out].reshape(g_out, -1)
        res = cols @ w.T  # (b*ho*wo, g_out)
        op.out[:, g * g_out : (g + 1) * g_out] = res.reshape(b, ho, wo, g_out).transpose(0, 3, 1, 2)
    out = op.out
    out += op.bias[None, :, None, None]


def pool_op(op: O.PoolOp) -> None:
    """Window sum, divided by the pool's divisor."""
    ho, wo = op.out.shape[2:]
    win = _windows(op.x, op.kernel, op.stride, op.padding, (1, 1), (ho, wo))
    np.sum(win, axis=(4, 5), out=op.out)
    if op.divisor != 1.0:
        out = op.out
        out *= np.float32(1.0 / op.divisor)


def scale_op(op: O.ScaleOp) -> None:
    """out = x * scale."""
    np.multiply(op.x, op.scale, out=op.out)


def threshold_op(op: O.ThresholdOp) -> None:
    """out = 1 where x > threshold, else 0."""
    np.greater(op.x, op.threshold, out=op.out, casting="unsafe")


def delay_op(op: O.DelayOp) -> None:
    """Emit the value from ``steps`` steps ago and store the current one in its slot."""
    k = int(op.cursor[0])
    np.copyto(op.out, op.ring[k])
    np.copyto(op.ring[k], op.x)
    op.cursor[0] = (k + 1) % op.ring.shape[0]


def neuron_op(op: O.NeuronOp) -> None:
    """The unified neuron update (see edgesnn.neurons.discretise)."""
    c, i, w, v = op.coeffs, op.i, op.w, op.v
    drive = op.x
    if i is not None:
        if not c.coupled:  # cascade: the membrane sees the updated current
            i *= c.a_syn
            i += c.g_syn * op.x
        drive = i
    if w is not None:
        w *= c.a_w
        w += c.c_w * (v - c.v_leak)
        w += c.b_w * op.z
        if c.method == "zoh":
            w += c.h_w * op.x
    v_new = c.a_v * v + c.k_v + c.g_v * drive
    if i is not None and c.coupled:  # zoh, euler: the previous current and this step's input, then the update
        v_new += c.g_x * op.x
        i *= c.a_syn
        i += c.g_syn * op.x
    if w is not None:
        v_new -= c.g_w * w
    if not c.spiking:
        np.copyto(v, v_new)
        np.copyto(op.out, v_new)
        return
    if c.reset_timing == "next_step":
        _reset(v_new, op.z, c.reset_mode, c.v_reset, c.v_threshold)
    if c.max_spikes > 1:
        # Graded spikes: how many thresholds the membrane holds (Sinabs MultiSpike, Rockpool).
        np.clip(np.floor(v_new / c.v_threshold), 0, c.max_spikes, out=op.z)
    elif c.threshold_inclusive:
        np.greater_equal(v_new, c.v_threshold, out=op.z, casting="unsafe")
    else:
        np.greater(v_new, c.v_threshold, out=op.z, casting="unsafe")
    hold = op.hold
    if hold is not None:
        # A neuron still holding may not fire; one that fires now holds for hold_steps steps.
        waiting = hold > 0
        op.z[waiting] = 0.0
        hold -= waiting
        hold[op.z != 0] = c.hold_steps
    if c.reset_timing == "immediate":
        _reset(v_new, op.z, c.reset_mode, c.v_reset, c.v_threshold)
    np.copyto(v, v_new)
    np.copyto(op.out, op.z)


def _reset(v: np.ndarray, z: np.ndarray, mode: str, v_reset: np.ndarray, v_th: np.ndarray) -> None:
    if mode == "to_value":
        fired = z != 0
        np.copyto(v, np.broadcast_to(v_reset, v.shape), where=fired)
    else:
        v -= z * v_th


def onnx_op(op: O.OnnxOp) -> None:
    """Run the ONNX part with onnxruntime (session created on first use)."""
    sess = op.runtime.get("session")
    if sess is None:
        from edgesnn.engine._onnx import make_session

        sess, in_name, out_name = make_session(op.model, op.input_name, op.output_name, op.num_threads)
        op.runtime.update(session=sess, input_name=in_name, output_name=out_name)
    (y,) = sess.run([op.runtime["output_name"]], {op.runtime["input_name"]: op.x})
    np.copyto(op.out, np.asarray(y, np.float32).reshape(op.out.shape))


def unit_op(op: O.UnitOp) -> None:
    """Threshold units: step (u >= threshold) or k-WTA, taken only where the update mask draws them."""
    if op.activation == "kwta":
        new = kwta(op.x, op.k_active)
    else:
        new = (op.x >= op.threshold).astype(np.float32)
    if op.update_probability < 1.0:
        mask = update_mask(op.seed, int(op.step[0]), op.x.shape[0], op.x.shape[1], op.update_probability)
        np.copyto(op.out, new, where=mask)
    else:
        np.copyto(op.out, new)
    op.step[0] += 1


KERNELS = {
    O.SumOp: sum_op,
    O.CopyOp: copy_op,
    O.DenseOp: dense_op,
    O.ConvOp: conv_op,
    O.PoolOp: pool_op,
    O.ScaleOp: scale_op,
    O.ThresholdOp: threshold_op,
    O.DelayOp: delay_op,
    O.NeuronOp: neuron_op,
    O.OnnxOp: onnx_op,
    O.UnitOp: unit_op,
}


def _register_loihi() -> None:
    # The Loihi fixed-point ops (numerics="loihi") have numpy kernels only; the native
    # backend finds them here too. Imported late: _loihi builds on this module.
    from edgesnn.engine import _loihi

    KERNELS.update(_loihi.KERNELS)


_register_loihi()


def _register_transformer() -> None:
    # Transformer ops (edgesnn.engine._transformer) run on numpy under both backends.
    from edgesnn.engine import _transformer

    KERNELS.update(_transformer.KERNELS)


_register_transformer()


def _register_plastic() -> None:
    # Plasticity attention (edgesnn.engine._plastic) runs on numpy under both backends.
    from edgesnn.engine import _plastic

    KERNELS.update(_plastic.KERNELS)


_register_plastic()


def make_step(ops: tuple[O.Op, ...]):
    """Return a function that runs one step of ``ops`` with the numpy kernels."""
    calls = [(KERNELS[type(op)], op) for op in ops]

    def step() -> None:
        for fn, op in calls:
            fn(op)

    return step
