"""The graph IR: named nodes, directed edges, validation and the execution order.

Semantics (as NIR): a node's input is the sum of the outputs of all nodes with
an edge into it. Recurrence is a cycle; the edges that close a cycle (back
edges, found by depth-first search from the inputs in declaration order) carry
the previous step's value, so every cycle must contain a node with state.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping
from typing import Any

from edgesnn import limits
from edgesnn.errors import EdgeSNNError, GraphError, LimitError, NodeValidationError
from edgesnn.graph._node import Node, Shape, check_elements, check_text, prefixed
from edgesnn.graph.io_nodes import Input, Output

Edge = tuple[str, str]


@dataclasses.dataclass(frozen=True, eq=False)
class Graph:
    """An immutable, validated computational graph.

    Parameters
    ----------
    nodes : mapping of str to Node
        Nodes by name; declaration order fixes the order of inputs and outputs.
    edges : sequence of (str, str)
        Directed edges ``(source, target)``.
    metadata : dict
        Free-form information (producer, trainer, notes); never needed to run.
    """

    nodes: Mapping[str, Node]
    edges: tuple[Edge, ...]
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    _order: tuple[str, ...] = dataclasses.field(init=False, repr=False)
    _back_edges: frozenset[Edge] = dataclasses.field(init=False, repr=False)
    _shapes: dict[str, Shape] = dataclasses.field(init=False, repr=False)
    _in_shapes: dict[str, Shape] = dataclasses.field(init=False, repr=False)
    _preds: dict[str, list[str]] = dataclasses.field(init=False, repr=False)
    _succs: dict[str, list[str]] = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        nodes = dict(self.nodes)
        edges = tuple((str(a), str(b)) for a, b in self.edges)
        # Bounded first: the checks below visit every edge for every back edge.
        limits.current().check("graph_nodes", len(nodes), "a count of nodes", path="nodes")
        limits.current().check("graph_edges", len(edges), "a count of edges", path="edges")
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "edges", edges)
        preds: dict[str, list[str]] = {n: [] for n in nodes}
        succs: dict[str, list[str]] = {n: [] for n in nodes}
        for a, b in edges:
            succs.setdefault(a, []).append(b)
            preds.setdefault(b, []).append(a)
        object.__setattr__(self, "_preds", preds)
        object.__setattr__(self, "_succs", succs)
        self._check_names_and_edges()
        order, back = self._schedule()
        object.__setattr__(self, "_order", order)
        object.__setattr__(self, "_back_edges", back)
        self._check_cycles_have_state()
        self._infer_shapes()

    # -- public views ---------------------------------------------------------
    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the Input nodes, in declaration order."""
        return tuple(n for n, node in self.nodes.items() if isinstance(node, Input))

    @property
    def outputs(self) -> tuple[str, ...]:
        """Names of the Output nodes, in declaration order."""
        return tuple(n for n, node in self.nodes.items() if isinstance(node, Output))

    @property
    def order(self) -> tuple[str, ...]:
        """Execution order of one step (back edges excluded)."""
        return self._order

    @property
    def back_edges(self) -> frozenset[Edge]:
        """Edges that deliver the previous step's value."""
        return self._back_edges

    def shape(self, name: str) -> Shape:
        """Output shape of node ``name`` (no batch dimension)."""
        return self._shapes[name]

    def input_shape(self, name: str) -> Shape:
        """Input shape of node ``name`` (no batch dimension)."""
        return self._in_shapes[name]

    def predecessors(self, name: str) -> list[str]:
        """Sources of the edges into ``name``, in edge order."""
        return list(self._preds.get(name, ()))

    def successors(self, name: str) -> list[str]:
        """Targets of the edges out of ``name``, in edge order."""
        return list(self._succs.get(name, ()))

    # -- validation -----------------------------------------------------------
    def _check_names_and_edges(self) -> None:
        for name, node in self.nodes.items():
            if not isinstance(name, str) or not name or "/" in name:
                raise GraphError(f"node names must be non-empty and contain no '/', got {name!r}", path=f"nodes/{name}")
            try:
                check_text(name, "name")
            except NodeValidationError as exc:
                raise GraphError(f"node name: {exc.message}", path=f"nodes/{name!a}") from None
            if not isinstance(node, Node):
                raise GraphError(f"expected a Node, got {type(node).__name__}", path=f"nodes/{name}")
        seen: set[Edge] = set()
        for i, (a, b) in enumerate(self.edges):
            for end in (a, b):
                if end not in self.nodes:
                    raise GraphError(
                        f"edge {a} -> {b} refers to unknown node {end!r} (dangling edge)", path=f"edges/{i}"
                    )
            if (a, b) in seen:
                raise GraphError(f"edge {a} -> {b} is listed twice", path=f"edges/{i}")
            seen.add((a, b))
            if isinstance(self.nodes[b], Input):
                raise GraphError(f"edge {a} -> {b} points into an Input node", path=f"edges/{i}")
            if isinstance(self.nodes[a], Output):
                raise GraphError(f"edge {a} -> {b} leaves an Output node", path=f"edges/{i}")
        if not self.inputs:
            raise GraphError("the graph has no Input node", path="nodes")
        if not self.outputs:
            raise GraphError("the graph has no Output node", path="nodes")
        for name, node in self.nodes.items():
            if not isinstance(node, Input) and not self.predecessors(name):
                raise GraphError("node has no incoming edge", path=f"nodes/{name}")

    def _schedule(self) -> tuple[tuple[str, ...], frozenset[Edge]]:
        succ = self._succs
        state: dict[str, int] = {}  # 1 = on the DFS stack, 2 = finished
        back: set[Edge] = set()
        postorder: list[str] = []
        for root in self.inputs:
            if root in state:
                continue
            stack: list[tuple[str, int]] = [(root, 0)]
            state[root] = 1
            while stack:
                node, i = stack[-1]
                if i < len(succ[node]):
                    stack[-1] = (node, i + 1)
                    nxt = succ[node][i]
                    if state.get(nxt) == 1:
                        back.add((node, nxt))
                    elif nxt not in state:
                        state[nxt] = 1
                        stack.append((nxt, 0))
                else:
                    state[node] = 2
                    postorder.append(node)
                    stack.pop()
        unreachable = [n for n in self.nodes if n not in state]
        if unreachable:
            raise GraphError("node is not reachable from any Input", path=f"nodes/{unreachable[0]}")
        return tuple(reversed(postorder)), frozenset(back)

    def _check_cycles_have_state(self) -> None:
        for a, b in sorted(self._back_edges):
            cycle = self._cycle_through(a, b)
            if not any(self.nodes[n].stateful for n in cycle):
                raise GraphError(
                    f"cycle {' -> '.join(cycle + [cycle[0]])} has no node with state (algebraic loop)",
                    path=f"nodes/{b}",
                )

    def _cycle_through(self, a: str, b: str) -> list[str]:
        # Breadth-first path b ~> a over forward edges; with the back edge a -> b it closes the cycle.
        prev: dict[str, str | None] = {b: None}
        queue = collections.deque([b])
        while queue:
            cur = queue.popleft()
            if cur == a:
                break
            for y in self._succs[cur]:
                if (cur, y) not in self._back_edges and y not in prev:
                    prev[y] = cur
                    queue.append(y)
        path = [a]
        while prev.get(path[-1]) is not None:
            path.append(prev[path[-1]])  # type: ignore[arg-type]
        return list(reversed(path))

    def _infer_shapes(self) -> None:
        shapes: dict[str, Shape] = {}
        in_shapes: dict[str, Shape] = {}
        for name in self._order:
            node = self.nodes[name]
            if isinstance(node, Input):
                in_shapes[name] = node.shape
            else:
                srcs = [(a, shapes[a]) for a in self.predecessors(name) if (a, name) not in self._back_edges]
                first_src, first = srcs[0]
                for src, shp in srcs[1:]:
                    if shp != first:
                        raise GraphError(
                            f"edges into {name} disagree: {first_src} gives {first}, {src} gives {shp}",
                            path=f"nodes/{name}",
                        )
                in_shapes[name] = first
            try:
                shapes[name] = node.output_shape(in_shapes[name])
                check_elements(shapes[name], "output")
            except LimitError as exc:
                raise prefixed(exc, f"nodes/{name}") from exc
            except EdgeSNNError as exc:
                srcs_txt = ", ".join(self.predecessors(name)) or "(graph input)"
                raise GraphError(f"from {srcs_txt}: {exc.message}", path=f"nodes/{name}/{exc.path or 'input'}") from exc
            if not all(d > 0 for d in shapes[name]):
                raise GraphError(f"gives an empty output {shapes[name]}", path=f"nodes/{name}")
        for a, b in sorted(self._back_edges):
            if shapes[a] != in_shapes[b]:
                raise GraphError(
                    f"recurrent edge {a} -> {b}: {a} gives {shapes[a]}, {b} expects {in_shapes[b]}", path=f"nodes/{b}"
                )
        object.__setattr__(self, "_shapes", shapes)
        object.__setattr__(self, "_in_shapes", in_shapes)
