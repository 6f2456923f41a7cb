"""Run a graph of real node processes in-process and wait on it with deadlines, never sleeps;
read what its nodes wrote.

``start_graph`` (a fixture in ``conftest.py``) starts a :class:`GraphRun` and stops it at teardown.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)
    return result


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete lines of a JSON-lines file a node is still appending to."""
    if not path.exists():
        return []
    lines = path.read_text().split("\n")
    return [json.loads(line) for line in lines[:-1] if line]


def chain(out: Path, size: int = 32, rate_hz: float = 100, count: int = 0) -> str:
    """source → relay → recording sink; the source stops after ``count`` frames (0: never)."""
    return f"""
name: chain
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    params: {{rate_hz: {rate_hz}, width: {size}, height: {size}, count: {count}}}
  - id: relay
    uses: passthrough
    inputs: {{in: src/image}}
  - id: sink
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: relay/out}}
    params: {{out: "{out}"}}
"""


class GraphRun:
    """A graph run by an in-process ``Supervisor``; ``wait`` polls it until a condition holds."""

    def __init__(self, text: str, tmp_path: Path, lockstep: bool = False) -> None:
        from igtflow.launch.graph_reader import parse_graph
        from igtflow.launch.supervisor import Supervisor

        self.tmp_path = tmp_path
        self.log_lines: list[str] = []
        self.graph = parse_graph(text, str(tmp_path / "graph.yaml"))
        self.supervisor = Supervisor(
            self.graph, tmp_path / "logs", log_sink=self.log_lines.append, lockstep=lockstep
        )
        self.stopped = False

    @property
    def nodes(self) -> dict[str, Any]:
        return self.supervisor.nodes

    def wait(self, condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
        """Poll the supervisor until ``condition()`` is truthy; fail naming ``what`` otherwise."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() >= deadline:
                tail = "\n".join(self.log_lines[-30:])
                pytest.fail(f"timed out after {timeout_s} s waiting for {what}\n{tail}")
            self.supervisor.poll(0.02)

    def run_for(self, seconds: float) -> None:
        """Keep the supervisor going (restarts, stats) for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.supervisor.poll(min(0.05, max(0.0, end - time.monotonic())))

    def stats(self, node_id: str) -> dict[str, Any]:
        """The node's latest heartbeat stats."""
        return self.nodes[node_id].stats

    def input_stats(self, node_id: str, input_name: str = "in") -> dict[str, Any]:
        return self.stats(node_id).get("inputs", {}).get(input_name, {})

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.supervisor.stop()


def wait_settled(run: GraphRun, records: Path, node_id: str, quiet_s: float = 0.6) -> list[dict]:
    """Wait until ``node_id`` stops recording and its heartbeat has counted every record."""
    last = {"count": -1, "since": time.monotonic()}

    def settled() -> list[dict] | None:
        seen = read_jsonl(records)
        if len(seen) != last["count"]:
            last["count"], last["since"] = len(seen), time.monotonic()
            return None
        quiet = time.monotonic() - last["since"] >= quiet_s
        counted = run.input_stats(node_id).get("received") == len(seen)
        return seen if seen and quiet and counted else None

    return run.wait(settled, 15, f"{node_id} to settle with every record counted")
