"""The detector in JAX: parameters, the SNN front stepped with the runtime's neuron update, bridge, ANN, heads.

Layouts match the runtime and the ONNX export exactly: NCHW, conv weights OIHW, the bridge's
output weight (C, T * D) bins-major, raw predictions (batch, cells, 5 + K) with cells of level
0 then level 1, rows major.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from tools.train import neurons
from tools.train.surrogate import make_spike_fn
from tools.train_detect.arch import ArchSpec

Params = dict[str, jax.Array]
LIF_SPEC = neurons.NeuronSpec("lif", reset_mode="subtract")
#: PLIF as in the paper: 1/tau = sigmoid(w) in steps, run by the runtime's forward-Euler LIF.
METHOD = "euler"
#: Front conv weights start this wide, so that on the dataset's sparse input every layer fires (~1 %)
#: and surrogate gradients reach the first layer (He init leaves the third layer silent).
FRONT_INIT_STD = 0.8


def _conv_init(rng: np.random.Generator, c_out: int, c_in: int, k: int, gain: float = 2.0) -> np.ndarray:
    return rng.normal(0.0, math.sqrt(gain / (c_in * k * k)), (c_out, c_in, k, k)).astype(np.float32)


def init_params(spec: ArchSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """Random initial parameters (He normal ANN convs, wider front convs, zero biases, PLIF ``tau_init_steps``)."""
    rng = np.random.default_rng(seed)
    p: dict[str, np.ndarray] = {}
    k = spec.n_classes + 5
    if spec.variant != "ann":
        c_in = 2
        w_tau = -math.log(spec.tau_init_steps - 1.0)  # sigmoid(w) = 1 / tau
        for i, c in enumerate(spec.front_channels):
            p[f"front{i}.w"] = rng.normal(0.0, FRONT_INIT_STD, (c, c_in, 3, 3)).astype(np.float32)
            p[f"front{i}.b"] = np.zeros(c, np.float32)
            p[f"front{i}.tau_logit"] = np.float32(w_tau)
            c_in = c
    c = spec.front_channels[-1]
    if spec.bridge_attention:
        ca, d, kb = spec.bridge_context, spec.bridge_dim, spec.bridge_kernel
        p["bridge.sc_weight"] = _conv_init(rng, ca, c, kb, gain=1.0)
        p["bridge.sc_bias"] = np.zeros(ca, np.float32)
        for name in ("q", "k", "v"):
            p[f"bridge.{name}_weight"] = rng.normal(0, math.sqrt(1.0 / ca), (d, ca)).astype(np.float32)
            p[f"bridge.{name}_bias"] = np.zeros(d, np.float32)
        p["bridge.out_weight"] = rng.normal(0, math.sqrt(1.0 / (spec.n_bins * d)), (c, spec.n_bins * d)).astype(
            np.float32
        )
        p["bridge.out_bias"] = np.zeros(c, np.float32)
    if spec.variant == "ann":
        c_in = 2 * spec.n_bins
        for i, cs in enumerate(spec.stem_channels):
            p[f"stem{i}.w"] = _conv_init(rng, cs, c_in, 3)
            p[f"stem{i}.b"] = np.zeros(cs, np.float32)
            c_in = cs
        c = c_in
    if spec.variant == "snn":
        levels = (c, c)
    else:
        a3, a4 = spec.ann_channels
        p["p3.w"], p["p3.b"] = _conv_init(rng, a3, c, 3), np.zeros(a3, np.float32)
        p["p4.w"], p["p4.b"] = _conv_init(rng, a4, a3, 3), np.zeros(a4, np.float32)
        levels = (a3, a4)
    prior = -math.log((1 - 0.01) / 0.01)  # objectness starts near 1 %, as in RetinaNet / YOLOX
    for lvl, cl in enumerate(levels):
        if spec.variant != "snn":
            p[f"head{lvl}.hidden_w"] = _conv_init(rng, spec.head_channels, cl, 3)
            p[f"head{lvl}.hidden_b"] = np.zeros(spec.head_channels, np.float32)
            cl = spec.head_channels
        p[f"head{lvl}.pred_w"] = (rng.normal(0, 0.01, (k, cl, 1, 1))).astype(np.float32)
        bias = np.zeros(k, np.float32)
        bias[4:] = prior
        p[f"head{lvl}.pred_b"] = bias
    return p


def conv(x: jax.Array, w: jax.Array, b: jax.Array, stride: int = 1) -> jax.Array:
    """NCHW cross-correlation with "same"-style padding k // 2, as the runtime's and ONNX's Conv."""
    pad = w.shape[-1] // 2
    y = jax.lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad), (pad, pad)],
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))  # fmt: skip
    return y + b[None, :, None, None]


def plif_tau_s(logit: jax.Array, dt_s: float) -> jax.Array:
    """Membrane time constant of a PLIF layer: dt / sigmoid(w)."""
    return dt_s / jax.nn.sigmoid(logit)


