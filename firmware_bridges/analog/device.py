"""AnalogDevice: models on the host CPU with their attention layers in a gain-cell board's arrays.

Every node but attention runs in the edgesnn engine on the host; each
:class:`~edgesnn.graph.SlidingWindowAttention` layer runs on the board through
:class:`~firmware_bridges.analog.cells.BoardCells` (``numerics="gaincell"``). A model
without attention runs on the host alone, as on a :class:`~edgesnn.devices.LocalDevice`
(learning included). A step that fails on the link leaves the session as it was before
the step; the board is brought back in line with the host before the next one.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgesnn import __version__
from edgesnn.devices._loaded import LoadedModels
from edgesnn.devices.base import Capabilities, Device, DeviceSession, ModelInfo, ModelSource
from edgesnn.devices.handle import DeviceModel
from edgesnn.engine._gaincell import attach_cells, step_snapshot
from edgesnn.errors import NotFoundError
from edgesnn.graph import SlidingWindowAttention
from edgesnn.model import Model, TensorSpec
from firmware_bridges.analog.cells import BoardCells, BoardClient
from firmware_bridges.analog.link import BoardLink


def has_attention(model: Model) -> bool:
    """True when some node of the model is an attention layer (it then runs on the board)."""
    return any(isinstance(n, SlidingWindowAttention) for n in model.graph.nodes.values())


class AnalogSession(DeviceSession):
    """An engine session whose attention layers step on the board; one call at a time."""

    def __init__(self, device: AnalogDevice, info: ModelInfo, session: Any) -> None:
        self._device, self._info, self._session = device, info, session
        self._lock = threading.Lock()
        self._closed = False
        self._cells: list[BoardCells] = []
        self._dirty = False
        self._attach()

    def _attach(self) -> None:
        if has_attention(self._session.model):
            try:
                attach_cells(self._session, self._add)
            except BaseException:
                self._detach()  # the layers loaded before the failure are freed again
                raise

    def _add(self, op: Any, model: Any) -> BoardCells:
        cells = self._device.client.add(op, model)
        self._cells.append(cells)
        return cells

    def _detach(self) -> None:
        for cells in self._cells:
            self._device.client.remove(cells)
        self._cells = []

    def _live(self) -> Any:
        if self._closed:
            raise NotFoundError("session is closed", path="session")
        return self._session

    def _synced(self) -> Any:
        s = self._live()
        if self._dirty:
            for cells in self._cells:
                self._device.client.sync(cells)
            self._dirty = False
        return s

    def _guarded(self, call: Any, snapshot: Any) -> Any:
        try:
            return call()
        except BaseException:
            snapshot()  # the host as before the call; the board may be ahead of it
            self._dirty = bool(self._cells)
            raise

    def _after_host_change(self) -> None:
        self._dirty = bool(self._cells)
        self._synced()

    # -- what the engine session says ---------------------------------------------------
    @property
    def model_id(self) -> str:
        """Id of the model this session runs."""
        return self._info.model_id

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
        """The engine backend, with ``+gaincell-board`` when attention runs on the board."""
        s = self._live()
        return f"{s.backend}+gaincell-board" if self._cells else s.backend

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
        """States step/run return by name."""
        return self._live().recordable

    @property
    def initial_state(self) -> str:
        """Where the session starts and resets to."""
        return self._live().initial_state

    @property
    def initial_values(self) -> dict[str, np.ndarray]:
        """States the session starts from besides :attr:`initial_state`."""
        with self._lock:
            return self._live().initial_values

    @property
    def model(self) -> DeviceModel:
        """The loaded model's handle."""
        self._live()
        return DeviceModel(self._device, self._info)

    # -- stepping ------------------------------------------------------------------------
    def decide(self) -> list[str | None]:
        """Per stream, the learned label scoring highest now."""
        with self._lock:
            return self._live().decide()

    def step(self, x: np.ndarray | Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict:
        """One step; on a link failure the session stays as before it."""
        with self._lock:
            s = self._synced()
            return self._guarded(lambda: s.step(x, outputs), step_snapshot(s) if self._cells else _nothing)

    def run(self, xs: np.ndarray | Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict:
        """A whole sequence; on a link failure the session stays as before it."""
        with self._lock:
            s = self._synced()
            if not self._cells:
                return s.run(xs, outputs)
            saved = s.state()
            return self._guarded(lambda: s.run(xs, outputs), lambda: s.load_state(saved))

    def reset(self) -> None:
        """Forget the past, on the host and the board."""
        with self._lock:
            self._live().reset()
            self._after_host_change()

    def state(self) -> bytes:
        """All state (the host's mirror of the board's cells included), serialised."""
        with self._lock:
            return self._live().state()

    def load_state(self, data: bytes) -> None:
        """Restore a saved state on the host, then on the board."""
        with self._lock:
            self._live().load_state(data)
            self._after_host_change()

    def retime(self, dt: float, method: str | None = None) -> None:
        """Switch the step (the engine builds a new plan; its layers get fresh cells on the board)."""
        with self._lock:
            s = self._live()
            self._detach()
            try:
                s.retime(dt, method)
            finally:
                self._attach()

    def learn(self, label: str, example: np.ndarray) -> dict[str, Any]:
        """Learn one example (models without attention, on the host)."""
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
        """Free the session and its cells; later calls raise NotFoundError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._detach()
        self._device._forget_session(self)

    def __enter__(self) -> AnalogSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _nothing() -> None:
    return None


class AnalogDevice(Device):
    """A gain-cell attention board behind a serial link, with the host's CPU for every other node."""

    def __init__(self, link: BoardLink, *, name: str | None = None) -> None:
        self.client = BoardClient(link)
        self._board = self.client.call("caps")
        self._name = name or f"{self._board.get('name', 'gaincell-board')}@{platform.node() or 'localhost'}"
        self._models: LoadedModels[None] = LoadedModels()
        self._sessions: set[AnalogSession] = set()
        self._lock = threading.Lock()

    def capabilities(self) -> Capabilities:
        """The board's numerics and whether it is emulated; every neuron model and learning run on the host.

        Backends: ``<engine>+gaincell-board`` for models with attention, the engine's own for the others.
        """
        from edgesnn.adapt import METHODS
        from edgesnn.engine import available_backends
        from edgesnn.graph.neurons import NEURON_TYPES

        return Capabilities(
            device_kind="analog-gaincell", device_name=self._name, simulated=bool(self._board.get("simulated")),
            neuron_models=tuple(t.__name__ for t in NEURON_TYPES), max_neurons=0,
            max_synapses=int(self._board.get("max_cells", 0)), learning=True, adaptation_methods=tuple(METHODS),
            numerics="gaincell", version=__version__,
            backends=(*(f"{b}+gaincell-board" for b in available_backends()), *available_backends()),
        )  # fmt: skip

    def load_model(self, source: ModelSource) -> str:
        """Load a .esnn bundle; its id is the sha256 of its bytes."""
        return self._models.load(source, lambda *_: None)

    def unload_model(self, model_id: str) -> None:
        """Forget a loaded model; open sessions keep running."""
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
    ) -> AnalogSession:
        """Open a session: gain-cell numerics with attention on the board, or a host session without attention."""
        import dataclasses

        loaded = self._models.get(model_id)
        model, info = loaded.model, loaded.info
        if adapt_method is not None and adapt_method != model.adapt_method:
            model = dataclasses.replace(model, adapt_method=adapt_method)
        numerics = "gaincell" if has_attention(model) else None
        engine = model.session(dt=dt, batch=batch, initial_state=initial_state, numerics=numerics)
        session = AnalogSession(self, info, engine)
        with self._lock:
            self._sessions.add(session)
        return session

    def _forget_session(self, session: AnalogSession) -> None:
        with self._lock:
            self._sessions.discard(session)

    def close(self) -> None:
        """Close every session, unload every model, close the link."""
        with self._lock:
            sessions = list(self._sessions)
        for s in sessions:
            s.close()
        self._models.clear()
        self.client.link.close()

    def __enter__(self) -> AnalogDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["AnalogDevice", "AnalogSession", "has_attention"]
