"""Network definitions: feed-forward, recurrent and convolutional SNNs with an LI readout.

A :class:`Network` is the static architecture (shapes, neuron kinds, names the
exported graph will use); parameters are a pytree of arrays::

    {"layers": [{"w": (out, in) or (O, I, kh, kw), "b": conv bias, "w_rec": (n, n),
                 "neuron": {"log_tau_mem": ..., "log_tau_syn": ..., "log_tau_adapt": ...,
                            "a_coupling": ..., "b_spike": ..., "v_threshold": ...}}, ...],
     "readout": {"w": (classes, in), "neuron": {"log_tau_mem": (classes,)}}}

Time constants are trained as log(tau / 1 s) and clamped to [tau_min, tau_max],
so what is exported are continuous-time taus in seconds. Per-channel parameters
of conv layers have shape (C, 1, 1) and broadcast over the feature map.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from edgesnn.errors import OptionError
from edgesnn.graph.conv import conv_output_size
from tools.train import memplan, native, timeloop
from tools.train import neurons as N
from tools.train.config import CheckpointConfig, ExperimentConfig, OnlineConfig, SparseConfig
from tools.train.gru import gru_forward, init_gru
from tools.train.native import capacity_of, sparse_project, spike_matmul, spike_project
from tools.train.surrogate import SpikeFn

Params = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One hidden layer: a connection (dense or conv) into a spiking population."""

    name: str
    kind: str  # "dense" or "conv"
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    recurrent: bool = False
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    @property
    def param_shape(self) -> tuple[int, ...]:
        """Shape of per-neuron parameters (per channel for conv layers)."""
        return (self.out_shape[0], 1, 1) if self.kind == "conv" else self.out_shape


@dataclasses.dataclass(frozen=True)
class Network:
    """The static architecture and the constants of training."""

    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    n_classes: int
    neuron: N.NeuronSpec
    readout: N.NeuronSpec
    dt_s: float
    method: str
    tau_min_s: float
    tau_max_s: float
    train_tau: bool
    train_threshold: bool
    train_adaptation: bool
    weight_gain: float = 1.0  # effective synaptic weight = gain * trained weight (ModelConfig.weight_dt_s)
    native_kernels: bool = False  # products with spike inputs skip zeros (tools.train.native)
    # (parameter name, low, high) of hidden neurons' bounded parameters; taus as log(tau / 1 s)
    ranges: tuple[tuple[str, float, float], ...] = ()
    dropout: float = 0.0  # training only: probability of zeroing a hidden layer's output
    reference: bool = False  # the non-spiking GRU of tools.train.gru (``layers`` give its sizes)
    # Gradient checkpointing of the time loop; anything but scheme "none" steps all layers together.
    checkpointing: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    # Sparse BPTT (spike id buffers into dense layers); None: dense products.
    sparse: SparseConfig | None = None
    # Forward-mode training (tools.train.online); None: BPTT.
    online: OnlineConfig | None = None

    @property
    def gate(self) -> float | None:
        """The second threshold (fraction of v_th) that gates the hidden surrogate gradient, with sparse BPTT."""
        return None if self.sparse is None else self.sparse.second_threshold

    @property
    def bounds(self) -> dict[str, tuple[float, float]]:
        """``ranges`` by parameter name."""
        return {name: (lo, hi) for name, lo, hi in self.ranges}

    @property
    def readout_in(self) -> int:
        """Number of inputs to the readout (the last layer, flattened)."""
        return math.prod(self.layers[-1].out_shape) if self.layers else math.prod(self.input_shape)


