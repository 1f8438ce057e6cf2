"""IPUDevice: bundles compiled to simulated IPU tiles behind the edgesnn Device interface."""

from __future__ import annotations

import dataclasses
import logging
import platform
import threading
from collections.abc import Mapping

import numpy as np

from edgesnn import __version__
from edgesnn.devices._loaded import LoadedModels
from edgesnn.devices.base import Capabilities, Device, ModelInfo, ModelSource
from edgesnn.model import Model
from firmware_bridges.ipu.compiler import CompileOptions, Program
from firmware_bridges.ipu.config import IPUConfig
from firmware_bridges.ipu.plan import inference_program
from firmware_bridges.ipu.session import BACKEND, IPUSession

log = logging.getLogger("edgesnn.ipu")

#: Activity at which capabilities predict the time of a step (fraction of each spiking source per step).
DEFAULT_ACTIVITY = 0.05


@dataclasses.dataclass(frozen=True)
class ProgramSummary:
    """One loaded model's program at batch 1: tiles, memory per tile, predicted time per step."""

    model_id: str
    ipus: int
    tiles_used: int
    tile_bytes_max: int
    tile_bytes_mean: float
    predicted_step_s: float
    assumed_activity: float


@dataclasses.dataclass(frozen=True)
class IPUCapabilities(Capabilities):
    """Capabilities with what the programs of the loaded models occupy (on the wire as ``model_figures``)."""

    tiles: int = 0
    tile_memory_bytes: int = 0
    programs: tuple[ProgramSummary, ...] = ()


def program_figures(summary: ProgramSummary) -> dict[str, float]:
    """The figures of one program as the wire's Capabilities.model_figures carries them."""
    return {
        "ipus": float(summary.ipus), "tiles_used": float(summary.tiles_used),
        "tile_bytes_max": float(summary.tile_bytes_max), "tile_bytes_mean": float(summary.tile_bytes_mean),
        "predicted_step_s": summary.predicted_step_s, "assumed_activity": summary.assumed_activity,
    }  # fmt: skip


def summarize(model_id: str, program: Program, activity: float = DEFAULT_ACTIVITY) -> ProgramSummary:
    """The figures capabilities report for one program."""
    from firmware_bridges.ipu.cycles import assumed_work, step_cycles

    seconds = float(step_cycles(program, assumed_work(program, activity)).seconds_per_step[0])
    return ProgramSummary(model_id, program.ipus, program.tiles_used, program.max_tile_bytes,
                          round(program.mean_tile_bytes, 1), seconds, activity)  # fmt: skip


class IPUDevice(Device):
    """Graphcore IPUs (Mk2 GC200) simulated: each session runs its model compiled to tiles.

    ``options`` sets the spike-buffer capacity (``max_activity``), the input format, the
    exchange (sparse ids or dense values) and the chips available (``ipus``); a model that does
    not fit them is refused when it loads, with a CapacityError naming the population.
    """

    def __init__(self, *, options: CompileOptions | None = None, config: IPUConfig | None = None,
                 name: str | None = None, activity: float = DEFAULT_ACTIVITY) -> None:  # fmt: skip
        self._options = options or CompileOptions()
        self._config = config or IPUConfig()
        self._activity = activity
        self._name = name or f"gc200-sim x{self._options.ipus}@{platform.node() or 'localhost'}"
        self._models: LoadedModels[ProgramSummary] = LoadedModels()
        self._sessions: set[IPUSession] = set()
        self._lock = threading.Lock()

    def capabilities(self) -> IPUCapabilities:
        """A simulated IPU system: float32, every neuron model the compiler places, no fixed neuron count."""
        from edgesnn.adapt import METHODS
        from edgesnn.graph.neurons import NEURON_TYPES

        cfg = self._config
        programs = tuple(self._models.extras())
        per_chip = sum(cfg.usable_tiles(k) for k in range(self._options.ipus))
        return IPUCapabilities(
            device_kind="ipu", device_name=self._name, simulated=True,
            neuron_models=tuple(t.__name__ for t in NEURON_TYPES),
            max_neurons=per_chip * cfg.max_neurons_per_tile, max_synapses=0, learning=True,
            adaptation_methods=tuple(METHODS), numerics="float32", version=__version__, backends=(BACKEND,),
            tiles=per_chip, tile_memory_bytes=cfg.tile_memory_bytes, programs=programs,
            model_figures={p.model_id: program_figures(p) for p in programs},
        )  # fmt: skip

    def load_model(self, source: ModelSource) -> str:
        """Load a bundle and compile it for the chips (CapacityError or UnsupportedError when it cannot run)."""
        return self._models.load(source, self._compile)

    def _compile(self, model_id: str, model: Model, data: bytes, name: str) -> ProgramSummary:
        summary = summarize(model_id, inference_program(model, self._options, self._config), self._activity)
        log.info("model %s (%s) on %d IPU(s): %d tiles, tile memory max %d B, mean %.0f B, %.3g s per step at %g %%"
                 " activity", model_id[:12], name, summary.ipus, summary.tiles_used, summary.tile_bytes_max,
                 summary.tile_bytes_mean, summary.predicted_step_s, 100 * summary.assumed_activity)  # fmt: skip
        return summary

    def program(self, model_id: str, batch: int = 1) -> Program:
        """The program of a loaded model at ``batch``."""
        model = self._models.get(model_id).model
        return inference_program(model, dataclasses.replace(self._options, batch=batch), self._config)

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
    ) -> IPUSession:
        """Compile the model at ``dt`` for ``batch`` streams and open a session on the simulated tiles."""
        from edgesnn.devices.handle import DeviceModel

        loaded = self._models.get(model_id)
        model, info = loaded.model, loaded.info
        if adapt_method is not None and adapt_method != model.adapt_method:
            model = dataclasses.replace(model, adapt_method=adapt_method)
        if dt is not None:
            from edgesnn.adapt import retime_model

            model = retime_model(model, dt)
        session = _TrackedSession(self, model, model_id=model_id, batch=batch, options=self._options,
                                  config=self._config, initial_state=initial_state,
                                  handle=DeviceModel(self, info))  # fmt: skip
        with self._lock:
            self._sessions.add(session)
        return session

    def _forget(self, session: IPUSession) -> None:
        with self._lock:
            self._sessions.discard(session)

    def close(self) -> None:
        """Close every session and unload every model."""
        with self._lock:
            sessions = list(self._sessions)
        for s in sessions:
            s.close()
        self._models.clear()

    def __enter__(self) -> IPUDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TrackedSession(IPUSession):
    """An IPUSession that leaves its device's session set when it closes."""

    def __init__(self, device: IPUDevice, model: Model, **kw: object) -> None:
        self._device = device
        super().__init__(model, **kw)  # type: ignore[arg-type]

    def close(self) -> None:
        """Close, and tell the device."""
        super().close()
        self._device._forget(self)
