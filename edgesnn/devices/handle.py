"""DeviceModel: a model loaded on a device, with the API of a local ``edgesnn.Model``.

``dev.load("demo.esnn")`` returns one on every device, so ``m.session(...)``,
``m.inputs``, ``m.labels`` ... read the same whether the model runs in this process
or behind ``edgesnn serve``. What only an in-process model can give (its graph, its
weights' fingerprint, the producer record) raises :class:`~edgesnn.errors.UnsupportedError`
naming the attribute and why, never AttributeError.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edgesnn.errors import UnsupportedError

if TYPE_CHECKING:
    from edgesnn.devices.base import Device, DeviceSession, ModelInfo
    from edgesnn.model import TensorSpec

__all__ = ["DeviceModel", "Unsupported", "UNSUPPORTED_MODEL"]


class Unsupported:
    """A class attribute that raises UnsupportedError naming itself and why, on every read."""

    def __init__(self, why: str) -> None:
        self.why = why
        self.name = "?"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self  # the class itself lists the name (dir, help) without raising
        raise UnsupportedError(f"not available on a device model: {self.why}", path=self.name)


_ON_DEVICE = "the model stays on the device; only its ModelInfo travels"

#: ``edgesnn.Model`` members a DeviceModel refuses, with why (the conformance suite checks the list).
UNSUPPORTED_MODEL: dict[str, str] = {
    "graph": f"{_ON_DEVICE}, not its graph",
    "fingerprint": f"{_ON_DEVICE}; model_id (sha256 of the bundle) identifies it",
    "producer": f"{_ON_DEVICE}; name and info.producer_name say who made it",
    "learning": f"{_ON_DEVICE}, not its learning configuration; info.learning says whether it learns",
    "loihi": f"{_ON_DEVICE}, not its Loihi network",
    "initial_state": "ModelInfo does not carry it; a session's initial_state says where it starts",
    "with_input_units": "a loaded model is immutable on the device; set the units and load that bundle",
    "session_bytes": "the estimate needs the graph, which stays on the device",
}

#: ``Model.session`` options that belong to the device, with why a caller cannot set them.
_REFUSED = {
    "options": "a device picks its own backends and threads; pass initial_state= by keyword",
    "store": "a device keeps learned classes in its own store (LocalDevice(store=...), edgesnn serve --store DIR)",
    "numerics": "a device runs its own arithmetic (capabilities().numerics)",
}


@dataclasses.dataclass(frozen=True)
class DeviceModel:
    """A model loaded on ``device``: what ``ModelInfo`` says, and ``session()`` to run it there."""

    device: Device
    info: ModelInfo

    graph = Unsupported(UNSUPPORTED_MODEL["graph"])
    fingerprint = Unsupported(UNSUPPORTED_MODEL["fingerprint"])
    producer = Unsupported(UNSUPPORTED_MODEL["producer"])
    learning = Unsupported(UNSUPPORTED_MODEL["learning"])
    loihi = Unsupported(UNSUPPORTED_MODEL["loihi"])
    initial_state = Unsupported(UNSUPPORTED_MODEL["initial_state"])
    with_input_units = Unsupported(UNSUPPORTED_MODEL["with_input_units"])
    session_bytes = Unsupported(UNSUPPORTED_MODEL["session_bytes"])

    @property
    def model_id(self) -> str:
        """Id of the model on the device: the sha256 of its bundle."""
        return self.info.model_id

    @property
    def name(self) -> str:
        """Name of the file it was loaded from, without extension ("" when loaded from bytes)."""
        return self.info.name

    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's inputs, in declaration order."""
        return list(self.info.inputs)

    @property
    def outputs(self) -> list[TensorSpec]:
        """The model's outputs, in declaration order."""
        return list(self.info.outputs)

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names of the output units, if the model classifies."""
        return self.info.labels

    @property
    def dt_s(self) -> float:
        """Step the model was trained at, in seconds."""
        return self.info.dt_s

    @property
    def method(self) -> str:
        """Discretisation the trainer used."""
        return self.info.method

    @property
    def adapt_method(self) -> str:
        """Time-resolution adaptation a session at another step uses."""
        return self.info.adapt_method

    def session(
        self,
        dt: float | None = None,
        batch: int = 1,
        options: object = None,
        *,
        store: object = None,
        numerics: str | None = None,
        initial_state: str | Mapping[str, Any] | tuple | None = None,
    ) -> DeviceSession:
        """Open a session on the device at step ``dt`` (default: the training step), as ``Model.session``.

        ``options``, ``store`` and ``numerics`` belong to the device, not the caller: a device
        picks its backends and threads, keeps learned classes in its own store
        (``LocalDevice(store=...)``, ``edgesnn serve --store``) and runs its own arithmetic
        (``capabilities().numerics``); giving one raises UnsupportedError naming it.
        """
        for name, value in (("options", options), ("store", store), ("numerics", numerics)):
            if value is not None:
                raise UnsupportedError(f"not available on a device model: {_REFUSED[name]}", path=name)
        return self.device.open_session(self.model_id, dt=dt, batch=batch, initial_state=initial_state)

    def unload(self) -> None:
        """Forget the model on the device; sessions already open on it keep running."""
        self.device.unload_model(self.model_id)

    def __repr__(self) -> str:
        """Name, id, input and output shapes, step and labels, as ``Model``'s repr."""
        ports = [", ".join(f"{s.name}{s.shape}" for s in specs) for specs in (self.info.inputs, self.info.outputs)]
        extra = f", {len(self.labels)} labels" if self.labels else ""
        return (
            f"DeviceModel({self.name or '<bytes>'} {self.model_id[:12]}, inputs {ports[0]}, outputs {ports[1]},"
            f" dt {self.dt_s * 1e3:g} ms, {self.method}{extra})"
        )
