r"""The learning configuration a bundle carries: which node feeds the plastic readout, and the rule's hyperparameters.

A model learns on the device when its ``learning`` dict is present. The dict is
the JSON form of :class:`LearningConfig` plus ``"rule"`` and ``"version"`` keys;
the offline meta-trainer writes tuned values into it, and
:func:`enable_learning` sets it on a model by hand. Every value is checked
against :data:`LearningConfig.constraints` when the config is built, and an
error names the field (``learning/threshold: expected ...``).

The rule these hyperparameters drive is written out in :mod:`edgesnn.learn.rule`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from edgesnn.errors import OptionError
from edgesnn.learn._constraints import Choice, Constraint, Integer, Name, Nullable, Real, Vector

if TYPE_CHECKING:
    from edgesnn.model import Model

RULE = "three-factor"
VERSION = 2
#: The fields version 2 added, with the value that gives version 1's behaviour (a dict without them loads so).
V1_VALUES: dict[str, str] = {"bias": "none", "shots": "first", "step": "constant"}
#: Version 1's defaults of fields whose default changed, for version 1 dicts that leave them out.
V1_DEFAULTS: dict[str, float] = {"learning_rate": 1.0}
#: Output name of the class scores in session outputs; no graph node may use it.
SCORES = "classes"

_POSITIVE = Real(0.0, open_low=True)
_NONNEGATIVE = Real(0.0)


@dataclasses.dataclass(frozen=True)
class LearningConfig:
    r"""Hyperparameters of the plastic readout and its three-factor rule.

    Parameters
    ----------
    feature_node : str
        Spiking node of the static graph whose spikes feed the readout (e.g. the
        penultimate LIF layer). The graph itself never changes.
    readout_tau_s : float, default=0.02
        Time constant of the leaky-integrator readout that turns weighted feature
        spikes into class scores, in seconds.
    trace_tau_s : float, default=0.02
        Time constant of the presynaptic traces the rule reads, in seconds.
    t_epoch : int, default=20
        Steps per learning epoch: updates are computed from a whole epoch and
        applied at its end, as on Loihi's learning engine.
    learning_rate : float, default=0.1
        Step size for the row of the class being taught. With ``step="normalised"``
        it is about the share of the (relative) error one epoch's update removes,
        the same for features of any scale. The default is small: with the class
        mean of the shots in place, pulling a row further toward its latest
        example weighs that example above the others, which costs k-shot
        accuracy at large steps. With ``step="constant"`` it multiplies the
        error as it is, and the right size depends on the features' scale: when
        ``learning_rate * |trace|^2`` is well above 1 an update carries the taught
        score past ``target_on`` and further away than it started (the learner
        then logs a warning naming this field, and ``session.learn`` returns
        ``overshot=True``). The meta-trainer sets it.
    learning_rate_other : float, default=0.0
        Step size for every other row (pushes other classes' scores on this
        example toward ``target_off``). The default 0 leaves earlier classes
        untouched: with one example and no replay, pushing old rows down on new
        examples costs the old classes accuracy (on the toy task of
        ``tools/bench/learn_task.py``, four seeds, 0.1 cost the first five
        classes 10 to 38 points once five more were learned; 0 cost 0 to 1).
    error_mode : {"value", "sign"}, default="value"
        Third factor: the gated error itself, or its sign (ternary, as in the
        hardware error-triggered variant).
    threshold : float, default=0.05
        Error magnitude that triggers an update (SOEL's default), and the
        starting value of the adaptive threshold.
    threshold_mode : {"fixed", "adaptive"}, default="fixed"
        ``"adaptive"`` raises the threshold by ``threshold_step`` after an epoch
        that triggered an update and lowers it by the same step (not below
        ``threshold_min``) after one that did not, as in the Loihi emulation.
    threshold_step : float, default=0.05
    threshold_min : float, default=0.0
    target_on, target_off : float, default=1.0, 0.0
        Readout targets for the taught class and for every other class.
    init : {"mean_trace", "zeros", "weights"}, default="mean_trace"
        Initial row of a new class before the rule runs: ``init_scale`` times
        its example's mean presynaptic trace (imprinting), zeros, or
        ``initial_weights`` (meta-trained).
    init_scale : float, default=1.0
    initial_weights : list of float or None, default=None
        One weight per feature; required when ``init == "weights"``.
    passes : int, default=1
        Times the rule replays one example.
    weight_bits : int or None, default=None
        Quantise weights after every epoch to a signed mantissa of this many bits
        with one shared power-of-two exponent (8 as on Loihi); None keeps float32.
    max_classes : int, default=1024
        Most classes the readout holds.
    bias : {"prototype", "none"}, default="prototype"
        ``"prototype"``: every class has the bias ``-|w_c|^2 / (2 init_scale)``, a
        constant input current of its readout, so that the score is
        ``init_scale/2 * (|x|^2 - |x - w_c/init_scale|^2)``: the readout is a
        nearest-prototype (Euclidean) classifier with prototypes
        ``w_c / init_scale``, and the rule moves a prototype toward or away from
        the example (``w_c += third * (x - w_c / init_scale)``); an imprint is
        then ``init_scale`` times the example's mean rate (the mean trace over
        the sum of its kernel). ``"none"``: no bias,
        a dot product (version 1), which favours classes with large rows.
    shots : {"mean", "first"}, default="mean"
        What a further example of a known class does before the error-driven
        update: ``"mean"`` moves the class's row to the running mean of its
        examples' imprints (``w += (imprint - w) / n``, n the examples so far),
        so k shots start from the class mean; ``"first"``
        leaves the row to the rule alone (version 1). Only ``init="mean_trace"``
        imprints; with the other inits further examples are the rule's alone.
    step : {"normalised", "constant"}, default="normalised"
        ``"normalised"`` measures each epoch's error, targets and threshold in
        units of the score the example's own imprint would have in that epoch
        (an imprinted row meets ``target_on = 1``), and divides the step sizes by
        the example's mean trace dotted with its mean input (about
        ``|trace|^2``), so that ``learning_rate = 1`` removes about one epoch's
        error (normalised LMS) on features of any scale. ``"constant"``: targets
        and steps as given (version 1). Lava's learning engine runs only
        ``bias="none"`` with ``step="constant"``.
    """

    feature_node: str
    readout_tau_s: float = 0.02
    trace_tau_s: float = 0.02
    t_epoch: int = 20
    learning_rate: float = 0.1
    learning_rate_other: float = 0.0
    error_mode: str = "value"
    threshold: float = 0.05
    threshold_mode: str = "fixed"
    threshold_step: float = 0.05
    threshold_min: float = 0.0
    target_on: float = 1.0
    target_off: float = 0.0
    init: str = "mean_trace"
    init_scale: float = 1.0
    initial_weights: tuple[float, ...] | None = None
    passes: int = 1
    weight_bits: int | None = None
    max_classes: int = 1024
    bias: str = "prototype"
    shots: str = "mean"
    step: str = "normalised"

    constraints: ClassVar[dict[str, Constraint]] = {
        "feature_node": Name(),
        "readout_tau_s": _POSITIVE,
        "trace_tau_s": _POSITIVE,
        "t_epoch": Integer(1, 1_000_000),
        "learning_rate": _NONNEGATIVE,
        "learning_rate_other": _NONNEGATIVE,
        "error_mode": Choice(("value", "sign")),
        "threshold": _NONNEGATIVE,
        "threshold_mode": Choice(("fixed", "adaptive")),
        "threshold_step": _NONNEGATIVE,
        "threshold_min": _NONNEGATIVE,
        "target_on": Real(),
        "target_off": Real(),
        "init": Choice(("mean_trace", "zeros", "weights")),
        "init_scale": _NONNEGATIVE,
        "initial_weights": Nullable(Vector()),
        "passes": Integer(1, 1000),
        "weight_bits": Nullable(Integer(2, 24)),
        "max_classes": Integer(1, 1 << 20),
        "bias": Choice(("prototype", "none")),
        "shots": Choice(("mean", "first")),
        "step": Choice(("normalised", "constant")),
    }

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = self.constraints[f.name].check(getattr(self, f.name), f"learning/{f.name}")
            object.__setattr__(self, f.name, value)
        # Relations between fields, checked once the fields themselves are valid.
        if not self.target_on > self.target_off:
            raise OptionError(
                f"expected target_on > target_off, got {self.target_on:g} <= {self.target_off:g}",
                path="learning/target_on",
            )
        if self.init == "weights" and self.initial_weights is None:
            raise OptionError('init "weights" needs initial_weights (one per feature)', path="learning/initial_weights")
        if self.bias == "prototype" and self.init_scale == 0:
            raise OptionError('bias "prototype" divides by init_scale (the prototypes are w / init_scale);'
                              " expected init_scale > 0", path="learning/init_scale")  # fmt: skip
        if self.threshold < self.threshold_min:
            raise OptionError(
                f"expected threshold >= threshold_min ({self.threshold_min:g}), got {self.threshold:g}",
                path="learning/threshold",
            )

    # -- serialisation --------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored as ``Model.learning`` (tuples become lists).

        A configuration that behaves as version 1 did is written as version 1 did
        (without the later fields), so the store key of an older bundle's classes
        (:func:`edgesnn.learn.store.store_key`) does not change.
        """
        v1 = all(getattr(self, k) == v for k, v in V1_VALUES.items())
        out: dict[str, Any] = {"rule": RULE, "version": 1 if v1 else VERSION}
        for f in dataclasses.fields(self):
            if v1 and f.name in V1_VALUES:
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LearningConfig:
        """Parse a ``learning`` dict; unknown keys, another rule or a newer version are refused."""
        if not isinstance(data, Mapping):
            raise OptionError(f"expected an object, got {type(data).__name__}", path="learning")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields - {"rule", "version"})
        if unknown:
            raise OptionError(f"unknown keys {unknown}; known: {', '.join(sorted(fields))}", path="learning")
        if data.get("rule", RULE) != RULE:
            raise OptionError(f"expected rule {RULE!r}, got {data.get('rule')!r}", path="learning/rule")
        version = data.get("version", VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= VERSION:
            raise OptionError(f"expected a version in 1..{VERSION}, got {version!r}", path="learning/version")
        if "feature_node" not in data:
            raise OptionError("missing (the spiking node that feeds the readout)", path="learning/feature_node")
        if version == 1:
            later = sorted(set(V1_VALUES) & set(data))
            if later:
                raise OptionError(f"version 1 has no {', '.join(later)} (added in version 2)", path="learning/version")
            data = {**V1_DEFAULTS, **data, **V1_VALUES}  # what version 1 did
        return cls(**{k: v for k, v in data.items() if k in fields})

    # -- binding to a model ---------------------------------------------------
    def feature_size(self, model: Model) -> int:
        """Check this config against ``model`` and return the number of features the readout sees."""
        graph = model.graph
        if SCORES in graph.nodes:
            raise OptionError(
                f"the graph has a node named {SCORES!r}, which is the output name of the learned class scores",
                path="learning",
            )
        if self.feature_node not in graph.nodes:
            raise OptionError(
                f"no node named {self.feature_node!r}; nodes are {', '.join(graph.nodes)}",
                path="learning/feature_node",
            )
        node = graph.nodes[self.feature_node]
        if not node.spiking:
            spiking = [n for n, v in graph.nodes.items() if v.spiking]
            raise OptionError(
                f"{self.feature_node!r} is a {type(node).__name__}, not a spiking node;"
                f" spiking nodes are {', '.join(spiking) or 'none'}",
                path="learning/feature_node",
            )
        n = math.prod(graph.shape(self.feature_node))
        if self.initial_weights is not None and len(self.initial_weights) != n:
            raise OptionError(
                f"expected {n} values (one per feature of {self.feature_node!r}), got {len(self.initial_weights)}",
                path="learning/initial_weights",
            )
        return n


def learning_config(model: Model) -> LearningConfig:
    """The model's learning configuration, parsed and checked against its graph."""
    if model.learning is None:
        raise OptionError(
            "the model has no learning configuration; add one with edgesnn.learn.enable_learning", path="learning"
        )
    config = LearningConfig.from_dict(model.learning)
    config.feature_size(model)
    return config


def enable_learning(model: Model, feature_node: str, **hyperparameters: Any) -> Model:
    """Return ``model`` with a validated learning configuration (other fields unchanged).

    Examples
    --------
    >>> m = enable_learning(model, feature_node="lif1", threshold=0.1)   # doctest: +SKIP
    >>> s = m.session(store="classes/")                                   # doctest: +SKIP
    """
    unknown = sorted(set(hyperparameters) - {f.name for f in dataclasses.fields(LearningConfig)})
    if unknown:
        raise OptionError(f"unknown hyperparameters {unknown}", path="learning")
    config = LearningConfig(feature_node=feature_node, **hyperparameters)
    config.feature_size(model)
    return dataclasses.replace(model, learning=config.to_dict())
