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