def build_network(cfg: ExperimentConfig, input_shape: tuple[int, ...], n_classes: int) -> Network:
    """Derive the layer shapes of ``cfg.model`` for inputs of ``input_shape``."""
    m = cfg.model
    shape = tuple(m.input_shape) if m.input_shape is not None else tuple(input_shape)
    if math.prod(shape) != math.prod(input_shape):
        raise OptionError(f"{shape} holds {math.prod(shape)} values but the data has {math.prod(input_shape)} channels",
                          path="model/input_shape")  # fmt: skip
    layers: list[LayerSpec] = []
    for i, conv in enumerate(m.conv):
        c, h, w = shape
        ho, wo = (
            conv_output_size(n, k, s, p, 1)
            for n, k, s, p in zip((h, w), conv.kernel, conv.stride, conv.padding, strict=True)
        )
        if ho < 1 or wo < 1:
            raise OptionError(f"kernel {conv.kernel} does not fit the input {shape}", path=f"model/conv/{i}")
        out = (conv.channels, ho, wo)
        layers.append(
            LayerSpec(f"conv{i}", "conv", shape, out, kernel=conv.kernel, stride=conv.stride, padding=conv.padding)
        )
        shape = out
    n_in = math.prod(shape)
    for i, n in enumerate(m.hidden):
        layers.append(LayerSpec(f"hidden{i}", "dense", (n_in,), (n,), recurrent=m.kind == "recurrent"))
        n_in = n
    spec = N.NeuronSpec(m.neuron, m.reset_mode, m.reset_timing, m.detach_reset)
    ranges = tuple(
        (name, *((math.log(v) for v in bounds) if name.startswith("log_") else bounds))
        for name, bounds in (("log_tau_mem", m.tau_mem_range_s), ("log_tau_adapt", m.tau_adapt_range_s),
                             ("a_coupling", m.a_coupling_range), ("b_spike", m.b_spike_range))
        if bounds is not None
    )  # fmt: skip
    return Network(
        input_shape=tuple(m.input_shape) if m.input_shape is not None else tuple(input_shape),
        layers=tuple(layers),
        n_classes=n_classes,
        neuron=spec,
        readout=N.NeuronSpec("li"),
        dt_s=cfg.dt_s,
        method=cfg.method,
        tau_min_s=cfg.tau_min_s,
        tau_max_s=m.tau_max_s,
        train_tau=m.train_tau,
        train_threshold=m.train_threshold,
        train_adaptation=m.train_adaptation,
        weight_gain=1.0 if m.weight_dt_s is None else m.weight_dt_s / cfg.dt_s,
        native_kernels=m.native_kernels,
        ranges=ranges,
        dropout=m.dropout,
        reference=m.kind == "gru",
        checkpointing=_checked_checkpointing(cfg),
        sparse=_checked_sparse(cfg),
        online=_checked_online(cfg),
    )


def _checked_online(cfg: ExperimentConfig) -> OnlineConfig | None:
    """The online section when enabled, refusing what tools.train.online cannot train."""
    on, m = cfg.train.online, cfg.model
    if not on.enabled:
        return None
    path = "train/online/enabled"
    if m.kind not in ("feedforward", "recurrent") or len(m.hidden) != 1:
        raise OptionError("online training needs one dense hidden layer (model/kind feedforward or recurrent, "
                          "model/hidden with one size)", path=path)  # fmt: skip
    if cfg.loss.readout != "mean":
        raise OptionError('online training needs loss/readout "mean" (logits linear in the read-out trace)', path=path)
    if m.dropout > 0:
        raise OptionError("online training runs without dropout (model/dropout 0)", path=path)
    if cfg.train.checkpointing.scheme != "none" or cfg.train.sparse.enabled:
        raise OptionError("online training replaces BPTT: no checkpointing or sparse BPTT", path=path)
    return on


def _checked_sparse(cfg: ExperimentConfig) -> SparseConfig | None:
    sp = cfg.train.sparse
    if not sp.enabled:
        return None
    if cfg.model.kind == "gru":
        raise OptionError("the GRU reference has no spikes to keep sparse", path="train/sparse/enabled")
    if cfg.train.checkpointing.scheme != "none":
        raise OptionError("sparse BPTT runs with train/checkpointing/scheme none", path="train/sparse/enabled")
    if not cfg.model.hidden:
        raise OptionError("sparse BPTT needs a dense hidden layer (model/hidden)", path="train/sparse/enabled")
    return sp


def _checked_checkpointing(cfg: ExperimentConfig) -> CheckpointConfig:
    ck = cfg.train.checkpointing
    if ck.scheme != "none" and cfg.model.kind == "gru":
        raise OptionError("the GRU reference trains with plain BPTT only", path="train/checkpointing/scheme")
    if ck.scheme not in ("none", "auto") and ck.chunks != "auto":
        try:
            timeloop.Checkpointing(ck.scheme, ck.chunks)  # the chunk count and order, checked now
        except OptionError as exc:
            raise exc.with_prefix("train/checkpointing") from None
    return ck


