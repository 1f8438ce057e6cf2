r"""NIR import and export, through the ``nir`` package (extra ``edgesnn[nir]``).

NIR (the Neuromorphic Intermediate Representation) stores neurons as
continuous-time equations and carries no time step, no discretisation and no
reset mechanism. Importing therefore needs a *profile* that says how to read it.

Profile ``"nir"`` (default): plain NIR semantics
    Forward Euler at the step you give (``dt_s``; NIR has none, so it is
    required): ``v <- (1 - dt/tau) v + (dt/tau)(v_leak + R x)``, ``I`` and ``IF``
    integrate ``v <- v + dt R x``, CubaLI/CubaLIF filter the input through
    ``tau_syn dI/dt = -I + w_in x`` first. A neuron fires when ``v > v_threshold``
    (strictly) and is reset to ``v_reset`` in the same step. Node inputs are
    summed; an edge that closes a cycle delivers the previous step's value.

Framework profiles restore what each exporter drops, so that the imported model
reproduces that framework's own simulation spike for spike:

* ``"snntorch"``: dt = 0.1 ms, forward Euler, reset by subtraction one step
  late (snnTorch's default ``reset_delay=True``). ``reset_mode="to_value"``
  models ``reset_mechanism="zero"``. In RLeaky/RSynaptic the recurrent bias, which
  snnTorch adds from the first step, moves to v_leak or to the dense layer before.
* ``"norse"``: dt = 1 ms (Norse's default), forward Euler, unit current jumps
  (``w_in = tau_syn/dt``), IAF adds its input without dt. Norse 1.1 writes
  ``dt * tau`` as the time constant (recognised by every tau being below dt and
  divided by dt); newer exporters write tau in seconds.
* ``"sinabs"``: taus are in time steps (scaled by ``dt_s``, default 1 ms), exact
  exponential decay, LIF inputs scaled by ``1 - alpha``, ExpLeak and IAF not,
  fire on ``v >= threshold`` with graded spikes (``MultiSpike``: floor(v/threshold)
  per step), subtract them. ``norm_input=False`` reads LIF layers that add their
  input unscaled (the file does not say which).
* ``"rockpool"``: dt recovered from ``r = tau exp(-dt/tau)/dt``, exact decay,
  the synaptic current decays after each input, fire on ``v >= threshold`` with
  graded spikes (``max_spikes_per_dt``), subtract them.
* ``"spyx"``: Euler decays at Spyx's export dt (read from ``r``), unit gains, fire
  on ``v > threshold`` and subtract (IF and LIF after the decay, CuBaLIF before it),
  spikes leave one step late; its channels-last flatten order is restored.
* ``"lava-dl"``: lava-dl netx CUBA (12-bit per-step decays written as
  ``tau = 1/decay``), unit jumps, fire on ``v >= threshold``, reset to 0.

``dt_s``, ``method``, ``reset_mode``, ``reset_timing`` and ``max_spikes_per_step``
(1 for single-spike layers) override any profile.
The profile and options are recorded in ``model.producer`` and the graph
metadata.

Export writes plain NIR nodes. What NIR cannot hold (dt, method, reset modes,
spike options, units, labels, node order) goes into ``metadata["edgesnn"]`` as a JSON string,
so that importing a file written by edgesnn (profile ``"nir"``) gives back the
identical model, while other NIR tools see ordinary NIR. AdaptiveLIF and ONNX
nodes have no NIR equivalent: exporting them raises :class:`NIRImportError`.
Export warns what snnTorch's, Norse's, Sinabs's, Rockpool's and Spyx's importers
would read differently; ``write_nir(..., nir_version="1.0.4")`` writes for the nir
release Sinabs and Rockpool pin.

Examples
--------
>>> model = read_nir("net.nir", profile="snntorch")          # doctest: +SKIP
>>> write_nir(model, "copy.nir")                              # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

from edgesnn.bundle import _nir_profiles
from edgesnn.errors import EdgeSNNError, LimitError, MissingDependencyError, NIRImportError
from edgesnn.graph._node import prefixed
from edgesnn.model import Model

__all__ = ["PROFILES", "describe_assumptions", "from_nir", "to_nir", "read_nir", "write_nir"]

#: Names of the import profiles (see the module docstring).
PROFILES: tuple[str, ...] = tuple(_nir_profiles.PROFILES_TABLE)


def _require_nir() -> Any:
    try:
        import nir
    except ImportError as exc:
        raise MissingDependencyError("NIR support needs the 'nir' package: pip install 'edgesnn[nir]'") from exc
    return nir


def _read_graph(path: str | os.PathLike[str]) -> Any:
    nir = _require_nir()
    if not os.path.isfile(path):
        raise NIRImportError("no such file", path=os.fspath(path))
    try:
        # type_check=False: older exporters leave types undefined; edgesnn infers shapes itself.
        return nir.read(path, type_check=False)
    except Exception as exc:  # h5py and nir raise many types for a bad file
        raise NIRImportError(f"not a readable NIR file ({type(exc).__name__}: {exc})", path=os.fspath(path)) from exc


def from_nir(
    graph_or_path: Any,
    *,
    profile: str = "nir",
    dt_s: float | None = None,
    reset_mode: str | None = None,
    reset_timing: str | None = None,
    method: str | None = None,
    max_spikes_per_step: int | None = None,
    norm_input: bool | None = None,
) -> Model:
    """Convert a NIR graph (``nir.NIRGraph`` or a .nir path) to a Model under ``profile``."""
    prof = _nir_profiles.get_profile(profile)
    nir = _require_nir()
    source = None
    if isinstance(graph_or_path, (str, os.PathLike)):
        source = os.fspath(graph_or_path)
        graph = _read_graph(graph_or_path)
    elif isinstance(graph_or_path, nir.NIRGraph):
        graph = graph_or_path
    else:
        raise NIRImportError(f"expected a nir.NIRGraph or a path, got {type(graph_or_path).__name__}", path="graph")
    from edgesnn.bundle._nir_import import build_model

    try:
        return build_model(
            graph,
            profile=prof,
            dt_s=dt_s,
            method=method,
            reset_mode=reset_mode,
            reset_timing=reset_timing,
            source=source,
            max_spikes_per_step=max_spikes_per_step,
            norm_input=norm_input,
        )
    except (NIRImportError, LimitError) as exc:
        raise (prefixed(exc, source) if source else exc) from exc
    except EdgeSNNError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        # A file nir.read accepted can still hold fields of types no exporter writes (strings for
        # arrays, records with missing keys); name the file rather than let numpy's error escape.
        where = source or "graph"
        raise NIRImportError(f"cannot convert the NIR graph ({type(exc).__name__}: {exc})", path=where) from exc


def describe_assumptions(model: Model) -> str:
    """One line on what the import profile assumed (dt, method, reset, input scaling); "" if not imported so."""
    return _nir_profiles.describe_assumptions(model.producer)


def to_nir(model: Model) -> Any:
    """Export ``model`` as a plain ``nir.NIRGraph`` (edgesnn specifics in its metadata)."""
    _require_nir()
    from edgesnn.bundle._nir_export import model_to_nir

    return model_to_nir(model)


def read_nir(path: str | os.PathLike[str], **kwargs: Any) -> Model:
    """Read a .nir file; keyword arguments are those of :func:`from_nir`."""
    return from_nir(os.fspath(path), **kwargs)


def write_nir(model: Model, path: str | os.PathLike[str], *, nir_version: str = "current") -> None:
    """Write ``model`` to a .nir (HDF5) file, atomically; ``nir_version="1.0.4"`` for Sinabs's and Rockpool's nir."""
    nir = _require_nir()
    from edgesnn.bundle import _nir_compat

    graph = to_nir(model)
    _nir_compat.for_reader(graph, dict(model.graph.nodes), nir_version)
    target = os.fspath(path)
    tmp = f"{target}.tmp-{os.getpid()}"
    try:
        nir.write(tmp, graph)
        if nir_version != "current":
            import h5py

            with h5py.File(tmp, "r+") as f:
                _nir_compat.strip(f)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
