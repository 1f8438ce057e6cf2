"""Offline surrogate-gradient training (JAX) of the runtime's neuron models, exported as .esnn.

Needs the ``train`` extra (jax, optax, tqdm); the runtime itself never imports jax.
Run an experiment with ``python -m tools.train CONFIG.json [--out DIR] [--resume] [--quiet]``
or from Python::

    from tools.train import load_config, train
    summary = train(load_config("tools/train/configs/synthetic_lif.json"), "runs/lif")

or batch by batch from your own data with :class:`tools.train.Trainer` (no dataset section needed).

The discrete dynamics are those of :mod:`edgesnn.neurons.discretise`
(:mod:`tools.train.neurons`), so the exported bundle runs in an edgesnn
Session with the outputs the trainer saw.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.train.api import Trainer as Trainer
    from tools.train.config import ExperimentConfig as ExperimentConfig
    from tools.train.config import config_from_dict as config_from_dict
    from tools.train.config import load_config as load_config
    from tools.train.export import to_model as to_model
    from tools.train.models import Network as Network
    from tools.train.models import build_network as build_network
    from tools.train.models import forward as forward
    from tools.train.models import init_params as init_params
    from tools.train.trainer import train as train

# Imported on first use, so that the JAX-free modules (schemes, memplan) load without JAX.
_EXPORTS = {"Trainer": "api", "ExperimentConfig": "config", "config_from_dict": "config", "load_config": "config",
            "to_model": "export", "Network": "models", "build_network": "models", "forward": "models",
            "init_params": "models", "train": "trainer"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


__all__ = [
    "ExperimentConfig",
    "Network",
    "Trainer",
    "build_network",
    "config_from_dict",
    "forward",
    "init_params",
    "load_config",
    "to_model",
    "train",
]