def front(params: Params, spec: ArchSpec, hist: jax.Array, spike_fn=None) -> jax.Array:
    """SNN front over a sequence: hist (S, B, 2, H, W) -> spikes (S, B, C, h, w); ann variant: 2x2 sum pooling."""
    if spec.variant == "ann":
        s, b, c, h, w = hist.shape
        return hist.reshape(s, b, c, h // 2, 2, w // 2, 2).sum(axis=(4, 6))
    spike_fn = spike_fn or make_spike_fn("fast_sigmoid", 10.0)
    batch = hist.shape[1]
    n = len(spec.front_channels)
    coeffs, states = [], []
    h, w = spec.height, spec.width
    for i, (c, st) in enumerate(zip(spec.front_channels, spec.front_strides, strict=True)):
        h, w = (h - 1) // st + 1, (w - 1) // st + 1
        tau = jnp.full((c, h, w), plif_tau_s(params[f"front{i}.tau_logit"], spec.dt_s))
        cf = neurons.coefficients(LIF_SPEC, {"tau_mem_s": tau, "v_threshold": jnp.float32(1.0)}, spec.dt_s, METHOD)
        coeffs.append(cf)
        states.append(neurons.initial_state(cf, batch))

    def step(states, x):
        new = []
        for i in range(n):
            x = conv(x, params[f"front{i}.w"], params[f"front{i}.b"], spec.front_strides[i])
            st, x = neurons.step(LIF_SPEC, spike_fn, coeffs[i], states[i], x, METHOD)
            new.append(st)
        return new, x

    _, spikes = jax.lax.scan(step, states, hist)
    return spikes


def bridge(params: Params, spikes: jax.Array, attention: bool = True, gate: bool = True) -> jax.Array:
    """The attention bridge of :mod:`edgesnn.detect.bridge`: spikes (B, T, C, h, w) -> features (B, C, h, w).

    The time-wise convolution is a plain convolution, not the paper's deformable one. Ablations:
    ``attention=False`` replaces the spatial context and temporal attention by the mean over the
    T bins; ``gate=False`` drops the event-rate gate.
    """
    if not attention:
        out = spikes.mean(axis=1)
        return jax.nn.sigmoid(spikes.sum(axis=1)) * out if gate else out
    b, t, c, h, w = spikes.shape
    ctx = conv(spikes.reshape(b * t, c, h, w), params["bridge.sc_weight"], params["bridge.sc_bias"])
    ctx = ctx.reshape(b, t, -1, h, w).transpose(0, 3, 4, 1, 2)  # (B, h, w, T, C_a)
    q = jax.nn.relu(ctx @ params["bridge.q_weight"].T + params["bridge.q_bias"])
    k = ctx @ params["bridge.k_weight"].T + params["bridge.k_bias"]
    v = jax.nn.relu(ctx @ params["bridge.v_weight"].T + params["bridge.v_bias"])
    d = q.shape[-1]
    scores = jax.nn.softmax(q @ jnp.swapaxes(k, -1, -2) / np.float32(math.sqrt(d)), axis=-1)
    attended = jax.nn.relu(scores @ v).reshape(b, h, w, t * d)
    out = (attended @ params["bridge.out_weight"].T + params["bridge.out_bias"]).transpose(0, 3, 1, 2)
    return jax.nn.sigmoid(spikes.sum(axis=1)) * out if gate else out


def ann(params: Params, spec: ArchSpec, window: jax.Array) -> jax.Array:
    """The ONNX part: one window's front output (B, T, C, h, w) -> raw predictions (B, cells, 5 + K)."""
    b = window.shape[0]
    if spec.variant == "snn":
        rate = window.mean(axis=1)
        bb, c, h, w = rate.shape
        levels = [rate, rate.reshape(bb, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))]
    else:
        if spec.is_hybrid:
            x = bridge(params, window, spec.bridge_attention, spec.bridge_gate)
        else:
            x = window.reshape(b, -1, *window.shape[3:])
            for i in range(len(spec.stem_channels)):
                x = jax.nn.relu(conv(x, params[f"stem{i}.w"], params[f"stem{i}.b"], 2))
        p3 = jax.nn.relu(conv(x, params["p3.w"], params["p3.b"]))
        p4 = jax.nn.relu(conv(p3, params["p4.w"], params["p4.b"], 2))
        levels = [p3, p4]
    outs = []
    for lvl, x in enumerate(levels):
        if spec.variant != "snn":
            x = jax.nn.relu(conv(x, params[f"head{lvl}.hidden_w"], params[f"head{lvl}.hidden_b"]))
        y = conv(x, params[f"head{lvl}.pred_w"], params[f"head{lvl}.pred_b"])
        outs.append(y.reshape(b, y.shape[1], -1))
    return jnp.concatenate(outs, axis=2).transpose(0, 2, 1)


def forward(params: Params, spec: ArchSpec, hist: jax.Array, spike_fn=None) -> jax.Array:
    """Histograms (S, B, 2, H, W), S >= T bins ending at the label time -> raw predictions of the last window."""
    feats = front(params, spec, hist, spike_fn)
    window = feats[-spec.n_bins :].transpose(1, 0, 2, 3, 4)
    return ann(params, spec, window)
