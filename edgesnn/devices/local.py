"""LocalDevice: the CPU engine in this process, behind the Device interface."""

from __future__ import annotations

import dataclasses
import os
import platform
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgesnn import __version__
from edgesnn.devices._loaded import LoadedModels
from edgesnn.devices._names import clean, stem
from edgesnn.devices.base import Capabilities, Device, DeviceSession, ModelInfo, ModelSource
from edgesnn.devices.handle import DeviceModel
from edgesnn.errors import CapacityError, NotFoundError, OptionError
from edgesnn.model import Model, TensorSpec

__all__ = ["LocalDevice", "LocalSession", "model_info"]


def model_info(model_id: str, model: Model, source_name: str = "") -> ModelInfo:
    """The device-level description of a loaded model; ``source_name`` is the file it came from."""
    producer = model.producer.get("name") if isinstance(model.producer, Mapping) else None
    return ModelInfo(
        model_id=model_id,
        inputs=tuple(model.inputs),
        outputs=tuple(model.outputs),
        dt_s=model.dt_s,
        method=model.method,
        labels=model.labels,
        learning=model.learning is not None,
        adapt_method=model.adapt_method,
        name=stem(source_name),
        producer_name=clean(producer),
    )


def _bundle_bytes(source: ModelSource) -> tuple[bytes, str]:
    """The bundle's bytes and a name for error messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return f.read(), os.fspath(source)
    read = getattr(source, "read", None)
    if read is None:
        raise OptionError(f"expected a path, bytes or a binary file, got {type(source).__name__}", path="source")
    data = read()
    if not isinstance(data, bytes):
        raise OptionError("expected a file opened in binary mode", path="source")
    return data, getattr(source, "name", "<file>")


class LocalSession(DeviceSession):
    """An engine Session behind a lock, so that one session is safe to share between threads."""

    def __init__(self, device: LocalDevice, info: ModelInfo, session: Any) -> None:
        self._device = device
        self._model_id = info.model_id
        self._info = info
        self._session = session
        self._lock = threading.Lock()
        self._closed = False

    def _live(self) -> Any:
        if self._closed:
            raise NotFoundError("session is closed", path="session")
        return self._session

    @property
    def model_id(self) -> str:
        """Id of the model this session runs."""
        return self._model_id

    @property
    def dt_s(self) -> float:
        """Step of this session in seconds."""
        return self._live().dt_s

    @property
    def batch(self) -> int:
        """Number of independent streams stepped together."""
        return self._live().batch

    @property
    def adapt_method(self) -> str:
        """Adaptation method :meth:`retime` uses by default."""
        return self._live().model.adapt_method

    @property
    def backend(self) -> str:
        """Name of the engine backend running this session."""
        return self._live().backend

    @property
    def inputs(self) -> list[TensorSpec]:
        """Input specs (name, shape without batch, dtype, unit)."""
        return self._live().inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        """Output specs (name, shape without batch, dtype, unit)."""
        return self._live().outputs

    @property
    def recordable(self) -> list[str]:
        """Neuron states step/run return by name."""
        return self._live().recordable

    @property
    def initial_state(self) -> str:
        """Where the session starts and resets to."""
        return self._live().initial_state

    @property
    def initial_values(self) -> dict[str, np.ndarray]:
        """States the session starts from besides :attr:`initial_state` (see ``Session.initial_values``)."""
        with self._lock:
            return self._live().initial_values

    @property
    def model(self) -> DeviceModel:
        """The loaded model this session runs (its handle, as opened; not re-timed by :meth:`retime`)."""
        self._live()
        return DeviceModel(self._device, self._info)

    def decide(self) -> list[str | None]:
        """Per stream, the learned label scoring highest now (see ``Session.decide``)."""
        with self._lock:
            return self._live().decide()

    def step(
        self, x: np.ndarray | Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Advance one step (see ``Session.step``)."""
        with self._lock:
            return self._live().step(x, outputs)

    def run(
        self, xs: np.ndarray | Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Step through a sequence (see ``Session.run``)."""
        with self._lock:
            return self._live().run(xs, outputs)

    def reset(self) -> None:
        """Forget the past."""
        with self._lock:
            self._live().reset()

    def state(self) -> bytes:
        """All state, serialised."""
        with self._lock:
            return self._live().state()

    def load_state(self, data: bytes) -> None:
        """Restore state saved by :meth:`state`."""
        with self._lock:
            self._live().load_state(data)

    def retime(self, dt: float, method: str | None = None) -> None:
        """Switch to step ``dt`` seconds, keeping the state."""
        with self._lock:
            self._live().retime(dt, method)

    def learn(self, label: str, example: np.ndarray) -> dict[str, Any]:
        """Learn one labelled example (see ``Session.learn``); durable before it returns with a store."""
        with self._lock:
            return dict(self._live().learn(label, example))

    def forget(self, label: str) -> dict[str, Any]:
        """Forget a learned class."""
        with self._lock:
            return dict(self._live().forget(label))

    def classes(self) -> list[str]:
        """Classes the learner knows."""
        with self._lock:
            return list(self._live().classes())

    def close(self) -> None:
        """Free the session; later calls raise NotFoundError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._device._forget_session(self)

    def __enter__(self) -> LocalSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalDevice(Device):
    """Runs models on this machine's CPU with the edgesnn engine.

    ``store`` is a directory for learned classes: each model that learns keeps
    them in ``<store>/<model id>/`` across restarts (see :mod:`edgesnn.learn.store`).

    Examples
    --------
    >>> dev = LocalDevice()                                  # doctest: +SKIP
    >>> mid = dev.load_model("model.esnn")
    >>> s = dev.open_session(mid, dt=1e-3)
    >>> y = s.step(x)["out"]
    """

    def __init__(self, *, name: str | None = None, store: str | os.PathLike[str] | None = None) -> None:
        self._name = name or platform.node() or "localhost"
        # learned classes of model <id> live in <store>/<id>, written by one session at a time
        self._store = None if store is None else Path(store)
        self._store_holders: dict[str, LocalSession] = {}
        self._models: LoadedModels[None] = LoadedModels()
        self._sessions: set[LocalSession] = set()
        self._lock = threading.Lock()

    def capabilities(self) -> Capabilities:
        """A CPU running float32, every neuron model, every adaptation method."""
        from edgesnn.adapt import METHODS
        from edgesnn.engine import available_backends
        from edgesnn.graph.neurons import NEURON_TYPES

        return Capabilities(
            device_kind="cpu",
            device_name=self._name,
            simulated=False,
            neuron_models=tuple(t.__name__ for t in NEURON_TYPES),
            max_neurons=0,
            max_synapses=0,
            learning=True,
            adaptation_methods=tuple(METHODS),
            numerics="float32",
            version=__version__,
            backends=tuple(available_backends()),
        )

    def load_model(self, source: ModelSource) -> str:
        """Load a .esnn bundle; its id is the sha256 of its bytes."""
        return self._models.load(source, lambda *_: None)

    def unload_model(self, model_id: str) -> None:
        """Forget a loaded model; its open sessions keep running (they hold the immutable model)."""
        self._models.unload(model_id)

    def model_info(self, model_id: str) -> ModelInfo:
        """Specs of a loaded model."""
        return self._models.get(model_id).info

    def models(self) -> list[ModelInfo]:
        """Every loaded model, in loading order."""
        return self._models.infos()

    def open_session(
        self,
        model_id: str,
        *,
        dt: float | None = None,
        batch: int = 1,
        adapt_method: str | None = None,
        initial_state: str | Mapping[str, np.ndarray] | tuple | None = None,
    ) -> LocalSession:
        """Open a session; ``adapt_method`` overrides the model's for this session and its retimes."""
        loaded = self._models.get(model_id)
        model = loaded.model
        with self._lock:
            use_store = self._store is not None and model.learning is not None
            if use_store and model_id in self._store_holders:
                raise CapacityError(
                    "the class store of this model is in use by another open session; close that one first",
                    path="model_id",
                )
        if adapt_method is not None and adapt_method != model.adapt_method:
            model = dataclasses.replace(model, adapt_method=adapt_method)
        store = str(self._store / model_id) if use_store else None  # type: ignore[operator]
        session = LocalSession(
            self, loaded.info, model.session(dt=dt, batch=batch, store=store, initial_state=initial_state)
        )
        with self._lock:
            if use_store:
                if model_id in self._store_holders:  # another session won the race meanwhile
                    raise CapacityError("the class store of this model is in use by another open session",
                                        path="model_id")  # fmt: skip
                self._store_holders[model_id] = session
            self._sessions.add(session)
        return session

    def _forget_session(self, session: LocalSession) -> None:
        with self._lock:
            self._sessions.discard(session)
            if self._store_holders.get(session.model_id) is session:
                del self._store_holders[session.model_id]

    def close(self) -> None:
        """Close every open session and unload every model."""
        with self._lock:
            sessions = list(self._sessions)
        for s in sessions:
            s.close()
        self._models.clear()

    def __enter__(self) -> LocalDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
