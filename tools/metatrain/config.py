"""The meta-training configuration: one JSON file holds the data, the feature network, the episodes and the search.

Every section is a frozen dataclass; unknown keys, wrong types and values out of
range raise :class:`edgesnn.errors.OptionError` naming the file and the key path
(``config.json: meta/learn/2``). The ``rule`` section is a partial
:class:`edgesnn.learn.LearningConfig` (without ``feature_node``): the untuned
starting point of the search, and the hyperparameters meta-training leaves alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from edgesnn.errors import OptionError
from edgesnn.learn import LearningConfig
from tools.train.config import load_json_config

DATA_KINDS = ("keywords", "glyphs", "synthetic")
#: Hyperparameters meta-training can tune by gradient; ``t_epoch`` is searched on a grid instead.
LEARNABLE = (
    "learning_rate", "learning_rate_other", "threshold", "threshold_step", "trace_tau_s", "readout_tau_s",
    "target_on", "target_off", "init_scale", "initial_weights",
)  # fmt: skip


def _check(cond: bool, message: str, path: str) -> None:
    if not cond:
        raise OptionError(message, path=path)


def _int(value: Any, path: str, low: int) -> int:
    _check(isinstance(value, int) and not isinstance(value, bool) and value >= low,
           f"expected an integer >= {low}, got {value!r}", path)  # fmt: skip
    return value


def _positive(value: Any, path: str) -> float:
    _check(isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0,
           f"expected a number > 0, got {value!r}", path)  # fmt: skip
    return float(value)


def _names(value: Any, path: str) -> tuple[str, ...]:
    _check(isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value),
           f"expected a list of names, got {value!r}", path)  # fmt: skip
    _check(len(set(value)) == len(value), f"expected distinct names, got {value!r}", path)
    return tuple(value)


@dataclasses.dataclass(frozen=True)
class DataSection:
    """Where the episodes come from, and which classes are for meta-training and which are held out.

    ``keywords``: ``path`` of ``tools.datasets.keywords``, binned at ``dt_s``; classes
    are keyword names; meta-training uses the train split (its voices), model
    selection the val split, evaluation the test split (held-out voices too).
    ``glyphs``: ``path`` of ``tools.datasets.glyphs`` with ``n_bins`` bins over
    its window (``dt_s`` = window / n_bins); the splits hold out whole alphabets, so
    the class lists stay empty. ``synthetic``: class-specific Poisson patterns made
    here (tests and smoke runs).
    """

    kind: str
    path: str | None = None
    dt_s: float = 0.01
    n_bins: int | None = None
    meta_train_classes: tuple[str, ...] = ()
    test_classes: tuple[str, ...] = ()
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.kind in DATA_KINDS, f"expected one of {', '.join(DATA_KINDS)}, got {self.kind!r}", "kind")
        _check(self.kind == "synthetic" or isinstance(self.path, str), "expected the dataset folder", "path")
        _positive(self.dt_s, "dt_s")
        if self.n_bins is not None:
            _int(self.n_bins, "n_bins", 1)
        _check(self.kind != "glyphs" or self.n_bins is not None, "glyphs need n_bins", "n_bins")
        object.__setattr__(self, "meta_train_classes", _names(self.meta_train_classes, "meta_train_classes"))
        object.__setattr__(self, "test_classes", _names(self.test_classes, "test_classes"))
        if self.kind == "keywords":
            _check(bool(self.meta_train_classes) and bool(self.test_classes),
                   "keywords need meta_train_classes and test_classes", "meta_train_classes")  # fmt: skip
            both = sorted(set(self.meta_train_classes) & set(self.test_classes))
            _check(not both, f"held-out classes must not be meta-trained on; both lists hold {both}", "test_classes")
        _check(isinstance(self.options, dict), f"expected an object, got {self.options!r}", "options")


@dataclasses.dataclass(frozen=True)
class FeatureSection:
    """The feature network: a bundle to reuse, or a ``tools.train`` config to pre-train on the meta-train classes.

    With ``meta_iterations > 0`` the pre-trained hidden layers are then meta-trained on
    episodes through the rule (:mod:`tools.metatrain.feature_meta`, Adam at ``meta_lr``).
    """

    feature_node: str
    bundle: str | None = None
    train: dict[str, Any] | None = None
    meta_iterations: int = 0
    meta_lr: float = 1e-3

    def __post_init__(self) -> None:
        _check(isinstance(self.feature_node, str) and bool(self.feature_node), "expected a node name", "feature_node")
        _check((self.bundle is None) != (self.train is None), "give exactly one of bundle and train", "bundle")
        _check(self.train is None or isinstance(self.train, dict), "expected a tools.train config object", "train")
        _int(self.meta_iterations, "meta_iterations", 0)
        object.__setattr__(self, "meta_lr", _positive(self.meta_lr, "meta_lr"))
        _check(
            self.meta_iterations == 0 or self.train is not None,
            "meta-training the features needs the pre-training here (train), not a bundle",
            "meta_iterations",
        )


@dataclasses.dataclass(frozen=True)
class EpisodeSection:
    """N-way k-shot episodes; ``k_shot`` lists the shot counts meta-training mixes."""

    n_way: int = 5
    k_shot: tuple[int, ...] = (1,)
    n_query: int = 5

    def __post_init__(self) -> None:
        _int(self.n_way, "n_way", 2)
        _check(isinstance(self.k_shot, (list, tuple)) and len(self.k_shot) > 0, "expected a list of shots", "k_shot")
        object.__setattr__(self, "k_shot", tuple(_int(k, f"k_shot/{i}", 1) for i, k in enumerate(self.k_shot)))
        _int(self.n_query, "n_query", 1)


@dataclasses.dataclass(frozen=True)
class MetaSection:
    """The outer loop: Adam on the hyperparameters named in ``learn``, for each ``t_epoch`` of the grid.

    ``retention`` weighs a class-incremental term of the outer loss: each step
    also teaches ``batch`` sequences of 2 N classes (N of them, then N more, the
    way a device learns them) and scores the queries of all 2 N classes over all
    2 N rows, so a rule that damages earlier rows while learning later ones (e.g.
    through ``learning_rate_other``) pays for it. 0 leaves the term out. The
    term weighs earlier and later classes alike, so it may still accept damage
    to earlier classes that buys more for later ones: on the keywords (t_epoch
    50, retention 1) it kept ``learning_rate_other`` at 0.034, and the first 5
    held-out classes still lost 19 points after 5 more. To keep earlier rows
    untouched, leave ``learning_rate_other`` out of ``learn`` (at the rule's 0).

    ``start`` overrides hyperparameters of the untuned rule where the outer loop
    begins (e.g. a learning rate small enough not to diverge on these features);
    the untuned rule itself stays the ``rule`` section.
    """

    iterations: int = 300
    batch: int = 8
    lr: float = 0.03
    learn: tuple[str, ...] = ("learning_rate", "learning_rate_other", "threshold", "trace_tau_s",
                              "readout_tau_s", "target_on", "init_scale")  # fmt: skip
    t_epoch_grid: tuple[int, ...] = (20,)
    val_episodes: int = 200
    gate_sharpness: float = 20.0
    clip_norm: float = 1.0
    retention: float = 0.0
    start: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _int(self.iterations, "iterations", 0)
        _int(self.batch, "batch", 1)
        _positive(self.lr, "lr")
        names = _names(self.learn, "learn")
        for i, n in enumerate(names):
            _check(n in LEARNABLE, f"expected one of {', '.join(LEARNABLE)}, got {n!r}", f"learn/{i}")
        object.__setattr__(self, "learn", names)
        _check(isinstance(self.t_epoch_grid, (list, tuple)) and len(self.t_epoch_grid) > 0,
               "expected a list of epoch lengths", "t_epoch_grid")  # fmt: skip
        grid = tuple(_int(t, f"t_epoch_grid/{i}", 1) for i, t in enumerate(self.t_epoch_grid))
        object.__setattr__(self, "t_epoch_grid", grid)
        _int(self.val_episodes, "val_episodes", 1)
        _positive(self.gate_sharpness, "gate_sharpness")
        _positive(self.clip_norm, "clip_norm")
        _check(isinstance(self.retention, (int, float)) and not isinstance(self.retention, bool)
               and self.retention >= 0, f"expected a number >= 0, got {self.retention!r}", "retention")  # fmt: skip
        _check(isinstance(self.start, dict), f"expected an object, got {self.start!r}", "start")


@dataclasses.dataclass(frozen=True)
class MetaConfig:
    """A whole meta-training run."""

    data: DataSection
    features: FeatureSection
    name: str = "metatrain"
    seed: int = 0
    episodes: EpisodeSection = dataclasses.field(default_factory=EpisodeSection)
    rule: dict[str, Any] = dataclasses.field(default_factory=dict)
    meta: MetaSection = dataclasses.field(default_factory=MetaSection)

    def __post_init__(self) -> None:
        _check(isinstance(self.name, str) and bool(self.name), f"expected a non-empty string, got {self.name!r}",
               "name")  # fmt: skip
        _int(self.seed, "seed", 0)
        _check(isinstance(self.rule, dict), f"expected an object, got {self.rule!r}", "rule")
        _check("feature_node" not in self.rule, "set the feature node in features/feature_node", "rule/feature_node")
        try:
            base = self.base_rule()
        except OptionError as exc:
            raise OptionError(exc.message, path="rule/" + (exc.path or "").removeprefix("learning/")) from None
        if "initial_weights" in self.meta.learn and base.init != "weights":
            raise OptionError('tuning initial_weights needs rule/init = "weights"', path="meta/learn")
        if "init_scale" in self.meta.learn and base.init != "mean_trace":
            raise OptionError('tuning init_scale needs rule/init = "mean_trace"', path="meta/learn")
        try:
            self.start_rule()
        except OptionError as exc:
            if (exc.path or "").startswith("meta/"):
                raise
            raise OptionError(exc.message, path="meta/start/" + (exc.path or "").removeprefix("learning/")) from None
        if "threshold_step" in self.meta.learn and base.threshold_mode != "adaptive":
            raise OptionError('tuning threshold_step needs rule/threshold_mode = "adaptive"', path="meta/learn")

    def base_rule(self, n_features: int | None = None) -> LearningConfig:
        """The untuned rule: LearningConfig defaults overridden by the ``rule`` section."""
        rule = dict(self.rule)
        if rule.get("init") == "weights" and "initial_weights" not in rule:
            rule["initial_weights"] = [0.0] * (n_features or 1)
        return LearningConfig(feature_node=self.features.feature_node, **rule)

    def start_rule(self, n_features: int | None = None) -> LearningConfig:
        """Where the outer loop begins: the untuned rule with ``meta.start`` applied."""
        if "feature_node" in self.meta.start or "t_epoch" in self.meta.start:
            raise OptionError("set by features/feature_node and meta/t_epoch_grid", path="meta/start")
        fields = {f.name for f in dataclasses.fields(LearningConfig)}
        unknown = sorted(set(self.meta.start) - fields)
        if unknown:
            raise OptionError(f"unknown hyperparameters {unknown}; known: {', '.join(sorted(fields))}",
                              path="meta/start")  # fmt: skip
        return dataclasses.replace(self.base_rule(n_features), **self.meta.start)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON data (recorded in the bundle's producer and the summary)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


_SECTIONS: dict[tuple[str, str], type] = {
    ("MetaConfig", "data"): DataSection,
    ("MetaConfig", "features"): FeatureSection,
    ("MetaConfig", "episodes"): EpisodeSection,
    ("MetaConfig", "meta"): MetaSection,
}


def _build(cls: type, raw: Any, path: str) -> Any:
    _check(isinstance(raw, Mapping), f"expected an object, got {type(raw).__name__}", path or "<root>")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - fields)
    _check(not unknown, f"unknown key(s) {', '.join(map(repr, unknown))}; expected some of {', '.join(fields)}",
           path or "<root>")  # fmt: skip
    kwargs = {}
    for name, value in raw.items():
        sub = _SECTIONS.get((cls.__name__, name))
        kwargs[name] = _build(sub, value, f"{path}/{name}" if path else name) if sub else value
    try:
        return cls(**kwargs)
    except OptionError as exc:
        raise (exc.with_prefix(path) if path else exc) from None
    except TypeError as exc:  # a required key is missing
        raise OptionError(str(exc).split("__init__() ")[-1], path=path or "<root>") from exc


def config_from_dict(raw: Mapping[str, Any]) -> MetaConfig:
    """Build and validate a :class:`MetaConfig` from parsed JSON."""
    return _build(MetaConfig, raw, "")


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> MetaConfig:
    """Read a meta-training configuration from a JSON file, with ``KEY/PATH=VALUE`` overrides."""
    return load_json_config(path, config_from_dict, overrides)
