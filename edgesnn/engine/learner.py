"""What a session needs from a learner that attaches to it: the engine's side of on-device learning.

The engine defines this interface and never imports a learner. A learner (the
three-factor plastic readout in :mod:`edgesnn.learn`, or any other) is a module
that implements :class:`Learner` and is handed to the session as a factory by
whoever opens it (:meth:`edgesnn.model.Model.session` looks the factory up in
:data:`edgesnn.learn.LEARNERS` by the model's ``learning["rule"]``), so a new
learner is a new module, not an edit of the session.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edgesnn.engine.plan import Plan
    from edgesnn.engine.session import SessionOptions
    from edgesnn.model import Model


class Learner(abc.ABC):
    """A head that runs after every step of the static graph and adds one output of class scores."""

    #: Name of the scores output the learner adds to the session's outputs.
    output_name: str
    #: Live scores (batch, n_classes) as the last step left them; replaced when classes change.
    scores: np.ndarray

    @abc.abstractmethod
    def attach(self, plan: Plan, model: Model) -> None:
        """Bind to a freshly compiled ``plan`` (on open, and again after a retime)."""

    @abc.abstractmethod
    def advance(self) -> None:
        """One step of the learner on what the plan's step just produced."""

    @abc.abstractmethod
    def learn(self, label: str, example: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Teach class ``label`` one example; durable before it returns when the learner has a store."""

    @abc.abstractmethod
    def forget(self, label: str) -> dict[str, Any]:
        """Remove a learned class."""

    @abc.abstractmethod
    def classes(self) -> list[str]:
        """Learned labels in score-column order."""

    @abc.abstractmethod
    def decide(self) -> list[str | None]:
        """Per stream, the label scoring highest now (None while nothing is learned)."""


#: Builds the learner of one session: (model, plan, options) -> Learner.
LearnerFactory = Callable[["Model", "Plan", "SessionOptions"], Learner]
