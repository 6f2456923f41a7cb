"""The graph model: a checked graph, its nodes and their wires, and the queries run on it.

What the launcher, supervisor and lockstep work from; it holds no YAML and no validation, so
importing it loads neither the YAML reader nor any node type. A graph comes from a file through
:func:`igtflow.launch.graph_reader.load_graph`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from igtflow.launch import topology

Policy = Literal["latest", "queue"]
Restart = Literal["on-failure", "never"]
# background: the process runs at a lower OS priority (nice 10), so whatever it does (a 3D view,
# a report) waits for the live path rather than the other way round.
Priority = Literal["normal", "background"]

DEFAULT_BUDGET_MIB = 256  # shared memory a queue may leave unread at its producer (per output)
DEFAULT_MAX_RESTARTS = 5
DEFAULT_THREADS = 1


@dataclass(frozen=True)
class InputSpec:
    """One wire into a node: which upstream output it reads and how it queues."""

    name: str
    node: str
    output: str
    policy: Policy = "latest"
    depth: int = 1
    line: int = 0
    budget_mib: int = DEFAULT_BUDGET_MIB

    @property
    def source(self) -> str:
        """The ``node/output`` reference this input reads."""
        return f"{self.node}/{self.output}"


@dataclass(frozen=True)
class NodeSpec:
    """One node of a checked graph: enough for the launcher to start its process."""

    id: str
    uses: str
    import_path: str
    params: dict[str, Any]
    inputs: tuple[InputSpec, ...] = ()
    host: str | None = None
    restart: Restart = "on-failure"
    max_restarts: int = DEFAULT_MAX_RESTARTS
    threads: int = DEFAULT_THREADS
    priority: Priority = "normal"
    line: int = 0
    outputs: tuple[str, ...] = ()  # every output, the implicit ``status`` included
    # Its type is a ``Source``: it makes data on its own (no inputs), so it is started, paused and
    # waited for to finish as where the graph's data starts; a Ticking node with inputs is not.
    is_source: bool = False


@dataclass(frozen=True)
class CurveSpec:
    """The graph's ``curve:`` section: which key pair each host uses, and whom servers let in.

    ``hosts`` maps a node ``host:`` to the path (without suffix) of its key pair from
    ``igtflow keygen``; ``allow`` lists the public key files of the clients let in. Paths are
    absolute (resolved against the graph file's folder).
    """

    hosts: dict[str, str]
    allow: tuple[str, ...]

    def secret_file(self, host: str) -> str:
        return self.hosts[host] + ".key_secret"

    def public_file(self, host: str) -> str:
        return self.hosts[host] + ".key"


@dataclass(frozen=True)
class Graph:
    """A validated graph: nodes in file order, every wire resolved, no cycles."""

    name: str
    path: str
    text: str
    nodes: tuple[NodeSpec, ...]
    # ``validate --no-import``: what was left unchecked, e.g. "node 'x': would import pkg.mod".
    unchecked: tuple[str, ...] = ()
    curve: CurveSpec | None = None  # tcp edges are CURVE-encrypted and authenticated
    insecure: bool = False  # plain tcp allowed on a non-loopback address (a trusted network)

    def node(self, node_id: str) -> NodeSpec:
        """The node with id ``node_id``; a KeyError names the ids that exist."""
        for spec in self.nodes:
            if spec.id == node_id:
                return spec
        known = ", ".join(spec.id for spec in self.nodes)
        raise KeyError(f"graph {self.name!r} has no node {node_id!r} (nodes: {known})")

    def consumers(self, node_id: str, output: str) -> list[tuple[NodeSpec, InputSpec]]:
        """Every (node, input) that reads ``node_id/output``, in file order."""
        return [
            (spec, wire)
            for spec in self.nodes
            for wire in spec.inputs
            if wire.node == node_id and wire.output == output
        ]

    def topo_order(self) -> list[NodeSpec]:
        """Nodes with every upstream before its consumers; ties keep file order."""
        upstream = {spec.id: {wire.node for wire in spec.inputs} for spec in self.nodes}
        order = topology.topo_order([spec.id for spec in self.nodes], upstream)
        return [self.node(node_id) for node_id in order]


# Reading and validation moved to their own modules; old imports of them from here still resolve,
# lazily, so that importing the model never imports the validator.
