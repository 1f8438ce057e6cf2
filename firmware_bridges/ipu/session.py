"""IPUSession: a model compiled to IPU tiles and stepped by the simulator, with the engine Session's API.

The session owns an engine :class:`~edgesnn.engine.plan.Plan` as the host's image of tile
memory (buffers and states in the engine's layout, so states saved here restore an engine
session and back), the compiled :class:`~firmware_bridges.ipu.compiler.Program` and the
:class:`~firmware_bridges.ipu.simulator.Simulator` that steps it. Input checks and error
messages are the engine's, word for word (the device conformance suite compares them). A
model that learns gets its learner (``edgesnn.learn.learner_for``) on the host, after every
step, as the engine runs it; its cost is not in the cycle model.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edgesnn import limits
from edgesnn.devices.base import DeviceSession
from edgesnn.engine._feeds import as_feed, check_output_names, coerce_input, split_sequence
from edgesnn.engine._initial import apply_initial_state, check_initial_state
from edgesnn.engine._state import pack_state, unpack_state
from edgesnn.engine.plan import compile_plan
from edgesnn.engine.session import SessionOptions
from edgesnn.errors import NotFoundError, OptionError, UnsupportedError
from edgesnn.model import Model, TensorSpec
from edgesnn.units import check_step_s
from firmware_bridges.ipu.compiler import CompileOptions, Program, compile_program
from firmware_bridges.ipu.config import IPUConfig
from firmware_bridges.ipu.netspec import from_plan
from firmware_bridges.ipu.simulator import Simulator

if TYPE_CHECKING:
    from edgesnn.devices.handle import DeviceModel

BACKEND = "ipu-bsp-sim"


class IPUSession(DeviceSession):
    """One model on simulated IPU tiles: ``step``/``run`` advance it one bulk-synchronous time step at a time."""

    def __init__(
        self, model: Model, *, model_id: str = "", dt_s: float | None = None, batch: int = 1,
        options: CompileOptions | None = None, config: IPUConfig | None = None, initial_state: object = None,
        handle: DeviceModel | None = None,
    ) -> None:  # fmt: skip
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise OptionError(f"expected an int >= 1, got {batch!r}", path="batch")
        limits.current().check("batch", int(batch), "a batch", path="batch")
        self._model_id = model_id
        self._handle = handle
        self._compile_options = options or CompileOptions()
        self._config = config or IPUConfig()
        base, values = check_initial_state(initial_state)
        self._initial_base: str = base or model.initial_state
        self._initial_values: dict[str, np.ndarray] = values
        self._head: Any = None
        self._lock = threading.Lock()
        self._closed = False
        self._build(model, check_step_s(model.dt_s if dt_s is None else dt_s), int(batch))

    def _build(self, model: Model, dt_s: float, batch: int) -> None:
        plan = compile_plan(model.graph, dt_s, model.method, batch)
        program = compile_program(from_plan(plan), dataclasses.replace(self._compile_options, batch=batch),
                                  self._config)  # fmt: skip
        self._model, self._plan, self._program = model, plan, program
        self._sim = Simulator(program, plan)
        self._rest = dict(plan.initial)
        self._initial_values = apply_initial_state(plan, self._rest, self._initial_base, self._initial_values)
        self._in_names = model.graph.inputs
        self._in_bufs = [plan.buffers[n] for n in self._in_names]
        if model.learning is not None:
            if self._head is None:
                from edgesnn.learn import learner_for

                self._head = learner_for(model.learning)(model, plan, SessionOptions())
            else:
                self._head.attach(plan, model)
        self._refresh()

    def _refresh(self) -> None:
        self._named = {**self._plan.buffers, **self._plan.records}
        self._out_names = list(self._model.graph.outputs)
        if self._head is not None:
            self._named[self._head.output_name] = self._head.scores
            self._out_names.append(self._head.output_name)

    def _live(self) -> None:
        if self._closed:
            raise NotFoundError("session is closed", path="session")

    # -- what the IPU side reports ------------------------------------------------------------------
    @property
    def program(self) -> Program:
        """The compiled program: placement, exchanges, memory per tile."""
        return self._program

    @property
    def simulator(self) -> Simulator:
        """The simulator, with the work, buffer fill and overflow recorded since the last :meth:`clear_stats`."""
        return self._sim

    def stats(self) -> dict[str, Any]:
        """Steps simulated, cycles and seconds per step (mean, max), spikes dropped per source."""
        with self._lock:
            cyc = self._sim.cycles()
            sec = cyc.seconds_per_step
            return {"steps": self._sim.steps,
                    "cycles_per_step_mean": float(cyc.per_step.mean()) if self._sim.steps else 0.0,
                    "cycles_per_step_max": float(cyc.per_step.max()) if self._sim.steps else 0.0,
                    "seconds_per_step_mean": float(sec.mean()) if self._sim.steps else 0.0,
                    "breakdown": cyc.breakdown() if self._sim.steps else {},
                    "dropped_spikes": dict(self._sim.dropped),
                    "overflow_steps": dict(self._sim.overflow_steps)}  # fmt: skip

    def clear_stats(self) -> None:
        """Start the work and overflow records afresh."""
        with self._lock:
            self._sim.clear()

    # -- discovery ----------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """Id of the model this session runs."""
        return self._model_id

    @property
    def dt_s(self) -> float:
        """Step of this session in seconds."""
        return self._plan.dt_s

    @property
    def batch(self) -> int:
        """Streams stepped together."""
        return self._plan.batch

    @property
    def adapt_method(self) -> str:
        """Adaptation method :meth:`retime` uses by default."""
        return self._model.adapt_method

    @property
    def backend(self) -> str:
        """The simulator of the bulk-synchronous IPU program."""
        return BACKEND

    @property
    def inputs(self) -> list[TensorSpec]:
        """Input specs."""
        return self._model.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        """Output specs; the learner's scores too when the model learns."""
        if self._head is None:
            return self._model.outputs
        head = self._head
        return [*self._model.outputs, TensorSpec(head.output_name, (len(head.classes()),), "float32", "score")]

    @property
    def recordable(self) -> list[str]:
        """Neuron states step/run return by name ("lif1/v", ...)."""
        return list(self._plan.records)

    @property
    def initial_state(self) -> str:
        """Where the session starts and resets to."""
        return self._initial_base

    @property
    def initial_values(self) -> dict[str, np.ndarray]:
        """States the session starts from besides :attr:`initial_state`."""
        return {k: v.copy() for k, v in self._initial_values.items()}

    @property
    def model(self) -> DeviceModel:
        """The device's handle of the loaded model."""
        if self._handle is None:
            raise UnsupportedError("this session was opened without a device", path="model")
        return self._handle

    # -- stepping -----------------------------------------------------------------------------------
    def _check_names(self, names: Sequence[str]) -> list[str]:
        return check_output_names(names, self._named, self._plan.records, self._plan.buffers)

    def _write_inputs(self, x: np.ndarray | Mapping[str, np.ndarray]) -> None:
        feed = as_feed(x, self._in_names)
        for name, buf in zip(self._in_names, self._in_bufs, strict=True):
            np.copyto(buf, coerce_input(name, feed[name], buf.shape), casting="unsafe")

    def _split_sequence(self, xs: np.ndarray | Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return split_sequence(xs, self._in_names, [b.shape for b in self._in_bufs])

    def _advance(self) -> None:
        self._sim.step()
        if self._head is not None:
            self._head.advance()

    def step(
        self, x: np.ndarray | Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Advance one time step on the simulated tiles; fresh float32 arrays (batch, *shape)."""
        with self._lock:
            self._live()
            names = self._out_names if outputs is None else self._check_names(outputs)
            self._write_inputs(x)
            self._advance()
            return {n: np.array(self._named[n], copy=True) for n in names}

    def run(
        self, xs: np.ndarray | Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Step through a sequence (T, batch, *shape); returns (T, batch, *shape) per output."""
        with self._lock:
            self._live()
            feeds = self._split_sequence(xs)
            names = self._out_names if outputs is None else self._check_names(outputs)
            steps = len(feeds[0]) if feeds else 0
            result = {n: np.empty((steps, *self._named[n].shape), self._named[n].dtype) for n in names}
            for t in range(steps):
                for buf, seq in zip(self._in_bufs, feeds, strict=True):
                    np.copyto(buf, seq[t], casting="unsafe")
                self._advance()
                for n in names:
                    result[n][t] = self._named[n]
            return result

    # -- state --------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the initial state."""
        with self._lock:
            self._live()
            self._plan.reset()

    def state(self) -> bytes:
        """All state in the engine's session-state format (msgpack)."""
        with self._lock:
            self._live()
            return pack_state(self._plan, self._model, (self._initial_base, self._initial_values))

    def load_state(self, data: bytes) -> None:
        """Restore a state saved here or by an engine session of the same model, dt and batch."""
        with self._lock:
            self._live()
            arrays, initial = unpack_state(data, self._plan, self._model)
            if initial is not None:
                base, values = initial
                self._initial_values = apply_initial_state(self._plan, self._rest, base, values)
                self._initial_base = base
            for key, arr in arrays.items():
                np.copyto(self._plan.state[key], arr)

    def retime(self, dt: float, method: str | None = None) -> None:
        """Recompile at step ``dt`` (the model adapted by ``method``), keeping the state where shapes match."""
        from edgesnn.adapt import retime_model

        with self._lock:
            self._live()
            model = retime_model(self._model, dt, method)
            old = {k: v.copy() for k, v in self._plan.state.items()}
            self._build(model, model.dt_s, self._plan.batch)
            for key, arr in self._plan.state.items():
                if key in old and old[key].shape == arr.shape:
                    np.copyto(arr, old[key])

    # -- learning (on the host, after every step) ---------------------------------------------------
    def _learner(self) -> Any:
        if self._head is None:
            raise UnsupportedError(
                "the model has no learning configuration; add one with edgesnn.learn.enable_learning", path="learning"
            )
        return self._head

    def learn(self, label: str, example: np.ndarray) -> dict[str, Any]:
        """Teach class ``label`` one example (the model's learner, on the host)."""
        with self._lock:
            self._live()
            info = dict(self._learner().learn(label, example))
            self._refresh()
            return info

    def forget(self, label: str) -> dict[str, Any]:
        """Remove a learned class."""
        with self._lock:
            self._live()
            info = dict(self._learner().forget(label))
            self._refresh()
            return info

    def classes(self) -> list[str]:
        """Learned labels in score-column order."""
        with self._lock:
            self._live()
            return list(self._learner().classes())

    def decide(self) -> list[str | None]:
        """Per stream, the learned label scoring highest now."""
        with self._lock:
            self._live()
            return self._learner().decide()

    def close(self) -> None:
        """Free the session; later calls raise NotFoundError."""
        with self._lock:
            self._closed = True

    def __enter__(self) -> IPUSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
