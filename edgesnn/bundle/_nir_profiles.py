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

from edgesnn.errors import NIRImportError, OptionError, UnsupportedError
from edgesnn.graph import IF, LI, LIF, RESET_MODES, RESET_TIMINGS, Affine, CubaLI, CubaLIF, Integrator, Linear
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
    #: Sinabs LIF input scaling chosen by the user (None: Sinabs's default, True).
    norm_input: bool | None = None


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
    #: Reset timing by NIR neuron type where it differs from ``reset_timing`` (spyx).
    timing_by_kind: tuple[tuple[str, str], ...] = ()
    #: Rewrites the flattened graph (nodes, edges) before it is mapped, at the resolved options:
    #: for wiring an exporter writes with a meaning of its own (spyx).
    rewrite: (
        Callable[[dict[str, Any], list[tuple[str, str]], Options], tuple[dict[str, Any], list[tuple[str, str]]]] | None
    ) = None
    #: Adjusts the built edgesnn nodes (by name) for meanings the exporter's graph carries beyond
    #: NIR's equations, given the edges and the resolved options (snntorch's recurrent layers).
    finish: Callable[[dict[str, Node], list[tuple[str, str]], Options], dict[str, Node]] | None = None
    #: How the framework's inputs reach its states, for :func:`describe_assumptions` ("" = not described).
    inputs: str = ""

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
        return dict(self.timing_by_kind).get(kind, self.reset_timing)


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
    """snnTorch 1.0 (snntorch/export_nir.py; _neurons/leaky.py, synaptic.py, rleaky.py, rsynaptic.py).

    Leaky(beta) is written as LIF(tau = dt/(1-beta), r = tau/dt) with dt = 1e-4,
    Synaptic(alpha, beta) as CubaLIF with w_in = tau_syn/dt: forward Euler at that
    dt gives back mem = beta*mem + x and syn = alpha*syn + x exactly, so the
    parameters are kept; the reset (subtract, one step late: reset_delay=True) is
    restored, and :func:`_snntorch_recurrent` restores what RLeaky/RSynaptic mean.
    """
    return _rename(kind, p)


def _snntorch_recurrent(nodes: dict[str, Node], edges: list[tuple[str, str]], o: Options) -> dict[str, Node]:
    """RLeaky and RSynaptic (a neuron in a loop with a dense layer) as snnTorch runs them.

    snnTorch adds ``recurrent(spk)`` to the input, spk being the previous step's spikes, and
    runs that Linear on zero spikes at the first step: its bias b is added from step 1 on,
    where edgesnn's recurrent edge delivers 0 before the first step. The bias moves to where
    it acts on every step: into an LIF's v_leak (by r b, as (dt/tau) v_leak = b at r = tau/dt),
    or into the dense layer that alone feeds a CubaLIF (the bias enters syn). RLeaky's reset to
    zero, like Synaptic's, zeroes the whole new membrane the step after a spike: "next_step".
    """
    out = dict(nodes)
    for neuron, weight in _snntorch_loops(nodes, edges):
        bias = getattr(nodes[weight], "bias", None)
        if bias is not None and np.any(bias != 0):
            out[weight] = Linear(weight=nodes[weight].weight)  # type: ignore[attr-defined]
            out.update(_snntorch_move_bias(nodes, edges, neuron, weight, np.asarray(bias, np.float64)))
        mode = o.reset_mode or "subtract"
        if isinstance(nodes[neuron], LIF) and mode == "to_value" and o.reset_timing is None:
            out[neuron] = out[neuron].replace(reset_timing="next_step")
    return out


