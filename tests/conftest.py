"""Shared fixtures and helpers: run a graph of real node processes and wait on it with deadlines,
read what its nodes wrote, check a bench report's machine calibration. Elsewhere: frames in
``frames.py`` and ``frame_files.py``, OpenIGTLink peers in ``igtl_helpers.py``, free ports from
``igtflow.ports``.

Node processes are spawned with ``python -m igtflow.stream.process`` and import test node types
as ``tests.nodes.<module>:<Class>``, so the repository root goes on their PYTHONPATH.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
)


def igtflow(
    *args: str, timeout: float = 120, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``igtflow ARGS`` as a child process, as a user runs it; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "igtflow", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)
    return result


CALIBRATION_KEYS = {"memcpy_gb_s", "python_loop_ms", "numpy_sort_ms"}


def assert_calibrated(machine: dict[str, Any]) -> None:
    """What every bench report's ``machine`` must carry: a finite, positive calibration."""
    calibration = machine["calibration"]
    assert calibration.keys() >= CALIBRATION_KEYS
    for key, value in calibration.items():
        assert math.isfinite(value) and value > 0, (key, value)
    assert calibration["memcpy_gb_s"] >= calibration["memcpy_gb_s_median"]
    assert calibration["python_loop_ms"] <= calibration["python_loop_ms_median"]


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


@pytest.fixture
def start_graph(tmp_path: Path) -> Iterator[Callable[..., GraphRun]]:
    """``start_graph(yaml_text)``: start every node and wait until all run; stopped at teardown."""
    runs: list[GraphRun] = []

    def start(text: str, lockstep: bool = False) -> GraphRun:
        run = GraphRun(text, tmp_path, lockstep)
        runs.append(run)
        run.supervisor.start()
        not_running = [n for n, s in run.nodes.items() if s.state != "running"]
        assert not not_running, f"nodes not running after start: {not_running}\n" + "\n".join(
            run.log_lines[-30:]
        )
        return run

    yield start
    for run in runs:
        run.stop()


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
