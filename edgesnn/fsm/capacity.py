"""How likely a machine is to fail on a network of N neurons, from this project's own capacity measurements.

Dense bipolar states: the critical machines of ``python -m tools.eval.fsm --parts b`` (random
machines, a ring plus random edges with one stimulus each, walks of six inputs, pass = overlap
> 0.5 at the middle of every phase; N = 1,000 to 10,000) lie on ``N_Z + beta N_E = c N``; the
failure probability of a walk is a logistic in the load ``(N_Z + beta N_E) / N`` around ``c``
with width ``w``. Sparse states: the critical rings of ``--parts c`` follow ``C = a N^gamma``
at the best coding level measured; the failure probability is a logistic in
``log(max(N_Z, N_E) / C)``. Both assume ideal weights and one stimulus per edge (the worst
case): shared symbols and a coding level far from the best measured shift the real boundary.
"""

from __future__ import annotations

import math
import warnings

from edgesnn.errors import ModelError
from edgesnn.fsm.compile import CompileOptions
from edgesnn.fsm.spec import FSMSpec

# Fitted by `nice -n 10 .venv/bin/python -m tools.eval.fsm --out results/fsm --parts b,c` (results/fsm/fsm.json):
# part b, "machines with edges" fit, and part c's power law; see the report of issue 24.
DENSE_C = 0.0498
DENSE_BETA = 1.354
DENSE_WIDTH = 0.004
SPARSE_A = 1.0e-4
SPARSE_GAMMA = 2.0
SPARSE_LOG_WIDTH = 0.1

#: Failure probabilities above which compiling warns, and refuses without ``force``.
WARN_ABOVE = 0.01
REFUSE_ABOVE = 0.5


class CapacityWarning(UserWarning):
    """A machine is near or beyond what its network reliably holds."""


def failure_probability(n_states: int, n_edges: int, options: CompileOptions) -> float:
    """Predicted probability that a six-input walk of a machine this size fails on ``options``' network."""
    n = options.neurons
    if options.sparse:
        capacity = SPARSE_A * n**SPARSE_GAMMA
        x = math.log(max(n_states, n_edges, 1) / capacity) / SPARSE_LOG_WIDTH
    else:
        load = (n_states + DENSE_BETA * n_edges) / n
        x = (load - DENSE_C) / DENSE_WIDTH
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


__all__ = ["CapacityWarning", "check_capacity", "failure_probability", "neurons_for"]
