"""The experiment configuration: one JSON file holds everything a training run depends on.

Every section is a frozen dataclass; unknown keys, wrong types and values out
of range raise :class:`edgesnn.errors.OptionError` naming the file and the
key path (``config.json: model/hidden/1``) and what was expected.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from edgesnn.errors import EdgeSNNError, OptionError
from edgesnn.neurons import METHODS
from edgesnn.units import check_step_s

#: "gru" is the non-spiking reference (tools.train.gru): it trains and evaluates, it does not export.
MODEL_KINDS = ("feedforward", "recurrent", "conv", "gru")
NEURON_KINDS = ("lif", "cubalif", "adlif")
SURROGATES = ("fast_sigmoid", "boxcar")
READOUTS = ("max", "mean", "softmax_mean")
SCHEDULES = ("constant", "cosine", "warmup_cosine")
DATA_KINDS = ("synthetic", "keywords")


def _check(cond: bool, message: str, path: str) -> None:
    if not cond:
        raise OptionError(message, path=path)


def _build(cls: type, raw: Any, path: str) -> Any:
    """Construct dataclass ``cls`` from a JSON object, refusing unknown keys."""
    _check(isinstance(raw, Mapping), f"expected an object, got {type(raw).__name__}", path or "<root>")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    _check(not unknown, f"unknown key(s) {', '.join(map(repr, unknown))}; expected some of {', '.join(fields)}", path)
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        sub = _SECTIONS.get((cls.__name__, name))
        kwargs[name] = _build(sub, value, f"{path}/{name}" if path else name) if sub else value
    try:
        return cls(**kwargs)
    except OptionError as exc:
        raise (exc.with_prefix(path) if path else exc) from None
    except TypeError as exc:  # a required key is missing
        raise OptionError(str(exc).split("__init__() ")[-1], path=path or "<root>") from exc


def _number(value: Any, path: str, *, low: float | None = None, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    _check(isinstance(value, kinds) and not isinstance(value, bool),
           f"expected {'an integer' if integer else 'a number'}, got {value!r}", path)  # fmt: skip
    if low is not None:
        _check(value >= low, f"expected a value >= {low}, got {value!r}", path)


def _choice(value: Any, options: tuple[str, ...], path: str) -> None:
    _check(value in options, f"expected one of {', '.join(options)}, got {value!r}", path)


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    """One Conv2d layer followed by a spiking population (PyTorch conventions)."""

    channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        _number(self.channels, "channels", low=1, integer=True)
        for name in ("kernel", "stride", "padding"):
            value = getattr(self, name)
            _check(isinstance(value, (list, tuple)) and len(value) == 2, f"expected [h, w], got {value!r}", name)
            for i, v in enumerate(value):
                _number(v, f"{name}/{i}", low=0 if name == "padding" else 1, integer=True)
            object.__setattr__(self, name, tuple(value))


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Network architecture and the initial continuous-time neuron parameters."""

    kind: str = "feedforward"
    neuron: str = "lif"
    hidden: tuple[int, ...] = (64,)
    conv: tuple[ConvLayer, ...] = ()
    input_shape: tuple[int, ...] | None = None
    tau_mem_s: float = 0.02
    tau_syn_s: float = 0.005
    tau_adapt_s: float = 0.2
    tau_out_s: float = 0.02
    tau_jitter: float = 0.0
    tau_min_s: float | None = None
    tau_max_s: float = 10.0
    a_coupling: float = 0.5
    b_spike: float = 0.5
    v_threshold: float = 1.0
    reset_mode: str = "subtract"
    reset_timing: str = "immediate"
    detach_reset: bool = True
    train_tau: bool = True
    train_threshold: bool = False
    train_adaptation: bool = True
    weight_scale: float = 1.0
    recurrent_scale: float | None = None
    # The step the weights are expressed for (None: the experiment's dt_s). Synapses carry
    # spike counts per step, and a spike's kick on the membrane is about w * dt / tau, so the
    # trained weights are multiplied by weight_dt_s / dt_s: the same initial scales and learning
    # rate then give the same dynamics at any training step.
    weight_dt_s: float | None = None
    readout_scale: float = 1.0
    # Ranges [low, high] that hidden neurons' parameters start in (uniformly; log-uniformly for
    # taus) and are clamped to during training (None: tau_min_s..tau_max_s and unbounded a, b).
    tau_mem_range_s: tuple[float, float] | None = None
    tau_adapt_range_s: tuple[float, float] | None = None
    a_coupling_range: tuple[float, float] | None = None
    b_spike_range: tuple[float, float] | None = None
    # Probability of zeroing a hidden layer's output during training (inverted dropout).
    dropout: float = 0.0
    # The CPU kernels of tools/train/native.py: dense layers skip the zeros of their input in the
    # forward product and the weight gradient; false: XLA's dense products.
    native_kernels: bool = True

    def __post_init__(self) -> None:
        _choice(self.kind, MODEL_KINDS, "kind")
        _check(isinstance(self.native_kernels, bool), f"expected true or false, got {self.native_kernels!r}",
               "native_kernels")  # fmt: skip
        _choice(self.neuron, NEURON_KINDS, "neuron")
        _choice(self.reset_mode, ("to_value", "subtract"), "reset_mode")
        _choice(self.reset_timing, ("immediate", "next_step"), "reset_timing")
        _check(isinstance(self.hidden, (list, tuple)), f"expected a list of sizes, got {self.hidden!r}", "hidden")
        for i, n in enumerate(self.hidden):
            _number(n, f"hidden/{i}", low=1, integer=True)
        object.__setattr__(self, "hidden", tuple(self.hidden))
        _check(isinstance(self.conv, (list, tuple)), f"expected a list of layers, got {self.conv!r}", "conv")
        conv = tuple(
            c if isinstance(c, ConvLayer) else _build(ConvLayer, c, f"conv/{i}") for i, c in enumerate(self.conv)
        )
        object.__setattr__(self, "conv", conv)
        _check(self.kind == "conv" or not conv, "conv layers are only used by kind 'conv'", "conv")
        _check(self.kind != "conv" or bool(conv), "kind 'conv' needs at least one conv layer", "conv")
        _check(self.kind not in ("recurrent", "gru") or bool(self.hidden), f"kind {self.kind!r} needs hidden layers",
               "hidden")  # fmt: skip
        if self.input_shape is not None:
            _check(isinstance(self.input_shape, (list, tuple)), f"expected a list, got {self.input_shape!r}",
                   "input_shape")  # fmt: skip
            for i, n in enumerate(self.input_shape):
                _number(n, f"input_shape/{i}", low=1, integer=True)
            object.__setattr__(self, "input_shape", tuple(self.input_shape))
        _check(self.kind != "conv" or self.input_shape is None or len(self.input_shape) == 3,
               f"conv models need input_shape [channels, height, width], got {self.input_shape}",
               "input_shape")  # fmt: skip
        for name in ("tau_mem_s", "tau_syn_s", "tau_adapt_s", "tau_out_s", "tau_max_s"):
            _number(getattr(self, name), name)
            _check(getattr(self, name) > 0, f"expected a time constant > 0 s, got {getattr(self, name)!r}", name)
        if self.tau_min_s is not None:
            _number(self.tau_min_s, "tau_min_s")
            _check(0 < self.tau_min_s < self.tau_max_s, "expected 0 < tau_min_s < tau_max_s", "tau_min_s")
        for name in ("tau_jitter", "weight_scale", "readout_scale"):
            _number(getattr(self, name), name, low=0)
        if self.recurrent_scale is not None:
            _number(self.recurrent_scale, "recurrent_scale", low=0)
        if self.weight_dt_s is not None:
            _number(self.weight_dt_s, "weight_dt_s")
            _check(self.weight_dt_s > 0, f"expected a step > 0 s, got {self.weight_dt_s!r}", "weight_dt_s")
        for name in ("tau_mem_range_s", "tau_adapt_range_s", "a_coupling_range", "b_spike_range"):
            value = getattr(self, name)
            if value is None:
                continue
            _check(isinstance(value, (list, tuple)) and len(value) == 2, f"expected [low, high], got {value!r}", name)
            for i, v in enumerate(value):
                _number(v, f"{name}/{i}")
            _check(value[0] <= value[1], f"expected low <= high, got {list(value)}", name)
            _check(not name.startswith("tau") or value[0] > 0, f"expected time constants > 0 s, got {list(value)}",
                   name)  # fmt: skip
            object.__setattr__(self, name, (float(value[0]), float(value[1])))
        _number(self.dropout, "dropout", low=0)
        _check(self.dropout < 1, f"expected a probability in [0, 1), got {self.dropout!r}", "dropout")
        for name in ("a_coupling", "b_spike", "v_threshold"):
            _number(getattr(self, name), name)
        _check(self.v_threshold > 0, "expected a threshold > 0", "v_threshold")
        for name in ("detach_reset", "train_tau", "train_threshold", "train_adaptation"):
            _check(isinstance(getattr(self, name), bool), f"expected true or false, got {getattr(self, name)!r}", name)


