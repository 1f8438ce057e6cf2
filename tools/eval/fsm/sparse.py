r"""Sparse-state machines at scale: the construction of :mod:`edgesnn.fsm.compile` in sparse factors.

For N up to tens of thousands and machines of thousands of states, neither ``W`` (N x N) nor
its dense factors fit; this module keeps every term of the same ``W`` in scipy sparse
matrices, and draws the bipolar stimuli from a counter hash instead of storing them:

.. math::
    W y = \sum_p \bar p\,(\bar p \cdot y) + \sum_\eta H(s_a)(e - x)\,\big((\bar x \circ s_a) \cdot y\big)
          + H(s_b)(y' - e)\,\big((\bar e \circ s_b) \cdot y\big) - d \circ y, \qquad \bar p = p - f

On the left of the auto terms, :math:`\bar p = p - f` differs from :math:`p` by a constant
vector, which adds the same value to every unit's input and so never changes the k winners;
those columns therefore are the 0/1 patterns themselves. :func:`check_against_reference` holds this against
:func:`edgesnn.fsm.simulate.simulate` on a small machine.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from edgesnn.fsm import CompileOptions, FSMSpec, compile_fsm
from edgesnn.fsm.simulate import NONE
from edgesnn.graph.units import kwta

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


class SparseMachine:
    """One random-stimulus machine of ``n`` neurons with ``k`` winners, in sparse factors."""

    def __init__(self, spec: FSMSpec, n: int, k: int, seed: int) -> None:
        rng = np.random.default_rng([seed, n, k, 0x5A])
        self.spec, self.n, self.k, self.f = spec, n, k, k / n
        self.key = np.uint64(int(rng.integers(0, 2**62)))
        states = {s: i for i, s in enumerate(spec.states)}
        n_p = len(spec.states) + len(spec.transitions)
        self.support = np.stack([rng.choice(n, k, replace=False) for _ in range(n_p)])  # (P, k)
        rows = self.support.reshape(-1)
        cols = np.repeat(np.arange(n_p), k)
        self.x = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n, n_p))
        self.x_csc = self.x.tocsc()
        e_count = len(spec.transitions)
        self.src = np.array([states[t.source] for t in spec.transitions], np.int64)
        self.dst = np.array([states[t.target] for t in spec.transitions], np.int64)
        self.edge = len(spec.states) + np.arange(e_count)
        sym = {s: j for j, s in enumerate(spec.symbols)}
        self.stim_a = np.array([2 * sym[t.symbol] for t in spec.transitions], np.int64)
        self.stim_b = self.stim_a + 1
        self.n_stimuli = 2 * len(spec.symbols)
        # V side, sparse part: s_a on the source's support, s_b on the edge attractor's.
        self.va = self._signed(self.src, self.stim_a)
        self.vb = self._signed(self.edge, self.stim_b)
        # U side: H(s_a) (e - x) and H(s_b) (y' - e), each on the union of the two supports.
        self.ua = self._hetero(self.edge, self.src, self.stim_a)
        self.ub = self._hetero(self.dst, self.edge, self.stim_b)
        self.d = self._diagonal()

    def stimulus(self, which: np.ndarray, neurons: np.ndarray) -> np.ndarray:
        """+-1 int8 of stimuli ``which`` (m,) at ``neurons`` (j,): (m, j)."""
        idx = which.astype(np.uint64)[:, None] * np.uint64(self.n) + neurons.astype(np.uint64)[None, :]
        bits = _mix(_mix(idx ^ self.key) + self.key) >> np.uint64(63)
        return (bits.astype(np.int8) * 2 - 1).astype(np.int8)

    def _signed(self, pats: np.ndarray, stims: np.ndarray) -> sp.csr_matrix:
        sup = self.support[pats]  # (E, k)
        vals = self._stim_pairs(np.repeat(stims, self.k), sup.reshape(-1))
        cols = np.repeat(np.arange(len(pats)), self.k)
        return sp.csr_matrix((vals.astype(np.float32), (sup.reshape(-1), cols)), shape=(self.n, len(pats)))

    def _hetero(self, to: np.ndarray, frm: np.ndarray, stims: np.ndarray) -> sp.csr_matrix:
        idx = np.concatenate([self.support[to], self.support[frm]], axis=1).reshape(-1)  # (E * 2k,)
        val = np.tile(np.concatenate([np.ones(self.k), -np.ones(self.k)]), len(to))
        cols = np.repeat(np.arange(len(to)), 2 * self.k)
        keep = self._stim_pairs(np.repeat(stims, 2 * self.k), idx) > 0
        # Where the two supports share a neuron, +1 and -1 sum to 0, as (to - from) does.
        return sp.csr_matrix((val[keep].astype(np.float32), (idx[keep], cols[keep])), shape=(self.n, len(to)))

    def _diagonal(self) -> np.ndarray:
        f = self.f
        count = np.asarray(self.x.sum(axis=1)).ravel()
        d = (1 - 2 * f) * count + self.x.shape[1] * f * f
        # Hetero terms: U_ia V_ia = H(s)_i (to_i - from_i) (from_i - f) s_i, non-zero on the two supports only.
        for ua, frm, stims in ((self.ua, self.src, self.stim_a), (self.ub, self.edge, self.stim_b)):
            coo = ua.tocoo()
            from_member = np.asarray(self.x_csc[coo.row, frm[coo.col]]).ravel()
            s = self._stim_pairs(stims[coo.col], coo.row)
            np.add.at(d, coo.row, coo.data * (from_member - f) * s)
        return d

    def _stim_pairs(self, which: np.ndarray, neurons: np.ndarray) -> np.ndarray:
        idx = which.astype(np.uint64) * np.uint64(self.n) + neurons.astype(np.uint64)
        bits = _mix(_mix(idx ^ self.key) + self.key) >> np.uint64(63)
        return bits.astype(np.float64) * 2 - 1

    def drive(self, active: np.ndarray) -> np.ndarray:
        """``W y`` (up to one constant for all units) for the 0/1 vector y with ones at ``active``."""
        f = self.f
        c_auto = np.asarray(self.x[active].sum(axis=0)).ravel() - f * len(active)  # (p - f) . y
        sums = self.stimulus(np.arange(self.n_stimuli), active).sum(axis=1, dtype=np.float64)  # s . y
        c_a = np.asarray(self.va[active].sum(axis=0)).ravel() - f * sums[self.stim_a]
        c_b = np.asarray(self.vb[active].sum(axis=0)).ravel() - f * sums[self.stim_b]
        u = self.x @ c_auto + self.ua @ c_a + self.ub @ c_b
        u[active] -= self.d[active]
        return u

    def run(self, stimulus: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Step through ``stimulus`` (T,) from the units ``active``; return overlaps (T, P) and the last active set."""
        out = np.empty((len(stimulus), self.x.shape[1]))
        for t, s in enumerate(stimulus):
            y = active if s == NONE else active[self.stimulus(np.array([s]), active)[0] > 0]
            u = self.drive(y)
            active = np.sort(np.flatnonzero(kwta(u[None, :], self.k)[0]))
            out[t] = (np.asarray(self.x[active].sum(axis=0)).ravel() - self.f * self.k) / (self.k * (1 - self.f))
        return out, active