def _snntorch_loops(nodes: dict[str, Node], edges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(neuron, weight) for each dense layer that only takes from and gives to one LIF/CubaLIF."""
    loops = []
    for name, node in nodes.items():
        if not isinstance(node, (Affine, Linear)):
            continue
        preds = {a for a, b in edges if b == name}
        succs = {b for a, b in edges if a == name}
        if len(preds) == 1 and preds == succs and isinstance(nodes[next(iter(preds))], (LIF, CubaLIF)):
            loops.append((next(iter(preds)), name))
    return loops


def _snntorch_move_bias(
    nodes: dict[str, Node], edges: list[tuple[str, str]], neuron: str, weight: str, bias: np.ndarray
) -> dict[str, Node]:
    """The nodes that take over recurrent layer ``weight``'s constant ``bias`` into ``neuron``."""
    cell = nodes[neuron]
    if isinstance(cell, LIF):
        log.info("snntorch: bias of recurrent %s moved into %s's v_leak (snnTorch adds it from step 1)", weight, neuron)
        v_leak = np.asarray(cell.v_leak, np.float64) + np.asarray(cell.r, np.float64) * bias
        return {neuron: cell.replace(v_leak=v_leak)}
    feeds = [a for a, b in edges if b == neuron and a != weight]
    feeder = nodes[feeds[0]] if len(feeds) == 1 else None
    if not isinstance(feeder, (Affine, Linear)) or [b for a, b in edges if a == feeds[0]] != [neuron]:
        raise NIRImportError(
            f"recurrent layer into CubaLIF {neuron} has a bias, which snnTorch adds to the synaptic current from the"
            " first step on; edgesnn's recurrent edge starts at 0 and can carry it only through a Linear/Affine"
            f" layer that alone feeds {neuron} (found: {', '.join(feeds) or 'none'})",
            path=f"nodes/{weight}/bias",
        )
    log.info("snntorch: bias of recurrent %s moved into %s (snnTorch adds it from step 1)", weight, feeds[0])
    own = np.asarray(getattr(feeder, "bias", 0.0), np.float64)
    return {feeds[0]: Affine(weight=feeder.weight, bias=own + bias)}


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
    """Sinabs 3.1 (sinabs/nir.py; layers/functional/lif.py, iaf.py, exp_leak.py, activation/).

    Sinabs has no dt: its taus count steps, alpha = exp(-1/tau), so taus are scaled by dt
    (exact exponential). IAF/IAFSqueeze are written as IF(r = 1) and add x (r = 1/dt); LIF/
    LIFSqueeze as LIF(tau, r = 1), adding (1 - alpha) x with the default norm_input=True: r
    as written; ExpLeak as LI(tau, r = 1), adding x (its norm_input=False): r = 1/(1 - alpha).
    Sinabs writes no CubaLIF or CubaLI; one is read as a Sinabs LIF with tau_syn, whose
    current is i = alpha_syn (i + x): w_in = alpha_syn/(1 - alpha_syn). Spikes fire on
    v >= threshold and subtract it; the default MultiSpike emits floor(v / threshold) of them
    per step. The file says nothing of norm_input (option ``norm_input=False``: LIF adds x),
    min_v_mem, tau_syn of an LIF, SingleSpike (max_spikes_per_step=1) or MembraneReset
    (reset_mode="to_value").
    """
    out = _rename(kind, p)
    if "tau_mem_s" in out:
        tau = p["tau"] if "tau" in p else p["tau_mem"]  # LIF/LI write tau, CubaLIF tau_mem
        out["tau_mem_s"] = tau * o.dt_s
        if kind == "LI" or (kind in ("LIF", "CubaLIF") and o.norm_input is False):
            out["r"] = p["r"] / (1.0 - np.exp(-1.0 / tau))
    if "tau_syn_s" in out:
        out["tau_syn_s"] = p["tau_syn"] * o.dt_s
        syn = np.exp(-1.0 / p["tau_syn"])
        out["w_in"] = p["w_in"] * syn / (1.0 - syn)
        log.warning("Sinabs writes no %s node: reading it as a Sinabs LIF with tau_syn (i = a_syn (i + x))", kind)
    if kind in ("IF", "I"):
        out["r"] = p["r"] / o.dt_s
    return out


def _rockpool(kind: str, p: dict[str, np.ndarray], o: Options) -> dict[str, np.ndarray]:
    """Rockpool 3.1 (rockpool/nn/modules/torch/nir.py; lif_torch.py, lif_neuron_torch.py, exp_syn_torch.py).

    Every node carries dt in r = tau exp(-dt/tau)/dt (see :func:`_rockpool_dt`); the gains
    are 1. LIFTorch is written as CubaLIF(tau_syn, tau_mem, r, v_leak = 0) and runs
    isyn = beta (isyn + x), vmem = alpha vmem + isyn + bias with alpha, beta = exp(-dt/tau):
    exact decays in cascade, w_in = beta/(1 - beta), r = 1/(1 - alpha), and v_leak (which
    Rockpool's importer takes as the bias) = bias/(1 - alpha). LIFNeuronTorch is written as
    LIF and runs vmem = alpha vmem + x + bias: the same membrane without the synapse.
    ExpSynTorch is written as LI and runs isyn = beta (isyn + x): r = beta/(1 - beta).
    Spikes fire on v >= threshold, floor(v / threshold) of them per step (max_spikes_per_dt,
    2**16 by default, capped here at MAX_SPIKES_PER_STEP), and subtract them. The file drops
    the bias, w_rec, max_spikes_per_dt and noise_std.
    """
    out = _rename(kind, p)
    if kind in ("I", "IF"):
        return out  # Rockpool writes none and its importer refuses them: plain NIR
    dt = o.dt_s
    alpha = np.exp(-dt / (p["tau_mem"] if "tau_mem" in p else p["tau"]))
    if kind in ("CubaLI", "CubaLIF"):
        beta = np.exp(-dt / p["tau_syn"])
        out["w_in"] = p["w_in"] * beta / (1.0 - beta)
    if kind in ("CubaLI", "CubaLIF", "LIF"):
        out["r"] = 1.0 / (1.0 - alpha)
        out["v_leak"] = p["v_leak"] / (1.0 - alpha)
    elif kind == "LI":
        out["r"] = alpha / (1.0 - alpha)
    return out


def _rockpool_dt(nodes: dict[str, Any]) -> float | None:
    """Recover Rockpool's dt from r = (tau/dt)*exp(-dt/tau), i.e. u*e^u = 1/r, u = dt/tau.

    The float32 file holds about 7 digits: the estimate is rounded to 6 significant ones.
    """
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
                f"neurons imply different steps dt ({float(dts.min()):g}..{float(dts.max()):g} s); Rockpool writes"
                " r = tau exp(-dt/tau)/dt: pass dt_s if this file is not Rockpool's",
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
    return float(f"{dt:.6g}")


#: NIR node types Sinabs 3.1's and Rockpool 3.1's importers build (sinabs/nir.py, rockpool/nn/modules/torch/nir.py);
#: nirtorch passes a node Sinabs has no module for through unchanged, Rockpool refuses one.
_SINABS_IMPORTS = {"Input", "Output", "Affine", "Conv2d", "SumPool2d", "Flatten", "IF", "LIF", "LI"}
_ROCKPOOL_IMPORTS = {"Input", "Output", "Affine", "Linear", "CubaLIF", "LIF", "LI"}
_GRADED = 1 << 15  # what edgesnn calls unbounded graded spikes (MultiSpike, max_spikes_per_dt)


def sinabs_rockpool_losses(
    dt_s: float, method: str, nodes: dict[str, Node], nir_types: dict[str, str], recurrent: bool
) -> dict[str, list[str]]:
    """What Sinabs's and Rockpool's NIR importers would read differently, by importer (empty ones left out).

    ``nodes`` are the edgesnn nodes by name, ``nir_types`` the NIR type each is written as.
    """
    spiking = any(isinstance(n, (IF, LIF, CubaLIF)) for n in nodes.values())
    # Both pin nir <= 1.0.4, whose IF, LIF and CubaLIF have no v_reset field (nir 1.0.5 added it).
    pin = ['nir <= 1.0.4, which both pin, refuses v_reset fields: write with nir_version="1.0.4" (CLI:'
           " --nir-version 1.0.4)"] if spiking else []  # fmt: skip
    types = set(nir_types.values())
    sinabs = pin + [f"{t} passed through unchanged (no import)" for t in sorted(types - _SINABS_IMPORTS)]
    rockpool = pin + [f"{t} refused (no import)" for t in sorted(types - _ROCKPOOL_IMPORTS)]
    if recurrent:
        sinabs.append("recurrent edges run without their loop")
        rockpool.append("recurrent edges run without their loop (only a CubaLIF subgraph is read as recurrent)")
    for name, node in nodes.items():
        sinabs += [f"{name}: {text}" for text in _sinabs_reads(node, dt_s, method)]
        rockpool += [f"{name}: {text}" for text in _rockpool_reads(node, dt_s, method)]
    out = {"Sinabs 3.1 from_nir": sinabs, "Rockpool 3.1 from_nir": rockpool}
    return {k: v for k, v in out.items() if v}


def _spike_reads(node: Node, framework: str) -> list[str]:
    """How a MultiSpike/max_spikes_per_dt, subtract, v >= threshold importer misreads a spiking node."""
    n: Any = node
    found = [
        (n.reset_mode != "subtract", "reset to v_reset read as subtract"),
        (n.reset_timing != "immediate", "reset one step late read as at once"),
        (not n.threshold_inclusive, "v > threshold read as v >= threshold"),
        (n.max_spikes_per_step < _GRADED, f"at most {n.max_spikes_per_step} spikes per step read as {framework}'s"
                                          " graded spikes"),
        (n.min_spike_interval_s > 0, "minimum spike interval dropped"),
    ]  # fmt: skip
    return [text for applies, text in found if applies]


def _sinabs_reads(node: Node, dt_s: float, method: str) -> list[str]:
    """How Sinabs 3.1's importer misreads one node (IAFSqueeze, LIFSqueeze and ExpLeakSqueeze, taus in steps)."""
    out = []
    if isinstance(node, (LI, LIF)):
        tau = np.asarray(node.tau_mem_s, np.float64)
        if dt_s != 1.0:
            out.append(f"taus read as steps (a step here is {dt_s:g} s, not 1 s)")
        if SECTION_RULE[method] != "zoh":
            out.append("Euler decays read as exact ones")
        if np.any(np.asarray(node.v_leak) != 0):
            out.append("v_leak != 0 refused")
        if isinstance(node, LI):
            out.append("LI read as ExpLeak: r must be 1 and x is added unscaled, not (1 - alpha) x")
        elif not np.allclose(np.asarray(node.r) * (1 - np.exp(-dt_s / tau)), 1.0, rtol=1e-6):
            out.append("r ignored: x added unscaled (needs r = 1/(1 - exp(-dt/tau)))")
    if isinstance(node, IF):
        if not np.allclose(np.asarray(node.r) * dt_s, 1.0, rtol=1e-6):
            out.append("r ignored: x added unscaled (needs r = 1/dt)")
        out.append("membrane clipped at -v_threshold (min_v_mem)")
    if isinstance(node, (IF, LIF)):
        out += _spike_reads(node, "MultiSpike")
    return out


def _rockpool_reads(node: Node, dt_s: float, method: str) -> list[str]:
    """How Rockpool 3.1's importer misreads one node (LIFTorch for CubaLIF, dt = min(tau_mem / (1 + r)))."""
    out = []
    if isinstance(node, LIF):
        out.append("LIF refused (the importer asks it for tau_mem)")
    if isinstance(node, LI):
        out.append("tau truncated to an integer number of seconds")
    if isinstance(node, CubaLIF):
        tau_mem, r = np.asarray(node.tau_mem_s, np.float64), np.asarray(node.r, np.float64)
        alpha, beta = np.exp(-dt_s / tau_mem), np.exp(-dt_s / np.asarray(node.tau_syn_s, np.float64))
        rockpool_dt = float(np.min(tau_mem / (1 + r)))
        if abs(rockpool_dt - dt_s) > 1e-6 * dt_s:
            out.append(f"dt read as min(tau_mem/(1 + r)) = {rockpool_dt:g} s (needs r = tau_mem/dt - 1)")
        elif not np.allclose(np.asarray(node.w_in) * (1 - alpha) * (1 - beta) * r, beta, rtol=1e-6):
            out.append("w_in ignored: unit gains (needs w_in = beta/((1 - alpha)(1 - beta) r))")
        if np.any(np.asarray(node.v_leak) != 0):
            out.append("v_leak read as a bias added every step")
        if method != "cascade":
            out.append(f"{method} read as exact decays in cascade")
        out += _spike_reads(node, "max_spikes_per_dt")
    return out


def _lava_dl(kind: str, p: dict[str, np.ndarray], o: Options) -> dict[str, np.ndarray]:
    """Lava-dl (lava/lib/dl/netx/nir.py of lava-dl's repository, not in the 0.6.0 release; slayer/neuron/cuba.py).

    That converter writes a netx CUBA layer as CubaLIF(tau_syn = 1/iDecay, tau_mem = 1/vDecay,
    r = 1, w_in = tau_syn, v_threshold = vThMant), iDecay and vDecay the file's 12-bit integers,
    and the file's integer weights. CUBA runs i = (1 - iDecay/4096) i + x; v = (1 - vDecay/4096)
    v + i (forward Euler with unit gains), fires on v > threshold (Lava compares v > vth << 6;
    slayer adds 0.01/s_scale to its threshold to match) and resets v to 0. Taus become
    4096*tau*dt; w_in and r are set so that i and v jump by the input. What NIR cannot hold:
    the 12-bit truncation of each decay and Lava's one step per connection (read the netx file
    with :func:`edgesnn.bundle.netx.read_netx` for those).
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


def _spyx(kind: str, p: dict[str, np.ndarray], o: Options) -> dict[str, np.ndarray]:
    """Spyx (spyx/nir.py; spyx/nn.py: IF, LIF, CuBaLIF, RIF, RLIF, RCuBaLIF, PSU_LIF).

    ``to_nir(dt)`` writes LIF(beta) as LIF(tau = dt/(1-beta), r = beta, v_leak = 0),
    CuBaLIF(alpha, beta) as CubaLIF(tau_syn = dt/(1-alpha), tau_mem = dt/(1-beta), r = beta,
    w_in = 1), IF as IF(r = 1) and PSU_LIF's membrane as LI(tau = dt/(1-beta), r = 1). Spyx
    runs V = beta V + x (CuBaLIF: I = alpha I + x, V = beta V + I), beta and alpha clipped to
    [0, 1]: Euler decays with unit gains. beta is read from r, where the file keeps it exactly;
    alpha and LI's beta from tau at Spyx's export dt (``Options.tau_scale`` = dt_s / that dt,
    see :func:`_spyx_tau_scale`). IF adds its input as it is (Spyx's importer ignores r).
    """
    dt = o.dt_s
    if kind in ("I", "CubaLI"):
        raise UnsupportedError(f"Spyx writes no {kind} node and its importer skips one; it has no Spyx meaning")
    if kind == "IF":
        return {**_rename(kind, p), "r": np.full_like(p["r"], 1.0 / dt)}
    out = _rename(kind, p)
    if kind == "LI":
        beta = np.clip(1.0 - (dt / o.tau_scale) / p["tau"], 0.0, 1.0)
    else:
        beta = np.clip(p["r"], 0.0, 1.0)
        if np.any(beta >= 1.0):
            raise OptionError("r (Spyx's beta) is 1 or more: a membrane without leak has no finite tau", path="r")
    out["tau_mem_s"], out["r"] = dt / (1.0 - beta), 1.0 / (1.0 - beta)
    if kind == "CubaLIF":
        alpha = np.clip(1.0 - (dt / o.tau_scale) / p["tau_syn"], 0.0, 1.0)
        out["tau_syn_s"], out["w_in"] = dt / (1.0 - alpha), 1.0 / (1.0 - alpha)
    return out


def _spyx_tau_scale(neurons: dict[str, tuple[str, dict[str, np.ndarray]]], dt: float) -> float:
    """dt_s over Spyx's export dt, which LIF and CubaLIF nodes give as tau (1 - r).

    Every node of one file was written at one dt; the estimate is rounded to 6 significant
    digits (the float32 file holds about 7). A file without LIF or CubaLIF nodes does not
    carry that dt: Spyx's default, 1, is assumed (it matters only to LI nodes).
    """
    found: list[tuple[str, float]] = []
    for name, (kind, p) in neurons.items():
        if kind in ("LIF", "CubaLIF"):
            tau, beta = (p["tau"] if kind == "LIF" else p["tau_mem"]), np.clip(p["r"], 0.0, 1.0)
            found.append((name, float(np.median(tau * (1.0 - beta)))))
    if not found:
        if any(kind == "LI" for kind, _ in neurons.values()):
            log.warning("no LIF or CubaLIF node tells Spyx's export dt; assuming Spyx's default dt = 1 for LI nodes")
        return dt
    export_dt = float(f"{found[0][1]:.6g}")
    for name, other in found:
        if abs(other - export_dt) > 1e-5 * export_dt:
            raise NIRImportError(f"implies Spyx's export dt = {other:g}, {found[0][0]} implies {export_dt:g}",
                                 path=f"nodes/{name}")  # fmt: skip
    return dt / export_dt


def _spyx_rewrite(
    nodes: dict[str, Any], edges: list[tuple[str, str]], o: Options
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Spyx's wiring in NIR terms: recurrent inputs reach the membrane, and spikes leave one step late.

    Spyx writes RIF/RLIF/RCuBaLIF with the layer's input going into the recurrent weight
    (``input -> w_rec``) while it computes ``V += x + W s``: that edge is moved to the
    neuron. Spyx's IF, LIF and CuBaLIF emit ``H(V - threshold)`` of the state before the
    step's update, so each gets a one-step Delay on its way out (not on its own recurrent
    loop, which already closes one step late). Spyx flattens its channels-last (H, W, C)
    tensors: the weights after a Flatten of (C, H, W) get their columns in NIR's order.
    """
    import nir

    rec = _spyx_recurrent(nodes, edges)
    edges = [(a, rec[b]) if b in rec and a != rec[b] else (a, b) for a, b in edges]
    hwc = {b: _spyx_flat_shape(nodes[a]) for a, b in edges if _spyx_flat_shape(nodes[a])}
    out_nodes: dict[str, Any] = {}
    for name, node in nodes.items():
        if name in hwc and type(node).__name__ in ("Linear", "Affine"):
            node = _spyx_chw_columns(nir, node, hwc[name])
        out_nodes[name] = node
        later = [b for a, b in edges if a == name and rec.get(b) != name]
        if type(node).__name__ not in _SPIKING or not later:
            continue
        delay = f"{name}.delay"
        while delay in nodes or delay in out_nodes:
            delay += "_"
        out_nodes[delay] = nir.Delay(delay=np.full(np.shape(node.v_threshold), o.dt_s))
        edges = [(delay, b) if a == name and b in later else (a, b) for a, b in edges] + [(name, delay)]
    return out_nodes, edges


def _spyx_flat_shape(node: Any) -> tuple[int, ...] | None:
    """The (C, H, W) a NIR Flatten node flattens, or None (not a Flatten, or not of three axes)."""
    if type(node).__name__ != "Flatten":
        return None
    shape = tuple(int(v) for v in np.asarray(node.input_type.get("input", ())).reshape(-1))
    return shape if len(shape) == 3 else None


def _spyx_chw_columns(nir: Any, node: Any, chw: tuple[int, ...]) -> Any:
    """The Linear/Affine ``node`` reading a (C, H, W) flattening, from weights written for Spyx's (H, W, C) one."""
    c, h, w = chw
    weight = np.asarray(node.weight)
    if weight.ndim != 2 or weight.shape[1] != c * h * w:
        return node  # not a flattening it reads whole; left for the shape checks to name
    weight = weight.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(weight.shape[0], -1)
    return nir.Linear(weight=weight) if type(node).__name__ == "Linear" else nir.Affine(weight=weight, bias=node.bias)


def _spyx_recurrent(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> dict[str, str]:
    """Recurrent weight -> its neuron, for each Linear/Affine node in a two-node loop with a neuron."""
    pairs = set(edges)
    return {
        w: n for n, w in edges
        if type(nodes[n]).__name__ in NEURON_KINDS and type(nodes[w]).__name__ in ("Linear", "Affine")
        and (w, n) in pairs
    }  # fmt: skip


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
                " current), subtract reset one step late, RLeaky/RSynaptic recurrent bias from the first step,"
                " membranes from 0",
                1e-4, "cascade-euler", "subtract", "next_step", _snntorch, finish=_snntorch_recurrent,
                inputs="inputs added unscaled (mem = beta mem + x, r = tau/dt as snnTorch writes), recurrent bias"
                " from step 1"),
        Profile("norse", "Norse export: dt = 1 ms, tau written as dt*tau (1.1) or tau, Euler decays in cascade,"
                " unit current jumps, reset to v_reset, membranes from v_leak", 1e-3, "cascade-euler", "to_value",
                "immediate", _norse, tau_scale_from_graph=_norse_tau_scale, initial_state="rest",
                inputs="unit current jumps (i += x), IF adds x, membranes start at v_leak"),
        Profile("sinabs", "Sinabs export: taus in steps (one step = dt, 1 ms unless --dt), exact decays in cascade,"
                " IAF and ExpLeak add x, LIF (1 - alpha) x (norm_input=True), v >= v_th, MultiSpike graded spikes"
                " (--max-spikes 1: SingleSpike), subtract reset (--reset to_value: MembraneReset),"
                " membranes from 0", 1e-3, "cascade", "subtract", "immediate", _sinabs, True, MAX_SPIKES_PER_STEP,
                inputs="taus counted in steps of dt; IAF and ExpLeak add x, LIF (1 - alpha) x (norm_input=True);"
                " v >= threshold, MultiSpike graded spikes (--max-spikes 1: SingleSpike; --reset to_value:"
                " MembraneReset)"),
        Profile("rockpool", "Rockpool export: dt read from r = tau exp(-dt/tau)/dt, exact decays in cascade, unit"
                " gains (isyn = beta (isyn + x), v = alpha v + isyn), v >= v_th, graded spikes (max_spikes_per_dt;"
                " --max-spikes 1 for 1), subtract reset, no bias or w_rec (the file drops them), membranes"
                " from 0", None, "cascade", "subtract", "immediate", _rockpool, True, MAX_SPIKES_PER_STEP,
                _rockpool_dt, inputs="dt read from r = tau exp(-dt/tau)/dt; unit gains (isyn = beta (isyn + x),"
                " v = alpha v + isyn); v >= threshold, graded spikes (max_spikes_per_dt; --max-spikes 1: one);"
                " bias and w_rec are not in the file"),
        Profile("lava-dl", "Lava-dl netx export: 12-bit decays per step in cascade, unit jumps, v > v_th, reset"
                " to 0, membranes from 0", 1e-3, "cascade-euler", "to_value", "immediate", _lava_dl),
        Profile("spyx", "Spyx export: dt = 1 ms, beta read from r, Euler decays in cascade at unit gains, v > v_th,"
                " subtract reset (IF/LIF after the decay, CuBaLIF before it), spikes out one step late, membranes"
                " from 0", 1e-3, "cascade-euler", "subtract", "next_step", _spyx, tau_scale_from_graph=_spyx_tau_scale,
                timing_by_kind=(("CubaLIF", "immediate"),), rewrite=_spyx_rewrite),
    )
}  # fmt: skip


