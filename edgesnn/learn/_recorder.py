"""Runs one example through a private batch-1 copy of the static graph and records the feature node's spikes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from edgesnn.engine import backends
from edgesnn.engine.plan import compile_plan
from edgesnn.errors import InputError

if TYPE_CHECKING:
    from edgesnn.engine.session import SessionOptions
    from edgesnn.model import Model


class FeatureRecorder:
    """A scratch plan of the model (batch 1, its own state) that the live stream never sees."""

    def __init__(self, model: Model, dt_s: float, feature_node: str, options: SessionOptions) -> None:
        self._plan = compile_plan(model.graph, dt_s, model.method, 1, num_threads=options.num_threads)
        _, self._step = backends.make_runner(self._plan, options)
        self._names = model.graph.inputs
        self._bufs = [self._plan.buffers[n] for n in self._names]
        self._features = self._plan.buffers[feature_node].reshape(1, -1)

    def record(self, example: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        """Feature spikes (T, n_features) for an example (T, *input_shape) or (T, 1, *input_shape), from rest."""
        seqs = self._sequences(example)
        steps = len(seqs[0])
        out = np.empty((steps, self._features.shape[1]), np.float32)
        self._plan.reset()  # every example starts from rest: learning one does not depend on the one before
        for t in range(steps):
            for buf, seq in zip(self._bufs, seqs, strict=True):
                np.copyto(buf, seq[t], casting="unsafe")
            self._step()
            out[t] = self._features[0]
        return out

    def _sequences(self, example: np.ndarray | Mapping[str, np.ndarray]) -> list[np.ndarray]:
        if isinstance(example, Mapping):
            missing = [n for n in self._names if n not in example]
            extra = [n for n in example if n not in self._names]
            if missing or extra:
                raise InputError(f"expected inputs {', '.join(self._names)}; missing {missing or 'none'},"
                                 f" unknown {extra or 'none'}", path="example")  # fmt: skip
            feed = example
        elif len(self._names) != 1:
            raise InputError(f"model has inputs {', '.join(self._names)}; pass a dict by name", path="example")
        else:
            feed = {self._names[0]: example}
        seqs = []
        for name, buf in zip(self._names, self._bufs, strict=True):
            arr = np.asarray(feed[name])
            path = "example" if len(self._names) == 1 else f"example/{name}"
            shape = buf.shape[1:]
            if arr.dtype.kind not in "biuf":
                raise InputError(f"expected a numeric array, got dtype {arr.dtype}", path=path)
            if arr.shape[1:] == (1, *shape):
                arr = arr[:, 0]
            if arr.ndim != len(shape) + 1 or arr.shape[1:] != shape or len(arr) < 1:
                raise InputError(f"expected shape (T, {', '.join(map(str, shape))}) or (T, 1, ...) with T >= 1,"
                                 f" got {arr.shape}", path=path)  # fmt: skip
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                raise InputError("expected finite values, got NaN or Inf", path=path)
            seqs.append(arr)
        if len({len(s) for s in seqs}) > 1:
            raise InputError(f"inputs have different lengths {sorted({len(s) for s in seqs})}", path="example")
        return seqs
