"""The example walk (part a): 8 states, 16 edges, N = 10,000, under each non-ideality of the paper.

The machine is ours (the paper's Greek-gods graph is not reproduced): eight states, each with
two outgoing edges, ``next`` around a ring and ``jump`` to ``3 i + 1 mod 8``; states 0, 3 and 6
carry an output. The walk crosses all 16 edges once (an Euler circuit). Every condition runs
in the reference simulation and in the edgesnn CPU engine (the compiled model, one session).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgesnn import limits
from edgesnn.fsm import CompileOptions, FSMSpec, Transition, compile_fsm, decode, hops, schedule, simulate, to_model
from edgesnn.fsm.model import run_symbols

GODS = ("zeus", "hera", "athena", "apollo", "artemis", "ares", "hermes", "hades")

#: (name, options beyond N and the seed, hold steps per phase)
CONDITIONS: tuple[tuple[str, dict[str, Any], int], ...] = (
    ("ideal", {}, 10),
    ("binary, noise sigma 2", {"weights": "binary", "noise_sigma": 2.0}, 10),
    ("binary, noise sigma 5", {"weights": "binary", "noise_sigma": 5.0}, 10),
    ("ternary, 98 % sparse", {"weights": "ternary", "sparsity": 0.98}, 10),
    ("ternary, 99 % sparse", {"weights": "ternary", "sparsity": 0.99}, 10),
    # The same budgets kept per neuron: every unit its own 2 % or 1 % strongest inputs (a fixed fan-in).
    ("ternary, 98 % sparse per neuron", {"weights": "ternary", "sparsity": 0.98, "sparsity_scope": "neuron"}, 10),
    ("ternary, 99 % sparse per neuron", {"weights": "ternary", "sparsity": 0.99, "sparsity_scope": "neuron"}, 10),
    ("10 % asynchronous updates", {"update_probability": 0.1}, 40),
)


def example_spec() -> FSMSpec:
    """Eight states, two symbols, sixteen edges; three states with an output."""
    trans = []
    for i, g in enumerate(GODS):
        trans.append(Transition(g, "next", GODS[(i + 1) % 8]))
        trans.append(Transition(g, "jump", GODS[(3 * i + 1) % 8]))
    outputs = {GODS[0]: ("thunder",), GODS[3]: ("lyre",), GODS[6]: ("thunder", "lyre")}
    return FSMSpec(GODS, ("next", "jump"), tuple(trans), GODS[0], outputs)


def euler_walk(spec: FSMSpec) -> list[str]:
    """Symbols of a walk from the initial state crossing every edge once (Hierholzer)."""
    out: dict[str, list[Transition]] = {s: [t for t in spec.transitions if t.source == s] for s in spec.states}
    stack: list[tuple[str, str | None]] = [(spec.initial, None)]
    path: list[str] = []
    while stack:
        state, sym = stack[-1]
        if out[state]:
            t = out[state].pop(0)
            stack.append((t.target, t.symbol))
        else:
            stack.pop()
            if sym is not None:
                path.append(sym)
    return path[::-1]


def run_condition(spec: FSMSpec, symbols: list[str], n: int, seed: int, extra: dict[str, Any], hold: int,
                  engine: bool = True) -> dict[str, Any]:  # fmt: skip
    """Reference and engine runs of one condition: walk correctness, overlaps at mid-phase, their agreement."""
    opts = CompileOptions(neurons=n, seed=seed, hold_steps=hold, **extra)
    t0 = time.perf_counter()
    net = compile_fsm(spec, opts)
    compile_s = time.perf_counter() - t0
    stim = schedule(spec, symbols, hold)
    t0 = time.perf_counter()
    ref = simulate(net, stim, keep_states=False, dtype=np.float32)
    ref_s = time.perf_counter() - t0
    walk = hops(spec, symbols, decode(ref.overlaps, net.attractors), hold)
    expected = spec.walk(symbols)
    # Overlap with the attractor the machine should be in, at the middle of every phase.
    want = []
    for i, _ in enumerate(symbols):
        j = next(k for k, t in enumerate(spec.transitions) if t.source == expected[i] and t.symbol == symbols[i])
        want += [spec.states.index(expected[i]), len(spec.states) + j, spec.states.index(expected[i + 1])]
    mids = np.array([p * hold + hold // 2 for p in range(len(want))])
    mid_overlaps = ref.overlaps[mids, want]
    result: dict[str, Any] = {
        "options": {k: v for k, v in vars(opts).items()},
        "walk_correct": all(h.ok for h in walk),
        "hops_correct": sum(h.ok for h in walk),
        "hops": len(walk),
        "phases_passed": int(np.sum(mid_overlaps > 0.5)),
        "phases": len(want),
        "min_mid_overlap": float(mid_overlaps.min()),
        "mean_mid_overlap": float(mid_overlaps.mean()),
        "compile_s": compile_s,
        "reference_s": ref_s,
        "overlaps": ref.overlaps.astype(np.float32),
    }
    if engine:
        model = to_model(net)
        with limits.override(node_elements=max(limits.current().node_elements, 2 * n * n),
                             session_bytes=max(limits.current().session_bytes, 16 * n * n + (1 << 30))):  # fmt: skip
            t0 = time.perf_counter()
            outs, engine_walk = run_symbols(model, symbols, hold_steps=hold)
            result["engine_s"] = time.perf_counter() - t0
        eng = outs["out_overlaps"]
        result["engine_walk_correct"] = all(h.ok for h in engine_walk)
        result["engine_same_walk"] = [h.target for h in engine_walk] == [h.target for h in walk] and [
            h.edge for h in engine_walk
        ] == [h.edge for h in walk]
        result["engine_same_decoded_steps"] = decode(eng, net.attractors) == decode(ref.overlaps, net.attractors)
        result["engine_max_overlap_diff"] = float(np.max(np.abs(eng - ref.overlaps)))
    return result


#: Loihi programs of the example machine (see edgesnn.fsm.loihi): (name, options, neurons). Exact Loihi
#: numerics need every unit's drive under 1024: binary weights up to N = 1024, sparse ternary ones beyond.
LOIHI_CONDITIONS: tuple[tuple[str, dict[str, Any], int], ...] = (
    ("ternary, 98 % sparse", {"weights": "ternary", "sparsity": 0.98}, 10_000),
    ("ternary, 99 % sparse per neuron", {"weights": "ternary", "sparsity": 0.99, "sparsity_scope": "neuron"}, 10_000),
)


def run_loihi_condition(spec: FSMSpec, symbols: list[str], n: int, seed: int, extra: dict[str, Any]) -> dict[str, Any]:
    """The example walk in the runtime's Loihi numerics (the integers Lava runs) against the float reference."""
    from edgesnn.fsm.loihi import to_loihi_model

    opts = CompileOptions(neurons=n, seed=seed, **extra)
    net = compile_fsm(spec, opts)
    ref = simulate(net, schedule(spec, symbols, opts.hold_steps), keep_states=False, dtype=np.float32)
    ref_walk = hops(spec, symbols, decode(ref.overlaps, net.attractors), opts.hold_steps)
    t0 = time.perf_counter()
    with limits.override(node_elements=max(limits.current().node_elements, 2 * n * n),
                         session_bytes=max(limits.current().session_bytes, 64 * n * n + (1 << 30))):  # fmt: skip
        outs, walk = run_symbols(to_loihi_model(net), symbols)
    return {
        "neurons": n,
        "options": extra,
        "reference_walk_correct": all(h.ok for h in ref_walk),
        "loihi_walk_correct": all(h.ok for h in walk),
        "loihi_hops_correct": sum(h.ok for h in walk),
        "hops": len(walk),
        "same_states_as_reference": [h.target for h in walk] == [h.target for h in ref_walk],
        "loihi_s": time.perf_counter() - t0,
    }
