"""N-way k-shot episodes over a labelled split, in the order the rule is taught.

The support set is listed shot by shot (every class once per round,
:func:`tools.metatrain.rule.presentation_order`), so a class's readout row is
its position in ``classes``; the same order is used by meta-training, by the
runtime evaluation (``session.learn`` calls) and by the baselines.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgesnn.errors import OptionError


@dataclasses.dataclass(frozen=True, eq=False)
class Episode:
    """Indices into a split: ``support`` (n_way * k_shot,) in teaching order, ``query`` (n_way * n_query,).

    ``support_rows`` / ``query_rows`` give each sample's class as its position in
    ``classes`` (the split's label ids drawn for this episode).
    """

    support: np.ndarray
    support_rows: np.ndarray
    query: np.ndarray
    query_rows: np.ndarray
    classes: np.ndarray


def sample_episode(y: np.ndarray, n_way: int, k_shot: int, n_query: int, rng: np.random.Generator) -> Episode:
    """One episode: ``n_way`` distinct classes with at least ``k_shot + n_query`` samples each."""
    labels, counts = np.unique(y, return_counts=True)
    usable = labels[counts >= k_shot + n_query]
    if len(usable) < n_way:
        raise OptionError(f"only {len(usable)} classes have >= {k_shot + n_query} samples; {n_way} are needed",
                          path="episodes/n_way")  # fmt: skip
    classes = rng.choice(usable, n_way, replace=False)
    picks = np.stack([rng.choice(np.flatnonzero(y == c), k_shot + n_query, replace=False) for c in classes])
    support = picks[:, :k_shot].T.reshape(-1)  # shot-major: round r holds shot r of every class
    query = picks[:, k_shot:].reshape(-1)
    return Episode(support, np.tile(np.arange(n_way), k_shot), query, np.repeat(np.arange(n_way), n_query), classes)


def sequential_episode(y: np.ndarray, n_way: int, k_shot: int, n_query: int, rng: np.random.Generator) -> Episode:
    """A class-incremental episode: ``2 * n_way`` classes, the support of the first ``n_way`` taught first.

    Rows 0..n_way-1 are the earlier classes (shot by shot), rows n_way..2 n_way-1
    the later ones (shot by shot); queries cover all ``2 * n_way`` classes.
    """
    e = sample_episode(y, 2 * n_way, k_shot, n_query, rng)
    first = e.support_rows < n_way
    support = np.concatenate([e.support[first], e.support[~first]])
    rows = np.concatenate([e.support_rows[first], e.support_rows[~first]])
    return Episode(support, rows, e.query, e.query_rows, e.classes)


def fixed_episodes(
    y: np.ndarray, n: int, *, n_way: int, k_shot: int, n_query: int, seed: int | list[int]
) -> list[Episode]:
    """``n`` episodes drawn from ``np.random.default_rng(seed)``: the same list for every method compared."""
    rng = np.random.default_rng(seed)
    return [sample_episode(y, n_way, k_shot, n_query, rng) for _ in range(n)]