@dataclasses.dataclass(frozen=True)
class SurrogateConfig:
    """Pseudo-derivative of the Heaviside spike function."""

    kind: str = "fast_sigmoid"
    scale: float = 10.0

    def __post_init__(self) -> None:
        _choice(self.kind, SURROGATES, "kind")
        _number(self.scale, "scale")
        _check(self.scale > 0, f"expected a scale > 0, got {self.scale!r}", "scale")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """How readout membrane traces become logits, and the firing-rate penalty added to the loss."""

    readout: str = "max"
    # Upper bound on each hidden neuron's rate over a sample, in Hz (None: no penalty). A network
    # that stays well below one spike per step does not rely on the step's saturation, so its
    # behaviour carries over to other time steps (edgesnn.adapt).
    max_rate_hz: float | None = None
    rate_weight: float = 1.0

    def __post_init__(self) -> None:
        _choice(self.readout, READOUTS, "readout")
        if self.max_rate_hz is not None:
            _number(self.max_rate_hz, "max_rate_hz")
            _check(self.max_rate_hz > 0, f"expected a rate > 0 Hz, got {self.max_rate_hz!r}", "max_rate_hz")
        _number(self.rate_weight, "rate_weight", low=0)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Adam with global-norm clipping and a learning-rate schedule."""

    lr: float = 1e-3
    schedule: str = "constant"
    warmup_epochs: int = 0
    clip_norm: float | None = 1.0
    b1: float = 0.9
    b2: float = 0.999

    def __post_init__(self) -> None:
        _number(self.lr, "lr")
        _check(self.lr > 0, f"expected a learning rate > 0, got {self.lr!r}", "lr")
        _choice(self.schedule, SCHEDULES, "schedule")
        _number(self.warmup_epochs, "warmup_epochs", low=0, integer=True)
        if self.clip_norm is not None:
            _number(self.clip_norm, "clip_norm")
            _check(self.clip_norm > 0, "expected a norm > 0 or null", "clip_norm")
        for name in ("b1", "b2"):
            _number(getattr(self, name), name)
            _check(0 <= getattr(self, name) < 1, "expected a value in [0, 1)", name)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which dataset and its options; ``options`` go to the loader of ``kind``."""

    kind: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _choice(self.kind, DATA_KINDS, "kind")
        _check(isinstance(self.options, dict), f"expected an object, got {self.options!r}", "options")


