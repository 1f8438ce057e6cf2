"""Session: the stateful, batched stepping of one model at one dt."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from edgesnn import limits
from edgesnn.engine import backends
from edgesnn.engine._copies import byte_view, copy_into, fresh_copy
from edgesnn.engine._feeds import check_feed_names, check_output_names, coerce_input, split_sequence
from edgesnn.engine._initial import InitialState, apply_initial_state, check_initial_state
from edgesnn.engine._state import pack_state, unpack_state
from edgesnn.engine.plan import NUMERICS, Plan, compile_plan
from edgesnn.errors import InputError, OptionError, UnsupportedError
from edgesnn.units import check_step_s

if TYPE_CHECKING:
    from edgesnn.engine.learner import Learner, LearnerFactory
    from edgesnn.model import Model, TensorSpec

log = logging.getLogger("edgesnn.engine")

ArrayFeed = np.ndarray | Mapping[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class SessionOptions:
    """How a session runs; separate from the model, as in onnxruntime.

    Parameters
    ----------
    backends : sequence of str
        Execution backends in order of preference; the first available one is
        used (``"native"`` is the compiled kernel, ``"numpy"`` the reference).
    num_threads : int
        Threads for BLAS and ONNX parts, and for :meth:`Session.run` on the
        native backend, which cuts a batch into this many slices, each stepped
        through the whole sequence on its own thread. One is fastest for
        batch-1 streaming.
    store : str or None
        Directory of the class store of a model that learns (see
        :mod:`edgesnn.learn`): learned classes are loaded from it when the
        session opens and written to it, durably, by every learn and forget.
    numerics : {"float", "loihi", "gaincell"}
        ``"float"`` runs the model's float32 dynamics; ``"loihi"`` quantises it to
        Loihi 2's fixed-point CUBA LIF (:mod:`edgesnn.loihi`) and steps the same
        integers as Lava's bit-accurate simulation, including its one-step
        synaptic delay, so the CPU predicts the chip (a graph of plasticity
        attention runs that layer in Loihi's integer widths instead,
        :mod:`edgesnn.graph.plastic_attention`); ``"gaincell"`` runs every
        attention layer on the analog gain-cell device model
        (:mod:`edgesnn.graph.attention`), the rest as ``"float"``.
    initial_state : {"rest", "zero"}, mapping or None
        Where the neurons start (and return to on :meth:`Session.reset`):
        ``"rest"`` puts membranes at ``v_leak``, ``"zero"`` at 0; currents,
        adaptation and traces start at 0 either way. A mapping from state
        names (``"lif1/v"``, ``"lif1/i"``, ``"adlif/w"``; see
        :attr:`Session.recordable`) to arrays (the node's shape, or (batch,
        *shape)) sets those states and leaves the others at the model's
        default; a pair ``("zero", {...})`` sets them over the other start.
        None: the model's own ``initial_state``.
    """

    backends: tuple[str, ...] = ("native", "numpy")
    num_threads: int = 1
    store: str | None = None
    numerics: str = "float"
    initial_state: InitialState = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "backends", tuple(self.backends))
        check_initial_state(self.initial_state)
        if self.numerics not in NUMERICS:
            raise OptionError(f"expected one of {', '.join(NUMERICS)}, got {self.numerics!r}", path="numerics")
        if self.store is not None:
            if not isinstance(self.store, (str, os.PathLike)) or not os.fspath(self.store):
                raise OptionError(f"expected a directory path, got {self.store!r}", path="store")
            object.__setattr__(self, "store", os.fspath(self.store))
        if not isinstance(self.num_threads, int) or self.num_threads < 1:
            raise OptionError(f"expected an int >= 1, got {self.num_threads!r}", path="num_threads")


class Session:
    """A model stepping on a stream: owns all state, has a batch dimension.

    Examples
    --------
    >>> s = model.session(dt=1e-3, batch=1)            # doctest: +SKIP
    >>> y = s.step(x)["out"]                           # x: (1, 700) spikes
    >>> ys = s.run(xs)["out"]                          # xs: (T, 1, 700) -> (T, 1, 20)
    """

    def __init__(
        self,
        model: Model,
        *,
        dt_s: float,
        batch: int = 1,
        options: SessionOptions | None = None,
        learner: LearnerFactory | None = None,
    ) -> None:
        # Runs the model's continuous-time parameters re-discretised at dt_s as they are;
        # Model.session(dt) adapts the model to dt first (edgesnn.adapt) and finds the
        # learner of a model that learns (the engine imports no learner: edgesnn.engine.learner).
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise OptionError(f"expected an int >= 1, got {batch!r}", path="batch")
        limits.current().check("batch", int(batch), "a batch", path="batch")
        self._options = options or SessionOptions()
        self._head: Learner | None = None
        self._make_learner = learner
        base, values = check_initial_state(self._options.initial_state)
        self._initial_base: str = base or model.initial_state
        self._initial_values: dict[str, np.ndarray] = values
        if model.learning is None and self._options.store is not None:
            raise UnsupportedError(
                "the model has no learning configuration, so there is nothing to store;"
                " add one with edgesnn.learn.enable_learning",
                path="store",
            )
        if model.learning is not None and learner is None:
            raise UnsupportedError(
                "the model learns, but no learner was given; open it with model.session(), which finds one",
                path="learning",
            )
        self._build(model, check_step_s(dt_s), int(batch))

    def _build(self, model: Model, dt_s: float, batch: int) -> None:
        self._model = model
        self._plan: Plan = compile_plan(
            model.graph, dt_s, model.method, batch, num_threads=self._options.num_threads,
            numerics=self._options.numerics, loihi_network=model.loihi,
        )  # fmt: skip
        self._rest = dict(self._plan.initial)
        self._initial_values = apply_initial_state(self._plan, self._rest, self._initial_base, self._initial_values)
        self._backend, self._step = backends.make_runner(self._plan, self._options)
        # The whole-sequence loop in C, when the step is one native program (no learning head).
        self._run_steps = backends.sequence_runner(self._plan, self._options, self._backend, self._step)
        self._in_names = model.graph.inputs
        self._out_names = model.graph.outputs
        self._in_bufs = [self._plan.buffers[n] for n in self._in_names]
        self._set_outputs([(n, self._plan.buffers[n]) for n in self._out_names])
        self._single = self._in_bufs[0] if len(self._in_bufs) == 1 else None
        self._single_bytes = byte_view(self._single) if self._single is not None else None
        self._named = {**self._plan.buffers, **self._plan.records}
        if self._make_learner is not None and model.learning is not None:
            self._attach_head(model, self._make_learner)

    # -- learning (a plug-in: edgesnn.engine.learner) ---------------------------
    def _attach_head(self, model: Model, make: LearnerFactory) -> None:
        # The learner advances after every step of the static graph; models
        # without learning keep the plain step function and output list.
        if self._head is None:
            self._head = make(model, self._plan, self._options)
        else:
            self._head.attach(self._plan, model)
        head, step = self._head, self._step

        def step_with_head() -> None:
            step()
            head.advance()

        self._step = step_with_head
        self._run_steps = None  # the head advances in Python after every step
        self._refresh_scores()

    def _refresh_scores(self) -> None:
        head = self._learner()
        scores, name = head.scores, head.output_name
        self._set_outputs([(n, self._plan.buffers[n]) for n in self._out_names] + [(name, scores)])
        self._named = {**self._plan.buffers, **self._plan.records, name: scores}

    def _set_outputs(self, items: list[tuple[str, np.ndarray]]) -> None:
        self._out_items = items
        self._out_views = [(n, b, byte_view(b, writable=False)) for n, b in items]

    def _learner(self) -> Learner:
        if self._head is None:
            raise UnsupportedError(
                "the model has no learning configuration; add one with edgesnn.learn.enable_learning", path="learning"
            )
        return self._head

    def learn(self, label: str, example: ArrayFeed) -> dict:
        """Teach class ``label`` one example (T, *input_shape) or (T, 1, *input_shape); returns what happened.

        The example runs from rest through a private copy of the graph, so the
        live stream is not disturbed; a new label gets a new score column, a
        known one is reinforced. With a store, the class is on disk before this
        returns. The result has ``label``, ``new``, ``action`` (added or
        reinforced), ``epochs``, ``updates``, ``classes`` and timings in µs.
        """
        info = self._learner().learn(label, example)
        self._refresh_scores()
        return info

    def forget(self, label: str) -> dict:
        """Remove a learned class (durably, with a store); its score column disappears."""
        info = self._learner().forget(label)
        self._refresh_scores()
        return info

    def classes(self) -> list[str]:
        """Learned labels, in the column order of the ``"classes"`` output."""
        return self._learner().classes()

    def decide(self) -> list[str | None]:
        """Per stream, the learned label scoring highest now (None while nothing is learned)."""
        return self._learner().decide()

    def retime(self, dt: float, method: str | None = None) -> None:
        """Switch this session to step ``dt`` (seconds), adapting the model, keeping its state.

        ``method`` is an :mod:`edgesnn.adapt` method (default: the model's
        ``adapt_method``). Membranes, currents and spikes carry over; a delay
        line whose length in steps changes starts empty.
        """
        from edgesnn.adapt import retime_model

        model = retime_model(self._model, dt, method)
        old = self._plan.state
        self._build(model, model.dt_s, self._plan.batch)
        for key, arr in self._plan.state.items():
            if key in old and old[key].shape == arr.shape:
                np.copyto(arr, old[key])
            else:
                log.info("retime: %s restarts from its initial value (its size changed)", key)

    # -- discovery ------------------------------------------------------------
    @property
    def model(self) -> Model:
        """The (immutable, shared) model this session runs."""
        return self._model

    @property
    def dt_s(self) -> float:
        """Step of this session in seconds."""
        return self._plan.dt_s

    @property
    def batch(self) -> int:
        """Number of independent streams stepped together."""
        return self._plan.batch

    @property
    def backend(self) -> str:
        """Name of the backend actually running this session."""
        return self._backend

    @property
    def recordable(self) -> list[str]:
        """Names of the neuron states ``step``/``run`` can return besides the nodes (``"<node>/v"``, ...)."""
        return list(self._plan.records)

    @property
    def inputs(self) -> list[TensorSpec]:
        """Input specs (name, shape without batch, dtype, unit)."""
        return self._model.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        """Output specs (name, shape without batch, dtype, unit); ``"classes"`` too when the model learns."""
        if self._head is None:
            return self._model.outputs
        from edgesnn.model import TensorSpec

        head = self._head
        return [*self._model.outputs, TensorSpec(head.output_name, (len(head.classes()),), "float32", "score")]

    # -- stepping -------------------------------------------------------------
    def step(self, x: ArrayFeed, outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Advance one step on input ``x`` and return the requested outputs.

        ``x`` is an array (batch, *shape) for a single-input model, or a mapping
        from input name to such arrays. With batch 1 the batch axis may be left
        out. Returns a dict of fresh arrays (batch, *shape), by default for every
        Output node; ``outputs`` may name any node of the graph, or a neuron's
        state after the step: ``"<node>/v"`` (membrane), ``"<node>/i"``
        (synaptic current), ``"<node>/w"`` (adaptation); under Loihi numerics
        ``"<node>/u"`` and ``"<node>/v"`` are Lava's int32 integers and
        ``"<node>/u_float"``, ``"<node>/v_float"`` the same in model units.
        See :attr:`recordable`.
        """
        buf = self._single
        if buf is not None and type(x) is np.ndarray and x.shape == buf.shape and x.dtype == buf.dtype:
            copy_into(buf, self._single_bytes, x)  # the streaming hot path: one input, already the right array
        else:
            self._write_inputs(x)
        self._step()
        if outputs is None:
            return {n: fresh_copy(b, v) for n, b, v in self._out_views}
        bufs = self._named
        return {n: fresh_copy(bufs[n], byte_view(bufs[n], writable=False)) for n in self._check_names(outputs)}

    def run(self, xs: ArrayFeed, outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Step through a whole sequence; arrays have a leading time axis (T, batch, *shape)."""
        feeds = self._split_sequence(xs)
        names = [n for n, _ in self._out_items] if outputs is None else self._check_names(outputs)
        steps = len(feeds[0]) if feeds else 0
        bufs = self._named
        result = {n: np.empty((steps, *bufs[n].shape), bufs[n].dtype) for n in names}
        # Each sequence is cast once; then every step moves bytes through memoryviews (see _copies).
        casts = [np.ascontiguousarray(seq, buf.dtype) for buf, seq in zip(self._in_bufs, feeds, strict=True)]
        if self._run_steps is not None and all(byte_view(bufs[n], writable=False) is not None for n in names):
            self._run_steps(steps, list(zip(self._in_bufs, casts, strict=True)), [(bufs[n], result[n]) for n in names])
            return result
        ins = []
        for buf, seq in zip(self._in_bufs, casts, strict=True):
            view = byte_view(buf)
            ins.append((buf, view, seq, byte_view(seq, writable=False) if view is not None else None, buf.nbytes))
        outs = []
        for n in names:
            src, dst = byte_view(bufs[n], writable=False), byte_view(result[n])
            ok = src is not None and dst is not None
            outs.append((n, bufs[n], src if ok else None, dst if ok else None, bufs[n].nbytes))
        for t in range(steps):
            for buf, view, seq, seq_bytes, size in ins:
                if seq_bytes is not None:
                    view[:] = seq_bytes[t * size : (t + 1) * size]  # type: ignore[index]
                else:
                    np.copyto(buf, seq[t], casting="unsafe")
            self._step()
            for n, b, src, dst, size in outs:
                if dst is not None:
                    dst[t * size : (t + 1) * size] = src
                else:
                    result[n][t] = b
        return result

    def reset(self) -> None:
        """Forget the past: back to the initial state (membranes at rest, or as ``initial_state`` says)."""
        self._plan.reset()

    @property
    def initial_state(self) -> str:
        """Where this session starts and resets to: "rest" or "zero", with :attr:`initial_values` set over it."""
        return self._initial_base

    @property
    def initial_values(self) -> dict[str, np.ndarray]:
        """States this session starts from other than its :attr:`initial_state`, by name ((batch, n) arrays)."""
        return {k: v.copy() for k, v in self._initial_values.items()}

    def state(self) -> bytes:
        """Serialise all state (msgpack), with the initial state it resets to, for :meth:`load_state`."""
        return pack_state(self._plan, self._model, (self._initial_base, self._initial_values))

    def load_state(self, data: bytes) -> None:
        """Restore state saved by :meth:`state` for the same model, dt and batch size (its initial state too)."""
        arrays, initial = unpack_state(data, self._plan, self._model)
        if initial is not None:
            base, values = initial
            self._initial_values = apply_initial_state(self._plan, self._rest, base, values)
            self._initial_base = base
        for key, arr in arrays.items():
            np.copyto(self._plan.state[key], arr)

    # -- input handling -------------------------------------------------------
    def _check_names(self, names: Iterable[str]) -> list[str]:
        return check_output_names(names, self._named, self._plan.records, self._plan.buffers)

    def _write_inputs(self, x: ArrayFeed) -> None:
        if isinstance(x, Mapping):
            check_feed_names(x, self._in_names)
            for name, buf in zip(self._in_names, self._in_bufs, strict=True):
                np.copyto(buf, coerce_input(name, x[name], buf.shape), casting="unsafe")
            return
        if len(self._in_bufs) != 1:
            raise InputError(f"model has inputs {', '.join(self._in_names)}; pass a dict by name", path="inputs")
        buf = self._in_bufs[0]
        if type(x) is np.ndarray and x.shape == buf.shape and x.dtype.kind in "biuf":
            np.copyto(buf, x, casting="unsafe")  # the hot path: no further checks needed
        else:
            np.copyto(buf, coerce_input(self._in_names[0], x, buf.shape), casting="unsafe")

    def _split_sequence(self, xs: ArrayFeed) -> list[np.ndarray]:
        return split_sequence(xs, self._in_names, [b.shape for b in self._in_bufs])


StepFn = Callable[[], None]
