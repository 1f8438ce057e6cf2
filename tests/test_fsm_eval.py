"""The evaluation's fast paths hold to the reference: batched walks and the sparse-factor machine."""

from __future__ import annotations

import numpy as np
import pytest

from edgesnn.fsm import CompileOptions, compile_fsm, simulate
from edgesnn.fsm.simulate import NONE
from tools.eval.fsm.capacity import critical_size, fit_boundary, fit_power
from tools.eval.fsm.sparse import check_against_reference
from tools.eval.fsm.trials import random_fsm, random_walks, walks_pass


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """One BLAS thread, as the engine uses: on a loaded 2-core machine more threads make small products slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def reference_pass(net, path: np.ndarray, hold: int = 10) -> bool:
    spec = net.spec
    z = net.patterns[0]
    cur = 0
    for j in path:
        t = spec.transitions[j]
        k = spec.symbols.index(t.symbol)
        tr = simulate(net, np.array([NONE] * hold + [2 * k] * hold + [2 * k + 1] * hold), initial=z)
        nxt = spec.states.index(t.target)
        if any(tr.overlaps[p * hold + hold // 2, w] <= 0.5 for p, w in enumerate((cur, len(spec.states) + j, nxt))):
            return False
        z, cur = tr.states[-1], nxt
    return True


def test_batched_walks_judge_each_walk_as_the_reference_does() -> None:
    for n, n_states, coding, seed in ((300, 5, 0.0, 2), (400, 8, 0.1, 2)):  # near capacity: some walks fail
        rng = np.random.default_rng(seed)
        spec = random_fsm(n_states, 2 * n_states, rng)
        net = compile_fsm(spec, CompileOptions(neurons=n, coding=coding, seed=seed))
        paths = random_walks(spec, rng, 4, 6)
        expect = [reference_pass(net, p) for p in paths]
        assert 0 < sum(expect) < len(expect)
        np.testing.assert_array_equal(walks_pass(net, paths), expect)


def test_sparse_factors_give_the_compilers_weights() -> None:
    assert check_against_reference(0) < 1e-5  # W y up to one shift for all units, which k-WTA ignores


def test_critical_size_and_fits_recover_known_laws() -> None:
    crit, seen = critical_size(lambda size, seed: size + seed < 50, 4, 8, seeds=2, ratio=1.02)
    assert 48 <= crit <= 50 and seen[0] == (4, 1.0)
    rows = [{"n": n, "states": 0.1 * n / (1 + 2.2 * r), "edges": r * 0.1 * n / (1 + 2.2 * r)} for n in (1e3, 4e3)
            for r in (0, 1, 3)]  # fmt: skip
    fit = fit_boundary(rows)
    assert abs(fit["c"] - 0.1) < 1e-9 and abs(fit["beta"] - 2.2) < 1e-9
    assert abs(fit_power([1e3, 1e4, 1e5], [5.0, 5.0 * 10**1.9, 5.0 * 100**1.9])["gamma"] - 1.9) < 1e-9