def _log_tau(key: jax.Array, shape: tuple[int, ...], tau_s: float, jitter: float) -> jax.Array:
    # Log-uniform spread by a factor exp(+-jitter) around tau_s.
    return jnp.log(jnp.float32(tau_s)) + jitter * jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0)


def init_params(net: Network, cfg: ExperimentConfig, key: jax.Array) -> Params:
    """Random initial parameters (deterministic for a given ``key``)."""
    m = cfg.model
    if net.reference:
        return init_gru(key, math.prod(net.input_shape), m.hidden, net.n_classes)
    bounded = net.bounds

    def start(k: jax.Array, name: str, shape: tuple[int, ...], default: jax.Array) -> jax.Array:
        # A bounded parameter starts uniformly inside its range (log-uniformly for taus).
        if name not in bounded:
            return default
        return jax.random.uniform(k, shape, jnp.float32, *bounded[name])

    layers = []
    for spec in net.layers:
        key, kw, kr, kt1, kt2, kt3, ka, kb = jax.random.split(key, 8)
        if spec.kind == "conv":
            c_in = spec.in_shape[0]
            fan_in = c_in * spec.kernel[0] * spec.kernel[1]
            w = jax.random.normal(kw, (spec.out_shape[0], c_in, *spec.kernel), jnp.float32)
            layer: dict[str, Any] = {"w": w * (m.weight_scale / math.sqrt(fan_in)),
                                     "b": jnp.zeros((spec.out_shape[0],), jnp.float32)}  # fmt: skip
        else:
            fan_in = spec.in_shape[0]
            w = jax.random.normal(kw, (spec.out_shape[0], fan_in), jnp.float32)
            layer = {"w": w * (m.weight_scale / math.sqrt(fan_in))}
        if spec.recurrent:
            n = spec.out_shape[0]
            # Recurrent weights get their own scale (default: the feed-forward one): strong
            # recurrence at the feed-forward scale makes the initial network explode.
            rec_scale = m.weight_scale if m.recurrent_scale is None else m.recurrent_scale
            layer["w_rec"] = jax.random.normal(kr, (n, n), jnp.float32) * (rec_scale / math.sqrt(n))
        ps = spec.param_shape
        neuron = {"log_tau_mem": start(kt1, "log_tau_mem", ps, _log_tau(kt1, ps, m.tau_mem_s, m.tau_jitter)),
                  "v_threshold": jnp.full(ps, m.v_threshold, jnp.float32)}  # fmt: skip
        if net.neuron.has_synapse:
            neuron["log_tau_syn"] = _log_tau(kt2, ps, m.tau_syn_s, m.tau_jitter)
        if net.neuron.has_adaptation:
            neuron["log_tau_adapt"] = start(kt3, "log_tau_adapt", ps, _log_tau(kt3, ps, m.tau_adapt_s, m.tau_jitter))
            neuron["a_coupling"] = start(ka, "a_coupling", ps, jnp.full(ps, m.a_coupling, jnp.float32))
            neuron["b_spike"] = start(kb, "b_spike", ps, jnp.full(ps, m.b_spike, jnp.float32))
        layer["neuron"] = neuron
        layers.append(layer)
    key, kw, kt = jax.random.split(key, 3)
    w_out = jax.random.normal(kw, (net.n_classes, net.readout_in), jnp.float32) * (
        m.readout_scale / math.sqrt(net.readout_in)
    )
    readout = {"w": w_out, "neuron": {"log_tau_mem": _log_tau(kt, (net.n_classes,), m.tau_out_s, m.tau_jitter)}}
    return {"layers": layers, "readout": readout}


