"""Import profiles: what each framework's NIR exporter drops, and how to restore it.

A profile turns the parameters of one NIR neuron node into the parameters of an
edgesnn neuron such that :mod:`edgesnn.neurons.discretise`, at the profile's
step and method, performs the exporting framework's own discrete update. Each
``_<framework>`` function below names the source file its conventions were
read from.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from edgesnn.errors import NIRImportError, OptionError
from edgesnn.graph import IF, LI, LIF, RESET_MODES, RESET_TIMINGS, CubaLI, CubaLIF, Integrator
from edgesnn.graph._node import Node
from edgesnn.graph.neurons import MAX_SPIKES_PER_STEP
from edgesnn.neurons import METHODS
from edgesnn.neurons.discretise import COUPLED_TYPES, SECTION_RULE
from edgesnn.units import check_step_s

log = logging.getLogger("edgesnn.bundle.nir")

#: NIR neuron node types, by class name, and the edgesnn node type each becomes.
NEURON_KINDS = {"I": Integrator, "IF": IF, "LI": LI, "LIF": LIF, "CubaLI": CubaLI, "CubaLIF": CubaLIF}
_SPIKING = ("IF", "LIF", "CubaLIF")


@dataclasses.dataclass(frozen=True)
class Options:
    """The resolved import options: step, method and reset (user overrides applied)."""

    dt_s: float
    method: str
    reset_mode: str | None
    reset_timing: str | None
    #: Factor from the file's time constants to seconds (a profile may infer it).
    tau_scale: float = 1.0
    #: Spike count cap per step chosen by the user (None: the profile's own).
    max_spikes: int | None = None


@dataclasses.dataclass(frozen=True)
class Profile:
    """How one framework's NIR files are read."""

    name: str
    summary: str
    dt_s: float | None
    method: str
    reset_mode: str
    reset_timing: str
    convert: Callable[[str, dict[str, np.ndarray], Options], dict[str, np.ndarray]]
    #: Whether the framework fires at v >= v_th (True) or v > v_th, and how many spikes a
    #: neuron may emit in one step (graded spikes above 1).
    threshold_inclusive: bool = False
    max_spikes: int = 1
    #: Profiles whose dt is read from the file rather than fixed (rockpool).
    dt_from_graph: Callable[[dict[str, tuple[str, dict[str, np.ndarray]]]], float | None] | None = None
    #: Profiles whose time unit depends on the exporter version (norse).
    tau_scale_from_graph: Callable[[dict[str, tuple[str, dict[str, np.ndarray]]], float], float] | None = None
    #: Where the framework starts its membranes: 0 ("zero") or v_leak ("rest").
    initial_state: str = "zero"

    def timing_for(self, kind: str, options: Options) -> str:
        """Reset timing for a neuron of NIR type ``kind`` under ``options``."""
        if options.reset_timing is not None:
            return options.reset_timing
        mode = options.reset_mode or self.reset_mode
        if self.name == "snntorch" and mode == "to_value":
            # snnTorch's delayed reset-to-zero zeroes the previous membrane before
            # the decay (Leaky): spike-for-spike that is an immediate reset. In
            # Synaptic it zeroes the whole new membrane: the engine's next_step.
            return "next_step" if kind == "CubaLIF" else "immediate"
        return self.reset_timing


