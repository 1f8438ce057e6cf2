"""On-device learning: a three-factor rule teaching a growing plastic readout, and the store of learned classes.

A model learns when its ``learning`` configuration is set (in the bundle, or with
:func:`enable_learning`). Its sessions then have ``learn(label, example)``,
``forget(label)``, ``classes()`` and a ``"classes"`` output of scores; opened
with ``store=DIR`` they restore learned classes and write each change durably.
The rule itself is in :mod:`edgesnn.learn.rule` as pure numpy functions.
"""

from collections.abc import Mapping

from edgesnn.engine.learner import LearnerFactory
from edgesnn.errors import OptionError
from edgesnn.learn import rule as rule
from edgesnn.learn.config import LearningConfig as LearningConfig
from edgesnn.learn.config import enable_learning as enable_learning
from edgesnn.learn.config import learning_config as learning_config
from edgesnn.learn.head import open_plastic_head
from edgesnn.learn.readout import PlasticReadout as PlasticReadout
from edgesnn.learn.store import ClassStore as ClassStore
from edgesnn.learn.store import StoreRecord as StoreRecord

#: Learner factories by the ``learning["rule"]`` a model names; a new learner adds its entry here.
LEARNERS: dict[str, LearnerFactory] = {"three-factor": open_plastic_head}


def learner_for(learning: Mapping[str, object]) -> LearnerFactory:
    """The factory of the learner a model's ``learning`` configuration names (default: the three-factor rule)."""
    name = learning.get("rule", "three-factor") if isinstance(learning, Mapping) else None
    if not isinstance(name, str) or name not in LEARNERS:
        raise OptionError(f"expected a rule in {', '.join(sorted(LEARNERS))}, got {name!r}", path="learning/rule")
    return LEARNERS[name]


__all__ = [
    "LEARNERS",
    "ClassStore",
    "LearningConfig",
    "PlasticReadout",
    "StoreRecord",
    "enable_learning",
    "learner_for",
    "learning_config",
    "rule",
]