def neuron_params(net: Network, p: Params, shape: tuple[int, ...], *, hidden: bool = True) -> dict[str, jax.Array]:
    """Continuous-time neuron parameters (taus in seconds) broadcast to the population ``shape``.

    ``hidden``: a hidden population, whose parameters are clamped to ``net.ranges`` (the
    read-out keeps tau_min_s..tau_max_s).
    """
    default = (math.log(net.tau_min_s), math.log(net.tau_max_s))
    bounded = net.bounds if hidden else {}

    def tau(name: str) -> jax.Array:
        t = jnp.exp(jnp.clip(p[name], *bounded.get(name, default)))
        return t if net.train_tau else jax.lax.stop_gradient(t)

    def fixed(name: str, trained: bool) -> jax.Array:
        a = jnp.clip(p[name], *bounded[name]) if name in bounded else p[name]
        return a if trained else jax.lax.stop_gradient(a)

    out = {"tau_mem_s": tau("log_tau_mem")}
    if "v_threshold" in p:
        out["v_threshold"] = fixed("v_threshold", net.train_threshold)
    if "log_tau_syn" in p:
        out["tau_syn_s"] = tau("log_tau_syn")
    if "log_tau_adapt" in p:
        out["tau_adapt_s"] = tau("log_tau_adapt")
        out["a_coupling"] = fixed("a_coupling", net.train_adaptation)
        out["b_spike"] = fixed("b_spike", net.train_adaptation)
    return {k: jnp.broadcast_to(v, shape) for k, v in out.items()}


def _native(net: Network) -> bool:
    """Whether products with spikes go to the native kernels."""
    return net.native_kernels and jax.default_backend() == "cpu" and native.available()


def _dense(net: Network, h: jax.Array, w: jax.Array, *, data: bool) -> jax.Array:
    """(T, B, ...) @ w.T as one product over all steps; ``data``: ``h`` is the input (no gradient to it)."""
    t, b = h.shape[:2]
    if not _native(net):
        return h.reshape(t, b, -1) @ w.T
    if data:
        # Rows in (B, T) order: the batch arrives (B, T, C) and its swap to (T, B) cancels here,
        # so only the narrower result is transposed (a custom call cannot take a strided input).
        rows = jnp.swapaxes(h, 0, 1).reshape(b * t, -1)
        return jnp.swapaxes(spike_project(rows, w, input_grad=False).reshape(b, t, -1), 0, 1)
    return spike_project(h.reshape(t * b, -1), w, input_grad=True).reshape(t, b, -1)


def _project(net: Network, spec: LayerSpec, p: Params, h: jax.Array, gain: float, *, data: bool) -> jax.Array:
    """The layer's synapses applied at every step: (T, B, *in_shape) -> (T, B, *out_shape)."""
    t, b = h.shape[:2]
    if spec.kind == "dense":
        return _dense(net, h, gain * p["w"], data=data)
    y = jax.lax.conv_general_dilated(
        h.reshape(t * b, *spec.in_shape), gain * p["w"], window_strides=spec.stride,
        padding=[(spec.padding[0],) * 2, (spec.padding[1],) * 2], dimension_numbers=("NCHW", "OIHW", "NCHW"),
    )  # fmt: skip
    return (y + p["b"][None, :, None, None]).reshape(t, b, *spec.out_shape)


def _population(
    spec: N.NeuronSpec,
    spike: SpikeFn,
    c: N.Coefficients,
    method: str,
    drive: jax.Array,
    w_rec: jax.Array | None,
    *,
    sparse: bool = False,
    init: N.NeuronState | None = None,
    gate: float | None = None,
) -> tuple[N.NeuronState, Any]:
    """Run one population over time on its input sequence (T, B, *shape) from ``init`` (default: rest).

    Returns the state after the last step and the outputs. ``sparse``: the recurrent product
    skips the zeros of last step's spikes (tools.train.native). ``gate`` (sparse BPTT): the outputs
    are (spikes, near), ``near`` (uint8) marking where the membrane was above ``gate * v_th``.
    """
    if init is None:
        init = N.initial_state(c, drive.shape[1])
    w_rec_t = None if w_rec is None else w_rec.T  # once, outside the loop
    if sparse and w_rec_t is not None and spec.spiking:
        return _sparse_recurrent(spec, spike, method, gate, c, drive, w_rec_t, init)
    return _scan(spec, spike, method, c, drive, w_rec_t, init, sparse=sparse, gate=gate)


