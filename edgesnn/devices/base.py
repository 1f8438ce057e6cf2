"""The Device interface: what every place a model can run on offers, in process or over gRPC.

Every class here is abstract; :class:`~edgesnn.devices.local.LocalDevice`,
:class:`~edgesnn.devices.remote.RemoteDevice` and the firmware bridges are final
leaves. A :class:`DeviceSession` has the Python API of an engine
:class:`~edgesnn.engine.session.Session` (``step``, ``run``, ``reset``, ``state``,
``load_state``, ``retime``, ``inputs``, ``outputs``, ...) and :meth:`Device.load` returns a
:class:`~edgesnn.devices.handle.DeviceModel` with the API of a ``Model``, so user code does not
change when the model moves to a device. ``tests/conformance/test_device_contract.py`` holds
every implementation to the same results.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from edgesnn.errors import UnsupportedError
from edgesnn.model import TensorSpec

if TYPE_CHECKING:
    from edgesnn.devices.handle import DeviceModel

__all__ = ["Capabilities", "ModelInfo", "Device", "DeviceSession", "ModelSource"]

#: A bundle given as a path, its bytes, or an open binary file.
ModelSource = str | bytes | IO[bytes] | Any


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a device is and what it can run; limits of 0 mean no fixed limit."""

    device_kind: str
    device_name: str
    simulated: bool
    neuron_models: tuple[str, ...]
    max_neurons: int
    max_synapses: int
    learning: bool
    adaptation_methods: tuple[str, ...]
    numerics: str
    version: str
    backends: tuple[str, ...] = ()
    max_sessions: int = 0
    max_message_bytes: int = 0
    #: Per loaded model id, named figures of what it occupies and costs here (units in the names).
    model_figures: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict, compare=False)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """A model loaded on a device: its id (sha256 of the bundle), its name, and what it takes and gives.

    ``name`` is the stem of the file it was loaded from ("" from bytes); ``producer_name`` the
    producer record's ``name``. Both are "" where the device does not say.
    """

    model_id: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    dt_s: float
    method: str
    labels: tuple[str, ...]
    learning: bool
    adapt_method: str
    name: str = ""
    producer_name: str = ""


class DeviceSession(abc.ABC):
    """A stateful session on a device; the same API as an engine ``Session``."""

    @property
    @abc.abstractmethod
    def model_id(self) -> str:
        """Id of the model this session runs."""

    @property
    @abc.abstractmethod
    def dt_s(self) -> float:
        """Step of this session in seconds."""

    @property
    @abc.abstractmethod
    def batch(self) -> int:
        """Number of independent streams stepped together."""

    @property
    @abc.abstractmethod
    def adapt_method(self) -> str:
        """Time-resolution adaptation method :meth:`retime` uses by default."""

    @property
    @abc.abstractmethod
    def backend(self) -> str:
        """Name of the backend running this session on the device."""

    @property
    @abc.abstractmethod
    def inputs(self) -> list[TensorSpec]:
        """Input specs (name, shape without batch, dtype, unit)."""

    @property
    @abc.abstractmethod
    def outputs(self) -> list[TensorSpec]:
        """Output specs (name, shape without batch, dtype, unit)."""

    @property
    @abc.abstractmethod
    def recordable(self) -> list[str]:
        """Neuron states ``step``/``run`` return by name besides the nodes ("lif1/v", ...)."""

    @property
    @abc.abstractmethod
    def initial_state(self) -> str:
        """Where the session starts and resets to ("rest" or "zero", before any states set over it)."""

    @property
    def model(self) -> DeviceModel:
        """The loaded model this session runs (as ``Session.model``, a :class:`DeviceModel`)."""
        raise UnsupportedError(f"{type(self).__name__} does not describe its model", path="model")

    @property
    def initial_values(self) -> dict[str, np.ndarray]:
        """States the session starts from besides :attr:`initial_state`, by name ((batch, n) arrays)."""
        raise UnsupportedError(f"{type(self).__name__} does not report its initial values", path="initial_values")

    def decide(self) -> list[str | None]:
        """Per stream, the learned label scoring highest now (None while nothing is learned)."""
        raise UnsupportedError(f"{type(self).__name__} does not decide on the device", path="decide")

    @abc.abstractmethod
    def step(
        self, x: np.ndarray | Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Advance one step; arrays (batch, *shape); returns fresh float32 arrays (batch, *shape)."""

    @abc.abstractmethod
    def run(
        self, xs: np.ndarray | Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Step through a sequence (T, batch, *shape); returns (T, batch, *shape) per output."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget the past: membranes to rest, currents, traces and delays to zero."""

    @abc.abstractmethod
    def state(self) -> bytes:
        """All state, serialised (msgpack), for :meth:`load_state`."""

    @abc.abstractmethod
    def load_state(self, data: bytes) -> None:
        """Restore state saved by :meth:`state` for the same model, dt and batch size."""

    @abc.abstractmethod
    def retime(self, dt: float, method: str | None = None) -> None:
        """Switch to step ``dt`` seconds (adapting the model), keeping the state."""

    @abc.abstractmethod
    def learn(self, label: str, example: np.ndarray) -> dict[str, Any]:
        """Learn one labelled example on the device; returns what the learner reports."""

    @abc.abstractmethod
    def forget(self, label: str) -> dict[str, Any]:
        """Forget a learned class; returns what the learner reports."""

    @abc.abstractmethod
    def classes(self) -> list[str]:
        """Classes the session's learner knows."""

    @abc.abstractmethod
    def close(self) -> None:
        """Free the session on the device; later calls fail with NotFoundError."""


class Device(abc.ABC):
    """Somewhere models run: capabilities, model loading, sessions."""

    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """What the device is and what it can run."""

    @abc.abstractmethod
    def load_model(self, source: ModelSource) -> str:
        """Load a bundle (path, bytes or binary file); return its id. Loading it again is a no-op."""

    def load(self, source: ModelSource) -> DeviceModel:
        """Load a model (bundle path, bytes or file, .nir file, shipped name or Model) and return its handle."""
        from edgesnn.devices._source import bundle_source
        from edgesnn.devices.handle import DeviceModel

        return DeviceModel(self, self.model_info(self.load_model(bundle_source(source))))

    @abc.abstractmethod
    def unload_model(self, model_id: str) -> None:
        """Forget a loaded model; sessions already open on it keep running."""

    @abc.abstractmethod
    def model_info(self, model_id: str) -> ModelInfo:
        """Specs of a loaded model."""

    @abc.abstractmethod
    def models(self) -> list[ModelInfo]:
        """Every loaded model."""

    @abc.abstractmethod
    def open_session(
        self,
        model_id: str,
        *,
        dt: float | None = None,
        batch: int = 1,
        adapt_method: str | None = None,
        initial_state: str | Mapping[str, np.ndarray] | tuple | None = None,
    ) -> DeviceSession:
        """Open a session on a loaded model at step ``dt`` (default: the model's own).

        ``initial_state`` is what ``Session`` takes: "rest", "zero", states by name, or both.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Close every session and release the device (flushes stores)."""
