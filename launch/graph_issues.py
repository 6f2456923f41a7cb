"""How a graph's mistakes are reported: ``file:line: message``, every one at once, with a fix.

Shared by every step of validation (reading the YAML, coercing parameters, checking the wiring),
so each step words its mistakes the same way and none depends on another to say them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Report = Callable[[int, str], None]  # (line, message): record one mistake in the graph file


@dataclass(frozen=True)
class GraphIssue:
    """One mistake in a graph, located so an editor can jump to it."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class GraphError(Exception):
    """A graph that must not run; ``issues`` holds every mistake found, in file order."""

    def __init__(self, issues: Sequence[GraphIssue]) -> None:
        self.issues: list[GraphIssue] = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))
