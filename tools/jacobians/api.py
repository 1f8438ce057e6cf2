"""``jacobian(f, order=..., argnums=...)``: exact Jacobians by cross-country vertex elimination.

The returned function traces ``f`` at the shapes it is called with, builds the computational
graph, evaluates ``f`` and the local partials, eliminates the intermediate vertices in the chosen
order and returns the input -> output blocks, laid out as ``jax.jacfwd`` lays them out. It is made
of JAX operations only, so it runs under ``jax.jit`` and ``jax.vmap``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from edgesnn.errors import OptionError
from tools.jacobians import search as S
from tools.jacobians.eliminate import Counts, eliminate, forward_order, markowitz_order, reverse_order
from tools.jacobians.graph import Graph, build_graph, check_order, edge_values
from tools.jacobians.structure import materialise

#: Named orders (Graphax's short names included).
ORDERS = ("forward", "fwd", "reverse", "rev", "markowitz", "search")

Order = str | Sequence[int]


def _argnums(argnums: int | Sequence[int], n_args: int) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for k in nums:
        if not isinstance(k, int) or not -n_args <= k < n_args:
            raise OptionError(f"expected argument numbers below {n_args}, got {argnums!r}", path="argnums")
    return tuple(k % n_args for k in nums)


def _trace(f: Callable[..., Any], args: Sequence[Any], nums: tuple[int, ...]) -> tuple[Graph, Any, list, list]:
    flat, in_tree = jax.tree_util.tree_flatten(tuple(args))
    flat = [x if isinstance(x, jax.Array) else jnp.asarray(x) for x in flat]
    leaves_per_arg = [len(jax.tree_util.tree_leaves(a)) for a in args]
    offsets = [sum(leaves_per_arg[:k]) for k in range(len(args))]
    diff = [offsets[k] + j for k in nums for j in range(leaves_per_arg[k])]
    for k in nums:
        for j in range(leaves_per_arg[k]):
            x = flat[offsets[k] + j]
            if not jnp.issubdtype(x.dtype, jnp.floating):
                raise OptionError(f"expected floating-point inputs to differentiate, argument {k} holds {x.dtype}",
                                  path="argnums")  # fmt: skip
    out_tree: list[Any] = []

    def flat_f(*leaves: Any) -> list[Any]:
        out = f(*jax.tree_util.tree_unflatten(in_tree, leaves))
        leaves_out, tree = jax.tree_util.tree_flatten(out)
        out_tree.append(tree)
        return leaves_out

    closed = jax.make_jaxpr(flat_f)(*[jax.ShapeDtypeStruct(x.shape, x.dtype) for x in flat])
    graph = build_graph(closed, diff)
    arg_trees = [jax.tree_util.tree_structure(a) for a in args]
    return graph, out_tree[0], flat, [(k, offsets[k], leaves_per_arg[k], arg_trees[k]) for k in nums]


def resolve_order(graph: Graph, order: Order, *, iterations: int = 2000) -> tuple[int, ...]:
    """The vertices to eliminate, in order, for a named order or a list of equation numbers."""
    if isinstance(order, str):
        if order in ("forward", "fwd"):
            return forward_order(graph)
        if order in ("reverse", "rev"):
            return reverse_order(graph)
        if order == "markowitz":
            return markowitz_order(graph)
        if order == "search":
            hit = S.cached(graph)
            return hit.order if hit is not None else S.search(graph, iterations=iterations).order
        raise OptionError(f"expected one of {', '.join(ORDERS)} or a list of equation numbers, got {order!r}",
                          path="order")  # fmt: skip
    return check_order(graph, list(order))


def jacobian(
    f: Callable[..., Any],
    order: Order = "markowitz",
    argnums: int | Sequence[int] = 0,
    *,
    count_ops: bool = False,
    has_value: bool = False,
    iterations: int = 2000,
) -> Callable[..., Any]:
    """Return a function computing the Jacobian of ``f`` (as ``jax.jacfwd(f, argnums)`` lays it out).

    ``order``: "forward", "reverse", "markowitz", "search" (simulated annealing on the multiplication
    count for ``iterations`` moves, cached per function) or a list of equation numbers (see
    :func:`vertices`). ``count_ops``: also return ``{"mults": ..., "adds": ...}``. ``has_value``: also
    return ``f``'s value, computed in the same pass: ``(value, jac[, counts])``.
    """

    def jac_fn(*args: Any) -> Any:
        nums = _argnums(argnums, len(args))
        graph, out_tree, flat, arg_info = _trace(f, args, nums)
        vertices = resolve_order(graph, order, iterations=iterations)
        values, outs = edge_values(graph, flat)
        edges, vals, counts = eliminate(graph, vertices, values)
        per_out = []
        for ov, aval in zip(graph.out_vars, graph.out_avals, strict=True):
            blocks = []
            for _k, off, n, tree in arg_info:
                leaves = []
                for j in range(n):
                    xv = graph.in_vars[off + j]
                    shape = tuple(aval.shape) + tuple(flat[off + j].shape)
                    if ov is not None and (xv, ov) in edges:
                        block = materialise(edges[(xv, ov)], vals[(xv, ov)]).astype(aval.dtype)
                    else:
                        block = jnp.zeros(shape, aval.dtype)
                    leaves.append(block)
                blocks.append(jax.tree_util.tree_unflatten(tree, leaves))
            per_out.append(blocks[0] if isinstance(argnums, int) else tuple(blocks))
        jac = jax.tree_util.tree_unflatten(out_tree, per_out)
        result: tuple[Any, ...] = (jac,)
        if has_value:
            result = (jax.tree_util.tree_unflatten(out_tree, outs), *result)
        if count_ops:
            result = (*result, counts.as_dict())
        return result if len(result) > 1 else jac

    return jac_fn


def graph_of(f: Callable[..., Any], *args: Any, argnums: int | Sequence[int] = 0) -> Graph:
    """The computational graph of ``f`` at ``args`` (for inspection and counting)."""
    return _trace(f, args, _argnums(argnums, len(args)))[0]


def vertices(f: Callable[..., Any], *args: Any, argnums: int | Sequence[int] = 0) -> dict[int, str]:
    """The eliminable vertices of ``f`` at ``args``: equation number -> the equation (explicit orders use these)."""
    graph = graph_of(f, *args, argnums=argnums)
    return {n: graph.describe(v) for n, v in sorted(graph.vertex_of_eqn.items())}


def counts(f: Callable[..., Any], *args: Any, order: Order = "markowitz", argnums: int | Sequence[int] = 0,
           iterations: int = 2000) -> Counts:  # fmt: skip
    """Multiplications and additions of ``order`` on ``f`` at ``args``; no values are computed."""
    graph = graph_of(f, *args, argnums=argnums)
    return eliminate(graph, resolve_order(graph, order, iterations=iterations))[2]


def search_order(f: Callable[..., Any], *args: Any, argnums: int | Sequence[int] = 0, iterations: int = 2000,
                 seed: int = 0) -> S.SearchResult:  # fmt: skip
    """Search an elimination order for ``f`` at ``args`` and cache it for ``order="search"``."""
    return S.search(graph_of(f, *args, argnums=argnums), iterations=iterations, seed=seed)
