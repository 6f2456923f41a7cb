"""Lockstep bookkeeping: which deliveries are still being handled, and when a source may go on.

In lockstep every node reports each message it handled (``[input, topic, seq]``) together with
what it emitted while handling it, and a source reports each tick's messages. A delivery is
counted open when its producer reports it and closed when its reader does; because reports from
different processes arrive in any order, a close may come first, which leaves a negative count
until the producer's report cancels it. The graph is idle only when every count is zero: then
no handler is running and no message is on its way, and the waiting source gets NEXT.

Within one message's wave, a node handles nothing until the supervisor grants it, and it is
granted its deliveries only once none of its upstream nodes has anything left to handle: by then
everything this wave brings it has been reported, and the grant lists it in one canonical order
(its inputs in file order, then topic, then seq). A node with two inputs fed by paths of
different speed thus sees them in the same order on every replay.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from igtflow.launch.graph import Graph

Delivery = tuple[str, str, str, int]  # reader node, reader input, topic, seq


class LockstepLedger:
    """Open deliveries of a lockstep graph and the sources waiting for them to close."""

    def __init__(self, graph: Graph) -> None:
        self.readers: dict[str, list[tuple[str, str]]] = {
            f"{spec.id}/{output}": [(c.id, i.name) for c, i in graph.consumers(spec.id, output)]
            for spec in graph.nodes
            for output in spec.outputs
        }
        self.open: Counter[Delivery] = Counter()
        self.granted: set[Delivery] = set()
        self.waiting: list[str] = []
        self.released = 0
        self.input_order = {
            spec.id: {wire.name: i for i, wire in enumerate(spec.inputs)} for spec in graph.nodes
        }
        self.upstream = _upstream(graph)

    def done(self, node_id: str, handled: list[Any] | None, emitted: list[list[Any]]) -> None:
        """Take in one report from ``node_id``."""
        for topic, seq in emitted:
            for reader, input_name in self.readers.get(topic, []):
                self._add((reader, input_name, topic, int(seq)), 1)
        if handled is None:
            if node_id not in self.waiting:
                self.waiting.append(node_id)
        else:
            input_name, topic, seq = handled
            self._add((node_id, input_name, topic, int(seq)), -1)

    def _add(self, delivery: Delivery, count: int) -> None:
        total = self.open[delivery] + count
        if total:
            self.open[delivery] = total
        else:
            del self.open[delivery]
            self.granted.discard(delivery)

    def forget(self, node_id: str) -> str | None:
        """``node_id`` died: drop the deliveries it was to handle and its place in the queue;
        returns the source to release if that leaves the graph idle."""
        for delivery in [d for d in self.open if d[0] == node_id]:
            del self.open[delivery]
            self.granted.discard(delivery)
        if node_id in self.waiting:
            self.waiting.remove(node_id)
        return self.release()

    @property
    def idle(self) -> bool:
        return not self.open

    def release(self) -> str | None:
        """The source to send NEXT to, once the graph is idle (one at a time, in report order)."""
        if not self.open and self.waiting:
            self.released += 1
            return self.waiting.pop(0)
        return None

    def grants(self) -> list[tuple[str, list[list[Any]]]]:
        """Per node, the deliveries it may handle now, in the order it must handle them.

        A node is granted its reported, not yet granted deliveries once no node upstream of it
        has an open delivery: nothing more can reach it in this wave.
        """
        busy = {d[0] for d, count in self.open.items() if count}
        due: dict[str, list[Delivery]] = {}
        for delivery, count in self.open.items():
            reader = delivery[0]
            if count > 0 and delivery not in self.granted and not busy & self.upstream[reader]:
                due.setdefault(reader, []).append(delivery)
        out = []
        for reader, deliveries in due.items():
            order = self.input_order.get(reader, {})
            deliveries.sort(key=lambda d: (order.get(d[1], len(order)), d[2], d[3]))
            self.granted.update(deliveries)
            out.append((reader, [[d[1], d[2], d[3]] for d in deliveries]))
        return out


def _upstream(graph: Graph) -> dict[str, set[str]]:
    """Every node's ancestors: the nodes any of its inputs depends on, however indirectly."""
    parents = {spec.id: {wire.node for wire in spec.inputs} for spec in graph.nodes}
    upstream: dict[str, set[str]] = {}
    for spec in graph.topo_order():  # parents first
        found: set[str] = set()
        for parent in parents[spec.id]:
            found |= {parent, *upstream.get(parent, set())}
        upstream[spec.id] = found
    return upstream
