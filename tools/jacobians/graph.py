"""The computational graph of a function: one vertex per jaxpr variable, one sparse block per edge.

:func:`build_graph` traces ``f`` to a jaxpr (nested ``jit`` and ``checkpoint`` bodies are inlined),
keeps the variables that depend on a differentiated input and reach an output, and attaches each
dependency's local partial (tools.jacobians.rules). An output that is also used further on, is an
input, or appears twice gets a sink vertex behind an identity edge, so every output is a vertex of
its own that is never eliminated. :func:`edge_values` evaluates the function and the local partials.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend import core as jcore

from edgesnn.errors import OptionError, UnsupportedError
from tools.jacobians.rules import Eqn, Local, bind, local_partials
from tools.jacobians.structure import Struct, add_plan, identity_struct

#: Primitives whose body is inlined into the graph.
INLINE = {"jit": "jaxpr", "pjit": "jaxpr", "closed_call": "call_jaxpr", "core_call": "call_jaxpr",
          "remat2": "jaxpr", "checkpoint": "jaxpr"}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Node:
    """One equation: its inputs (variable ids, or None for a literal), outputs and local partials."""

    index: int  # position in the flattened equation list (1-based, as Graphax numbers vertices)
    eqn: Eqn
    text: str
    invars: tuple[int | None, ...]
    outvars: tuple[int, ...]
    locals: tuple[Local, ...]


@dataclasses.dataclass(frozen=True)
class Graph:
    """The computational graph of one function at one input shape."""

    nodes: tuple[Node, ...]
    n_vars: int
    in_vars: tuple[int, ...]  # every flat input leaf, differentiated or not
    diff_vars: tuple[int, ...]  # the differentiated input leaves
    consts: tuple[tuple[int, Any], ...]  # (variable, value) of closed-over constants
    out_vars: tuple[int | None, ...]  # vertex per flat output leaf; None: the output does not depend on the inputs
    out_refs: tuple[tuple[int | None, Any], ...]  # (variable, or None and the literal) of each flat output
    out_avals: tuple[jax.ShapeDtypeStruct, ...]
    shapes: dict[int, tuple[int, ...]]
    edges: dict[tuple[int, int], Struct]
    sources: dict[tuple[int, int], tuple[tuple[int, int], ...]]  # (node index in nodes, local index) per edge
    sinks: tuple[tuple[int, int], ...]  # (output variable, sink vertex) identity edges
    intermediates: tuple[int, ...]  # vertices to eliminate, in evaluation order
    vertex_of_eqn: dict[int, int]  # vertex number (equation outputs counted from 1) -> vertex
    text: str  # the jaxpr, the key of the order cache

    def describe(self, vertex: int) -> str:
        """The equation that computes ``vertex``."""
        for node in self.nodes:
            if vertex in node.outvars:
                return f"equation {node.index}: {node.text}"
        return f"vertex {vertex}"


def _aval(v: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(v.aval.shape), v.aval.dtype)


def _is_float(aval: Any) -> bool:
    return jnp.issubdtype(aval.dtype, jnp.floating)


def build_graph(closed: Any, diff_leaves: Sequence[int]) -> Graph:
    """The graph of ``closed`` (a ClosedJaxpr) for the flat input leaves ``diff_leaves``."""
    ids: dict[Any, int] = {}
    shapes: dict[int, tuple[int, ...]] = {}
    consts: list[tuple[int, Any]] = []
    counter = [0]

    def new(v: Any) -> int:
        counter[0] += 1
        i = counter[0] - 1
        ids[v] = i
        shapes[i] = tuple(v.aval.shape)
        return i

    in_vars = tuple(new(v) for v in closed.jaxpr.invars)
    for v, c in zip(closed.jaxpr.constvars, closed.consts, strict=True):
        consts.append((new(v), c))
    active = {in_vars[k] for k in diff_leaves if _is_float(closed.jaxpr.invars[k].aval)}
    nodes: list[Node] = []

    def walk(jaxpr: Any, env: dict[Any, Any]) -> None:
        def ref(x: Any) -> tuple[int | None, Any]:
            if isinstance(x, jcore.Literal):
                return None, x.val
            return env[x], None

        for e in jaxpr.eqns:
            name = e.primitive.name
            if name in INLINE:
                body = e.params[INLINE[name]]
                inner = body.jaxpr if hasattr(body, "jaxpr") else body
                sub: dict[Any, Any] = {}
                for v, c in zip(inner.constvars, getattr(body, "consts", ()), strict=True):
                    consts.append((new(v), c))
                    sub[v] = ids[v]
                for v, x in zip(inner.invars, e.invars, strict=True):
                    if isinstance(x, jcore.Literal):
                        # A literal argument becomes a constant of the body.
                        consts.append((new(v), x.val))
                        sub[v] = ids[v]
                    else:
                        sub[v] = env[x]
                walk(inner, sub)
                for v, x in zip(e.outvars, inner.outvars, strict=True):
                    if isinstance(x, jcore.Literal):
                        consts.append((new(v), x.val))
                        env[v] = ids[v]
                    else:
                        env[v] = sub[x]
                continue
            refs = [ref(x) for x in e.invars]
            outs = tuple(new(v) for v in e.outvars)
            for v, i in zip(e.outvars, outs, strict=True):
                env[v] = i
            is_active = tuple(r is not None and r in active and _is_float(x.aval)
                              for (r, _), x in zip(refs, e.invars, strict=True))  # fmt: skip
            eqn = Eqn(e.primitive, dict(e.params), tuple(_aval(x) for x in e.invars),
                      tuple(_aval(v) for v in e.outvars), tuple(lit for _, lit in refs), is_active)  # fmt: skip
            text = str(e).strip().splitlines()[0]
            index = len(nodes) + 1
            if not any(is_active):
                nodes.append(Node(index, eqn, text, tuple(r for r, _ in refs), outs, ()))
                continue
            locals_ = local_partials(eqn)
            if locals_ is None:
                raise UnsupportedError(
                    f"no Jacobian rule for primitive {name!r}, in equation {index}: {text}", path="tools.jacobians"
                )
            for loc in locals_:
                if _is_float(eqn.out_avals[loc.out_index]):
                    active.add(outs[loc.out_index])
            nodes.append(Node(index, eqn, text, tuple(r for r, _ in refs), outs, tuple(locals_)))

    env0: dict[Any, Any] = {v: ids[v] for v in (*closed.jaxpr.invars, *closed.jaxpr.constvars)}
    walk(closed.jaxpr, env0)
    out_ids: list[int | None] = []
    out_refs: list[tuple[int | None, Any]] = []
    out_avals = tuple(_aval(v) for v in closed.jaxpr.outvars)
    for v in closed.jaxpr.outvars:
        if isinstance(v, jcore.Literal):
            out_ids.append(None)
            out_refs.append((None, v.val))
        else:
            out_ids.append(env0[v] if env0[v] in active and _is_float(v.aval) else None)
            out_refs.append((env0[v], None))
    return _assemble(nodes, counter[0], in_vars, active, consts, out_ids, tuple(out_refs), out_avals, shapes,
                     diff_leaves, str(closed))  # fmt: skip


def _assemble(nodes: list[Node], n_vars: int, in_vars: tuple[int, ...], active: set[int], consts: list,
              out_ids: list[int | None], out_refs: tuple, out_avals: tuple, shapes: dict[int, tuple[int, ...]],
              diff_leaves: Sequence[int], text: str) -> Graph:  # fmt: skip
    edges: dict[tuple[int, int], Struct] = {}
    sources: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for n_idx, node in enumerate(nodes):
        for l_idx, loc in enumerate(node.locals):
            key = (node.invars[loc.in_index], node.outvars[loc.out_index])
            sources.setdefault(key, []).append((n_idx, l_idx))
            edges[key] = add_plan(edges[key], loc.struct).result if key in edges else loc.struct
    # Outputs used further on, inputs, and repeated outputs get a sink vertex.
    succs: dict[int, set[int]] = {}
    for i, j in edges:
        succs.setdefault(i, set()).add(j)
    sinks, seen, final = [], set(), []
    for i in out_ids:
        if i is None:
            final.append(None)
            continue
        if i in succs or i in in_vars or i in seen:
            s = n_vars
            n_vars += 1
            shapes[s] = shapes[i]
            edges[(i, s)] = identity_struct(shapes[i])
            sinks.append((i, s))
            final.append(s)
        else:
            final.append(i)
        seen.add(i)
    # Keep what lies on a path from a differentiated input to an output.
    preds: dict[int, set[int]] = {}
    for i, j in edges:
        preds.setdefault(j, set()).add(i)
    useful, stack = set(), [o for o in final if o is not None]
    while stack:
        v = stack.pop()
        if v in useful:
            continue
        useful.add(v)
        stack.extend(preds.get(v, ()))
    edges = {k: s for k, s in edges.items() if k[0] in useful and k[1] in useful}
    outputs = {o for o in final if o is not None}
    diff_vars = tuple(in_vars[k] for k in diff_leaves)
    inputs = set(diff_vars)
    inter = sorted({v for k in edges for v in k} - outputs - inputs)
    # Vertices are numbered by the equation outputs in evaluation order, from 1 (for jaxprs whose
    # equations have one output each, the equation numbers Graphax's orders use).
    vertex_of_eqn, number = {}, 0
    for node in nodes:
        for v in node.outvars:
            number += 1
            if v in inter:
                vertex_of_eqn[number] = v
    return Graph(tuple(nodes), n_vars, in_vars, diff_vars, tuple(consts), tuple(final), out_refs, out_avals, shapes,
                 edges,
                 {k: tuple(v) for k, v in sources.items() if k in edges}, tuple(sinks), tuple(inter), vertex_of_eqn,
                 text)  # fmt: skip


def edge_values(graph: Graph, flat_args: Sequence[Any]) -> tuple[dict[tuple[int, int], Any], list[Any]]:
    """Evaluate the function on ``flat_args``: the stored values of every edge, and the flat outputs."""
    env: dict[int, Any] = dict(zip(graph.in_vars, flat_args, strict=True))
    env.update(dict(graph.consts))
    outs_of: list[list[Any]] = []
    for node in graph.nodes:
        ins = [env[i] if i is not None else lit for i, lit in zip(node.invars, node.eqn.literals, strict=True)]
        outs = bind(node.eqn, ins)
        outs_of.append(outs)
        for v, x in zip(node.outvars, outs, strict=True):
            env[v] = x
    values: dict[tuple[int, int], Any] = {}
    for key, srcs in graph.sources.items():
        total, struct = None, None
        for n_idx, l_idx in srcs:
            node = graph.nodes[n_idx]
            loc = node.locals[l_idx]
            ins = [env[i] if i is not None else lit for i, lit in zip(node.invars, node.eqn.literals, strict=True)]
            val = loc.value(ins, outs_of[n_idx])
            if total is None:
                total, struct = val, loc.struct
            else:
                plan = add_plan(struct, loc.struct)
                total, struct = plan.apply(total, val), plan.result
        values[key] = total
    for i, s in graph.sinks:
        values[(i, s)] = jnp.ones(graph.edges[(i, s)].val_shape, jnp.result_type(env[i]))
    outputs = [env[i] if i is not None else lit for i, lit in graph.out_refs]
    return values, outputs


def check_order(graph: Graph, order: Sequence[int]) -> tuple[int, ...]:
    """``order`` (vertex numbers: equation outputs counted from 1, see ``vertices``); every intermediate once."""
    vertices = []
    for n in order:
        if not isinstance(n, int) or n not in graph.vertex_of_eqn:
            raise OptionError(f"{n!r} is not the number of an equation output to eliminate "
                              f"(expected some of {sorted(graph.vertex_of_eqn)})", path="order")  # fmt: skip
        vertices.append(graph.vertex_of_eqn[n])
    missing = set(graph.intermediates) - set(vertices)
    if len(set(vertices)) != len(vertices) or missing:
        eqn_of = {v: n for n, v in graph.vertex_of_eqn.items()}
        raise OptionError(f"expected each of the {len(graph.intermediates)} vertices "
                          f"{sorted(eqn_of[v] for v in graph.intermediates)} exactly once", path="order")  # fmt: skip
    return tuple(vertices)
