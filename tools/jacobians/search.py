"""Search for a cheap elimination order, and the per-function cache of the best one found.

The search is simulated annealing over permutations of the intermediate vertices (every
permutation is a valid vertex-elimination order), started from the cheapest of forward,
reverse and greedy minimal Markowitz, with the multiplication count as the cost. A move takes
one vertex out of the order and puts it back elsewhere; worse orders are accepted with
probability ``exp(-increase / temperature)``, the temperature falling geometrically. The best
order seen is returned and kept in a cache keyed by the function's jaxpr, so later calls reuse it.
"""

from __future__ import annotations

import dataclasses
import math
import random

from tools.jacobians.eliminate import count, forward_order, markowitz_order, reverse_order
from tools.jacobians.graph import Graph


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """The best order found, its multiplications, and where the search started."""

    order: tuple[int, ...]
    mults: int
    start: str
    start_mults: int
    evaluations: int


_CACHE: dict[tuple[str, tuple[int, ...]], SearchResult] = {}


def cache_key(graph: Graph) -> tuple[str, tuple[int, ...]]:
    """The cache key of a graph: its jaxpr and its differentiated inputs."""
    return graph.text, graph.diff_vars


def cached(graph: Graph) -> SearchResult | None:
    """The best order found so far for this function, if a search ran."""
    return _CACHE.get(cache_key(graph))


def clear_cache() -> None:
    """Forget every searched order."""
    _CACHE.clear()


def search(graph: Graph, *, iterations: int = 2000, seed: int = 0, t_start: float = 0.02,
           t_end: float = 0.0005) -> SearchResult:  # fmt: skip
    """Anneal for ``iterations`` moves; temperatures are fractions of the starting cost. Cached."""
    starts = {"forward": forward_order(graph), "reverse": reverse_order(graph), "markowitz": markowitz_order(graph)}
    scored = {name: count(graph, order) for name, order in starts.items()}
    start = min(scored, key=lambda k: (scored[k], k != "markowitz"))
    best = cur = list(starts[start])
    best_cost = cur_cost = scored[start]
    rng = random.Random(seed)
    n = len(cur)
    evaluations = len(starts)
    if n > 1:
        for step in range(iterations):
            frac = step / max(iterations - 1, 1)
            temp = max(best_cost, 1) * t_start * (t_end / t_start) ** frac
            cand = list(cur)
            v = cand.pop(rng.randrange(n))
            cand.insert(rng.randrange(n), v)
            cost = count(graph, cand)
            evaluations += 1
            if cost <= cur_cost or rng.random() < math.exp(-(cost - cur_cost) / temp):
                cur, cur_cost = cand, cost
                if cost < best_cost:
                    best, best_cost = cand, cost
    key = cache_key(graph)
    prior = _CACHE.get(key)
    result = SearchResult(tuple(best), best_cost, start, scored[start], evaluations)
    if prior is None or result.mults < prior.mults:
        _CACHE[key] = result
    return _CACHE[key]
