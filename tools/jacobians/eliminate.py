"""Vertex elimination: the Jacobian as input -> output edges, and what each order costs.

Eliminating vertex ``v`` replaces every path ``i -> v -> j`` by the product ``J(v->j) J(i->v)``,
added to an edge ``i -> j`` where one exists, then removes ``v``. Forward mode eliminates the
intermediates in evaluation order, reverse mode in the opposite order; greedy minimal Markowitz
picks, each time, the vertex whose elimination costs the fewest multiplications now; ties go to
the vertex computed last (reverse mode's choice), which on the published scalar tasks gives
counts at or below the best of forward, reverse and Markowitz with ties to the first vertex.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from tools.jacobians.graph import Graph
from tools.jacobians.structure import Struct, add_plan, compose_plan


@dataclasses.dataclass(frozen=True)
class Counts:
    """Multiplications and additions of one elimination order."""

    mults: int
    adds: int

    def as_dict(self) -> dict[str, int]:
        """The counts as ``{"mults": ..., "adds": ...}``."""
        return {"mults": self.mults, "adds": self.adds}


def _adjacency(edges: Mapping[tuple[int, int], Any]) -> tuple[dict[int, set[int]], dict[int, set[int]]]:
    preds: dict[int, set[int]] = {}
    succs: dict[int, set[int]] = {}
    for i, j in edges:
        succs.setdefault(i, set()).add(j)
        preds.setdefault(j, set()).add(i)
    return preds, succs


def eliminate(
    graph: Graph, order: Sequence[int], values: Mapping[tuple[int, int], Any] | None = None
) -> tuple[dict[tuple[int, int], Struct], dict[tuple[int, int], Any] | None, Counts]:
    """Eliminate the vertices of ``order``; the remaining edges, their values (with ``values``), the counts."""
    edges = dict(graph.edges)
    vals = dict(values) if values is not None else None
    preds, succs = _adjacency(edges)
    mults = adds = 0
    for v in order:
        ins, outs = sorted(preds.pop(v, ())), sorted(succs.pop(v, ()))
        for i in ins:
            a = edges.pop((i, v))
            succs[i].discard(v)
            for j in outs:
                b = edges[(v, j)]
                plan = compose_plan(b, a)
                mults += plan.mults
                adds += plan.adds
                new = plan.result
                if vals is not None:
                    new_val = plan.apply(vals[(v, j)], vals[(i, v)])
                old = edges.get((i, j))
                if old is not None:
                    acc = add_plan(old, new)
                    adds += acc.adds
                    if vals is not None:
                        new_val = acc.apply(vals[(i, j)], new_val)
                    new = acc.result
                else:
                    succs[i].add(j)
                    preds[j].add(i)
                edges[(i, j)] = new
                if vals is not None:
                    vals[(i, j)] = new_val
            if vals is not None:
                del vals[(i, v)]
        for j in outs:
            del edges[(v, j)]
            preds[j].discard(v)
            if vals is not None:
                del vals[(v, j)]
    return edges, vals, Counts(mults, adds)


def count(graph: Graph, order: Sequence[int]) -> int:
    """Multiplications of eliminating ``order`` (no values are computed)."""
    return eliminate(graph, order)[2].mults


def forward_order(graph: Graph) -> tuple[int, ...]:
    """Forward mode: the intermediates in evaluation order."""
    return tuple(graph.intermediates)


def reverse_order(graph: Graph) -> tuple[int, ...]:
    """Reverse mode: the intermediates from the last one computed to the first."""
    return tuple(reversed(graph.intermediates))


def _cost(edges: Mapping[tuple[int, int], Struct], preds: Mapping, succs: Mapping, v: int) -> int:
    return sum(compose_plan(edges[(v, j)], edges[(i, v)]).mults for i in preds.get(v, ()) for j in succs.get(v, ()))


def markowitz_order(graph: Graph) -> tuple[int, ...]:
    """Greedy minimal Markowitz: each step eliminates the cheapest vertex now (ties: the latest computed)."""
    edges = dict(graph.edges)
    preds, succs = _adjacency(edges)
    left = set(graph.intermediates)
    cost = {v: _cost(edges, preds, succs, v) for v in left}
    order = []
    while left:
        v = min(left, key=lambda u: (cost[u], -u))
        order.append(v)
        left.discard(v)
        ins, outs = preds.pop(v, set()), succs.pop(v, set())
        for i in ins:
            a = edges.pop((i, v))
            succs[i].discard(v)
            for j in outs:
                new = compose_plan(edges[(v, j)], a).result
                old = edges.get((i, j))
                edges[(i, j)] = add_plan(old, new).result if old is not None else new
                succs[i].add(j)
                preds[j].add(i)
        for j in outs:
            del edges[(v, j)]
            preds[j].discard(v)
        for u in ins | outs:
            if u in left:
                cost[u] = _cost(edges, preds, succs, u)
    return tuple(order)
