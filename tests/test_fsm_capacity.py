"""The capacity check: silent well inside, a warning near the boundary, an error beyond it unless forced."""

from __future__ import annotations

import warnings

import pytest

from edgesnn.errors import ModelError
from edgesnn.fsm import CompileOptions, FSMSpec, Transition
from edgesnn.fsm import capacity as cap


def ring(n: int) -> FSMSpec:
    states = tuple(f"q{i}" for i in range(n))
    trans = tuple(Transition(states[i], f"s{i}", states[(i + 1) % n]) for i in range(n))
    return FSMSpec(states, tuple(t.symbol for t in trans), trans)


def ring_at_load(load: float, n: int) -> FSMSpec:
    """A ring whose load (N_Z + beta N_E) / N is about ``load`` on ``n`` dense neurons."""
    beta = cap.dense_boundary(n)[1]
    return ring(max(2, round(load * n / (1 + beta))))


def test_the_boundary_is_the_measured_one_between_and_beyond_the_measured_sizes() -> None:
    assert cap.dense_boundary(4000) == cap.DENSE_TABLE[2][1:]
    assert cap.dense_boundary(100_000) == cap.DENSE_TABLE[-1][1:]
    c, beta, _ = cap.dense_boundary(3000)
    assert min(cap.DENSE_TABLE[1][1], cap.DENSE_TABLE[2][1]) <= c <= max(cap.DENSE_TABLE[1][1], cap.DENSE_TABLE[2][1])


def test_the_failure_probability_rises_through_one_half_at_the_fitted_boundary() -> None:
    opts = CompileOptions(neurons=4000)
    c, beta, w = cap.dense_boundary(4000)
    at = c * 4000 / (1 + beta)
    assert abs(cap.failure_probability(at, at, opts) - 0.5) < 1e-9
    width = w * 4000 / (1 + beta)  # in states, along N_Z = N_E
    below, above = (cap.failure_probability(s, s, opts) for s in (at - 5 * width, at + 5 * width))
    assert below < 0.01 and above > 0.99
    sparse = CompileOptions(neurons=4000, coding=0.02)
    c = cap.SPARSE_A * 4000**cap.SPARSE_GAMMA
    assert abs(cap.failure_probability(c, c, sparse) - 0.5) < 1e-9


def test_inside_is_silent_near_warns_beyond_refuses() -> None:
    n = 3000
    opts = CompileOptions(neurons=n)
    c, _, w = cap.dense_boundary(n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cap.check_capacity(ring_at_load(0.6 * c, n), opts) < 0.01

    near = ring_at_load(c - w, n)
    with pytest.warns(cap.CapacityWarning, match=r"near capacity: \d+ states and \d+ transitions on 3000 dense neurons:"
                      r" predicted walk failure probability \d+%; about \d+ neurons keep it under 1%"):  # fmt: skip
        p = cap.check_capacity(near, opts)
    assert 0.01 < p <= 0.5

    far = ring_at_load(1.5 * c, n)
    with pytest.raises(ModelError, match=r"^neurons: beyond capacity: .* \(--force compiles it anyway\)"):
        cap.check_capacity(far, opts)
    with pytest.warns(cap.CapacityWarning, match="beyond capacity"):
        assert cap.check_capacity(far, opts, force=True) > 0.5


def test_the_neurons_it_suggests_do_hold_the_machine() -> None:
    spec = ring_at_load(1.5 * cap.dense_boundary(3000)[0], 3000)
    need = cap.neurons_for(len(spec.states), len(spec.transitions), CompileOptions(neurons=3000))
    assert cap.failure_probability(len(spec.states), len(spec.transitions), CompileOptions(neurons=need)) <= 0.01
