"""Graph topology over node ids: the order to start nodes in, and the cycles that forbid a run.

Pure functions over ``node id → ids it reads from``, so the model (:class:`~igtflow.launch.graph.
Graph`) and the validator share one implementation and neither needs the other.
"""

from __future__ import annotations

from typing import Any


def topo_order(ids: list[str], upstream: dict[str, set[str]]) -> list[str]:
    """Upstream first; among ready nodes the earliest in the file goes first."""
    placed: set[str] = set()
    order: list[str] = []
    while len(order) < len(ids):
        ready = next((i for i in ids if i not in placed and upstream.get(i, set()) <= placed), None)
        if ready is None:
            raise ValueError("graph has a cycle")
        placed.add(ready)
        order.append(ready)
    return order


def cycles(ids: list[str], upstream: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group, as ``[a, b, ..., a]`` in data-flow direction."""
    downstream: dict[str, list[str]] = {i: [] for i in ids}
    for node_id in ids:
        for source in upstream.get(node_id, ()):
            downstream[source].append(node_id)
    found: list[list[str]] = []
    covered: set[str] = set()
    for start in ids:
        if start in covered:
            continue
        path = _shortest_loop(start, downstream)
        if path is not None:
            covered.update(path)
            covered.update(_reachable_both_ways(start, downstream, upstream))
            found.append(path)
    return found


def _shortest_loop(start: str, downstream: dict[str, list[str]]) -> list[str] | None:
    """Breadth-first path from ``start`` back to itself, or None."""
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node_id in frontier:
            for nxt in downstream.get(node_id, ()):
                if nxt == start:
                    path = [node_id]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if nxt not in parents:
                    parents[nxt] = node_id
                    following.append(nxt)
        frontier = following
    return None


def _reachable_both_ways(
    start: str, downstream: dict[str, list[str]], upstream: dict[str, set[str]]
) -> set[str]:
    """The strongly connected group of ``start``: it is reported once, not once per member."""

    def reach(edges: dict[str, Any]) -> set[str]:
        seen = {start}
        stack = [start]
        while stack:
            for nxt in edges.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    return reach(downstream) & reach(upstream)
