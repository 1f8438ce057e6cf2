"""Exact Jacobians by cross-country vertex elimination (Lohoff and Neftci, AlphaGrad; Graphax).

``jacobian(f, order=..., argnums=...)`` computes the same Jacobian as ``jax.jacfwd`` by eliminating
the vertices of ``f``'s computational graph in a chosen order (forward, reverse, greedy minimal
Markowitz, a searched order, or one given explicitly), counting multiplications and additions.
"""

from tools.jacobians.api import ORDERS, counts, graph_of, jacobian, resolve_order, search_order, vertices
from tools.jacobians.eliminate import Counts
from tools.jacobians.search import SearchResult, clear_cache

__all__ = [
    "ORDERS",
    "Counts",
    "SearchResult",
    "clear_cache",
    "counts",
    "graph_of",
    "jacobian",
    "resolve_order",
    "search_order",
    "vertices",
]
