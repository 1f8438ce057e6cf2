"""LavaSession: one stream stepping a bundle on Lava's Loihi 2 simulator, one Lava step per ``step``.

Inputs go in through ``Injector`` processes, spikes come out through ``Extractor``
processes, readout voltages through ``Var.get``. State is kept in Lava's own
variables (``u``, ``v`` of each LIF; ``a_buff``/``a_buf`` of each connection) and
serialised in the runtime's Loihi session-state format, so a state saved here
restores a ``numerics="loihi"`` engine session and back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgesnn.devices.base import DeviceSession
from edgesnn.engine._loihi import plan_for
from edgesnn.engine._state import pack_state, unpack_state
from edgesnn.errors import InputError, NotFoundError, UnsupportedError
from edgesnn.learn.config import SCORES
from edgesnn.loihi import network_for
from edgesnn.model import Model, TensorSpec
from firmware_bridges.loihi2.compile import LavaNetwork, build
from firmware_bridges.loihi2.layout import from_lava, to_lava
from firmware_bridges.loihi2.learner import LavaLearner
from firmware_bridges.loihi2.run import run_config

log = logging.getLogger("edgesnn.loihi2")


class LavaSession(DeviceSession):
    """A model compiled to Lava processes, stepped one Loihi time step per call (batch 1)."""

    def __init__(self, model_id: str, model: Model, tag: str, store: str | None = None) -> None:
        self._model_id = model_id
        self._tag = tag
        self._lock = threading.Lock()
        self._closed = False
        self._lava: LavaNetwork | None = None
        # A model that learns gets class rows taught on Lava's learning engine (learner.py).
        self._learner = LavaLearner(model, tag, store) if model.learning is not None else None
        self._compile(model)

    # -- building -----------------------------------------------------------
    def _compile(self, model: Model) -> None:
        self._model = model
        self._net = network_for(model)  # the model's own integers, or its graph quantised
        self._plan = plan_for(self._net, model.graph, 1)  # the state layout (and its reset values)
        if self._learner is not None:
            self._learner.set_dt(model.dt_s)
            self._set_scores(np.zeros((1, len(self._learner.labels)), np.float32))
        self._lava = build(self._net, model.graph, self._tag)
        # Compile and start Lava now: injectors accept data only once the runtime exists.
        self._lava.any_process().create_runtime(run_cfg=run_config(self._tag))
        self._started = True
        self._stepped = False  # Lava's Vars can be read and set only once the runtime has run a step

    def _stop(self) -> None:
        if self._lava is not None and self._started:
            if not self._stepped:
                # Lava's stop() waits forever on a runtime that never ran; one silent step lets it end.
                from lava.magma.core.run_conditions import RunSteps

                for name, shape in self._net.inputs.items():
                    self._lava.sources[name].send(to_lava(np.zeros(shape), shape))
                self._lava.any_process().run(condition=RunSteps(num_steps=1), run_cfg=run_config(self._tag))
            self._lava.any_process().stop()
        self._started = False

    def _live(self) -> LavaNetwork:
        if self._closed or self._lava is None:
            raise NotFoundError("session is closed", path="session")
        return self._lava

    # -- discovery ----------------------------------------------------------
    @property
    def model_id(self) -> str:
        """Id of the model this session runs."""
        return self._model_id

    @property
    def dt_s(self) -> float:
        """Step of this session in seconds."""
        return self._model.dt_s

    @property
    def batch(self) -> int:
        """Lava runs one stream per session."""
        return 1

    @property
    def adapt_method(self) -> str:
        """Adaptation method :meth:`retime` uses by default."""
        return self._model.adapt_method

    @property
    def backend(self) -> str:
        """The Lava run configuration: ``lava-sim-fixed_pt`` or ``lava-sim-floating_pt``."""
        return f"lava-sim-{self._tag}"

    @property
    def inputs(self) -> list[TensorSpec]:
        """Input specs."""
        return self._model.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        """Output specs; ``"classes"`` (the learned class scores) too when the model learns."""
        if self._learner is None:
            return self._model.outputs
        n = len(self._learner.labels)
        return [*self._model.outputs, TensorSpec(self._learner.output_name, (n,), "float32", "score")]

    @property
    def recordable(self) -> list[str]:
        """Every layer's Lava Vars ``u`` and ``v`` (integers under fixed_pt), and both in model units (``_float``)."""
        return [f"{n}/{k}" for n in self._net.neurons for k in ("u", "v", "u_float", "v_float")]

    @property
    def initial_state(self) -> str:
        """Sessions start, and reset to, the network's rest (its u_init and v_init)."""
        return "rest"

    # -- stepping -----------------------------------------------------------
    def _feed(self, x: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = list(self._net.inputs)
        if not isinstance(x, Mapping):
            if len(names) != 1:
                raise InputError(f"model has inputs {', '.join(names)}; pass a dict by name", path="inputs")
            x = {names[0]: x}
        missing, extra = [n for n in names if n not in x], [n for n in x if n not in names]
        if missing or extra:
            raise InputError(
                f"expected inputs {', '.join(names)}; missing {missing or 'none'}, unknown {extra or 'none'}",
                path="inputs",
            )
        feed = {}
        for name, shape in self._net.inputs.items():
            arr = np.asarray(x[name])
            if arr.dtype.kind not in "biuf":
                raise InputError(f"expected a numeric array, got dtype {arr.dtype}", path=f"inputs/{name}")
            if arr.shape not in ((1, *shape), tuple(shape)):
                raise InputError(f"expected shape {(1, *shape)}, got {arr.shape}", path=f"inputs/{name}")
            arr = arr.reshape(shape)
            if np.any((arr != 0) & (arr != 1)):
                raise InputError(f"Loihi numerics take binary spikes (0/1) into {name!r}; got other values",
                                 path="inputs")  # fmt: skip
            feed[name] = arr
        return feed

    def _wanted(self, outputs: Sequence[str] | None) -> list[str]:
        scores = [] if self._learner is None else [self._learner.output_name]
        if outputs is None:
            return [*self._model.graph.outputs, *scores]
        known = [*self._net.neurons, *self._net.outputs, *self._net.inputs, *self.recordable, *scores]
        for n in outputs:
            if n not in known:
                raise InputError(f"no recordable node named {n!r}; the Loihi bridge records {', '.join(known)}",
                                 path="outputs")  # fmt: skip
        return list(outputs)

    def _lava_step(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One Lava time step; the spikes of every spiking layer."""
        from lava.magma.core.run_conditions import RunSteps

        lava = self._live()
        for name, arr in feed.items():
            lava.sources[name].send(to_lava(arr.astype(np.float64), self._net.inputs[name]))
        proc = lava.any_process()
        proc.run(condition=RunSteps(num_steps=1), run_cfg=run_config(self._tag))
        self._stepped = True
        layers = {}
        for name, sink in lava.sinks.items():  # drain every extractor so none fills up
            layers[name] = from_lava(sink.receive(), self._net.neurons[name].shape).astype(np.float32)
        return layers

    def _one_step(self, feed: dict[str, np.ndarray], wanted: list[str]) -> dict[str, np.ndarray]:
        lava = self._live()
        layers = self._lava_step(feed)
        result = {}
        if self._learner is not None:
            scores = self._plan.state[self._scores_key]
            self._learner.step(scores[0], layers[self._learner.feature_node])
            if self._learner.output_name in wanted:
                result[self._learner.output_name] = scores.copy()
        for name in wanted:
            if name in result:
                continue
            if "/" in name:  # a layer's u or v, read from its Lava Var
                layer_name, key = name.split("/")
                layer = self._net.neurons[layer_name]
                var = from_lava(np.asarray(getattr(lava.neurons[layer_name], key[0]).get()), layer.shape)
                fixed = self._tag == "fixed_pt"
                if key.endswith("_float"):
                    value = (var.astype(np.float64) * (2.0**-layer.scale_exp if fixed else 1.0)).astype(np.float32)
                else:
                    value = np.rint(var).astype(np.int32) if fixed else var.astype(np.float32)
                result[name] = value[None]
                continue
            if name in feed:
                result[name] = feed[name].astype(np.float32)[None]
                continue
            layer_name = self._net.outputs.get(name, name)
            if layer_name not in layers:
                layer = self._net.neurons[layer_name]
                v = from_lava(np.asarray(lava.neurons[layer_name].v.get()), layer.shape)
                scale = 2.0**-layer.scale_exp if self._tag == "fixed_pt" else 1.0
                layers[layer_name] = (v.astype(np.float64) * scale).astype(np.float32)
            result[name] = layers[layer_name].reshape(self._model.graph.shape(name))[None].copy()
        return {n: result[n] for n in wanted}

    def step(
        self, x: np.ndarray | Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Advance one Loihi time step; arrays (1, *shape)."""
        with self._lock:
            return self._one_step(self._feed(x), self._wanted(outputs))

    def run(
        self, xs: np.ndarray | Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Step through (T, 1, *shape) inputs; returns (T, 1, *shape) per output."""
        feeds = xs if isinstance(xs, Mapping) else {n: xs for n in self._net.inputs}
        steps = {len(np.asarray(v)) for v in feeds.values()}
        if len(steps) != 1:
            raise InputError(f"inputs have different lengths {sorted(steps)}", path="inputs")
        with self._lock:
            wanted = self._wanted(outputs)
            per_step = [self._one_step(self._feed({n: np.asarray(v)[t] for n, v in feeds.items()}), wanted)
                        for t in range(steps.pop())]  # fmt: skip
        return {n: np.stack([r[n] for r in per_step]) if per_step else np.empty((0, 1)) for n in wanted}

    # -- state --------------------------------------------------------------
    def _conn_var(self, name: str) -> Any:
        conn = self._live().connections[name]
        return conn.a_buf if self._net.connections[name].kind == "conv" else conn.a_buff

    def _read_state(self) -> None:
        for key, arr in self._plan.state.items():
            if key == self._scores_key:
                continue  # the host's readout: the array is the state
            node, field = key.split("/")
            if node in self._net.neurons:
                shape = self._net.neurons[node].shape
                var = getattr(self._live().neurons[node], field)
            else:
                shape = self._net.connections[node].out_shape
                var = self._conn_var(node)
            arr[0] = np.rint(from_lava(np.asarray(var.get()), shape).reshape(-1)).astype(arr.dtype)

    def _write_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        for key, arr in arrays.items():
            if key == self._scores_key:
                np.copyto(self._plan.state[key], arr)
                continue
            node, field = key.split("/")
            if node in self._net.neurons:
                shape = self._net.neurons[node].shape
                var = getattr(self._live().neurons[node], field)
            else:
                shape = self._net.connections[node].out_shape
                var = self._conn_var(node)
            var.set(to_lava(np.asarray(arr[0]).reshape(shape), shape).astype(np.float64 if self._tag != "fixed_pt"
                                                                             else np.int32))  # fmt: skip

    def reset(self) -> None:
        """Membranes to rest, currents and in-flight messages to zero."""
        with self._lock:
            self._live()
            if self._stepped:  # before the first step the network is at rest already
                self._write_state(self._plan.initial)
            else:
                self._write_state({self._scores_key: self._plan.initial[self._scores_key]} if self._learner else {})

    def state(self) -> bytes:
        """Lava's state in the runtime's Loihi session-state format (msgpack)."""
        with self._lock:
            self._live()
            self._read_state()
            return pack_state(self._plan, self._model)

    def load_state(self, data: bytes) -> None:
        """Restore a state saved here or by a ``numerics="loihi"`` engine session of the same model."""
        with self._lock:
            self._live()
            arrays, _initial = unpack_state(data, self._plan, self._model)
            self._write_state(arrays)

    def retime(self, dt: float, method: str | None = None) -> None:
        """Recompile at step ``dt`` (re-quantised); state carries over where shapes match.

        A model with its own integer network (``Model.loihi``) refuses another step.
        """
        from edgesnn.adapt import retime_model

        with self._lock:
            self._live()
            model = retime_model(self._model, dt, method)
            network_for(model)  # refuses a model's own integer network at another step, before Lava stops
            if self._stepped:
                self._read_state()
            saved = {k: v.copy() for k, v in self._plan.state.items()}  # before a first step: the rest values
            self._stop()
            self._compile(model)
            kept = {k: v for k, v in saved.items() if k in self._plan.state and v.shape == self._plan.state[k].shape}
            self._write_state(kept)

    # -- learning (learner.py) ----------------------------------------------
    _scores_key = f"{SCORES}/u"

    def _set_scores(self, scores: np.ndarray) -> None:
        self._plan.state[self._scores_key] = scores
        self._plan.initial[self._scores_key] = np.zeros_like(scores)

    def _teacher(self) -> LavaLearner:
        if self._learner is None:
            raise UnsupportedError(
                "the model has no learning configuration; add one with edgesnn.learn.enable_learning",
                path="learning",
            )
        return self._learner

    def _reshape_scores(self, before: tuple[str, ...]) -> None:
        # Surviving classes keep their live score; a new class starts at rest.
        old, after = self._plan.state[self._scores_key], self._teacher().labels
        scores = np.zeros((1, len(after)), np.float32)
        for j, label in enumerate(after):
            if label in before:
                scores[:, j] = old[:, before.index(label)]
        self._set_scores(scores)

    def _example_features(self, example: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        """The feature layer's spikes (T, F) for ``example`` stepped through the live network from rest."""
        names = list(self._net.inputs)
        feeds = example if isinstance(example, Mapping) else {names[0]: example} if len(names) == 1 else None
        if feeds is None:
            raise InputError(f"model has inputs {', '.join(names)}; pass a dict by name", path="example")
        steps = {len(np.asarray(v)) for v in feeds.values()}
        if len(steps) != 1 or 0 in steps:
            raise InputError(f"expected inputs of one length >= 1, got lengths {sorted(steps)}", path="example")
        feature = self._teacher().feature_node
        if self._stepped:
            self._read_state()
            saved = {k: v.copy() for k, v in self._plan.state.items()}
        else:  # at rest, and its Vars cannot be read before a first step
            saved = {k: v.copy() for k, v in self._plan.initial.items() if k != self._scores_key}
        spikes = []
        try:
            if self._stepped:
                self._write_state({k: v for k, v in self._plan.initial.items() if k != self._scores_key})
            for t in range(steps.pop()):
                layers = self._lava_step(self._feed({n: np.asarray(v)[t] for n, v in feeds.items()}))
                spikes.append(layers[feature].reshape(-1))
        finally:
            self._write_state(saved)  # the stream goes on where it was
        return np.stack(spikes)

    def learn(self, label: str, example: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Teach ``label`` one example (T, *input_shape): features from Lava, the rule on Lava's learning engine."""
        with self._lock:
            self._live()
            teacher = self._teacher()
            t0 = time.perf_counter()
            spikes = self._example_features(example)
            t1 = time.perf_counter()
            before = teacher.labels
            info = teacher.teach(label, spikes)
            self._reshape_scores(before)
            return {**info, "forward_us": (t1 - t0) * 1e6, "elapsed_us": (time.perf_counter() - t0) * 1e6}

    def forget(self, label: str) -> dict[str, Any]:
        """Remove a learned class (durably, with a store)."""
        with self._lock:
            teacher = self._teacher()
            before = teacher.labels
            info = teacher.forget(label)
            self._reshape_scores(before)
            return info

    def classes(self) -> list[str]:
        """Learned labels, in the column order of the ``"classes"`` output."""
        return list(self._teacher().labels)

    def decide(self) -> list[str | None]:
        """The learned label scoring highest now (None while nothing is learned)."""
        labels = self._teacher().labels
        if not labels:
            return [None]
        return [labels[int(np.argmax(self._plan.state[self._scores_key][0]))]]

    def close(self) -> None:
        """Stop Lava's runtime for this session."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._stop()
            finally:
                self._lava = None
