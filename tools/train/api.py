"""The trainer as a Python object: one network and its optimizer, trained batch by batch from the caller's data.

    import numpy as np
    from tools.train import Trainer, config_from_dict

    cfg = config_from_dict({"dt_s": 1e-3, "model": {"hidden": [64], "neuron": "adlif"}})  # no data section
    trainer = Trainer(cfg, input_shape=(16,), n_classes=4, total_steps=100)
    for x, y in my_batches():                    # x (B, T, 16) spikes per step, y (B,) class indices
        metrics = trainer.step(x, y)             # {"loss": ..., "accuracy": ...} of this batch
    trainer.evaluate(x_val, y_val)               # mean loss and accuracy over a whole set
    trainer.export("mine.esnn", labels=("a", "b", "c", "d"))   # runs in an edgesnn Session as trained

It runs the same jitted step as ``python -m tools.train`` (``make_steps``), so a loop over the same
batches reaches the same parameters.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from edgesnn.errors import InputError
from edgesnn.model import Model
from tools.train.config import ExperimentConfig
from tools.train.data import Split, aligned_empty, take_batch
from tools.train.export import export_bundle, to_model
from tools.train.models import Params, build_network, count_params, init_params
from tools.train.trainer import TALLY_FIELDS, evaluate, make_optimizer, make_steps, step_key


class Trainer:
    """Train one network of ``cfg`` step by step; ``total_steps`` sets the learning-rate schedule's length."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        input_shape: Sequence[int],
        n_classes: int,
        *,
        total_steps: int | None = None,
        params: Params | None = None,
    ) -> None:
        self.config = cfg
        self.net = build_network(cfg, tuple(input_shape), int(n_classes))
        # the schedule counts optimizer steps: epochs x steps per epoch in the CLI, total_steps here
        self.total_steps = int(total_steps) if total_steps is not None else cfg.epochs
        self._opt = make_optimizer(cfg.optimizer, self.total_steps, 1)
        self.params = params if params is not None else init_params(self.net, cfg, jax.random.key(cfg.seed))
        self.opt_state = self._opt.init(self.params)
        self._steps = make_steps(self.net, cfg.surrogate, cfg.loss, self._opt)
        self.steps_done = 0

    def __repr__(self) -> str:
        return f"Trainer({self.config.name!r}, {count_params(self.params)} parameters, {self.steps_done} steps)"

    def _check(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        if not (isinstance(x, np.ndarray) and x.dtype == np.float32):
            # a conversion copies anyway: into aligned memory, which JAX then reads in place
            try:
                x = np.asarray(x)
                out = aligned_empty(x.shape, np.float32)
                out[...] = x
            except (TypeError, ValueError) as exc:
                raise InputError(f"expected numbers (batch, steps, *{self.net.input_shape}): {exc}", path="x") from exc
            x = out
        y = np.asarray(y)
        want = self.net.input_shape
        if x.ndim < 3 or tuple(x.shape[2:]) not in (want, (int(np.prod(want)),)):
            raise InputError(f"expected (batch, steps, *{want}), got {x.shape}", path="x")
        if y.shape != x.shape[:1] or not np.issubdtype(y.dtype, np.integer):
            raise InputError(f"expected {x.shape[0]} integer class indices, got {y.dtype} {y.shape}", path="y")
        if len(y) and (y.min() < 0 or y.max() >= self.net.n_classes):
            raise InputError(f"class indices must lie in 0 .. {self.net.n_classes - 1}", path="y")
        return x.reshape(*x.shape[:2], -1), y

    def step(self, x: Any, y: Any) -> dict[str, Any]:
        """One optimizer step on a batch: ``x`` (B, T, *input_shape) spikes per step, ``y`` (B,) labels.

        Returns the loss and accuracy, and with sparse BPTT ``sparse_buffers``: each layer's buffer
        tally (spikes, spikes_dropped, gradient_entries, gradient_entries_dropped).
        """
        x, y = self._check(x, y)
        if self._steps.time_major:
            x = take_batch(x, np.arange(len(x)), time_major=True)
        key = step_key(self.config.seed, self.steps_done)
        self.params, self.opt_state, value, hits, tallies = self._steps.train(self.params, self.opt_state, x, y, key)
        self.steps_done += 1
        out: dict[str, Any] = {"loss": float(value), "accuracy": float(hits) / len(y)}
        if tallies:
            out["sparse_buffers"] = {name: dict(zip(TALLY_FIELDS, map(int, np.asarray(t)), strict=True))
                                     for name, t in tallies.items()}  # fmt: skip
        return out

    def evaluate(self, x: Any, y: Any, *, batch_size: int | None = None) -> dict[str, float]:
        """Mean loss and accuracy over a whole set (in batches; the last one padded and masked)."""
        x, y = self._check(x, y)
        return evaluate(self._steps, self.params, Split(x, y), batch_size or self.config.eval_batch_size)

    def to_model(self, *, labels: Sequence[str] = (), producer: dict[str, Any] | None = None) -> Model:
        """The runtime Model of the current parameters, at the training step and method."""
        record = {"name": "edgesnn-train", "config": self.config.to_dict(), "steps": self.steps_done,
                  **(producer or {})}  # fmt: skip
        return to_model(self.net, self.params, labels=tuple(labels), producer=record)

    def export(self, path: str | os.PathLike[str], *, labels: Sequence[str] = ()) -> None:
        """Write the current parameters as a .esnn bundle (atomically)."""
        export_bundle(self.to_model(labels=labels), path)