def _f64(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _euler_tau(decay: np.ndarray, dt: float) -> np.ndarray:
    """Time constant whose forward-Euler decay over ``dt`` is ``decay``."""
    return dt / (1.0 - decay)


def _zoh_tau(decay: np.ndarray, dt: float) -> np.ndarray:
    """Time constant whose exact decay over ``dt`` is ``decay``."""
    return -dt / np.log(decay)


# -- per-framework neuron conversions --------------------------------------------
# Each takes the NIR type name, the NIR parameters (float64, broadcast to the
# population) and the options, and returns edgesnn keyword arguments.


def _nir(kind: str, p: dict[str, np.ndarray], o: Options) -> dict[str, np.ndarray]:
    """Plain NIR: the parameters mean what the NIR equations say."""
    return _rename(kind, p)


def _snntorch(kind: str, p: dict[str, np.ndarray], o: Options) -> dict[str, np.ndarray]:
    """snnTorch (snntorch/export_nir.py; _neurons/leaky.py, synaptic.py).

    Leaky(beta) is written as LIF(tau = dt/(1-beta), r = tau/dt) with dt = 1e-4,
    Synaptic(alpha, beta) as CubaLIF with w_in = tau_syn/dt: forward Euler at that
    dt gives back mem = beta*mem + x and syn = alpha*syn + x exactly, so the
    parameters are kept; only the reset (subtract, one step late) is restored.
    """
    return _rename(kind, p)


def _norse(kind: str, p: dict[str, np.ndarray], o: Options) -> dict[str, np.ndarray]:
    """Norse (norse/torch/utils/export_nir.py; functional/lif.py, iaf.py, lif_box.py).

    Norse 1.1 (PyPI) writes tau = dt/tau_inv (dt times the time constant, dt = 1 ms),
    its repository head writes tau = 1/tau_inv (seconds); both write r = 1 and no
    w_in. ``Options.tau_scale`` says which (see :func:`_norse_tau_scale`). LIFCell
    adds the input to the current as a unit jump (i += x) before the Euler
    membrane step: with ``g_syn = (dt/tau_syn) w_in`` that needs ``w_in =
    tau_syn/dt``. IAFCell adds the input straight to v (v += x): ``r = 1/dt``.
    """
    out = _rename(kind, p)
    for key in ("tau_mem_s", "tau_syn_s"):
        if key in out:
            out[key] = out[key] * o.tau_scale
    if kind in ("CubaLI", "CubaLIF"):
        out["w_in"] = p["w_in"] * out["tau_syn_s"] / o.dt_s
    if kind in ("IF", "I"):
        out["r"] = p["r"] / o.dt_s
    return out


def _norse_tau_scale(neurons: dict[str, tuple[str, dict[str, np.ndarray]]], dt: float) -> float:
    """1/dt when every tau is below dt (Norse 1.1 wrote dt*tau), else 1 (tau in seconds).

    A Norse time constant below its step cannot be meant (dt*tau_inv > 1 makes the
    Euler step overshoot), so taus < dt identify the dt*tau writing; the two
    readings only collide for true time constants of 1 s or more.
    """
    taus = [p[k] for _, (kind, p) in neurons.items() for k in ("tau", "tau_mem", "tau_syn") if k in p]
    if not taus:
        return 1.0
    below = [bool(np.all(t < dt)) for t in taus]
    if all(below):
        return 1.0 / dt
    if any(below) or any(np.any(t < dt) for t in taus):
        raise NIRImportError(
            f"some time constants are below dt = {dt:g} s and some are not: cannot tell Norse's dt*tau"
            " writing (Norse 1.1) from tau in seconds; pass the step Norse ran at as dt_s",
            path="nodes",
        )
    return 1.0


def _sinabs(kind: str, p: dict[str, np.ndarray], o: Options) -> dict[str, np.ndarray]:
    """Sinabs (sinabs/nir.py; layers/functional/lif.py, exp_leak.py, activation/).

    Sinabs has no dt: tau_mem is in time steps and alpha = exp(-1/tau), so taus
    are scaled by dt (exact exponential). LIF (norm_input=True by default) adds
    (1-alpha)*x: r = 1 as written. ExpLeak (norm_input=False) adds x: r =
    1/(1-alpha). IAF adds x (v += x): r = 1/dt. Spikes fire on v >= threshold
    and subtract it; the default MultiSpike emits floor(v / threshold) spikes
    in one step (graded spikes, capped at MAX_SPIKES_PER_STEP; pass
    max_spikes_per_step=1 for SingleSpike layers).
    """
    out = _rename(kind, p)
    if "tau_mem_s" in out:
        tau = p["tau"] if "tau" in p else p["tau_mem"]  # LIF/LI write tau, CubaLIF tau_mem
        alpha = np.exp(-1.0 / tau)
        out["tau_mem_s"] = tau * o.dt_s
        if kind == "LI":
            out["r"] = p["r"] / (1.0 - alpha)
    if "tau_syn_s" in out:
        out["tau_syn_s"] = p["tau_syn"] * o.dt_s
    if kind in ("IF", "I"):
        out["r"] = p["r"] / o.dt_s
    return out


def _rockpool(kind: str, p: dict[str, np.ndarray], o: Options) -> dict[str, np.ndarray]:
    """Rockpool (rockpool/nn/modules/torch/nir.py; lif_torch.py, lif_neuron_torch.py).

    LIFTorch is written as CubaLIF(tau_syn, tau_mem, r = tau_mem*exp(-dt/tau_mem)/dt,
    v_leak = 0, w_in = 1) and runs isyn = beta*(isyn + x); vmem = alpha*vmem + isyn
    with alpha, beta = exp(-dt/tau): exact exponential with w_in = beta/(1-beta)
    and r = 1/(1-alpha). LIFNeuronTorch (written as LIF) is forward Euler with
    unit gain: its tau is rewritten so that the exact decay equals 1 - dt/tau.
    ExpSynTorch (written as LI) runs isyn = beta*(isyn + x): r = beta/(1-beta).
    Spikes fire on v >= threshold, as many as floor(v / threshold) per step
    (max_spikes_per_dt, capped at MAX_SPIKES_PER_STEP), and subtract them.
    """
    out = _rename(kind, p)
    dt = o.dt_s
    if kind in ("CubaLI", "CubaLIF"):
        alpha, beta = np.exp(-dt / p["tau_mem"]), np.exp(-dt / p["tau_syn"])
        out["w_in"] = beta / (1.0 - beta)
        out["r"] = 1.0 / (1.0 - alpha)
    elif kind == "LIF":
        out["tau_mem_s"] = _zoh_tau(1.0 - dt / p["tau"], dt)
        out["r"] = np.ones_like(p["tau"])
    elif kind == "LI":
        beta = np.exp(-dt / p["tau"])
        out["r"] = beta / (1.0 - beta)
    return out


def _rockpool_dt(nodes: dict[str, Any]) -> float | None:
    """Recover Rockpool's dt from r = (tau/dt)*exp(-dt/tau), i.e. u*e^u = 1/r, u = dt/tau."""
    found: list[tuple[str, float]] = []
    for name, (kind, p) in nodes.items():
        if kind not in ("LI", "LIF", "CubaLI", "CubaLIF"):
            continue
        tau = p["tau_mem"] if "tau_mem" in p else p["tau"]
        r = p["r"]
        if np.any(r <= 0):
            raise NIRImportError(
                f"expected r > 0 to recover Rockpool's dt, got min {float(r.min())}", path=f"nodes/{name}/r"
            )
        u = np.full(r.shape, 0.5)
        for _ in range(60):  # Newton on f(u) = u e^u - 1/r, monotone for u > 0
            f = u * np.exp(u) - 1.0 / r
            u = np.maximum(u - f / ((1.0 + u) * np.exp(u)), 1e-12)
        dts = u * tau
        found.append((name, float(np.median(dts))))
        if np.ptp(dts) > 1e-6 * float(np.max(dts)):
            raise NIRImportError(
                f"neurons imply different steps dt ({float(dts.min()):g}..{float(dts.max()):g} s)",
                path=f"nodes/{name}/r",
            )
    if not found:
        return None
    dt = found[0][1]
    for name, other in found[1:]:
        if abs(other - dt) > 1e-6 * dt:
            raise NIRImportError(
                f"implies dt = {other:g} s but {found[0][0]} implies {dt:g} s; pass dt_s", path=f"nodes/{name}"
            )
    return dt


def _lava_dl(kind: str, p: dict[str, np.ndarray], o: Options) -> dict[str, np.ndarray]:
    """Lava-dl (lava/lib/dl/netx/nir.py; slayer/neuron/cuba.py).

    netx writes a CUBA layer as CubaLIF(tau = 1/decay, r = 1, w_in = tau_syn)
    where decay is the 12-bit per-step decay (x/4096). CUBA runs
    i = (1 - iDecay/4096) i + x; v = (1 - vDecay/4096) v + i (forward Euler with
    unit gains), fires on v >= threshold and resets v to 0. Taus become
    4096*tau*dt; w_in and r are set so that i and v jump by the input.
    """
    out = _rename(kind, p)
    dt = o.dt_s
    for key, src in (("tau_mem_s", "tau_mem"), ("tau_mem_s", "tau"), ("tau_syn_s", "tau_syn")):
        if src in p and key in out:
            out[key] = 4096.0 * p[src] * dt
    if kind in ("CubaLI", "CubaLIF"):
        out["w_in"] = out["tau_syn_s"] / dt
    if "tau_mem_s" in out:
        out["r"] = out["tau_mem_s"] / dt
    if kind in ("IF", "I"):
        out["r"] = p["r"] / dt
    return out


_NAMES = {"tau": "tau_mem_s", "tau_mem": "tau_mem_s", "tau_syn": "tau_syn_s"}


def _rename(kind: str, p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """NIR field names to edgesnn field names (tau -> tau_mem_s, ...)."""
    fields = NEURON_KINDS[kind].array_fields()
    out = {}
    for key, value in p.items():
        name = _NAMES.get(key, key)
        if name in fields:
            out[name] = value
    return out


PROFILES_TABLE: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("nir", "plain NIR: forward Euler of the NIR equations at the given dt, reset to v_reset at once,"
                " v > v_th, membranes from 0", None, "euler", "to_value", "immediate", _nir),
        Profile("snntorch", "snnTorch export: dt = 0.1 ms, Euler decays in cascade (the membrane sees the updated"
                " current), subtract reset one step late, membranes from 0",
                1e-4, "cascade-euler", "subtract", "next_step", _snntorch),
        Profile("norse", "Norse export: dt = 1 ms, tau written as dt*tau (1.1) or tau, Euler decays in cascade,"
                " unit current jumps, reset to v_reset, membranes from v_leak", 1e-3, "cascade-euler", "to_value",
                "immediate", _norse, tau_scale_from_graph=_norse_tau_scale, initial_state="rest"),
        Profile("sinabs", "Sinabs export: taus in steps, exact decays in cascade, v >= v_th, graded spikes,"
                " subtract reset, membranes from 0", 1e-3, "cascade", "subtract", "immediate", _sinabs, True,
                MAX_SPIKES_PER_STEP),
        Profile("rockpool", "Rockpool export: dt read from r, exact decays in cascade, v >= v_th, graded spikes,"
                " subtract reset, membranes from 0", None, "cascade", "subtract", "immediate", _rockpool, True,
                MAX_SPIKES_PER_STEP, _rockpool_dt),
        Profile("lava-dl", "Lava-dl netx export: 12-bit decays per step in cascade, unit jumps, v >= v_th, reset"
                " to 0, membranes from 0", 1e-3, "cascade-euler", "to_value", "immediate", _lava_dl, True),
    )
}  # fmt: skip


