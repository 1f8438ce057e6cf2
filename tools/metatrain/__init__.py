"""Meta-training (JAX) of the on-device three-factor rule's hyperparameters, exported into a bundle's ``learning``.

Needs the ``train`` extra (jax, optax, tqdm); the runtime never imports it. Run
``python -m tools.metatrain CONFIG.json --out DIR`` (configs in
``tools/metatrain/configs``) or from Python::

    from tools.metatrain import load_config, run
    summary = run(load_config("tools/metatrain/configs/keywords.json"), "runs/meta_keywords")

:mod:`tools.metatrain.rule` is the runtime rule (:mod:`edgesnn.learn.rule`) in
jax.numpy, forward-exact, with straight-through gradients; :mod:`.meta` is the
MAML-style outer loop over N-way k-shot episodes of cached feature spikes
(:mod:`.features`, :mod:`.episodes`); :mod:`.run` ties them together.
"""

from tools.metatrain.config import MetaConfig as MetaConfig
from tools.metatrain.config import config_from_dict as config_from_dict
from tools.metatrain.config import load_config as load_config
from tools.metatrain.run import run as run

__all__ = ["MetaConfig", "config_from_dict", "load_config", "run"]
