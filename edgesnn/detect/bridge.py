r"""The attention-based SNN-ANN bridge (ASAB, Ahmed et al. CVPR 2025) in numpy: T spike maps -> one feature map.

Input: spikes :math:`E \in \{0,1\}^{T \times C \times h \times w}` of one window. Two parts:

**Spatial-aware temporal (SAT) attention.** Each time bin is convolved on its own (a
time-wise separable convolution: ``groups = T``, with the kernel shared by the bins) to
give spatial context :math:`A_{sc}[t] = W_{sc} * E[t] + b_{sc}` (:math:`C_a` channels). Per
pixel, 1x1 convolutions give queries, keys and values over the T bins,

.. math::
    Q_t = \mathrm{ReLU}(W_q A_{sc}[t] + b_q), \quad K_t = W_k A_{sc}[t] + b_k, \quad
    V_t = \mathrm{ReLU}(W_v A_{sc}[t] + b_v),

.. math::
    S = \mathrm{softmax}_s\!\big(Q_t \cdot K_s / \sqrt{D}\big) \in \mathbb{R}^{T\times T},\quad
    U_t = \mathrm{ReLU}\big(\textstyle\sum_s S_{ts} V_s\big),\quad
    A_{out} = W_o\,[U_1; \dots; U_T] + b_o

where the last 1x1 convolution takes the weighted sum over the T bins (:math:`W_o` is
:math:`C \times T D`).

**Event-rate spatial (ERS) attention**, no parameters:
:math:`F = \sigma\big(\sum_t E[t]\big) \odot A_{out}`.

Simplification, stated: the paper's TSDC is a *deformable* convolution (learned sampling
offsets); here it is a plain convolution with the same kernel for every bin. The ReLU plays
the paper's :math:`\Psi`. The same maths runs in JAX for training and is exported into the
detector's ONNX part, which is what the pipeline runs; this module is the reference the
tests hold both against.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgesnn.errors import InputError


@dataclasses.dataclass(frozen=True, eq=False)
class BridgeWeights:
    """Parameters of the bridge (float32); shapes in the field comments."""

    sc_weight: np.ndarray  # (C_a, C, k, k) time-wise spatial conv, odd k, "same" padding
    sc_bias: np.ndarray  # (C_a,)
    q_weight: np.ndarray  # (D, C_a)
    q_bias: np.ndarray  # (D,)
    k_weight: np.ndarray  # (D, C_a)
    k_bias: np.ndarray  # (D,)
    v_weight: np.ndarray  # (D, C_a)
    v_bias: np.ndarray  # (D,)
    out_weight: np.ndarray  # (C, T * D), bins major
    out_bias: np.ndarray  # (C,)


def conv2d_same(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Cross-correlation of x (N, C, H, W) with weight (O, C, k, k), zero "same" padding, stride 1."""
    k = weight.shape[-1]
    p = k // 2
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    out = np.zeros((n, weight.shape[0], h, w), np.float32)
    for i in range(k):
        for j in range(k):
            out += np.einsum("oc,nchw->nohw", weight[:, :, i, j], padded[:, :, i : i + h, j : j + w])
    return out + bias[None, :, None, None]


def spatial_context(spikes: np.ndarray, wts: BridgeWeights) -> np.ndarray:
    """Each bin convolved on its own: (T, C, h, w) -> (T, C_a, h, w)."""
    return conv2d_same(spikes, wts.sc_weight, wts.sc_bias)


def temporal_attention(context: np.ndarray, wts: BridgeWeights) -> np.ndarray:
    """Attention over the T bins at every pixel, then the weighted sum over T: (T, C_a, h, w) -> (C, h, w)."""
    t, _, h, w = context.shape
    d = wts.q_weight.shape[0]
    ctx = context.transpose(2, 3, 0, 1)  # (h, w, T, C_a): one sequence of T vectors per pixel
    q = np.maximum(ctx @ wts.q_weight.T + wts.q_bias, 0)
    k = ctx @ wts.k_weight.T + wts.k_bias
    v = np.maximum(ctx @ wts.v_weight.T + wts.v_bias, 0)
    scores = softmax(q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(d)), axis=-1)  # (h, w, T, T)
    attended = np.maximum(scores @ v, 0)  # (h, w, T, D)
    out = attended.reshape(h, w, t * d) @ wts.out_weight.T + wts.out_bias  # (h, w, C)
    return np.ascontiguousarray(out.transpose(2, 0, 1), np.float32)


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """Softmax along ``axis``, shifted by the maximum for stability."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def event_rate_gate(spikes: np.ndarray, features: np.ndarray) -> np.ndarray:
    """ERS attention: ``sigmoid(sum_t spikes[t]) * features``, spikes (T, C, h, w), features (C, h, w)."""
    rate = spikes.sum(axis=0)
    if rate.shape != features.shape:
        raise InputError(f"spike rate {rate.shape} and features {features.shape} differ", path="features")
    return (0.5 * (1.0 + np.tanh(0.5 * rate)) * features).astype(np.float32)


def bridge(spikes: np.ndarray, wts: BridgeWeights) -> np.ndarray:
    """The whole bridge: spikes (T, C, h, w) -> features (C, h, w)."""
    spikes = np.asarray(spikes, np.float32)
    t = spikes.shape[0]
    if spikes.ndim != 4 or wts.out_weight.shape[1] != t * wts.q_weight.shape[0]:
        raise InputError(f"expected spikes (T, C, h, w) with T = {wts.out_weight.shape[1] // wts.q_weight.shape[0]}, "
                         f"got {spikes.shape}", path="spikes")  # fmt: skip
    return event_rate_gate(spikes, temporal_attention(spatial_context(spikes, wts), wts))