def get_profile(name: str) -> Profile:
    """Look up a profile by name, listing the known ones when it is unknown."""
    try:
        return PROFILES_TABLE[name]
    except (KeyError, TypeError):
        raise OptionError(f"expected one of {', '.join(PROFILES_TABLE)}, got {name!r}", path="profile") from None


def resolve_options(
    profile: Profile,
    neurons: dict[str, Any],
    *,
    dt_s: float | None,
    method: str | None,
    reset_mode: str | None,
    reset_timing: str | None,
    max_spikes_per_step: int | None = None,
) -> Options:
    """Apply user overrides to the profile's defaults and check them."""
    if dt_s is None:
        dt_s = profile.dt_from_graph(neurons) if profile.dt_from_graph else profile.dt_s
    if dt_s is None:
        raise OptionError(
            f"NIR stores no time step and profile {profile.name!r} does not fix one: pass dt_s (CLI: --dt)", path="dt"
        )
    dt = check_step_s(dt_s)
    if method is None:
        # A cascade and its rule are one update for single-state neurons: name it by the rule there.
        coupled = any(kind in COUPLED_TYPES for kind, _ in neurons.values())
        method = profile.method if coupled else SECTION_RULE[profile.method]
    if method not in METHODS:
        raise OptionError(f"expected one of {', '.join(METHODS)}, got {method!r}", path="method")
    if reset_mode is not None and reset_mode not in RESET_MODES:
        raise OptionError(f"expected one of {', '.join(RESET_MODES)}, got {reset_mode!r}", path="reset_mode")
    if reset_timing is not None and reset_timing not in RESET_TIMINGS:
        raise OptionError(f"expected one of {', '.join(RESET_TIMINGS)}, got {reset_timing!r}", path="reset_timing")
    scale = profile.tau_scale_from_graph(neurons, dt) if profile.tau_scale_from_graph else 1.0
    if max_spikes_per_step is not None and (
        isinstance(max_spikes_per_step, bool) or not isinstance(max_spikes_per_step, int)
        or not 1 <= max_spikes_per_step <= MAX_SPIKES_PER_STEP
    ):  # fmt: skip
        raise OptionError(
            f"expected an int in 1..{MAX_SPIKES_PER_STEP}, got {max_spikes_per_step!r}", path="max_spikes_per_step"
        )
    return Options(dt, method, reset_mode, reset_timing, scale, max_spikes_per_step)


def build_neuron(profile: Profile, kind: str, params: dict[str, np.ndarray], options: Options) -> Node:
    """Build the edgesnn neuron for one NIR neuron node under ``profile``."""
    kwargs: dict[str, Any] = dict(profile.convert(kind, params, options))
    if kind in _SPIKING:
        kwargs["reset_mode"] = options.reset_mode or profile.reset_mode
        kwargs["reset_timing"] = profile.timing_for(kind, options)
        kwargs["max_spikes_per_step"] = options.max_spikes or profile.max_spikes
        kwargs["threshold_inclusive"] = profile.threshold_inclusive or kwargs["max_spikes_per_step"] > 1
    return NEURON_KINDS[kind](**kwargs)
