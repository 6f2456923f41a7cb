"""A node as the graph file states it, part-checked: what reading fills in and wiring completes.

Validation works on drafts rather than on :class:`~igtflow.launch.graph.NodeSpec` because a draft
may be incomplete (its type failed to load, an input is still a ``node/output`` text) and every
mistake is still to be reported; only a graph with none becomes frozen specs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from igtflow.launch.graph import (
    DEFAULT_BUDGET_MIB,
    DEFAULT_MAX_RESTARTS,
    DEFAULT_THREADS,
    InputSpec,
    NodeSpec,
    Policy,
    Priority,
    Restart,
)
from igtflow.stream.messages import Message
from igtflow.stream.node import Node, Param, Source


@dataclass
class WireDraft:
    """An input as written, before its reference is resolved against the other nodes."""

    name: str
    ref: str
    policy: Policy
    depth: int
    line: int
    budget_mib: int = DEFAULT_BUDGET_MIB


@dataclass
class NodeDraft:
    """A node read from YAML; ``cls`` is None when its type could not be loaded."""

    label: str
    line: int
    id: str | None = None
    uses: str = ""
    import_path: str = ""
    cls: type[Node] | None = None
    declared: dict[str, Param] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    param_lines: dict[str, int] = field(default_factory=dict)
    wires: list[WireDraft] = field(default_factory=list)
    inputs: list[InputSpec] = field(default_factory=list)
    outputs: dict[str, type[Message]] = field(default_factory=dict)
    host: str | None = None
    host_line: int = 0
    restart: Restart = "on-failure"
    max_restarts: int = DEFAULT_MAX_RESTARTS
    threads: int = DEFAULT_THREADS
    priority: Priority | None = None  # None: the node type's own (``Node.priority``)

    def spec(self) -> NodeSpec:
        """The frozen node of a graph that passed every check."""
        assert self.id is not None
        return NodeSpec(
            id=self.id,
            uses=self.uses,
            import_path=self.import_path,
            params=self.params,
            inputs=tuple(self.inputs),
            host=self.host,
            restart=self.restart,
            max_restarts=self.max_restarts,
            threads=self.threads,
            priority=self.priority or (self.cls.priority if self.cls is not None else "normal"),
            line=self.line,
            outputs=tuple(self.outputs),
            is_source=self.is_source,
        )

    @property
    def is_source(self) -> bool:
        """Whether the node's type is a Source; a type left unloaded (``--no-import``) is taken
        as one when nothing is wired into it."""
        if self.cls is None:
            return not self.wires
        return issubclass(self.cls, Source)


def unique(drafts: list[NodeDraft]) -> dict[str, NodeDraft]:
    """Nodes that can be wired: a valid, first-seen id."""
    return {d.id: d for d in drafts if d.id is not None}
