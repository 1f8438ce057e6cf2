r"""Compile an FSM spec into the weights of an attractor network (Cotteret et al., Neural Computation 2024).

States and edge attractors are random hypervectors: bipolar :math:`\{-1, 1\}^N` (dense) or
binary with ``k = round(f N)`` ones (sparse, coding level ``f``). Each input symbol has two
bipolar stimuli :math:`s_a, s_b`; an edge :math:`x \xrightarrow{\varsigma} y` becomes two hops
:math:`x \xrightarrow{s_a} e \xrightarrow{s_b} y` through its edge attractor :math:`e`, so a held
input can neither skip a state nor oscillate. With :math:`\bar v = v` (dense) or
:math:`v - f` (sparse),

.. math::
    W = \sum_{\nu} \bar x_\nu \bar x_\nu^\top + \sum_{\eta} \Big[\bar e \bar e^\top
        + H(s_a) \circ (e - x)\, (\bar x \circ s_a)^\top + H(s_b) \circ (y - e)\, (\bar e \circ s_b)^\top\Big],
    \qquad W_{ii} = 0,

kept in factored form :math:`W = U V^\top - \mathrm{diag}(d)` (rank ``P + 2 E``). Input acts by
masking: while stimulus ``s`` is held, :math:`z_{t+1} = f(W (z_t \circ H(s)))`, with ``f`` the
sign (dense) or k-winners-take-all (sparse). The paper's 1/N is left out: the units compare
with 0 or pick winners, which no positive scale changes, and the dense weights stay integers,
so every sum is exact in float32.

Outputs: dense states carry each output as a sparse ternary code on ``round(output_coding N)``
neurons of their own (the paper's :math:`x_r`), read out as :math:`r \cdot z / (N f_r)`; sparse
states are read out by the sum of the patterns of the states with that output.

Non-ideal weights (the paper's robustness tests) materialise ``W`` (N x N): ``weights="binary"``
takes :math:`\mathrm{sgn}(W)`, ``"ternary"`` keeps the sign of the largest :math:`|W|` only
(``sparsity`` is the fraction zeroed, ties at the cut drawn from the seed; with ``"ideal"`` the
largest values are kept as they are; ``sparsity_scope="neuron"`` keeps the same number of the
largest :math:`|W|` in every neuron's inputs, the fixed fan-in a chip gives each neuron, instead of
the largest over the whole matrix),
and ``noise_sigma`` adds :math:`\sigma \chi` off the diagonal, :math:`\chi` standard normal.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from edgesnn.errors import OptionError
from edgesnn.fsm.spec import FSMSpec

WEIGHTS = ("ideal", "binary", "ternary")
#: Where ``sparsity`` keeps the largest weights: over the whole matrix, or per neuron (row).
SPARSITY_SCOPES = ("matrix", "neuron")


@dataclasses.dataclass(frozen=True)
class CompileOptions:
    """How an FSM becomes a network.

    ``neurons`` N; ``coding`` 0 for dense bipolar states, else the coding level f of sparse binary
    states (k-WTA with ``round(f N)`` winners); ``seed`` fixes every random vector and the
    weight noise; ``hold_steps`` is how long each phase of an input (none, s_a, s_b) is held
    when the machine runs; ``update_probability`` < 1 makes the units update asynchronously.
    """

    neurons: int = 10_000
    coding: float = 0.0
    seed: int = 0
    weights: str = "ideal"
    sparsity: float = 0.0
    sparsity_scope: str = "matrix"
    noise_sigma: float = 0.0
    output_coding: float = 0.02
    hold_steps: int = 10
    update_probability: float = 1.0

    def __post_init__(self) -> None:
        for name in ("neurons", "seed", "hold_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (name != "seed"):
                raise OptionError(f"expected an integer >= {int(name != 'seed')}, got {value!r}", path=name)
        if self.neurons < 16:
            raise OptionError(f"expected at least 16 neurons, got {self.neurons}", path="neurons")
        _in_range(self.coding, "coding", 0.0, 0.5, "0 (dense) or a coding level in (0, 0.5)", low_open=False)
        if 0 < self.coding and round(self.coding * self.neurons) < 1:
            raise OptionError(f"coding level {self.coding} leaves no active neuron of {self.neurons}", path="coding")
        if self.weights not in WEIGHTS:
            raise OptionError(f"expected one of {', '.join(WEIGHTS)}, got {self.weights!r}", path="weights")
        _in_range(self.sparsity, "sparsity", 0.0, 1.0, "a fraction of weights zeroed in [0, 1)", low_open=False)
        if self.weights == "ternary" and self.sparsity == 0:
            raise OptionError("ternary weights need a sparsity > 0 (the fraction of weights set to 0)", path="sparsity")
        if self.sparsity_scope not in SPARSITY_SCOPES:
            raise OptionError(f"expected one of {', '.join(SPARSITY_SCOPES)}, got {self.sparsity_scope!r}",
                              path="sparsity_scope")  # fmt: skip
        if self.weights == "binary" and self.sparsity > 0:
            raise OptionError("binary weights are all +-1; use weights='ternary' for sparse ones", path="sparsity")
        if not isinstance(self.noise_sigma, (int, float)) or not 0 <= self.noise_sigma < np.inf:
            raise OptionError(f"expected a noise sigma >= 0, got {self.noise_sigma!r}", path="noise_sigma")
        if self.noise_sigma > 0 and self.weights == "ideal" and self.sparsity == 0:
            raise OptionError("weight noise is relative to +-1 weights: use weights='binary' or 'ternary'",
                              path="noise_sigma")  # fmt: skip
        _in_range(self.output_coding, "output_coding", 0.0, 0.5, "a coding level in (0, 0.5)", low_open=True)
        _in_range(self.update_probability, "update_probability", 0.0, 1.0, "a probability in (0, 1]",
                  low_open=True, high_closed=True)  # fmt: skip

    @property
    def sparse(self) -> bool:
        """True for sparse binary states (k-WTA units)."""
        return self.coding > 0

    @property
    def active(self) -> int:
        """Winners of the k-WTA (sparse), or 0 (dense)."""
        return int(round(self.coding * self.neurons)) if self.sparse else 0

    @property
    def ideal(self) -> bool:
        """True when the weights are the construction's own (factored, never materialised)."""
        return self.weights == "ideal" and self.sparsity == 0 and self.noise_sigma == 0


