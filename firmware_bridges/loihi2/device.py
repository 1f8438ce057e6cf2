"""LavaDevice: bundles compiled to Lava processes behind the edgesnn Device interface."""

from __future__ import annotations

import os
import platform
import threading
from pathlib import Path

from edgesnn import __version__
from edgesnn.devices._loaded import LoadedModels
from edgesnn.devices.base import Capabilities, Device, ModelInfo, ModelSource
from edgesnn.errors import CapacityError, OptionError, UnsupportedError
from edgesnn.loihi import network_for
from edgesnn.model import Model
from firmware_bridges.loihi2.compile import TAGS
from firmware_bridges.loihi2.learner import check_learning
from firmware_bridges.loihi2.worker import WorkerSession

NEURON_MODELS = ("LIF", "CubaLIF", "LI", "CubaLI", "IF", "Integrator")


class LavaDevice(Device):
    """Loihi 2 through Lava's simulator (``Loihi2SimCfg``), fixed-point or float process models.

    ``tag="fixed_pt"`` runs Lava's bit-accurate integer models (numerics
    ``"loihi-fixed"``, equal to the runtime's ``numerics="loihi"``); ``"floating_pt"`` runs
    the same processes in float64 (numerics ``"float"``). Simulated: no chip is used.
    ``store`` is a directory on the host for learned classes: a model that learns
    keeps them in ``<store>/<model id>/`` across restarts (see ``learner.py``).
    """

    def __init__(
        self, *, tag: str = "fixed_pt", name: str | None = None, store: str | os.PathLike[str] | None = None
    ) -> None:
        if tag not in TAGS:
            raise OptionError(f"expected one of {', '.join(TAGS)}, got {tag!r}", path="tag")
        self._tag = tag
        self._store = None if store is None else Path(store)
        self._store_holders: dict[str, WorkerSession] = {}  # one session writes a model's store at a time
        self._name = name or f"lava-loihi2-sim@{platform.node() or 'localhost'}"
        self._models: LoadedModels[bytes] = LoadedModels()  # the bundle's bytes go to each session's worker
        self._sessions: set[WorkerSession] = set()
        self._lock = threading.Lock()

    def capabilities(self) -> Capabilities:
        """Loihi 2 simulated by Lava; learning on Lava's learning engine; adaptation re-quantises at the new step."""
        from edgesnn.adapt import METHODS

        return Capabilities(
            device_kind="loihi2", device_name=self._name, simulated=True, neuron_models=NEURON_MODELS,
            max_neurons=0, max_synapses=0, learning=True, adaptation_methods=tuple(METHODS),
            numerics="loihi-fixed" if self._tag == "fixed_pt" else "float", version=__version__,
            backends=(f"lava-sim-{self._tag}",), max_sessions=0,
        )  # fmt: skip

    def load_model(self, source: ModelSource) -> str:
        """Load a bundle and check it runs on Loihi (its own integer network, or its graph quantised)."""
        return self._models.load(source, _admit)

    def unload_model(self, model_id: str) -> None:
        """Forget a loaded model; open sessions keep running."""
        self._models.unload(model_id)

    def model_info(self, model_id: str) -> ModelInfo:
        """Specs of a loaded model."""
        return self._models.get(model_id).info

    def models(self) -> list[ModelInfo]:
        """Every loaded model."""
        return self._models.infos()

    def open_session(
        self,
        model_id: str,
        *,
        dt: float | None = None,
        batch: int = 1,
        adapt_method: str | None = None,
        initial_state: object = None,
    ) -> WorkerSession:
        """Compile the model to Lava processes in a worker process of its own (one stream: batch 1, from rest)."""
        if initial_state not in (None, "rest"):
            raise UnsupportedError("a Lava session starts at the network's rest (its u_init and v_init)",
                                   path="initial_state")  # fmt: skip
        loaded = self._models.get(model_id)
        model, data = loaded.model, loaded.extra
        if not isinstance(batch, int) or batch < 1:
            raise OptionError(f"expected an int >= 1, got {batch!r}", path="batch")
        if batch != 1:
            raise UnsupportedError("a Lava session runs one stream; open one session per stream", path="batch")
        use_store = self._store is not None and model.learning is not None
        with self._lock:
            if use_store and model_id in self._store_holders:
                raise CapacityError(
                    "the class store of this model is in use by another open session; close that one first",
                    path="store",
                )
        store = str(self._store / model_id) if use_store else None  # type: ignore[operator]
        session = _TrackedSession(self, model_id, data, dt, adapt_method, self._tag, store)
        with self._lock:
            lost = use_store and model_id in self._store_holders  # another session won the race meanwhile
            if not lost:
                if use_store:
                    self._store_holders[model_id] = session
                self._sessions.add(session)
        if lost:
            session.close()
            raise CapacityError("the class store of this model is in use by another open session", path="store")
        return session

    def _forget(self, session: WorkerSession) -> None:
        with self._lock:
            self._sessions.discard(session)
            if self._store_holders.get(session.model_id) is session:
                del self._store_holders[session.model_id]

    def close(self) -> None:
        """Close every session (stopping their Lava runtimes) and unload every model."""
        with self._lock:
            sessions = list(self._sessions)
        for s in sessions:
            s.close()
        self._models.clear()


def _admit(model_id: str, model: Model, data: bytes, name: str) -> bytes:
    """Refuse what Loihi cannot run (its learning on Lava's engine, its network in integers); keep the bytes."""
    if model.learning is not None:
        check_learning(model)
    network_for(model)
    return data


class _TrackedSession(WorkerSession):
    """A WorkerSession that tells its device when it closes."""

    def __init__(self, device: LavaDevice, model_id: str, data: bytes, dt: float | None, adapt_method: str | None,
                 tag: str, store: str | None) -> None:  # fmt: skip
        self._device = device
        super().__init__(model_id, data, dt, adapt_method, tag, store)

    def close(self) -> None:
        """Stop the worker and leave the device's session set."""
        super().close()
        self._device._forget(self)