def check_against_reference(seed: int = 0) -> float:
    """Largest difference of ``W y`` between this module and edgesnn.fsm's dense construction (shift removed)."""
    from tools.eval.fsm.trials import random_fsm

    rng = np.random.default_rng(seed)
    spec = random_fsm(6, 9, rng)
    m = SparseMachine(spec, 300, 12, seed)
    net = compile_fsm(spec, CompileOptions(neurons=300, coding=12 / 300, seed=seed))
    # Put this module's vectors into the compiled network, then compare W y on random sparse y.
    pats = np.zeros((m.x.shape[1], 300), np.float32)
    pats[np.repeat(np.arange(m.x.shape[1]), 12), m.support.reshape(-1)] = 1
    stims = m.stimulus(np.arange(m.n_stimuli), np.arange(300))
    from edgesnn.fsm.compile import build_factors

    u, v, d = build_factors(spec, net.options, pats, stims)
    worst = 0.0
    for _ in range(5):
        active = np.sort(rng.choice(300, 6, replace=False))
        y = np.zeros(300)
        y[active] = 1
        ref = u.astype(np.float64) @ (v.T.astype(np.float64) @ y) - d * y
        mine = m.drive(active)
        shift = mine - ref
        worst = max(worst, float(np.ptp(shift)))
    return worst
