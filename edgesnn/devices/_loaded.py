"""The bundles a device has loaded, by content hash: what every Device (local, bridges) keeps the same way."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from edgesnn.errors import NotFoundError

if TYPE_CHECKING:
    from edgesnn.devices.base import ModelInfo, ModelSource
    from edgesnn.model import Model

E = TypeVar("E")


@dataclasses.dataclass(frozen=True)
class Loaded(Generic[E]):
    """One loaded model, its description, and what the device keeps beside it (its bytes, a program)."""

    model: Model
    info: ModelInfo
    extra: E


class LoadedModels(Generic[E]):
    """Models by id (the sha256 of the bundle's bytes), in loading order; safe to share between threads."""

    def __init__(self) -> None:
        self._models: dict[str, Loaded[E]] = {}
        self._lock = threading.Lock()

    def load(self, source: ModelSource, admit: Callable[[str, Model, bytes, str], E]) -> str:
        """Read a bundle and keep it; loading the same bytes again is a no-op.

        ``admit(model_id, model, data, name)`` runs the device's own checks (raising
        to refuse the model) and returns what the device keeps beside it.
        """
        from edgesnn.bundle import read_bundle
        from edgesnn.devices.local import _bundle_bytes, model_info

        data, name = _bundle_bytes(source)
        model_id = hashlib.sha256(data).hexdigest()
        with self._lock:
            if model_id in self._models:
                return model_id
        f = io.BytesIO(data)
        f.name = name  # read_bundle names the file in its errors
        model = read_bundle(f)
        extra = admit(model_id, model, data, name)
        with self._lock:
            self._models.setdefault(model_id, Loaded(model, model_info(model_id, model, name), extra))
        return model_id

    def get(self, model_id: str) -> Loaded[E]:
        """The loaded model ``model_id``; NotFoundError naming it otherwise."""
        with self._lock:
            loaded = self._models.get(model_id)
        if loaded is None:
            raise NotFoundError(f"no model with id {model_id!r} is loaded", path="model_id")
        return loaded

    def unload(self, model_id: str) -> None:
        """Forget a model; sessions already open on it keep running (they hold the immutable model)."""
        with self._lock:
            if model_id not in self._models:
                raise NotFoundError(f"no model with id {model_id!r} is loaded", path="model_id")
            del self._models[model_id]

    def infos(self) -> list[ModelInfo]:
        """Every loaded model's description, in loading order."""
        with self._lock:
            return [loaded.info for loaded in self._models.values()]

    def extras(self) -> list[E]:
        """What the device keeps beside each loaded model, in loading order."""
        with self._lock:
            return [loaded.extra for loaded in self._models.values()]

    def clear(self) -> None:
        """Forget every model."""
        with self._lock:
            self._models.clear()
