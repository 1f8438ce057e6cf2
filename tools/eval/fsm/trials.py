"""Random machines and pass/fail walks for the capacity figures (Cotteret et al. 2024, section on capacity).

A random machine has ``n_states`` states on a ring plus ``n_edges - n_states`` random edges, each
edge with a symbol of its own (the worst case: no two edges share a stimulus). A trial walks
``length`` random edges from the initial state, each input held as none / s_a / s_b for
``hold`` steps, and passes when the overlap with the expected attractor exceeds 0.5 at the
middle of every phase (the paper's criterion). It stops at the first phase that fails.
"""

from __future__ import annotations

import numpy as np

from edgesnn.fsm import CompileOptions, FSMNetwork, FSMSpec, Transition, compile_fsm
from edgesnn.fsm.simulate import NONE
from edgesnn.graph.units import kwta


def random_fsm(n_states: int, n_edges: int, rng: np.random.Generator) -> FSMSpec:
    """A ring of ``n_states`` plus random edges up to ``n_edges``, one symbol per edge."""
    if n_edges < n_states:
        raise ValueError(f"a ring of {n_states} states needs at least as many edges, got {n_edges}")
    states = tuple(f"q{i}" for i in range(n_states))
    ends = [(i, (i + 1) % n_states) for i in range(n_states)]
    extra = n_edges - n_states
    ends += list(zip(rng.integers(0, n_states, extra), rng.integers(0, n_states, extra), strict=True))
    trans = tuple(Transition(states[a], f"s{j}", states[b]) for j, (a, b) in enumerate(ends))
    return FSMSpec(states, tuple(t.symbol for t in trans), trans)


def random_walks(spec: FSMSpec, rng: np.random.Generator, length: int, walks: int) -> np.ndarray:
    """Transition indices (walks, length) of random walks from the initial state."""
    index = {s: i for i, s in enumerate(spec.states)}
    out_edges: dict[int, list[int]] = {}
    for j, t in enumerate(spec.transitions):
        out_edges.setdefault(index[t.source], []).append(j)
    paths = np.empty((walks, length), np.int64)
    for w in range(walks):
        cur = index[spec.initial]
        for i in range(length):
            paths[w, i] = j = int(rng.choice(out_edges[cur]))
            cur = index[spec.transitions[j].target]
    return paths


def walks_pass(net: FSMNetwork, paths: np.ndarray, hold: int = 10) -> np.ndarray:
    """Which walks (bool (walks,)) keep overlap > 0.5 with the expected attractor at the middle of every phase.

    All walks step at once (one matrix product per step), by the update rule of
    :func:`edgesnn.fsm.simulate` (tests hold the two equal); a walk is judged at its first failure.
    """
    spec, n = net.spec, net.n
    index = {s: i for i, s in enumerate(spec.states)}
    symbol = {s: i for i, s in enumerate(spec.symbols)}
    walks = len(paths)
    cur = np.full(walks, index[spec.initial])
    alive = np.ones(walks, bool)
    z = np.repeat(net.patterns[cur[:1]].T, walks, axis=1)  # (N, walks)
    u, vt, d = net.u, np.ascontiguousarray(net.v.T), net.d[:, None]
    masks = (net.stimuli > 0).astype(np.float32)
    for hop in range(paths.shape[1]):
        edge = paths[:, hop]
        nxt = np.array([index[spec.transitions[j].target] for j in edge])
        sym = np.array([symbol[spec.transitions[j].symbol] for j in edge])
        for phase, want in enumerate((cur, len(spec.states) + edge, nxt)):
            mask = np.ones((n, walks), np.float32) if phase == 0 else masks[2 * sym + phase - 1].T
            for t in range(hold):
                y = z * mask
                h = u @ (vt @ y) - d * y
                if net.options.sparse:
                    z = kwta(h.T, net.options.active).T
                else:
                    z = np.where(h >= 0, np.float32(1), np.float32(-1))
                if t == hold // 2:
                    alive &= net.overlaps(z.T)[np.arange(walks), want] > 0.5
            if not alive.any():
                return alive
        cur = nxt
    return alive


def trial(n: int, n_states: int, n_edges: int, seed: int, *, coding: float = 0.0, length: int = 6,
          hold: int = 10, walks: int = 1) -> float:  # fmt: skip
    """One random machine on ``n`` neurons and ``walks`` random walks on it; the fraction of walks that pass."""
    rng = np.random.default_rng([seed, n, n_states, n_edges, int(coding * 1e6)])
    spec = random_fsm(n_states, n_edges, rng)
    net = compile_fsm(spec, CompileOptions(neurons=n, coding=coding, seed=seed, hold_steps=hold))
    return float(walks_pass(net, random_walks(spec, rng, length, walks), hold).mean())


def sparse_trial(n: int, n_states: int, k: int, seed: int, *, n_edges: int | None = None, length: int = 6,
                 hold: int = 10) -> bool:  # fmt: skip
    """As :func:`trial` for sparse states with ``k`` winners, in sparse factors (:mod:`tools.eval.fsm.sparse`)."""
    from tools.eval.fsm.sparse import SparseMachine

    n_edges = n_states if n_edges is None else n_edges
    rng = np.random.default_rng([seed, n, n_states, n_edges, k, 7])
    spec = random_fsm(n_states, n_edges, rng)
    m = SparseMachine(spec, n, k, seed)
    out_edges: dict[int, list[int]] = {}
    for j, a in enumerate(m.src):
        out_edges.setdefault(int(a), []).append(j)
    active = np.sort(m.support[0])
    cur, mid = 0, hold // 2
    for _ in range(length):
        j = int(rng.choice(out_edges[cur]))
        nxt = int(m.dst[j])
        stim = np.array([NONE] * hold + [m.stim_a[j]] * hold + [m.stim_b[j]] * hold)
        overlaps, active = m.run(stim, active)
        for phase, want in enumerate((cur, n_states + j, nxt)):
            if overlaps[phase * hold + mid, want] <= 0.5:
                return False
        cur = nxt
    return True


def attractor_trial(n: int, n_states: int, seed: int, *, length: int = 6, hold: int = 10) -> bool:
    """A machine without edges (N_E = 0): started in a state, does it stay there (overlap > 0.5 at every mid-phase)?

    The weights are the construction's autoassociative part alone, ``W = sum_nu x x^T`` with a
    zero diagonal (``x_i^2 = 1``, so the diagonal is ``N_Z``); no input is applied for
    ``length`` hops of three phases.
    """
    rng = np.random.default_rng([seed, n, n_states, 0, 0, 3])
    x = (rng.integers(0, 2, (n_states, n), dtype=np.int8) * 2 - 1).astype(np.float32)
    z = x[0].copy()
    for t in range(3 * hold * length):
        h = x.T @ (x @ z) - n_states * z
        z = np.where(h >= 0, 1.0, -1.0).astype(np.float32)
        if t % hold == hold // 2 and float(x[0] @ z) / n <= 0.5:
            return False
    return True