CHECKPOINT_SCHEMES = ("none", "standard", "hierarchical", "remote", "double", "auto")


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """Gradient checkpointing of the time loop (tools.train.timeloop), planned by tools.train.memplan.

    ``scheme`` "auto" lets the planner pick the scheme and chunks that fit ``budget_mib``; a named
    scheme with ``chunks`` "auto" gets the planner's chunk sizes (standard: the memory optimum;
    remote and double: the longest outer chunk that fits the budget). ``remote``: where remote
    schemes keep chunk states, "host" memory or an "mmap" file in ``directory``.
    """

    scheme: str = "none"
    chunks: tuple[int, ...] | str = "auto"
    budget_mib: float | None = None
    remote: str = "host"
    directory: str | None = None

    def __post_init__(self) -> None:
        _choice(self.scheme, CHECKPOINT_SCHEMES, "scheme")
        if self.chunks != "auto":
            _check(isinstance(self.chunks, (list, tuple)), f"expected \"auto\" or a list of steps, got {self.chunks!r}",
                   "chunks")  # fmt: skip
            object.__setattr__(self, "chunks", tuple(self.chunks))
            for i, k in enumerate(self.chunks):
                _number(k, f"chunks/{i}", low=1, integer=True)
            _check(self.scheme != "auto", 'scheme "auto" plans its own chunks; give chunks "auto"', "chunks")
        if self.budget_mib is not None:
            _number(self.budget_mib, "budget_mib")
            _check(self.budget_mib > 0, f"expected a positive size in MiB, got {self.budget_mib!r}", "budget_mib")
        _check(self.scheme != "auto" or self.budget_mib is not None, 'scheme "auto" needs budget_mib', "budget_mib")
        _choice(self.remote, ("host", "mmap"), "remote")
        _check(self.directory is None or isinstance(self.directory, str), "expected a directory path", "directory")