#: NIR node types each framework's importer builds (snntorch/import_nir.py, norse/torch/utils/import_nir.py);
#: snnTorch prints a warning for others and Norse leaves them out without one.
_IMPORTED = {
    "snnTorch 1.0 import_from_nir": {"Input", "Output", "Affine", "Linear", "Conv2d", "Flatten", "AvgPool2d", "IF",
                                     "LIF", "CubaLIF"},
    "Norse 1.1 from_nir": {"Input", "Output", "Affine", "Linear", "Conv2d", "Flatten", "SumPool2d", "IF", "LIF",
                           "CubaLIF"},
}  # fmt: skip


def importer_losses(
    dt_s: float, nodes: dict[str, Node], nir_types: dict[str, str], recurrent: bool
) -> dict[str, list[str]]:
    """What snnTorch's and Norse's NIR importers would read differently, by importer (empty ones left out).

    ``nodes`` are the edgesnn nodes by name, ``nir_types`` the NIR type each is written as.
    """
    snn: list[str] = []
    norse: list[str] = []
    if abs(dt_s - 1e-4) > 1e-12:
        snn.append(f"dt 0.1 ms assumed (this model: {dt_s * 1e3:g} ms)")
    if abs(dt_s - 1e-3) > 1e-12:
        norse.append(f"needs from_nir(dt={dt_s:g}) (default 1 ms)")
    if recurrent:
        snn.append("recurrent graphs fail to import")
    if "Flatten" in nir_types.values():
        snn.append("Flatten flattens the batch axis too (batch 1 only)")
        norse.append("Flatten flattens the batch axis too (batch 1 only)")
    for name, node in nodes.items():
        snn += [f"{name}: {text}" for text in _snntorch_reads(node)]
        norse += [f"{name}: {text}" for text in _norse_reads(node, dt_s)]
    out = {}
    for importer, lines in zip(_IMPORTED, (snn, norse), strict=True):
        missing = sorted(set(nir_types.values()) - _IMPORTED[importer])
        lines = ([f"no import for {', '.join(missing)} (left out)"] if missing else []) + lines
        if lines:
            out[importer] = lines
    return out


