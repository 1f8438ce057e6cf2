"""How likely a machine is to fail on a network of N neurons, from this project's own capacity measurements.

Dense bipolar states: ``python -m tools.eval.fsm --parts b`` finds, at each N from 1,000 to
10,000, the machines (a ring plus random edges, one stimulus per edge, N_E = 1, 2 and 4 N_Z) a
network walks correctly half of the time (six random inputs, pass = overlap > 0.5 at the middle
of every phase); they lie on ``N_Z + beta N_E = c N``, and the failure probability of a walk is a
logistic in the load ``(N_Z + beta N_E) / N`` around ``c`` with width ``w``. ``(c, beta, w)`` are
interpolated in log N between the measured N (the nearest measured outside them: optimistic below 1,000). Sparse states:
``--parts c`` finds the critical rings (N_Z = N_E) at the best of four coding levels, which follow
``C = a N^gamma`` for N = 1,000 to 16,000; the failure probability is a logistic in
``log(max(N_Z, N_E) / C)``. Both assume ideal weights and one stimulus per edge (the worst case):
shared symbols, non-ideal weights and a coding level far from the best measured move the real
boundary.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from edgesnn.errors import ModelError
from edgesnn.fsm.compile import CompileOptions
from edgesnn.fsm.spec import FSMSpec

# Measured by `nice -n 10 .venv/bin/python -m tools.eval.fsm --out results/fsm --parts b,c` (results/fsm/fsm.md):
# part b's fits per N for machines with edges, and part c's power law.
#: (N, c, beta, w) of the dense boundary N_Z + beta N_E = c N, failure width w in load.
DENSE_TABLE = (
    (1000, 0.0605, 2.01, 0.0031),
    (2000, 0.0738, 2.20, 0.0043),
    (4000, 0.0844, 2.47, 0.0029),
    (7000, 0.0840, 2.35, 0.0028),
    (10000, 0.0799, 2.18, 0.0023),
)
SPARSE_A = 9.86e-05
SPARSE_GAMMA = 1.96
SPARSE_LOG_WIDTH = 0.315

#: Failure probabilities above which compiling warns, and refuses without ``force``.
WARN_ABOVE = 0.01
REFUSE_ABOVE = 0.5


class CapacityWarning(UserWarning):
    """A machine is near or beyond what its network reliably holds."""


def dense_boundary(n: int) -> tuple[float, float, float]:
    """``(c, beta, w)`` of the dense boundary at ``n`` neurons, interpolated in log N over the measured ones."""
    ns = np.log([row[0] for row in DENSE_TABLE])
    x = math.log(min(max(n, DENSE_TABLE[0][0]), DENSE_TABLE[-1][0]))
    return tuple(float(np.interp(x, ns, [row[i] for row in DENSE_TABLE])) for i in (1, 2, 3))  # type: ignore[return-value]


def failure_probability(n_states: float, n_edges: float, options: CompileOptions) -> float:
    """Predicted probability that a six-input walk of a machine this size fails on ``options``' network."""
    n = options.neurons
    if options.sparse:
        capacity = SPARSE_A * n**SPARSE_GAMMA
        x = math.log(max(n_states, n_edges, 1) / capacity) / SPARSE_LOG_WIDTH
    else:
        c, beta, width = dense_boundary(n)
        x = ((n_states + beta * n_edges) / n - c) / width
    return 1.0 / (1.0 + math.exp(-min(max(x, -700.0), 700.0)))


def check_capacity(spec: FSMSpec, options: CompileOptions, *, force: bool = False) -> float:
    """The predicted failure probability of ``spec`` on ``options``' network; warn above 1 %, refuse above 50 %.

    Refusing is a ModelError naming the sizes and the neurons that would hold the machine;
    ``force`` turns it into a warning.
    """
    p = failure_probability(len(spec.states), len(spec.transitions), options)
    if p <= WARN_ABOVE:
        return p
    kind = f"sparse (coding {options.coding:g})" if options.sparse else "dense"
    need = neurons_for(len(spec.states), len(spec.transitions), options)
    text = (f"{len(spec.states)} states and {len(spec.transitions)} transitions on {options.neurons} {kind} neurons:"
            f" predicted walk failure probability {p:.0%}; about {need} neurons keep it under"
            f" {WARN_ABOVE:.0%}")  # fmt: skip
    if p > REFUSE_ABOVE and not force:
        raise ModelError(f"beyond capacity: {text} (--force compiles it anyway)", path="neurons")
    warnings.warn(CapacityWarning(f"near capacity: {text}" if p <= REFUSE_ABOVE else f"beyond capacity: {text}"),
                  stacklevel=2)  # fmt: skip
    return p


def neurons_for(n_states: int, n_edges: int, options: CompileOptions, target: float = WARN_ABOVE) -> int:
    """About the fewest neurons (2 significant digits, rounded up) predicted to fail less often than ``target``."""
    n = options.neurons
    while n < 10**9 and failure_probability(n_states, n_edges, _with_neurons(options, n)) > target:
        n = int(n * 1.25) + 1
    step = 10 ** max(0, len(str(n)) - 2)
    return -(-n // step) * step  # rounded up to two significant digits


def _with_neurons(options: CompileOptions, n: int) -> CompileOptions:
    import dataclasses

    coding = options.coding
    if options.sparse:  # keep the number of winners: coding levels fall as N grows (the measured optimum does)
        coding = min(0.49, options.active / n)
    return dataclasses.replace(options, neurons=n, coding=coding)


__all__ = ["CapacityWarning", "check_capacity", "dense_boundary", "failure_probability", "neurons_for"]