def _in_range(value: Any, name: str, lo: float, hi: float, what: str, *, low_open: bool,
              high_closed: bool = False) -> None:  # fmt: skip
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and (lo < value if low_open else lo <= value) and (value <= hi if high_closed else value < hi)
    if not ok:
        raise OptionError(f"expected {what}, got {value!r}", path=name)


@dataclasses.dataclass(frozen=True, eq=False)
class FSMNetwork:
    """A compiled machine: its hypervectors, weights and the names of its attractors.

    ``patterns`` (P, N) are the attractors, the states first then one per transition, as
    ``float32`` +-1 (dense) or 0/1 (sparse); ``stimuli`` (2 S, N) int8 +-1, the pair
    (s_a, s_b) of symbol ``j`` at rows ``2 j`` and ``2 j + 1``; ``readouts`` (O, N) the read-out
    vectors of the outputs. The weights are ``u @ v.T - diag(d)`` unless ``weight`` holds a
    materialised (non-ideal) matrix.
    """

    spec: FSMSpec
    options: CompileOptions
    patterns: np.ndarray
    stimuli: np.ndarray
    readouts: np.ndarray
    u: np.ndarray
    v: np.ndarray
    d: np.ndarray
    weight: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Neurons."""
        return self.options.neurons

    @property
    def attractors(self) -> tuple[str, ...]:
        """Names of the patterns: the states, then each transition as ``source --symbol--> target``."""
        return (*self.spec.states, *(str(t) for t in self.spec.transitions))

    @property
    def channels(self) -> tuple[str, ...]:
        """Names of the stimulus channels: ``symbol/a`` and ``symbol/b`` of each symbol."""
        return tuple(f"{s}/{p}" for s in self.spec.symbols for p in "ab")

    def silenced(self) -> np.ndarray:
        """0/1 float32 (N, 2 S): which neurons each stimulus masks (where it is -1)."""
        return np.ascontiguousarray((self.stimuli < 0).T, np.float32)

    def matvec(self, y: np.ndarray) -> np.ndarray:
        """``W @ y`` for y (N,) or (N, B), in float64 (the reference's arithmetic)."""
        if self.weight is not None:  # float32 products: exact for integer (binary, ternary) weights
            return (self.weight @ np.asarray(y, np.float32)).astype(np.float64)
        y = np.asarray(y, np.float64)
        d = self.d.astype(np.float64)
        return self.u.astype(np.float64) @ (self.v.T.astype(np.float64) @ y) - (d[:, None] * y if y.ndim == 2
                                                                              else d * y)  # fmt: skip

    def dense_weight(self) -> np.ndarray:
        """The weight matrix (N, N) as float32, materialised from the factors when ideal."""
        if self.weight is not None:
            return self.weight
        w = self.u @ self.v.T
        w[np.diag_indices_from(w)] = 0.0
        return w

    def overlaps(self, z: np.ndarray) -> np.ndarray:
        """Overlap of a state z (N,) or (T, N) with every attractor: 1 in it, about 0 elsewhere."""
        z = np.asarray(z, np.float64)
        if self.options.sparse:
            f = self.options.coding
            k = self.options.active
            return z @ (self.patterns.astype(np.float64) - f).T / (k * (1 - f))
        return z @ self.patterns.T.astype(np.float64) / self.n

    def readout(self, z: np.ndarray) -> np.ndarray:
        """The outputs' read-out of a state z (N,) or (T, N): about 1 where the state has that output."""
        return np.asarray(z, np.float64) @ self.readouts.T.astype(np.float64)


def _bipolar(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    return (rng.integers(0, 2, (rows, n), dtype=np.int8) * 2 - 1).astype(np.int8)


def _sparse(rng: np.random.Generator, rows: int, n: int, k: int) -> np.ndarray:
    out = np.zeros((rows, n), np.float32)
    for r in range(rows):
        out[r, rng.choice(n, k, replace=False)] = 1.0
    return out


def _embed_outputs(spec: FSMSpec, patterns: np.ndarray, opts: CompileOptions, rng: np.random.Generator) -> np.ndarray:
    names = spec.output_names()
    n = opts.neurons
    readouts = np.zeros((len(names), n), np.float32)
    if not names:
        return readouts
    if opts.sparse:
        k, f = opts.active, opts.coding
        for j, name in enumerate(names):
            for i, state in enumerate(spec.states):
                if name in spec.outputs.get(state, ()):
                    readouts[j] += (patterns[i] - f) / (k * (1 - f))
        return readouts
    m = int(round(opts.output_coding * n))
    if m < 1 or m * len(names) > n:
        raise OptionError(f"{len(names)} outputs of {m} neurons each do not fit {n} neurons (output_coding"
                          f" {opts.output_coding})", path="output_coding")  # fmt: skip
    order = rng.permutation(n)
    for j, name in enumerate(names):
        support = order[j * m : (j + 1) * m]
        code = rng.integers(0, 2, m).astype(np.float32) * 2 - 1
        readouts[j, support] = code / m
        for i, state in enumerate(spec.states):
            if name in spec.outputs.get(state, ()):
                patterns[i, support] = code  # the state's own neurons there spell the output
    return readouts


def compile_fsm(spec: FSMSpec, options: CompileOptions | None = None) -> FSMNetwork:
    """Draw the hypervectors of ``spec`` from ``options.seed`` and build the weights."""
    opts = options or CompileOptions()
    n, k = opts.neurons, opts.active
    rng = np.random.default_rng([opts.seed, 0x5F5D])
    n_states, n_edges = len(spec.states), len(spec.transitions)
    if opts.sparse:
        patterns = _sparse(rng, n_states + n_edges, n, k)
    else:
        patterns = _bipolar(rng, n_states + n_edges, n).astype(np.float32)
    stimuli = _bipolar(rng, 2 * len(spec.symbols), n)
    readouts = _embed_outputs(spec, patterns, opts, rng)
    u, v, d = build_factors(spec, opts, patterns, stimuli)
    net = FSMNetwork(spec, opts, patterns, stimuli, readouts, u, v, d)
    if opts.ideal:
        return net
    w = nonideal_weight(net.dense_weight(), opts, np.random.default_rng([opts.seed, 0x1015E]))
    return dataclasses.replace(net, weight=w)


def build_factors(
    spec: FSMSpec, opts: CompileOptions, patterns: np.ndarray, stimuli: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The factors (U (N, R), V (N, R), d (N,)) of ``W = U V^T - diag(d)`` for these patterns and stimuli."""
    f = opts.coding
    n_states, n_edges = len(spec.states), len(spec.transitions)
    bar = patterns - f if opts.sparse else patterns
    index = {s: i for i, s in enumerate(spec.states)}
    sym = {s: j for j, s in enumerate(spec.symbols)}
    u_cols, v_cols = [bar], [bar]  # the autoassociative part of states and edge attractors
    if n_edges:
        src = patterns[[index[t.source] for t in spec.transitions]]
        dst = patterns[[index[t.target] for t in spec.transitions]]
        edge = patterns[n_states:]
        sa = stimuli[[2 * sym[t.symbol] for t in spec.transitions]].astype(np.float32)
        sb = stimuli[[2 * sym[t.symbol] + 1 for t in spec.transitions]].astype(np.float32)
        u_cols += [(sa > 0) * (edge - src), (sb > 0) * (dst - edge)]
        v_cols += [bar[[index[t.source] for t in spec.transitions]] * sa, bar[n_states:] * sb]
    u = np.ascontiguousarray(np.concatenate(u_cols).T, np.float32)
    v = np.ascontiguousarray(np.concatenate(v_cols).T, np.float32)
    d = np.einsum("ij,ij->i", u.astype(np.float64), v.astype(np.float64)).astype(np.float32)
    return u, v, d


def nonideal_weight(w: np.ndarray, opts: CompileOptions, rng: np.random.Generator) -> np.ndarray:
    """Binarise, ternarise or sparsify ``w`` (N, N, zero diagonal) and add noise, as ``opts`` says; float32."""
    w = np.array(w, np.float32)
    n = w.shape[0]
    np.fill_diagonal(w, 0.0)
    if opts.sparsity > 0 and opts.sparsity_scope == "neuron":
        _keep_per_neuron(w, int(round((1 - opts.sparsity) * (n - 1))), rng)
    elif opts.sparsity > 0:
        mag = np.abs(w).ravel()
        keep = int(round((1 - opts.sparsity) * (n * n - n)))
        # The zero diagonal sits at the bottom of |W| and never reaches the kept top.
        cut = np.partition(mag, mag.size - keep)[mag.size - keep] if keep else np.inf
        above = int(np.count_nonzero(mag > cut))
        ties = np.flatnonzero(mag == cut)
        del mag
        # Integer weights tie a lot at the cut: a seeded draw among the tied keeps exactly the target count.
        drop = rng.choice(ties, ties.size - (keep - above), replace=False) if keep > above else ties
        w[np.abs(w) < cut] = 0.0
        w.reshape(-1)[drop] = 0.0
    if opts.weights in ("binary", "ternary"):
        np.sign(w, out=w)
    if opts.noise_sigma > 0:
        sigma = np.float32(opts.noise_sigma)
        for start in range(0, n, 1024):  # in blocks of rows: no second N x N array
            w[start : start + 1024] += rng.standard_normal((min(1024, n - start), n), dtype=np.float32) * sigma
    np.fill_diagonal(w, 0.0)
    return w


def _keep_per_neuron(w: np.ndarray, keep: int, rng: np.random.Generator) -> None:
    """Zero all but the ``keep`` largest ``|w|`` of each row, in place; ties at a row's cut drawn from ``rng``."""
    n = w.shape[1]
    if keep <= 0:
        w[:] = 0.0
        return
    for start in range(0, w.shape[0], 512):  # blocks of rows: a few N x 512 temporaries at most
        blk = w[start : start + 512]
        mag = np.abs(blk)
        cut = np.partition(mag, n - keep, axis=1)[:, n - keep, None]  # each row's keep-th largest
        above, ties = mag > cut, mag == cut
        need = keep - above.sum(axis=1)  # how many of the tied values each row still keeps (>= 1)
        score = np.where(ties, rng.random(blk.shape), -1.0)  # a random rank among the ties
        bar = np.sort(score, axis=1)[np.arange(len(blk)), n - need, None]
        blk[~(above | (ties & (score >= bar)))] = 0.0


__all__ = [
    "CompileOptions",
    "FSMNetwork",
    "SPARSITY_SCOPES",
    "WEIGHTS",
    "build_factors",
    "compile_fsm",
    "nonideal_weight",
]