def _scan(
    spec: N.NeuronSpec,
    spike: SpikeFn,
    method: str,
    c: N.Coefficients,
    drive: jax.Array,
    w_rec_t: jax.Array | None,
    init: N.NeuronState,
    *,
    sparse: bool,
    gate: float | None = None,
) -> tuple[N.NeuronState, Any]:
    def body(state: N.NeuronState, x: jax.Array) -> tuple[N.NeuronState, Any]:
        if w_rec_t is not None:
            # The recurrent edge is a back edge: it delivers last step's spikes.
            x = x + (spike_matmul(state.z, w_rec_t) if sparse else state.z @ w_rec_t)
        new, z = N.step(spec, spike, c, state, x, method)
        if gate is None:
            return new, z
        # Where no spike reset the membrane, the value after the step is the one the threshold saw,
        # so this is the gated surrogate's own condition; a spike is always listed.
        near = (z != 0) | (new.v > gate * c.v_threshold)
        return new, (z, jax.lax.stop_gradient(near.astype(jnp.uint8)))

    return jax.lax.scan(body, init, drive)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _sparse_recurrent(
    spec: N.NeuronSpec,
    spike: SpikeFn,
    method: str,
    gate: float | None,
    c: N.Coefficients,
    drive: jax.Array,
    w_rec_t: jax.Array,
    init: N.NeuronState,
) -> tuple[N.NeuronState, jax.Array]:
    """A recurrent population whose recurrent weight gradient is one product after the loop.

    Differentiated step by step, the time loop would add a full (N, N) weight cotangent at every
    step. The recurrent current enters the membrane where the drive does, so its cotangent at
    step t is the drive's, and ``dW^T = sum_t z_{t-1}^T d(drive)_t`` is one sparse product over
    all steps (tools.train.native), taken once the loop's backward pass is done.
    """
    return _scan(spec, spike, method, c, drive, w_rec_t, init, sparse=True, gate=gate)


def _sparse_recurrent_fwd(spec, spike, method, gate, c, drive, w_rec_t, init):  # type: ignore[no-untyped-def]
    fixed = jax.lax.stop_gradient(w_rec_t)
    (end, out), vjp = jax.vjp(lambda c, d, s: _scan(spec, spike, method, c, d, fixed, s, sparse=True, gate=gate),
                              c, drive, init)  # fmt: skip
    z = out if gate is None else out[0]
    return (end, out), (vjp, z, init.z)


def _sparse_recurrent_bwd(spec, spike, method, gate, res, g):  # type: ignore[no-untyped-def]
    vjp, z, z0 = res
    d_c, d_drive, d_init = vjp(g)
    z_prev = jnp.concatenate([z0[None], z[:-1]]).reshape(-1, z.shape[-1])
    return d_c, d_drive, native.spike_outer(z_prev, d_drive.reshape(-1, d_drive.shape[-1])), d_init


_sparse_recurrent.defvjp(_sparse_recurrent_fwd, _sparse_recurrent_bwd)