@dataclasses.dataclass(frozen=True)
class SparseConfig:
    """Sparse BPTT (tools.train.native.sparse_project): spikes as capacity-bounded id buffers.

    A dense layer's input at each step and sample is a buffer of ``ceil(max_activity * size)`` ids
    (``input_max_activity`` for the data, default the same): the spikes, then the neurons whose
    membrane is above ``second_threshold`` times their threshold. Only those get a surrogate
    gradient (the surrogate is gated there, dense or sparse), so the gradient equals the dense one
    as long as nothing overflows; what overflows is dropped, counted and logged.
    """

    enabled: bool = False
    max_activity: float = 0.1
    input_max_activity: float | None = None
    second_threshold: float = 0.9

    def __post_init__(self) -> None:
        _check(isinstance(self.enabled, bool), f"expected true or false, got {self.enabled!r}", "enabled")
        for name in ("max_activity", "input_max_activity"):
            value = getattr(self, name)
            if value is None and name == "input_max_activity":
                continue
            _number(value, name)
            _check(0 < value <= 1, f"expected a fraction of the layer in (0, 1], got {value!r}", name)
        _number(self.second_threshold, "second_threshold")
        _check(0 <= self.second_threshold <= 1, f"expected a fraction of the threshold in [0, 1], got "
               f"{self.second_threshold!r}", "second_threshold")  # fmt: skip