def _snntorch_reads(node: Node) -> list[str]:
    """How snnTorch 1.0's importer misreads one node (it builds Leaky/Synaptic with reset to zero)."""
    out = []
    if isinstance(node, IF):
        out.append("IF read as a Leaky neuron (beta 0.9)")
    if isinstance(node, (LIF, CubaLIF)) and np.any(np.asarray(node.v_leak) != 0):
        out.append("v_leak != 0 refused")
    if isinstance(node, (IF, LIF, CubaLIF)):
        if node.reset_mode != "to_value" or node.reset_timing != "immediate":
            out.append("reset read as reset to 0 at once")
        if np.any(np.asarray(node.v_reset) != 0):
            out.append("v_reset read as 0")
        if np.ptp(np.asarray(node.v_threshold)) > 0:
            out.append("one threshold per layer needed")
    return out


def _norse_reads(node: Node, dt_s: float) -> list[str]:
    """How Norse 1.1's importer misreads one node (LIFBoxCell, IAFCell; CubaLIF as LIBoxCell into LIFBoxCell)."""
    out = []
    if isinstance(node, (IF, LIF, CubaLIF)):
        if node.reset_timing != "immediate":
            out.append("reset read as immediate")
        if node.reset_mode == "subtract":
            # Its CubaLIF takes from_nir's reset_method; its LIF always resets to the value.
            cuba = isinstance(node, CubaLIF)
            out.append("needs from_nir(reset_method=reset_subtract)" if cuba else "subtract read as reset to 0")
        if np.any(np.asarray(node.v_reset) != 0):
            out.append("v_reset read as 0")
    if isinstance(node, CubaLIF) and np.any(np.asarray(node.v_leak) != 0):
        out.append("v_leak also pulls the synaptic current")
    if isinstance(node, LIF) and np.any(np.asarray(node.r) != 1):
        out.append("r ignored (read as 1)")
    if isinstance(node, IF) and not np.allclose(np.asarray(node.r) * dt_s, 1.0):
        out.append("input added unscaled (needs r = 1/dt)")
    return out