def forward(
    net: Network,
    spike: SpikeFn,
    params: Params,
    x: jax.Array,
    *,
    record: bool = False,
    dropout_key: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Run the network on ``x`` (T, B, *input_shape).

    Returns the readout membrane trace (T, B, classes) and, with ``record``, each
    hidden layer's spikes by node name. Layers run one after the other over the
    whole sequence, which for these graphs equals the runtime's step-by-step order.
    With ``dropout_key`` (training), each hidden layer's output to the next layer is
    dropped with probability ``net.dropout``; its own recurrence sees its own spikes.
    """
    trace, spikes, _ = forward_tallies(net, spike, params, x, record=record, dropout_key=dropout_key)
    return trace, spikes


def forward_tallies(
    net: Network,
    spike: SpikeFn,
    params: Params,
    x: jax.Array,
    *,
    record: bool = False,
    dropout_key: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array], dict[str, jax.Array]]:
    """:func:`forward`, and with sparse BPTT each dense layer's buffer tally by layer name.

    A tally is (spikes seen, spikes dropped, gradient entries seen, gradient entries dropped)
    of the layer's input buffers over the batch (int32; "readout" for the read-out's input).
    """
    if net.reference:
        return gru_forward(params, x), {}, {}
    if net.checkpointing.scheme != "none":
        trace, spikes = _blockwise(net, spike, params, x, resolve_checkpointing(net, x.shape[0], x.shape[1]),
                                   record=record, dropout_key=dropout_key)  # fmt: skip
        return trace, spikes, {}
    t, b = x.shape[:2]
    h = x.reshape(t, b, *net.input_shape)
    near: jax.Array | None = None  # where the layer's input has a surrogate gradient (sparse BPTT)
    spikes: dict[str, jax.Array] = {}
    tallies: dict[str, jax.Array] = {}
    for i, (spec, p) in enumerate(zip(net.layers, params["layers"], strict=True)):
        c = N.coefficients(net.neuron, neuron_params(net, p["neuron"], spec.out_shape), net.dt_s, net.method)
        w_rec = p.get("w_rec")
        if net.sparse is not None and spec.kind == "dense":
            drive, tallies[spec.name] = _buffered(net, h, near, net.weight_gain * p["w"])
        else:
            drive = _project(net, spec, p, h, net.weight_gain, data=i == 0)
        _, h = _population(net.neuron, spike, c, net.method, drive, None if w_rec is None else net.weight_gain * w_rec,
                           sparse=_native(net), gate=net.gate)  # fmt: skip
        if net.sparse is not None:
            h, near = h
        if record:
            spikes[spec.name] = h
        if dropout_key is not None and net.dropout > 0:
            keep = jax.random.bernoulli(jax.random.fold_in(dropout_key, i), 1.0 - net.dropout, h.shape)
            # native products skip zeros, and h / keep-probability keeps the expected input
            h = jnp.where(keep, h / (1.0 - net.dropout), 0.0)
    r = params["readout"]
    c = N.coefficients(net.readout, neuron_params(net, r["neuron"], (net.n_classes,), hidden=False), net.dt_s,
                       net.method)  # fmt: skip
    if net.sparse is not None:
        drive, tallies["readout"] = _buffered(net, h, near, net.weight_gain * r["w"])
    else:
        drive = _dense(net, h, net.weight_gain * r["w"], data=not net.layers)
    _, y = _population(net.readout, spike, c, net.method, drive, None)
    return y, spikes, tallies


def _buffered(net: Network, h: jax.Array, near: jax.Array | None, w: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(T, B, ...) @ w.T through spike buffers (sparse BPTT); ``near`` None: ``h`` is the data."""
    assert net.sparse is not None
    t, b = h.shape[:2]
    size = math.prod(h.shape[2:])
    if near is None:
        # rows in (B, T) order, as in _dense: the batch's swap to (T, B) cancels against this one
        cap = capacity_of(size, net.sparse.input_max_activity or net.sparse.max_activity)
        y, tally = sparse_project(jnp.swapaxes(h, 0, 1).reshape(b * t, size), w, cap)
        return jnp.swapaxes(y.reshape(b, t, -1), 0, 1), tally
    cap = capacity_of(size, net.sparse.max_activity)
    y, tally = sparse_project(h.reshape(t * b, size), w, cap, near.reshape(t * b, size))
    return y.reshape(t, b, -1), tally


def count_params(params: Params) -> int:
    """Number of scalar parameters."""
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)))


# -- the time loop with all layers stepped together (checkpointing) ---------------------------------
def _loop_params(net: Network, params: Params) -> Params:
    """Everything one step reads: effective weights and neuron coefficients, computed once."""
    g = net.weight_gain
    layers = []
    for spec, p in zip(net.layers, params["layers"], strict=True):
        c = N.coefficients(net.neuron, neuron_params(net, p["neuron"], spec.out_shape), net.dt_s, net.method)
        lp = {"c": c, "w": g * p["w"]}
        if "b" in p:
            lp["b"] = p["b"]
        if "w_rec" in p:
            lp["w_rec"] = g * p["w_rec"]
        layers.append(lp)
    r = params["readout"]
    c = N.coefficients(net.readout, neuron_params(net, r["neuron"], (net.n_classes,), hidden=False), net.dt_s,
                       net.method)  # fmt: skip
    return {"layers": layers, "readout": {"c": c, "w": g * r["w"]}}