ONLINE_ORDERS = ("forward", "reverse", "markowitz", "search")


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    """Forward-mode (online) gradients, tools.train.online: eligibility traces instead of BPTT.

    ``order``: the elimination order of the per-step neuron Jacobians (tools.jacobians).
    """

    enabled: bool = False
    order: str = "markowitz"

    def __post_init__(self) -> None:
        _check(isinstance(self.enabled, bool), f"expected true or false, got {self.enabled!r}", "enabled")
        _choice(self.order, ONLINE_ORDERS, "order")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How the gradient is computed (not what is learned): checkpointing of the time loop, sparse BPTT, online."""

    checkpointing: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    sparse: SparseConfig = dataclasses.field(default_factory=SparseConfig)
    online: OnlineConfig = dataclasses.field(default_factory=OnlineConfig)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A whole training experiment (``data`` may be left out where batches come from the caller)."""

    data: DataConfig | None = None
    name: str = "experiment"
    seed: int = 0
    dt_s: float = 1e-3
    method: str = "zoh"
    epochs: int = 10
    batch_size: int = 32
    eval_batch_size: int = 256
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    surrogate: SurrogateConfig = dataclasses.field(default_factory=SurrogateConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        _check(
            isinstance(self.name, str) and bool(self.name), f"expected a non-empty string, got {self.name!r}", "name"
        )
        _number(self.seed, "seed", low=0, integer=True)
        object.__setattr__(self, "dt_s", check_step_s(self.dt_s, name="dt_s"))
        _choice(self.method, METHODS, "method")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            _number(getattr(self, name), name, low=1, integer=True)
        if self.method in ("euler", "cascade-euler"):
            # Forward Euler is only stable for dt <= tau; the clamp keeps every trained tau there.
            _check(self.tau_min_s >= self.dt_s, "forward Euler needs model/tau_min_s >= dt_s", "model/tau_min_s")
            for name in ("tau_mem_range_s", "tau_adapt_range_s"):
                bounds = getattr(self.model, name)
                _check(bounds is None or bounds[0] >= self.dt_s, "forward Euler needs time constants >= dt_s",
                       f"model/{name}")  # fmt: skip

    @property
    def tau_min_s(self) -> float:
        """Smallest time constant training may reach (default: one step)."""
        return self.model.tau_min_s if self.model.tau_min_s is not None else self.dt_s

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON data (recorded in checkpoints and bundles)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


_SECTIONS: dict[tuple[str, str], type] = {
    ("ExperimentConfig", "data"): DataConfig,
    ("ExperimentConfig", "model"): ModelConfig,
    ("ExperimentConfig", "surrogate"): SurrogateConfig,
    ("ExperimentConfig", "loss"): LossConfig,
    ("ExperimentConfig", "optimizer"): OptimizerConfig,
    ("ExperimentConfig", "train"): TrainConfig,
    ("TrainConfig", "checkpointing"): CheckpointConfig,
    ("TrainConfig", "sparse"): SparseConfig,
    ("TrainConfig", "online"): OnlineConfig,
}


def config_from_dict(raw: Mapping[str, Any]) -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig` from parsed JSON."""
    raw = dict(raw)
    data = raw.get("data")
    if isinstance(data, Mapping) and "options" not in data:
        # Convenience: {"kind": "synthetic", "n_classes": 4} means kind plus options.
        raw["data"] = {"kind": data.get("kind"), "options": {k: v for k, v in data.items() if k != "kind"}}
    train = raw.get("train")
    if isinstance(train, Mapping) and isinstance(train.get("checkpointing"), str):
        # Convenience: {"checkpointing": "double"} means that scheme with planned chunks.
        raw["train"] = train = {**train, "checkpointing": {"scheme": train["checkpointing"]}}
    if isinstance(train, Mapping) and isinstance(train.get("sparse"), bool):
        # Convenience: {"sparse": true} means sparse BPTT with the default capacities.
        raw["train"] = train = {**train, "sparse": {"enabled": train["sparse"]}}
    if isinstance(train, Mapping) and isinstance(train.get("online"), bool):
        # Convenience: {"online": true} means forward-mode training with the default order.
        raw["train"] = {**train, "online": {"enabled": train["online"]}}
    return _build(ExperimentConfig, raw, "")


T = TypeVar("T")


def apply_overrides(raw: Any, overrides: Sequence[str]) -> Any:
    """``raw`` with each ``KEY/PATH=VALUE`` set (VALUE parsed as JSON, else kept as a string)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = [p for p in key.strip().split("/") if p]
        if not sep or not parts:
            raise OptionError(f"expected KEY=VALUE (e.g. epochs=2 or model/hidden=[64]), got {item!r}", path="--set")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text  # a bare word such as cascade or data/keywords
        node = raw
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if child is None and isinstance(node, dict):
                child = node[part] = {}
            if not isinstance(child, dict):
                where = "/".join(parts[: depth + 1])
                raise OptionError(f"{where} is not a section, cannot set {key!r}", path="--set")
            node = child
        node[parts[-1]] = value
    return raw


def load_json_config(path: str | os.PathLike[str], build: Callable[[Any], T], overrides: Sequence[str] = ()) -> T:
    """Read a JSON configuration file, apply ``overrides`` and ``build`` it; errors name the file and key."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            raw = json.load(f)
    except OSError as exc:
        raise OptionError(f"cannot read the configuration: {exc.strerror}", path=name) from exc
    except json.JSONDecodeError as exc:
        raise OptionError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", path=name) from exc
    raw = apply_overrides(raw, overrides)
    try:
        return build(raw)
    except EdgeSNNError as exc:
        raise exc.with_prefix(name) from None


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read an experiment configuration from a JSON file, with ``KEY/PATH=VALUE`` overrides."""
    return load_json_config(path, config_from_dict, overrides)