def describe_assumptions(producer: dict[str, Any]) -> str:
    """One line on what a framework profile assumed that the NIR file does not say ("" if none was used)."""
    profile = PROFILES_TABLE.get(str(producer.get("profile")))
    if producer.get("name") != "nir-import" or profile is None or profile.name == "nir":
        return ""
    parts = [
        f"dt {float(producer['dt_s']) * 1e3:g} ms (NIR stores none)",
        f"method {producer['method']}",
        f"reset {producer['reset_mode']} ({producer['reset_timing']})",
    ]
    if producer.get("tau_scale"):
        parts.append(f"time constants scaled by {float(producer['tau_scale']):g} (written as dt*tau)")
    if producer.get("norm_input") is False:
        parts.append("LIF adds x (norm_input=False)")
    if profile.inputs:
        parts.append(profile.inputs)
    return f"read as {profile.name}: {'; '.join(parts)}; change with --dt, --method, --reset, --reset-timing"


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
    norm_input: bool | None = None,
) -> Options:
    """Apply user overrides to the profile's defaults and check them."""
    if norm_input is not None:
        if not isinstance(norm_input, bool):
            raise OptionError(f"expected True or False, got {norm_input!r}", path="norm_input")
        if profile.name != "sinabs":
            raise OptionError(
                f"norm_input is a Sinabs LIF setting; profile {profile.name!r} has none", path="norm_input"
            )
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
    return Options(dt, method, reset_mode, reset_timing, scale, max_spikes_per_step, norm_input)


def build_neuron(profile: Profile, kind: str, params: dict[str, np.ndarray], options: Options) -> Node:
    """Build the edgesnn neuron for one NIR neuron node under ``profile``."""
    kwargs: dict[str, Any] = dict(profile.convert(kind, params, options))
    if kind in _SPIKING:
        kwargs["reset_mode"] = options.reset_mode or profile.reset_mode
        kwargs["reset_timing"] = profile.timing_for(kind, options)
        kwargs["max_spikes_per_step"] = options.max_spikes or profile.max_spikes
        kwargs["threshold_inclusive"] = profile.threshold_inclusive or kwargs["max_spikes_per_step"] > 1
    return NEURON_KINDS[kind](**kwargs)