def _block(
    net: Network, spike: SpikeFn, p: Params, carry: Any, x: jax.Array, key: jax.Array | None, record: bool
) -> tuple[Any, jax.Array]:
    """The network on one block of steps (k, B, *input) from the states in ``carry``, layer by layer."""
    states, r_state, counts = carry
    k, b = x.shape[:2]
    h = x
    new_states, new_counts = [], []
    for i, (spec, layer, st) in enumerate(zip(net.layers, p["layers"], states, strict=True)):
        if spec.kind == "dense" and i == 0 and _native(net):
            drive = spike_project(h.reshape(k * b, -1), layer["w"], input_grad=False).reshape(k, b, -1)
        else:
            drive = _project(net, spec, layer, h, 1.0, data=False)
        st, h = _population(net.neuron, spike, layer["c"], net.method, drive, layer.get("w_rec"),
                            sparse=_native(net), init=st)  # fmt: skip
        new_states.append(st)
        if record:
            new_counts.append(counts[i] + jnp.sum(h, axis=0))
        if key is not None:
            keep = jax.random.bernoulli(jax.random.fold_in(key, i), 1.0 - net.dropout, h.shape)
            h = jnp.where(keep, h / (1.0 - net.dropout), 0.0)
    drive = _dense(net, h, p["readout"]["w"], data=False)
    r_state, y = _population(net.readout, spike, p["readout"]["c"], net.method, drive, None, init=r_state)
    return (tuple(new_states), r_state, tuple(new_counts)), y


