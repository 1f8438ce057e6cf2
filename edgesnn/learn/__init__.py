"""On-device learning: a three-factor rule teaching a growing plastic readout, and the store of learned classes.

A model learns when its ``learning`` configuration is set (in the bundle, or with
:func:`enable_learning`). Its sessions then have ``learn(label, example)``,
``forget(label)``, ``classes()`` and a ``"classes"`` output of scores; opened
with ``store=DIR`` they restore learned classes and write each change durably.
The rule itself is in :mod:`edgesnn.learn.rule` as pure numpy functions.
"""

from edgesnn.learn import rule as rule
from edgesnn.learn.config import LearningConfig as LearningConfig
from edgesnn.learn.config import enable_learning as enable_learning
from edgesnn.learn.config import learning_config as learning_config
from edgesnn.learn.readout import PlasticReadout as PlasticReadout
from edgesnn.learn.store import ClassStore as ClassStore
from edgesnn.learn.store import StoreRecord as StoreRecord

__all__ = [
    "ClassStore",
    "LearningConfig",
    "PlasticReadout",
    "StoreRecord",
    "enable_learning",
    "learning_config",
    "rule",
]
