r"""The reference simulation of a compiled machine, straight from the paper's update rule.

.. math:: z_t = f\big(W (z_{t-1} \circ m_t)\big), \qquad m_t = H(s) \text{ while stimulus } s \text{ is held, else } 1

with ``f`` the sign (zero resolving to +1) for dense states and k-winners-take-all (ties to
the lower index) for sparse ones. With asynchronous updates, neuron ``i`` takes its new value
at step ``t`` (0 for the first step) only where :func:`edgesnn.graph.units.update_mask` draws it.
This module is the yardstick the edgesnn graph of the machine (:mod:`edgesnn.fsm.model`) is
tested against; it never goes through the graph or the engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from edgesnn.errors import InputError
from edgesnn.fsm.compile import FSMNetwork
from edgesnn.fsm.spec import FSMSpec
from edgesnn.graph.units import kwta, update_mask

NONE = -1  # no stimulus in a step

#: Overlap above which an attractor counts as reached (the paper's pass criterion).
DECODE_THRESHOLD = 0.5


def schedule(spec: FSMSpec, symbols: Sequence[str], hold_steps: int) -> np.ndarray:
    """Stimulus index per step (``NONE`` for none): each symbol held as none, s_a, s_b, then a last none phase."""
    hold = hold_steps
    if isinstance(hold, bool) or not isinstance(hold, (int, np.integer)) or hold < 1:
        raise InputError(f"expected hold steps >= 1, got {hold!r}", path="hold_steps")
    index = {s: j for j, s in enumerate(spec.symbols)}
    out = []
    for i, s in enumerate(symbols):
        if s not in index:
            raise InputError(f"unknown symbol {s!r}; the machine's symbols are {', '.join(spec.symbols)}",
                             path=f"inputs/{i}")  # fmt: skip
        out += [NONE] * hold + [2 * index[s]] * hold + [2 * index[s] + 1] * hold
    out += [NONE] * hold
    return np.asarray(out, np.int64)


def initial_pattern(net: FSMNetwork, state: str | None = None) -> np.ndarray:
    """The pattern of ``state`` (default: the spec's initial state) as float32 (N,)."""
    state = net.spec.initial if state is None else state
    if state not in net.spec.states:
        raise InputError(f"unknown state {state!r}", path="initial")
    return net.patterns[net.spec.states.index(state)].copy()


@dataclasses.dataclass(frozen=True, eq=False)
class Trajectory:
    """What a run did: ``overlaps`` (T, P) with every attractor after each step, ``readout`` (T, O), ``states``
    (T, N) when kept."""

    overlaps: np.ndarray
    readout: np.ndarray
    states: np.ndarray | None


def simulate(
    net: FSMNetwork,
    stimulus: np.ndarray,
    *,
    initial: np.ndarray | None = None,
    keep_states: bool = True,
    dtype: type = np.float64,
) -> Trajectory:
    """Run the update rule over ``stimulus`` (T,) indices from ``initial`` (default: the initial state's pattern)."""
    opts = net.options
    z = (initial_pattern(net) if initial is None else np.asarray(initial, np.float32)).astype(dtype)
    masks = (net.stimuli > 0).astype(dtype)
    weight = None if net.weight is None else net.weight.astype(dtype)
    u, vt, d = net.u.astype(dtype), np.ascontiguousarray(net.v.T, dtype), net.d.astype(dtype)
    steps = len(stimulus)
    states = np.empty((steps, net.n), np.float32) if keep_states else None
    zs = np.empty((steps, net.n), dtype)
    for t, s in enumerate(np.asarray(stimulus)):
        y = z if s == NONE else z * masks[s]
        h = weight @ y if weight is not None else u @ (vt @ y) - d * y
        new = kwta(h[None, :], opts.active)[0].astype(dtype) if opts.sparse else np.where(h >= 0, 1.0, -1.0)
        if opts.update_probability < 1:
            mask = update_mask(opts.seed, t, 1, net.n, opts.update_probability)[0]
            z = np.where(mask, new, z)
        else:
            z = new
        zs[t] = z
        if states is not None:
            states[t] = z
    return Trajectory(net.overlaps(zs), net.readout(zs), states)


def decode(overlaps: np.ndarray, names: Sequence[str], threshold: float = DECODE_THRESHOLD) -> list[str | None]:
    """The attractor each row of ``overlaps`` (T, P) is in: the largest overlap above ``threshold``, else None."""
    best = np.argmax(overlaps, axis=1)
    return [names[b] if overlaps[t, b] > threshold else None for t, b in enumerate(best)]


@dataclasses.dataclass(frozen=True)
class Hop:
    """One input of a walk: where the machine was, the edge it crossed and where it ended, against the spec."""

    symbol: str
    source: str | None
    edge: str | None
    target: str | None
    expected: str

    @property
    def ok(self) -> bool:
        """True when the network ended in the state the spec says."""
        return self.target == self.expected


def hops(spec: FSMSpec, symbols: Sequence[str], decoded: Sequence[str | None], hold_steps: int) -> list[Hop]:
    """Per input symbol: the attractor decoded at the end of its none, s_a and s_b phases, and the spec's target."""
    expected = spec.walk(symbols)
    out = []
    for i, s in enumerate(symbols):
        base = 3 * hold_steps * i
        ends = (base + hold_steps - 1, base + 2 * hold_steps - 1, base + 3 * hold_steps - 1)
        out.append(Hop(s, *(decoded[t] for t in ends), expected[i + 1]))
    return out


__all__ = ["DECODE_THRESHOLD", "NONE", "Hop", "Trajectory", "decode", "hops", "initial_pattern", "schedule",
           "simulate"]  # fmt: skip