def _blockwise(
    net: Network,
    spike: SpikeFn,
    params: Params,
    x: jax.Array,
    plan: timeloop.Checkpointing,
    *,
    record: bool,
    dropout_key: jax.Array | None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """:func:`forward` in blocks of the plan's innermost chunk, carried from block to block.

    Within a block the layers run one after the other over its steps, as :func:`forward` does
    over the whole sequence (products over all the block's steps at once); between blocks only
    the states travel. The blocks are the steps of a :func:`tools.train.timeloop.scan` whose
    outer chunks are the plan's outer chunks in blocks (rounded down to whole blocks), and each
    block is recomputed in the backward pass, so nothing of length T is kept besides the input
    and the read-out trace. With ``record`` the spikes come back as counts per neuron over the
    sequence (B, *shape), what the rate penalty needs. Dropout masks are drawn per block.
    """
    t, b = x.shape[:2]
    x = x.reshape(t, b, *net.input_shape)
    k = min(plan.chunks[-1], t)
    blocks, tail = t // k, t % k
    outer = tuple(max(1, c // k) for c in plan.chunks[:-1])
    # the block-level plan: outer chunks in blocks, and every block checkpointed on its own
    if plan.scheme == "standard":
        inner = timeloop.Checkpointing("standard", (1,))
    elif plan.scheme == "hierarchical":
        inner = timeloop.Checkpointing("hierarchical", (outer[0], 1))
    elif plan.scheme == "remote":
        inner = timeloop.Checkpointing("remote", (1,), plan.remote, plan.directory)
    else:
        inner = timeloop.Checkpointing("double", (outer[0], 1), plan.remote, plan.directory)
    p = _loop_params(net, params)
    dropout = dropout_key is not None and net.dropout > 0
    states = tuple(N.initial_state(layer["c"], b) for layer in p["layers"])
    counts = tuple(jnp.zeros((b, *spec.out_shape), jnp.float32) for spec in net.layers) if record else ()
    carry = (states, N.initial_state(p["readout"]["c"], b), counts)
    xs: dict[str, jax.Array] = {"x": x[: blocks * k].reshape(blocks, k, *x.shape[1:])}
    if dropout:
        # keys travel as float32 bit patterns: the remote schemes' backward pass gives every input a
        # float cotangent, which integer inputs cannot take
        keys = jax.vmap(lambda i: jax.random.key_data(jax.random.fold_in(dropout_key, i)))(jnp.arange(blocks + 1))
        bits = jax.lax.bitcast_convert_type(keys, jnp.float32)
        xs["key"] = bits[:blocks]

    def key_of(bits: jax.Array | None) -> jax.Array | None:
        return None if bits is None else jax.random.wrap_key_data(jax.lax.bitcast_convert_type(bits, jnp.uint32))

    def body(p: Params, carry: Any, inp: dict[str, jax.Array]) -> tuple[Any, jax.Array]:
        return _block(net, spike, p, carry, inp["x"], key_of(inp.get("key")), record)

    carry, trace = timeloop.scan(body, p, carry, xs, inner)
    trace = trace.reshape(blocks * k, *trace.shape[2:])
    if tail:
        carry, rest = _block(net, spike, p, carry, x[blocks * k :], key_of(bits[blocks] if dropout else None), record)
        trace = jnp.concatenate([trace, rest])
    counts = carry[2]
    return trace, ({spec.name: c for spec, c in zip(net.layers, counts, strict=True)} if record else {})


def state_bytes(net: Network) -> int:
    """Bytes per sample of the state a checkpoint keeps: v and z of every population, i and w where the
    neuron has them (the others stay constant zeros, which XLA does not store)."""

    def per_neuron(spec: N.NeuronSpec) -> int:
        return 4 * (2 + int(spec.has_synapse) + int(spec.has_adaptation))

    hidden = sum(math.prod(s.out_shape) for s in net.layers)
    return per_neuron(net.neuron) * hidden + per_neuron(net.readout) * net.n_classes


def memory_model(net: Network, batch: int) -> memplan.MemoryModel:
    """The planner's model of ``net`` at ``batch``: state by count, residuals calibrated on XLA's buffers."""
    return _memory_model(net, batch)


@functools.lru_cache(maxsize=16)
def _memory_model(net: Network, batch: int) -> memplan.MemoryModel:
    from tools.train.surrogate import make_spike_fn

    spike = make_spike_fn("fast_sigmoid", 10.0)
    params = jax.eval_shape(lambda: _shape_params(net, jax.random.key(0)))
    n_in = math.prod(net.input_shape)

    def temp_bytes(plain: Network, time_major: bool) -> Callable[[int], float]:
        # the gradient the trainer takes: plain BPTT transposes a (B, T, ...) batch inside the step,
        # a checkpointed loop reads a time-major one (tools.train.trainer.make_steps)
        def measure(steps: int) -> float:
            shape = (steps, batch, n_in) if time_major else (batch, steps, n_in)
            x = jax.ShapeDtypeStruct(shape, jnp.float32)

            def loss(p: Params, x: jax.Array) -> jax.Array:
                return jnp.sum(forward(plain, spike, p, x if time_major else jnp.swapaxes(x, 0, 1))[0])

            compiled = jax.jit(jax.grad(loss)).lower(params, x).compile()
            return float(compiled.memory_analysis().temp_size_in_bytes)

        return measure

    def checkpointed(plan: timeloop.Checkpointing, steps: int) -> float:
        planned = dataclasses.replace(net, checkpointing=CheckpointConfig(plan.scheme, plan.chunks))
        return temp_bytes(planned, True)(steps)

    terms = memplan.fit(checkpointed, batch, state_bytes(net))
    layered = dataclasses.replace(net, checkpointing=CheckpointConfig())
    plain, plain_fixed = memplan.calibrate(temp_bytes(layered, False), batch)
    return memplan.MemoryModel(state_bytes(net), terms["residual_bytes_per_step"], terms["stream_bytes_per_step"],
                               terms["fixed_bytes"], inner_state_bytes=terms["inner_state_bytes"],
                               input_bytes_per_step=terms["input_bytes_per_step"],
                               plain_bytes_per_step=plain - terms["stream_bytes_per_step"],
                               plain_fixed_bytes=plain_fixed)  # fmt: skip


def _shape_params(net: Network, key: jax.Array) -> Params:
    from tools.train.config import ExperimentConfig

    cfg = ExperimentConfig(dt_s=net.dt_s, method=net.method)
    return init_params(net, cfg, key)


def resolve_checkpointing(net: Network, steps: int, batch: int) -> timeloop.Checkpointing:
    """The concrete plan of ``net.checkpointing`` for sequences of ``steps`` at ``batch`` (planned if "auto")."""
    ck = net.checkpointing
    if ck.scheme != "auto" and ck.chunks != "auto":
        return timeloop.Checkpointing(ck.scheme, tuple(ck.chunks), ck.remote, ck.directory)
    model = memory_model(net, batch)
    if ck.budget_mib is None:
        chunks = memplan.default_chunks(ck.scheme, steps, model)
        plan = timeloop.Checkpointing(ck.scheme, chunks, ck.remote)
    else:
        schemes = None if ck.scheme == "auto" else [ck.scheme]
        plan = memplan.choose(steps, batch, model, ck.budget_mib * memplan.MIB, remote=ck.remote, schemes=schemes).plan
    return dataclasses.replace(plan, directory=ck.directory)


def plan_report(net: Network, steps: int, batch: int) -> memplan.Prediction:
    """The plan :func:`forward` will run for ``steps`` x ``batch`` and the planner's prediction for it."""
    return memplan.predict(resolve_checkpointing(net, steps, batch), steps, batch, memory_model(net, batch))
