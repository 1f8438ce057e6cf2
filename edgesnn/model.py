"""A loaded model: an immutable graph plus what the bundle says about it."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from edgesnn import limits
from edgesnn.errors import EdgeSNNError, OptionError
from edgesnn.graph import Graph
from edgesnn.graph._node import check_text
from edgesnn.neurons import METHODS, method_token
from edgesnn.neurons.discretise import SECTION_RULE
from edgesnn.units import check_step_s, check_time_s

#: Where a session's neurons start: membranes at v_leak ("rest") or at 0 ("zero"); currents,
#: adaptation and traces start at 0 either way.
INITIAL_STATES = ("rest", "zero")
#: The adaptation method that matches each discretisation (see edgesnn.adapt).
ADAPT_FOR = {"zoh": "zoh-rate", "cascade": "zoh-rate", "euler": "euler-rate", "cascade-euler": "euler-rate"}
#: The exponential method with the structure of each Euler one (what to use when dt exceeds a tau).
_EXPONENTIAL = {"euler": "zoh", "cascade-euler": "cascade"}

if TYPE_CHECKING:
    import os

    from edgesnn.engine.session import Session, SessionOptions


def check_labels(labels: Any, graph: Graph) -> tuple[str, ...]:
    """Class names as a tuple: printable text, at most ``limits.id_chars`` long, one per unit of the first output.

    ``edgesnn run`` names its decision ``labels[argmax]`` over the first output; a list of
    another length names nothing, so it is refused rather than carried.
    """
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Iterable):
        raise OptionError(f"expected a sequence of class names, got {type(labels).__name__}", path="labels")
    labels = tuple(labels)
    for i, label in enumerate(labels):
        try:
            check_text(label, f"labels/{i}", what="a class name")
        except EdgeSNNError as exc:
            raise OptionError(exc.message, path=exc.path) from None
        limits.current().check("id_chars", len(label), "a class name's length", path=f"labels/{i}")
    units = math.prod(graph.shape(graph.outputs[0]))
    if labels and len(labels) != units:
        raise OptionError(
            f"expected one class name per unit of output {graph.outputs[0]!r} ({units}), got {len(labels)}",
            path="labels",
        )
    return tuple(str(label) for label in labels)  # str subclasses (numpy's) become plain str


def check_step_fits(graph: Graph, dt_s: float, method: str) -> None:
    """Refuse a step that forward Euler cannot take: ``dt`` above a neuron's time constant makes its decay negative.

    The same condition :func:`edgesnn.neurons.discretise.decay_and_gain` enforces when a
    session opens, checked when the model is made, so that a model that exists can run.
    """
    if SECTION_RULE.get(method) != "euler":
        return
    for name, node in graph.nodes.items():
        for field in node.array_fields():
            tau = getattr(node, field) if field.startswith("tau") else None
            if tau is not None and tau.size and dt_s > float(tau.min()):
                raise OptionError(
                    f"forward Euler ({method}) needs dt <= tau, but dt = {dt_s:g} s and {name}/{field} has"
                    f" {float(tau.min()):g} s; use method {_EXPONENTIAL.get(method, 'zoh')!r} or a finer step",
                    path="dt_s",
                )


def check_producer(producer: Any) -> None:
    """Refuse a producer record that is not an object, or whose ``retimed`` history edgesnn could not read back."""
    if not isinstance(producer, Mapping):
        raise OptionError(f"expected an object, got {type(producer).__name__}", path="producer")
    history = producer.get("retimed", [])
    if not isinstance(history, list):
        raise OptionError(f"expected a list of adaptations, got {type(history).__name__}", path="producer/retimed")
    for i, step in enumerate(history):
        where = f"producer/retimed/{i}"
        if not isinstance(step, Mapping):
            raise OptionError(f"expected {{from_dt_s, to_dt_s, method}}, got {type(step).__name__}", path=where)
        for key in ("from_dt_s", "to_dt_s"):
            value = step.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise OptionError(f"expected a step in seconds, got {type(value).__name__}", path=f"{where}/{key}")
        try:
            check_text(step.get("method"), f"{where}/method", what="a method name")
        except EdgeSNNError as exc:
            raise OptionError(exc.message, path=exc.path) from None


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """Name, shape (no batch dimension), dtype and unit of a model input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    unit: str = ""


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
    """An immutable, shareable model; sessions hold all state.

    Parameters
    ----------
    graph : Graph
        The validated graph IR.
    dt_s : float
        Step the model was trained at, in seconds.
    method : {"zoh", "euler", "cascade", "cascade-euler"}
        Discretisation the trainer used (see :mod:`edgesnn.neurons.discretise`).
    labels : tuple of str
        Class names of the output units, if the model classifies.
    learning : dict or None
        Configuration of on-device learning, if the bundle carries one.
    producer : dict
        Who wrote the model (name, version, framework, profile, ...).
    adapt_method : str or None
        Time-resolution adaptation used when a session runs at another step
        (see :mod:`edgesnn.adapt`); by default the one matching ``method``
        (``zoh-rate`` for the exponential methods, ``euler-rate`` for the Euler ones).
    initial_state : {"rest", "zero"}
        Where sessions start their membranes unless told otherwise: at
        ``v_leak`` (edgesnn's and Norse's convention) or at 0 (snnTorch, Sinabs,
        Rockpool, Lava-dl).
    loihi : LoihiNetwork or None
        A Loihi integer network (:class:`edgesnn.loihi.LoihiNetwork`) that
        ``numerics="loihi"`` runs as it is, instead of quantising the graph
        (see :func:`edgesnn.loihi.to_model` and :func:`edgesnn.bundle.netx.read_netx`).
    """

    graph: Graph
    dt_s: float
    method: str = "zoh"
    labels: tuple[str, ...] = ()
    learning: dict[str, Any] | None = None
    producer: dict[str, Any] = dataclasses.field(default_factory=dict)
    adapt_method: str | None = None
    initial_state: str = "rest"
    loihi: Any = None

    def __post_init__(self) -> None:
        from edgesnn.adapt._maps import check_method  # late: edgesnn.adapt builds on this module

        step = check_step_s(self.dt_s, name="dt_s")
        object.__setattr__(self, "dt_s", check_time_s(step, name="dt_s", what="a step"))
        if self.method not in METHODS:
            raise OptionError(f"expected one of {', '.join(METHODS)}, got {self.method!r}", path="method")
        if self.adapt_method is None:
            object.__setattr__(self, "adapt_method", ADAPT_FOR[self.method])
        check_method(self.adapt_method)
        check_step_fits(self.graph, self.dt_s, self.method)
        if self.initial_state not in INITIAL_STATES:
            raise OptionError(
                f"expected one of {', '.join(INITIAL_STATES)}, got {self.initial_state!r}", path="initial_state"
            )
        object.__setattr__(self, "labels", check_labels(self.labels, self.graph))
        check_producer(self.producer)

    def __repr__(self) -> str:
        """Producer, node count, input and output shapes, step and labels; never the weights."""
        name = self.producer.get("name") if isinstance(self.producer, Mapping) else None
        ports = [", ".join(f"{s.name}{s.shape}" for s in specs) for specs in (self.inputs, self.outputs)]
        extra = (f", {len(self.labels)} labels" if self.labels else "") + (f", by {name}" if name else "")
        return (
            f"Model({len(self.graph.nodes)} nodes, inputs {ports[0]}, outputs {ports[1]},"
            f" dt {self.dt_s * 1e3:g} ms, {self.method}{extra})"
        )

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 over the graph's structure and parameters (identifies saved states)."""
        h = hashlib.sha256()
        token = method_token(self.method, (type(n).__name__ for n in self.graph.nodes.values()))
        h.update(repr((self.dt_s, token, self.graph.edges)).encode())
        if self.initial_state != "rest":  # models from before the option hash as they did
            h.update(f"initial_state={self.initial_state}".encode())
        if self.loihi is not None:  # two integer networks on one float graph are two models
            from edgesnn.loihi.serialize import network_digest

            h.update(f"loihi={network_digest(self.loihi)}".encode())
        for name, node in self.graph.nodes.items():
            for key, value in node.to_dict().items():
                h.update(f"{name}/{key}".encode())
                if hasattr(value, "tobytes"):
                    h.update(str((value.dtype.str, value.shape)).encode())
                    h.update(value.tobytes())
                elif isinstance(value, bytes):
                    h.update(value)
                else:
                    h.update(repr(value).encode())
        return h.hexdigest()

    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's inputs, in declaration order."""
        g = self.graph
        return [TensorSpec(n, g.shape(n), "float32", g.nodes[n].unit) for n in g.inputs]  # type: ignore[attr-defined]

    @property
    def outputs(self) -> list[TensorSpec]:
        """The model's outputs, in declaration order."""
        g = self.graph
        return [TensorSpec(n, g.shape(n), "float32", g.nodes[n].unit) for n in g.outputs]  # type: ignore[attr-defined]

    def with_input_units(self, units: Mapping[str, str]) -> Model:
        """This model with the given inputs' units set (``{"x": "spikes"}``): what their values are.

        Units in :data:`edgesnn.adapt.COUNT_UNITS` mean events counted per step; any
        other non-empty unit a sampled signal. Adapting to another step needs one or
        the other for every input that feeds a neuron.
        """
        from edgesnn.graph import Input

        nodes = dict(self.graph.nodes)
        for name, unit in units.items():
            if not isinstance(nodes.get(name), Input):
                raise OptionError(f"no input named {name!r}; inputs are {', '.join(self.graph.inputs)}",
                                  path=f"inputs/{name}")  # fmt: skip
            if not isinstance(unit, str) or not unit.strip():
                raise OptionError(f"expected a unit such as 'spikes' or 'mV', got {unit!r}", path=f"inputs/{name}")
            nodes[name] = nodes[name].replace(unit=unit.strip())
        graph = Graph(nodes, list(self.graph.edges), self.graph.metadata)
        return dataclasses.replace(self, graph=graph)

    def session_bytes(self, batch: int = 1, dt: float | None = None) -> int:
        """Bytes a session of ``batch`` streams at step ``dt`` (default: the training step) would allocate.

        Estimated from shapes alone (:func:`edgesnn.graph.memory.session_bytes`), without
        allocating; at another step, of the model adapted to it, as :meth:`session` runs it.
        Raises :class:`~edgesnn.errors.LimitError` for a delay beyond ``limits.delay_steps`` steps.
        """
        from edgesnn.graph.memory import session_bytes

        model = self if dt is None else _retimed(self, dt)
        return session_bytes(model.graph, model.dt_s, batch)

    def session(
        self,
        dt: float | None = None,
        batch: int = 1,
        options: SessionOptions | None = None,
        *,
        store: str | os.PathLike[str] | None = None,
        numerics: str | None = None,
        initial_state: str | Mapping[str, Any] | None = None,
    ) -> Session:
        """Open a stateful session stepping at ``dt`` seconds (default: the training step).

        At another step the model is first adapted with :attr:`adapt_method`.
        ``store`` is the directory of learned classes of a model that learns
        (same as ``SessionOptions(store=...)``); ``numerics="loihi"`` runs Loihi 2's
        fixed-point numerics (same as ``SessionOptions(numerics=...)``);
        ``initial_state`` is ``"rest"``, ``"zero"`` or arrays by state name (same as
        ``SessionOptions(initial_state=...)``).
        """
        from edgesnn.engine.session import Session, SessionOptions

        if store is not None:
            options = dataclasses.replace(options or SessionOptions(), store=store)
        if numerics is not None:
            options = dataclasses.replace(options or SessionOptions(), numerics=numerics)
        if initial_state is not None:
            options = dataclasses.replace(options or SessionOptions(), initial_state=initial_state)
        model = self if dt is None else _retimed(self, dt)
        learner = None
        if model.learning is not None:  # the engine imports no learner; it is found here, by the rule's name
            from edgesnn.learn import learner_for

            learner = learner_for(model.learning)
        return Session(model, dt_s=model.dt_s, batch=batch, options=options, learner=learner)


def _retimed(model: Model, dt: float) -> Model:
    from edgesnn.adapt import retime_model  # late: edgesnn.adapt builds on this module

    return retime_model(model, dt)
