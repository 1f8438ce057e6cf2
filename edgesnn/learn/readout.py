"""The growing plastic readout as an estimator: one output row per learned class, taught by the rule."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from edgesnn.errors import CapacityError, InputError, NotFittedError, NotFoundError, OptionError
from edgesnn.learn import rule
from edgesnn.learn.config import LearningConfig
from edgesnn.units import check_step_s

log = logging.getLogger("edgesnn.learn")

_FITTED = ("classes_", "coef_", "threshold_", "n_examples_", "n_features_in_", "last_update_")


@dataclasses.dataclass(frozen=True)
class LearnUpdate:
    """What the last :meth:`PlasticReadout.partial_fit` did.

    ``score_before`` / ``score_after`` are the taught class's mean score on the
    example before the rule ran (a new class: with its initial row; a known one
    with ``shots="mean"``: after its row moved to the class mean) and after;
    the rule moves it toward ``target`` (``target_on``, times the example's own
    scale with ``step="normalised"``). ``overshot`` is True when the updates
    carried it past ``target`` to further away than it started: the signature of
    a step size too large for the scale of these features.
    """

    label: str
    new: bool
    epochs: int
    updates: int
    score_before: float
    score_after: float
    target: float

    @property
    def overshot(self) -> bool:
        """Whether the rule carried the taught score past its target to further away than it started."""
        before, after = self.score_before - self.target, self.score_after - self.target
        return before * after < 0 and abs(after) > abs(before)


class PlasticReadout:
    """Class scores from feature spikes through plastic weights that grow a row per new class.

    Follows scikit-learn's incremental estimator contract: ``__init__`` only
    stores configuration; :meth:`partial_fit` teaches one example and returns
    ``self``; the first call fixes the number of features; learned state ends in
    ``_``; asking for scores before anything was learned raises
    :class:`~edgesnn.errors.NotFittedError`.

    Parameters
    ----------
    config : LearningConfig
        Rule hyperparameters (see :mod:`edgesnn.learn.rule` for the equations).
    dt_s : float
        Step of the feature spikes, in seconds (sets the trace and readout decays).

    Attributes
    ----------
    classes_ : tuple of str
        Learned labels, in row order.
    coef_ : ndarray of shape (n_classes, n_features), float32
        Plastic weights.
    threshold_ : float
        Current error threshold (moves when ``threshold_mode="adaptive"``).
    n_examples_ : ndarray of shape (n_classes,), int64
        Examples taught per class.
    n_features_in_ : int
        Features per step, fixed by the first :meth:`partial_fit`.
    last_update_ : LearnUpdate
        Label, whether it was new, epochs and row updates of the last example.

    Examples
    --------
    >>> r = PlasticReadout(LearningConfig(feature_node="lif"), dt_s=1e-3)   # doctest: +SKIP
    >>> r.partial_fit(spikes_a, "wave").partial_fit(spikes_b, "stop")       # doctest: +SKIP
    >>> r.predict(spikes_c)                                                  # doctest: +SKIP
    'wave'
    """

    def __init__(self, config: LearningConfig, *, dt_s: float) -> None:
        self.config = config
        self.dt_s = dt_s

    def get_params(self) -> dict[str, Any]:
        """Configuration passed to ``__init__``."""
        return {"config": self.config, "dt_s": self.dt_s}

    def set_params(self, **params: Any) -> PlasticReadout:
        """Change configuration (e.g. ``dt_s`` after a session retimes); learned state is kept."""
        for key, value in params.items():
            if key not in ("config", "dt_s"):
                raise OptionError(f"unknown parameter {key!r}; known: config, dt_s", path=key)
            setattr(self, key, value)
        return self

    # -- learning -----------------------------------------------------------------
    def partial_fit(self, features_trace: np.ndarray, label: str) -> PlasticReadout:
        """Teach one example: feature spikes (T, n_features) labelled ``label``; new labels get a new row."""
        coeffs = self._coefficients()
        x = self._check_trace(features_trace, fitting=True)
        if not isinstance(label, str) or not label:
            raise InputError(f"expected a non-empty string, got {label!r}", path="label")
        if not hasattr(self, "classes_"):
            self.classes_: tuple[str, ...] = ()
            self.coef_ = np.zeros((0, x.shape[1]), np.float32)
            self.threshold_ = float(self.config.threshold)
            self.n_examples_ = np.zeros(0, np.int64)
            self.n_features_in_ = int(x.shape[1])
        new = label not in self.classes_
        if new and len(self.classes_) >= self.config.max_classes:
            raise CapacityError(
                f"the readout holds max_classes = {self.config.max_classes} classes; forget one first",
                path="learning/max_classes",
            )
        classes, n_examples = ((*self.classes_, label), np.append(self.n_examples_, 0)) if new else \
            (self.classes_, self.n_examples_.copy())  # fmt: skip
        row = classes.index(label)
        coef = rule.add_example_row(self.coef_, row, int(n_examples[row]), x, self.config, coeffs)
        # The taught score on this example before and after, and its target, in the units the rule uses.
        before = float(rule.mean_scores(coef[row : row + 1], x, self.config, coeffs)[0])
        coef, stats = rule.learn_example(coef, x, row, rule.RuleState(self.threshold_), self.config, coeffs)
        after = float(rule.mean_scores(coef[row : row + 1], x, self.config, coeffs)[0])
        target = self.config.target_on * rule.example_scales(x, self.config, coeffs).score
        n_examples[row] += 1
        # Assign only once everything above succeeded, so a failed call leaves the readout as it was.
        self.classes_, self.coef_, self.n_examples_ = classes, coef, n_examples
        self.threshold_ = stats.state.threshold
        self.last_update_ = LearnUpdate(label, new, stats.epochs, stats.updates, before, after, target)
        if self.last_update_.overshot:
            # Silent divergence is the usual failure of an untuned rule: say what happened and what to change.
            log.warning(
                "learning/learning_rate: teaching %r carried its score on the example past the target"
                " (%.3g -> %.3g, target %.3g): the step %g is too large for these features;"
                " meta-train the rule (tools.metatrain), lower learning_rate or use step 'normalised'",
                label, before, after, target, self.config.learning_rate,
            )  # fmt: skip
        return self

    def forget(self, label: str) -> PlasticReadout:
        """Remove a class and its row; the other rows are untouched."""
        if label not in getattr(self, "classes_", ()):
            raise NotFoundError(f"no class {label!r}; classes are {list(getattr(self, 'classes_', ()))}", path="label")
        row = self.classes_.index(label)
        self.classes_ = self.classes_[:row] + self.classes_[row + 1 :]
        # Rows are exact multiples of the shared step, so requantising only lowers the exponent.
        self.coef_ = rule.quantise_weights(np.delete(self.coef_, row, axis=0), self.config.weight_bits)
        self.n_examples_ = np.delete(self.n_examples_, row)
        return self

    def restore(self, classes: tuple[str, ...], coef: np.ndarray, threshold: float, n_examples: np.ndarray) -> None:
        """Set learned state saved earlier (from a class store); shapes must agree."""
        coef = np.asarray(coef, np.float32)
        if coef.ndim != 2 or coef.shape[0] != len(classes) or len(n_examples) != len(classes):
            raise InputError(
                f"expected {len(classes)} rows and counts, got weights {coef.shape} and {len(n_examples)} counts",
                path="coef_",
            )
        self.classes_ = tuple(classes)
        self.coef_ = coef.copy()
        self.threshold_ = float(threshold)
        self.n_examples_ = np.asarray(n_examples, np.int64).copy()
        self.n_features_in_ = int(coef.shape[1])

    # -- inference -----------------------------------------------------------------
    def decision_function(self, features_trace: np.ndarray) -> np.ndarray:
        """Class scores (T, n_classes) over feature spikes (T, n_features), from rest."""
        self._check_fitted()
        x = self._check_trace(features_trace, fitting=False)
        beta = self._coefficients().beta
        return rule.readout_potentials(x, self.coef_, beta, self.intercept_).astype(np.float32)

    @property
    def intercept_(self) -> np.ndarray:
        """Bias current of every class (n_classes,), float32: ``-|w_c|^2 / (2 init_scale)`` or 0 (``config.bias``)."""
        self._check_fitted()
        return rule.bias(self.coef_, self.config).astype(np.float32)

    def predict(self, features_trace: np.ndarray) -> str:
        """The label whose score is highest on average over the trace."""
        self._check_fitted()
        if not self.classes_:
            raise NotFittedError(f"{type(self).__name__} holds no classes (all were forgotten)", path="classes_")
        return self.classes_[int(np.argmax(self.decision_function(features_trace).mean(axis=0)))]

    # -- checks ----------------------------------------------------------------------
    def _coefficients(self) -> rule.Coefficients:
        if not isinstance(self.config, LearningConfig):
            raise OptionError(f"expected a LearningConfig, got {type(self.config).__name__}", path="config")
        return rule.coefficients(self.config, check_step_s(self.dt_s, name="dt_s"))

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise NotFittedError(
                f"this {type(self).__name__} has learned nothing yet; call partial_fit with an example first",
                path="classes_",
            )

    def _check_trace(self, features_trace: np.ndarray, *, fitting: bool) -> np.ndarray:
        x = np.asarray(features_trace)
        if x.dtype.kind not in "biuf" or x.ndim != 2 or x.shape[0] < 1:
            raise InputError(f"expected a numeric array (T >= 1, n_features), got {x.dtype} {x.shape}",
                             path="features_trace")  # fmt: skip
        n = getattr(self, "n_features_in_", None)
        if n is not None and x.shape[1] != n:
            raise InputError(f"expected {n} features per step (fixed by the first example), got {x.shape[1]}",
                             path="features_trace")  # fmt: skip
        x = x.astype(np.float64, copy=False)
        if fitting and not np.all(np.isfinite(x)):
            raise InputError("expected finite values, got NaN or Inf", path="features_trace")
        return x

    def _snapshot(self) -> dict[str, Any]:
        """Learned attributes as they are now (for undoing a change the store did not take)."""
        return {k: getattr(self, k) for k in _FITTED if hasattr(self, k)}

    def _rollback(self, snapshot: dict[str, Any]) -> None:
        for k in _FITTED:
            if k in snapshot:
                setattr(self, k, snapshot[k])
            elif hasattr(self, k):
                delattr(self, k)
